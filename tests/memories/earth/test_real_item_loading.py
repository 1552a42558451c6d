"""Real Landsat and Planetary Computer items loaded end to end: scaling, offsets and masks as the items declare.

The items are real API answers from ``../shared/data/stac_items``; their hrefs point at
COGs written here with known digital numbers, so the composite's reflectance can be
checked against the items' own ``raster:bands`` (Landsat: scale 2.75e-05, offset -0.2)
or, where Planetary Computer gives none, against DN / 10000 and the baseline's offset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from memories.earth.imagery import load_scenes, monthly_composite
from memories.earth.stac import item_epsg
from memories.earth.stac_profiles import COMMON_BANDS, get_profile
from memories.grid import TileGrid

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "stac_items"
QA_CLEAR = 21824  # Landsat C2 QA_PIXEL of a clear land pixel (bit 6 clear, low confidences)
QA_CLOUD = 22280  # cloud (bit 3) with high cloud confidence


def _origin(d: dict, epsg: int) -> tuple[float, float]:
    """A 30 m-aligned point in the middle of the item's real footprint, in its CRS (the local COGs sit there)."""
    from pyproj import Transformer
    from shapely.geometry import shape

    c = shape(d["geometry"]).centroid
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(c.x, c.y)
    return float(x // 30 * 30), float(y // 30 * 30)


def _cog(path: Path, values: np.ndarray, epsg: int, res: float, x0: float, y0: float) -> None:
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=values.shape[1],
        height=values.shape[0],
        count=1,
        dtype="uint16",
        crs=f"EPSG:{epsg}",
        nodata=0,
        transform=rasterio.transform.from_origin(x0, y0, res, res),
    ) as dst:
        dst.write(values.astype(np.uint16), 1)


def _item(
    name: str,
    collection: str | None,
    keys: dict[str, str],
    values: dict[str, np.ndarray],
    folder: Path,
    res: float,
    baseline: str | None = None,
) -> tuple[pystac.Item, float, float]:
    d = json.loads((DATA / name).read_text())
    if d.get("type") == "FeatureCollection":
        d = next(f for f in d["features"] if f["collection"] == collection)
    d["links"] = []
    if baseline is not None:
        d["properties"]["s2:processing_baseline"] = baseline
    epsg = item_epsg(d)
    x0, y0 = _origin(d, epsg)
    for band, key in keys.items():
        path = folder / f"{d['id']}_{key}.tif"
        h, w = values[band].shape
        _cog(path, values[band], epsg, res, x0, y0)
        # The local COG is a small window of the real footprint: its grid replaces the full scene's.
        d["assets"][key].update(
            {
                "href": str(path),
                "proj:shape": [h, w],
                "proj:transform": [res, 0.0, x0, 0.0, -res, y0],
                "proj:bbox": [x0, y0 - h * res, x0 + w * res, y0],
            }
        )
    for field in ("proj:bbox", "proj:shape", "proj:transform"):
        d["properties"].pop(field, None)
    return pystac.Item.from_dict(d), x0, y0


def test_landsat_item_from_earth_search_is_scaled_by_its_raster_bands_and_masked_by_qa_pixel(tmp_path):
    profile = get_profile("earth-search", collection="landsat-c2-l2")
    keys = profile.required_keys(COMMON_BANDS)
    dn = {b: np.full((16, 16), 10000 + 1000 * i) for i, b in enumerate(COMMON_BANDS)}
    qa = np.full((16, 16), QA_CLEAR)
    qa[:8, :8] = QA_CLOUD
    dn[profile.mask_band] = qa
    item, x0, y0 = _item("earthsearch_v1_s2l2a_landsat_2023-10-08.json", "landsat-c2-l2", keys, dn, tmp_path, 30.0)
    grid = TileGrid("13TDE", item_epsg(item.to_dict()), x0, y0, 48, 48, 10.0)

    stack = load_scenes([item], profile, grid, COMMON_BANDS, chunk_px=48)
    assert stack.mask_kind == "qa_pixel"
    refl = monthly_composite(stack)["reflectance"].values  # (band, y, x)

    expected = np.array([(10000 + 1000 * i) * 2.75e-05 - 0.2 for i in range(len(COMMON_BANDS))])
    clear = refl[:, 24:, 24:]
    np.testing.assert_allclose(clear, expected[:, None, None] * np.ones_like(clear), atol=1e-6)
    assert np.isnan(refl[:, :24, :24]).all(), "QA_PIXEL cloud pixels (30 m) must be masked on the 10 m grid"


@pytest.mark.parametrize(("baseline", "offset"), [("02.12", 0.0), ("04.00", -0.1), ("05.09", -0.1)])
def test_planetary_computer_s2_without_raster_bands_uses_dn_over_10000_and_the_baseline_offset(
    tmp_path, baseline, offset
):
    profile = get_profile("planetary-computer")
    keys = profile.required_keys(COMMON_BANDS)
    dn = {b: np.full((32, 32), 2000 + 100 * i) for i, b in enumerate(COMMON_BANDS)}
    dn[profile.mask_band] = np.full((32, 32), 4)  # SCL 4: vegetation, clear
    item, x0, y0 = _item(
        "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json", None, keys, dn, tmp_path, 10.0, baseline
    )
    grid = TileGrid("06VVN", item_epsg(item.to_dict()), x0, y0, 32, 32, 10.0)

    refl = monthly_composite(load_scenes([item], profile, grid, COMMON_BANDS, chunk_px=32))["reflectance"].values

    expected = np.array([(2000 + 100 * i) * 1e-4 + offset for i in range(len(COMMON_BANDS))])
    np.testing.assert_allclose(np.nanmean(refl, axis=(1, 2)), expected, atol=1e-6)
    assert np.isfinite(refl).all()
