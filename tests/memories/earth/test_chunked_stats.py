"""Statistics of a lazy composite, row block by row block, equal numpy's on the whole arrays; one summary
reads each variable twice and gives the separate functions' figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from memories.earth.chunked_stats import TwoPassMedian, exact_median
from memories.earth.composite_summary import summarize_composite
from memories.earth.expectations import validate_composite
from memories.earth.imagery import band_medians, composite_stats
from memories.errors import ProcessingError


@pytest.mark.parametrize("n", [1, 2, 3, 10, 1001, 20000])
def test_exact_median_is_numpys_median_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    x = np.concatenate([rng.normal(0.1, 0.3, n).astype(np.float32), np.float32([0.25] * (n % 3))])
    blocks = np.array_split(x, 7)
    got = exact_median(lambda: iter(blocks))
    want = np.median(x)
    assert np.float32(got).view(np.uint32) == np.float32(want).view(np.uint32)


@pytest.mark.parametrize(
    "values",
    [[-0.0, 0.0], [0.0, -0.0, -0.0], [-np.inf, -1e-30, 1e-30, np.inf], [-3.5, -2.25, -1.0], [np.inf, np.inf, 5.0]],
)
def test_exact_median_orders_signed_zeros_negatives_and_infinities_as_numpy(values) -> None:
    x = np.float32(values)
    got, want = exact_median(lambda: iter(np.array_split(x, 2))), np.median(x)
    if want == 0:  # np.median's partition picks either zero of -0.0 == 0.0; the value is the same
        assert got == 0
    else:
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


def _oracle_frame(ds: xr.Dataset, sample_px: int, seed: int) -> pd.DataFrame:
    """The suite's sample on the whole arrays: a seeded sample plus each band's nanargmin and nanargmax."""
    refl = ds["reflectance"].values.reshape(3, -1)
    picks = np.random.default_rng(seed).choice(refl.shape[1], size=sample_px, replace=False)
    extremes = [f(row) for row in refl for f in (np.nanargmin, np.nanargmax)]
    picks = np.unique(np.concatenate([picks, np.array(extremes, dtype=np.int64)]))
    frame = pd.DataFrame({f"reflectance_{b}": refl[i][picks].astype(np.float64) for i, b in enumerate(BANDS)})
    frame["valid"] = np.isfinite(refl[:, picks]).all(axis=0)
    for name in ("clear_count", "obs_count"):
        frame[name] = ds[name].values.reshape(-1)[picks].astype(np.int64)
    for i, b in enumerate(BANDS):
        frame[f"spread_{b}"] = ds["spread"].values.reshape(3, -1)[i][picks].astype(np.float64)
    return frame


BANDS = ["red", "nir", "swir16"]


@pytest.mark.parametrize("chunks", [None, {"y": 16}, {"y": 16, "x": 32}])
def test_the_suites_sample_of_a_lazy_composite_is_the_sampled_pixels_of_the_whole_arrays(chunks) -> None:
    ds = _composite(np.random.default_rng(6))
    got = summarize_composite(ds.chunk(chunks) if chunks else ds, sample_px=500, seed=3).sample
    assert got is not None and len(got) >= 500
    pd.testing.assert_frame_equal(got, _oracle_frame(ds, 500, 3), check_exact=True)


def test_one_summary_reads_each_variable_twice_and_gives_the_separate_functions_figures() -> None:
    """Stats, band medians and the suite's sample together: 2 reads of each band of each variable per row
    block (16 computes a block here), where the three functions alone make 30; the figures are theirs."""
    from dask.callbacks import Callback

    ds = _composite(np.random.default_rng(7))
    lazy = ds.chunk({"y": 16, "x": 32})  # 6 row blocks
    computes = []

    class Count(Callback):
        def _start(self, dsk):  # type: ignore[no-untyped-def]
            computes.append(1)

    with Count():
        summary = summarize_composite(lazy, sample_px=500, seed=0)
        suite = validate_composite(lazy, min_valid_fraction=0.5, sample_px=500, summary=summary)
    assert len(computes) == 6 * 2 * (3 + 3 + 2)  # per block, twice: 3 reflectance bands, 3 spread bands, 2 counts
    computes.clear()
    with Count():
        alone = (composite_stats(lazy), band_medians(lazy["reflectance"]))
        suite_alone = validate_composite(lazy, min_valid_fraction=0.5, sample_px=500)
    assert len(computes) == 6 * 30  # stats 11, band medians 6, the suite 13 (its pass 1 also sums the counts)
    assert (summary.stats, summary.medians) == alone
    assert [(o.expectation, o.column, o.success, o.details) for o in suite.outcomes] == [
        (o.expectation, o.column, o.success, o.details) for o in suite_alone.outcomes
    ]
    assert suite.success == suite_alone.success and suite.rows == suite_alone.rows


def test_a_summary_sampled_otherwise_is_refused_by_the_suite() -> None:
    ds = _composite(np.random.default_rng(8))
    summary = summarize_composite(ds, sample_px=100, seed=1)
    with pytest.raises(ProcessingError, match=r"summary's sample \(100 px, seed 1\) is not the suite's"):
        validate_composite(ds, sample_px=500, seed=1, summary=summary)
    with pytest.raises(ProcessingError, match="summarize_composite"):
        validate_composite(ds, summary=summarize_composite(ds))  # no sample at all


def test_two_pass_median_refuses_passes_out_of_order() -> None:
    m = TwoPassMedian()
    m.count(np.float32([3, 1, 2]))
    with pytest.raises(RuntimeError, match="before refine"):
        m.value()
    m.refine(np.float32([2, 3, 1]))  # the same values, in another order
    assert m.value() == 2.0
    with pytest.raises(RuntimeError, match="after refine"):
        m.count(np.float32([5]))
