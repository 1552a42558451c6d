"""Statistics of a lazy composite, row block by row block, equal numpy's on the whole arrays."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from memories.earth.chunked_stats import exact_median
from memories.earth.imagery import band_medians, composite_stats


@pytest.mark.parametrize("n", [1, 2, 3, 10, 1001, 20000])
def test_exact_median_is_numpys_median_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    x = np.concatenate([rng.normal(0.1, 0.3, n).astype(np.float32), np.float32([0.25] * (n % 3))])
    blocks = np.array_split(x, 7)
    got = exact_median(lambda: iter(blocks))
    want = np.median(x)
    assert np.float32(got).view(np.uint32) == np.float32(want).view(np.uint32)


def test_exact_median_of_nothing_is_none() -> None:
    assert exact_median(lambda: iter([np.zeros(0, np.float32)])) is None


def _composite(rng: np.random.Generator) -> xr.Dataset:
    shape = (3, 90, 70)
    refl = rng.uniform(-0.05, 0.6, shape).astype(np.float32)
    refl[:, rng.random(shape[1:]) < 0.2] = np.nan
    refl[1, rng.random(shape[1:]) < 0.05] = np.nan
    spread = rng.uniform(0, 0.1, shape).astype(np.float32)
    obs = rng.integers(0, 12, shape[1:]).astype(np.uint8)
    clear = (obs * rng.uniform(0, 1, shape[1:])).astype(np.uint8)
    return xr.Dataset(
        {
            "reflectance": (("band", "y", "x"), refl),
            "spread": (("band", "y", "x"), spread),
            "clear_count": (("y", "x"), clear),
            "obs_count": (("y", "x"), obs),
        },
        coords={"band": ["red", "nir", "swir16"]},
    )


def test_lazy_composite_stats_equal_numpys_on_the_whole_arrays() -> None:
    ds = _composite(np.random.default_rng(4))
    got = composite_stats(ds.chunk({"y": 16, "x": 32}))
    refl, spread = ds["reflectance"].values, ds["spread"].values
    valid = np.isfinite(refl).all(axis=0)
    obs = int(ds["obs_count"].values.astype(np.int64).sum())
    clear = int(ds["clear_count"].values.astype(np.int64).sum())
    assert got["pixels"] == valid.size and got["valid_pixels"] == int(valid.sum())
    assert got["observations"] == obs and got["clear_observations"] == clear
    assert got["cloud_fraction"] == 1.0 - clear / obs
    want = {b: float(np.median(spread[i][valid])) for i, b in enumerate(["red", "nir", "swir16"])}
    assert got["median_spread"] == want


def test_band_medians_equal_nanmedian() -> None:
    ds = _composite(np.random.default_rng(5))
    got = band_medians(ds["reflectance"].chunk({"y": 20}))
    want = {str(b): float(np.nanmedian(ds["reflectance"].values[i])) for i, b in enumerate(ds["band"].values)}
    assert got == want


def test_validation_frame_of_a_lazy_composite_is_the_whole_arrays_frame() -> None:
    from memories.earth.expectations import _composite_frame

    ds = _composite(np.random.default_rng(6))
    bands = ["red", "nir", "swir16"]
    lazy = _composite_frame(ds.chunk({"y": 16}), bands, sample_px=500, seed=3)
    whole = _composite_frame(ds, bands, sample_px=500, seed=3)
    assert len(whole) >= 500
    assert lazy.equals(whole)
