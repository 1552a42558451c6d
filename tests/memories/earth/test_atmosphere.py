"""Dark-object subtraction of real Sentinel-2 L1C scenes, through ``get_historical_imagery``.

``../shared/data`` holds no Level-2A scene of these dates, so surface reflectance
is checked against an independent, published relation instead: over dark dense
vegetation, surface reflectance in the blue is a quarter and in the red half of
the 2.1-2.2 um SWIR reflectance, which the atmosphere barely touches (Kaufman et
al. 1997, IEEE TGRS 35(5), the basis of the MODIS aerosol retrieval). Raw
top-of-atmosphere blue is far above that relation (path radiance); the corrected
blue must sit on it. The scenes are served by a real STAC server on 127.0.0.1.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.memories.earth.slovenia_catalog import COLLECTION, DATA, centre_lat_lon, slovenia_grid, write_catalog
from tests.real_data import needs_data

pytestmark = needs_data(DATA)

KW = {
    "time_range": ("2015-07-01", "2015-10-01"),
    "interval": "monthly",
    "max_cloud_cover": 10,
    "bands": ["B2", "B3", "B4", "B8", "B12"],
}


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    from memories.config import config
    from memories.earth import SatelliteImagery
    from memories.sample import StacServer

    grid = slovenia_grid()
    paths = write_catalog(tmp_path_factory.mktemp("l1c"))
    settings = config.model_copy(update={"aoi": config.aoi.model_copy(update={"tiles": [grid.to_dict()]})})
    with StacServer(paths) as server:
        sat = SatelliteImagery(url=server.url, collection=COLLECTION, mask_kind="spectral", settings=settings)
        loc = centre_lat_lon(grid)
        raw = sat.historical_imagery(loc, **KW, apply_atmospheric_correction=False)
        dos = sat.historical_imagery(loc, **KW, apply_atmospheric_correction=True)
    return raw, dos


def _ddv_errors(ds, raw) -> tuple[float, float, int]:
    """Mean |blue - swir22/4| and |red - swir22/2| over dark dense vegetation (raw NDVI > 0.6, swir22 0.01-0.15)."""
    r = raw["reflectance"]
    ndvi = ((r.sel(band="nir") - r.sel(band="red")) / (r.sel(band="nir") + r.sel(band="red"))).values
    swir = r.sel(band="swir22").values
    ddv = (ndvi > 0.6) & (swir > 0.01) & (swir < 0.15)
    blue, red = (ds["reflectance"].sel(band=b).values for b in ("blue", "red"))
    return float(np.mean(np.abs(blue - swir / 4)[ddv])), float(np.mean(np.abs(red - swir / 2)[ddv])), int(ddv.sum())


def test_dark_object_subtraction_brings_real_l1c_onto_the_surface_reflectance_relation(series):
    raw, dos = series
    # the two cloudy scenes (07-31, 08-20: 100 % cloud in the source) are left out by max_cloud_cover
    assert dos.attrs["scenes"] == {
        "2015-07": ["S2A_33TVL_20150711_0_L1C"],
        "2015-08": ["S2A_33TVL_20150830_0_L1C"],
        "2015-09": ["S2A_33TVL_20150909_0_L1C"],
    }
    assert raw.attrs["processing_level"] == dos.attrs["processing_level"] == "L1C"
    assert raw.attrs["surface_reflectance"] is False and dos.attrs["surface_reflectance"] is True
    assert "dark-object subtraction" in dos.attrs["atmospheric_correction"]
    raw_blue, raw_red, n = _ddv_errors(raw, raw)
    dos_blue, dos_red, _ = _ddv_errors(dos, raw)
    print(f"\nDDV pixels {n}: |blue - swir/4| raw {raw_blue:.4f} -> DOS {dos_blue:.4f}; "
          f"|red - swir/2| raw {raw_red:.4f} -> DOS {dos_red:.4f}")  # fmt: skip
    assert n > 20000
    assert raw_blue > 0.05 and dos_blue < 0.006  # measured 0.0646 -> 0.0031
    assert dos_red < 0.7 * raw_red  # measured 0.0136 -> 0.0080


def test_the_haze_falls_with_wavelength_as_scattering_does(series):
    _, dos = series
    for month, h in dos.attrs["haze"].items():
        haze = dict(zip(h["bands"], h["haze"][0]))
        assert haze["blue"] > haze["green"] > haze["red"] > haze["nir"] > haze["swir22"] >= 0, month
        assert 0.04 < haze["blue"] < 0.08  # clear summer sky over Ljubljana: 0.059-0.064 measured
        assert 3.0 < h["exponent"][0] <= 4.0  # near Rayleigh (lambda^-4): a clear sky
        assert h["clear_pixels"][0] > 10000
    # corrected = raw - haze, band by band, on every pixel (haze in attrs is rounded to 1e-5)
    raw = series[0]
    for t, month in enumerate(dos.attrs["periods"]):
        h = dos.attrs["haze"][month]
        for band in ("blue", "red", "nir"):
            before = raw["reflectance"].isel(time=t).sel(band=band).values
            after = dos["reflectance"].isel(time=t).sel(band=band).values
            assert np.isfinite(after).mean() > 0.99
            ok = np.isfinite(before) & np.isfinite(after)
            np.testing.assert_allclose(before[ok] - after[ok], h["haze"][0][h["bands"].index(band)], atol=1e-5)


def test_forest_blue_is_stable_across_dates_once_corrected(series):
    """Haze differs from day to day; the forest does not (within a summer): correction shrinks the spread."""
    raw, dos = series
    lulc = np.load(DATA / "eopatch" / "mask_timeless" / "LULC.npy")[..., 0]
    forest = lulc == 2
    spread = {}
    for name, ds in (("raw", raw), ("dos", dos)):
        med = [float(np.nanmedian(ds["reflectance"].isel(time=t).sel(band="blue").values[forest])) for t in range(3)]
        spread[name] = max(med) - min(med)
    print(f"\nforest blue spread across dates: {spread}")
    assert spread["dos"] < 0.25 * spread["raw"]


def test_processing_level_reads_items_then_collection():
    from memories.earth.atmosphere import processing_level

    assert processing_level([{"id": "x", "properties": {"s2:product_type": "S2MSI1C"}}]) == "L1C"
    assert processing_level([{"id": "S2A_33TVM_20230501_0_L2A", "properties": {}}]) == "L2A"
    assert processing_level([{"id": "a", "properties": {}}], "landsat-c2-l2") == "L2"
    assert processing_level([{"id": "a", "properties": {}}], "my-scenes") == "unknown"
