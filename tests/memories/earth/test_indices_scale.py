"""The indices refuse digital numbers: on DN input EVI was off by orders of magnitude, silently.

Real Sentinel-2 L1C over Slovenia: the COGs hold reflectance x 10000 (DN), the
reference array the same scenes as reflectance 0-1.
"""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
import xarray as xr

from memories.earth.indices import compute_indices, evi, ndvi
from memories.errors import ProcessingError

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "s2_slovenia"
BANDS = {"blue": "B02", "red": "B04", "nir": "B08"}
ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


def _dn(date: str, band: str) -> np.ndarray:
    with rasterio.open(DATA / "cogs" / f"S2_L1C_{date}_{band}.tif") as ds:
        return ds.read(1)


def test_evi_of_real_digital_numbers_is_refused_with_the_scale_to_apply() -> None:
    dn = {name: _dn("2015-08-20", band).astype(np.float32) for name, band in BANDS.items()}
    with pytest.raises(ProcessingError, match=r"evi input 'nir'.*digital numbers.*raster:bands.*/ 10000"):
        evi(dn["nir"], dn["red"], dn["blue"])
    with pytest.raises(ProcessingError, match=r"ndvi input 'nir'.*digital numbers"):
        ndvi(dn["nir"], dn["red"])
    with pytest.raises(ProcessingError, match="digital numbers"):
        evi(_dn("2015-08-20", "B08"), _dn("2015-08-20", "B04"), _dn("2015-08-20", "B02"))  # uint16 as read


def test_real_reflectance_of_every_scene_passes_and_matches_the_scaled_dn() -> None:
    scenes = np.load(DATA / "REFERENCE_SCENES.npy")  # (5, 101, 100, 13) reflectance, clouds included
    refl = {name: scenes[..., ORDER.index(band)] for name, band in BANDS.items()}
    assert float(np.nanmax(refl["blue"])) > 0.3  # bright cloud is in there, and still reflectance
    got = evi(refl["nir"], refl["red"], refl["blue"])
    scaled = {name: _dn("2015-08-20", band) / 10000.0 for name, band in BANDS.items()}
    want = evi(scaled["nir"], scaled["red"], scaled["blue"])  # scene 0 is 2015-08-20
    np.testing.assert_allclose(got[0], want, atol=1e-3, equal_nan=True)


def test_lazy_indices_check_digital_numbers_while_computing_and_read_each_block_once() -> None:
    reads = {"n": 0}

    def counted(block: np.ndarray) -> np.ndarray:
        reads["n"] += block.size > 0  # dask also calls it once on an empty array, to learn the output type
        return block

    values = np.stack([_dn("2015-08-20", BANDS[b]) for b in ("blue", "red", "nir")]).astype(np.float32)
    coords = {"band": ["blue", "red", "nir"]}
    chunks = (1, 51, 50)  # 3 bands x 4 blocks
    lazy_dn = xr.DataArray(da.from_array(values, chunks=chunks), dims=("band", "y", "x"), coords=coords)
    indices = compute_indices(lazy_dn, ("ndvi", "evi"))  # building the graph computes nothing
    with pytest.raises(ProcessingError, match="digital numbers"):
        indices.compute()

    refl = da.from_array(values / 10000.0, chunks=chunks).map_blocks(counted, dtype=np.float64)
    out = compute_indices(xr.DataArray(refl, dims=("band", "y", "x"), coords=coords), ("ndvi", "evi")).compute()
    assert reads["n"] == 12  # each input block once, for the check and both indices together
    np.testing.assert_allclose(out["ndvi"].values, ndvi(values[2] / 10000.0, values[1] / 10000.0), atol=1e-6)
