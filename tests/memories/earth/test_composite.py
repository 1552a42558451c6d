"""Monthly composites: the median of clear observations, in DN or in reflectance."""

from __future__ import annotations

import numpy as np
import xarray as xr

from memories.earth.imagery import SceneStack, monthly_composite

T, B, H, W = 7, 2, 40, 50


def _stack(offsets: list[float]) -> tuple[SceneStack, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    dn = rng.integers(1000, 6000, size=(T, B, H, W)).astype(np.uint16)
    dn[2, :, :10, :10] = 0  # nodata wedge in one scene
    scl = np.full((T, H, W), 4, dtype=np.uint8)
    scl[rng.random((T, H, W)) < 0.35] = 9  # clouds
    scl[:, 0, 0] = 8  # a pixel never seen clear
    scl[2, :10, :10] = 0
    scale = np.full((T, B), 1e-4, dtype=np.float32)
    offset = np.array([[o] * B for o in offsets], dtype=np.float32)
    coords = {"band": ["red", "nir"], "y": np.arange(H), "x": np.arange(W)}
    stack = SceneStack(
        dn=xr.DataArray(dn, dims=("time", "band", "y", "x"), coords=coords).chunk({"time": 1, "band": 1}),
        scl=xr.DataArray(scl, dims=("time", "y", "x"), coords={"y": coords["y"], "x": coords["x"]}).chunk({"time": 1}),
        scale=scale,
        offset=offset,
        nodata=0,
    )
    refl = dn.astype(np.float64) * scale[:, :, None, None] + offset[:, :, None, None]
    ok = np.isin(scl, [4, 5, 6, 7, 11])[:, None] & (dn != 0)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nanmedian(np.where(ok, refl, np.nan), axis=0)
    return stack, want, ok


def test_dn_median_equals_reflectance_median():
    stack, want, ok = _stack([-0.1] * T)
    assert stack.uniform_scaling
    got = monthly_composite(stack).compute()
    np.testing.assert_allclose(got["reflectance"].values, want, atol=2e-7, equal_nan=True)
    assert np.isnan(got["reflectance"].values[:, 0, 0]).all()
    assert (got["clear_count"].values == ok[:, 0].sum(0)).all()
    assert got["obs_count"].values[5, 5] == T - 1 and got["obs_count"].values[20, 20] == T


def test_scenes_scaled_differently_are_scaled_before_the_median():
    # a month across the processing-baseline 04.00 change: older scenes carry no offset
    stack, want, _ = _stack([0.0, 0.0, 0.0, -0.1, -0.1, -0.1, -0.1])
    assert not stack.uniform_scaling
    got = monthly_composite(stack).compute()["reflectance"].values
    np.testing.assert_allclose(got, want, atol=2e-7, equal_nan=True)


def _numpy_iqr(stack: SceneStack, ok: np.ndarray) -> np.ndarray:
    refl = stack.dn.values.astype(np.float64) * stack.scale[:, :, None, None] + stack.offset[:, :, None, None]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q = np.nanpercentile(np.where(ok, refl, np.nan), [25, 75], axis=0)
    return q[1] - q[0]


def test_spread_is_the_interquartile_range_of_clear_reflectance_on_both_paths():
    for offsets in ([-0.1] * T, [0.0, 0.0, 0.0, -0.1, -0.1, -0.1, -0.1]):
        stack, _, ok = _stack(offsets)
        got = monthly_composite(stack).compute()
        assert got["spread"].dtype == np.float32 and got["spread"].dims == ("band", "y", "x")
        np.testing.assert_allclose(got["spread"].values, _numpy_iqr(stack, ok), atol=3e-6, equal_nan=True)
        one = ok[:, 0].sum(0) == 1  # a single clear observation has no spread
        assert one.any() and (got["spread"].values[:, one] == 0).all()
        assert np.isnan(got["spread"].values[:, 0, 0]).all()


def test_composite_stats_count_valid_pixels_and_cloud_fraction():
    from memories.earth.imagery import composite_stats

    stack, want, ok = _stack([-0.1] * T)
    stats = composite_stats(monthly_composite(stack).compute())
    valid = np.isfinite(want).all(axis=0)
    observed = np.asarray(stack.scl.values != 0)
    clear = np.isin(stack.scl.values, [4, 5, 6, 7, 11])
    assert stats["pixels"] == H * W and stats["valid_pixels"] == int(valid.sum())
    assert stats["valid_fraction"] == valid.sum() / (H * W)
    assert stats["observations"] == int(observed.sum()) and stats["clear_observations"] == int(clear.sum())
    assert np.isclose(stats["cloud_fraction"], 1 - clear.sum() / observed.sum())
    assert 0.3 < stats["cloud_fraction"] < 0.45  # 35 % of observations drawn cloudy, plus the never-clear pixel
    assert set(stats["median_spread"]) == {"red", "nir"}


def test_qa_pixel_stack_masks_by_bits():
    stack, _, _ = _stack([-0.1] * T)
    scl = stack.scl.values
    # the same scenes described by Landsat QA_PIXEL: clear bit for SCL-clear, cloud bit for cloud, 0 for nodata
    qa = np.where(np.isin(scl, [4, 5, 6, 7, 11]), 1 << 6, 1 << 3).astype(np.uint16)
    qa[scl == 0] = 1  # fill
    ref = monthly_composite(stack).compute()
    as_qa = SceneStack(
        dn=stack.dn,
        scl=xr.DataArray(qa, dims=stack.scl.dims, coords=stack.scl.coords).chunk({"time": 1}),
        scale=stack.scale,
        offset=stack.offset,
        nodata=0,
        mask_kind="qa_pixel",
    )
    got = monthly_composite(as_qa).compute()
    for name in ("reflectance", "spread", "clear_count", "obs_count"):
        np.testing.assert_array_equal(got[name].values, ref[name].values)


def test_spectral_stack_masks_bright_white_pixels():
    rng = np.random.default_rng(2)
    bands = ["blue", "green", "red", "nir", "swir16", "swir22"]
    veg = np.array([730, 610, 370, 2700, 1300, 560], dtype=np.uint16) + 1000  # baseline offset -0.1
    cloud = np.array([3000, 2800, 2800, 4000, 3200, 2600], dtype=np.uint16) + 1000
    t, h, w = 5, 32, 48
    dn = np.broadcast_to(veg[None, :, None, None], (t, 6, h, w)).copy()
    dn += rng.integers(0, 50, size=dn.shape, dtype=np.uint16)
    cloudy = np.zeros((t, h, w), bool)
    cloudy[1, :, :20] = True
    cloudy[3, 10:20, :] = True
    dn[np.broadcast_to(cloudy[:, None], dn.shape)] = np.broadcast_to(cloud[None, :, None, None], dn.shape)[
        np.broadcast_to(cloudy[:, None], dn.shape)
    ]
    coords = {"band": bands, "y": np.arange(h), "x": np.arange(w)}
    stack = SceneStack(
        dn=xr.DataArray(dn, dims=("time", "band", "y", "x"), coords=coords).chunk({"time": 1, "y": 16, "x": 16}),
        scl=None,
        scale=np.full((t, 6), 1e-4, np.float32),
        offset=np.full((t, 6), -0.1, np.float32),
        nodata=0,
        mask_kind="spectral",
    )
    got = monthly_composite(stack, shadow_search_px=4).compute()
    np.testing.assert_array_equal(got["clear_count"].values, t - cloudy.sum(0))
    assert (got["obs_count"].values == t).all()
    assert float(got["reflectance"].sel(band="nir").max()) < 0.3  # no cloud leaked into the median


def test_satellite_imagery_composite_matches_clear_sky_truth_with_scl_and_spectral_masks():
    """The notebook facade over the embedded world (the test config: 256 px), scored against ground truth."""
    from memories.earth import SatelliteImagery
    from memories.months import month_range

    tile, month = "33TVM", "2023-06"
    with SatelliteImagery() as sat:
        found = sat.search(tile, month)
        assert found.items and all("33TVM" in it.id for it in found.items)
        assert sat.api_url.startswith("http://127.0.0.1:")
        by_bbox = sat.search(month=month, bbox=sat.tile(tile).bbox_wgs84)
        assert {it.id for it in found.items} <= {it.id for it in by_bbox.items}
        scl = sat.composite(tile, month, indices=True).compute()
        sat.mask_kind = "spectral"
        spectral = sat.composite(tile, month).compute()
    from memories.config import config
    from memories.sample import SampleWorld

    world = SampleWorld.open(config.sample.root)
    start, end = month_range(month)
    dates = [d for d in world.scene_datetimes(tile) if start <= d <= end]
    errors = {}
    for name, ds in (("scl", scl), ("spectral", spectral)):
        stats = SatelliteImagery.stats(ds)
        assert stats["valid_fraction"] > 0.9 and 0 < stats["cloud_fraction"] < 1
        errs = []
        for b in ("red", "nir", "swir16"):
            truth = np.median([world.clear_sky_reflectance(tile, d, b) for d in dates], axis=0)
            got = ds["reflectance"].sel(band=b).values
            ok = np.isfinite(got)
            errs.append(float(np.abs(got[ok] - truth[ok]).mean()))
        errors[name] = max(errs)
    print(f"\ncomposite MAE vs clear-sky truth, {tile} {month}: {errors}")
    assert errors["scl"] < 0.01
    assert errors["spectral"] < 0.02
    np.testing.assert_allclose(
        scl["ndvi"].values,
        (
            (scl["reflectance"].sel(band="nir") - scl["reflectance"].sel(band="red"))
            / (scl["reflectance"].sel(band="nir") + scl["reflectance"].sel(band="red"))
        ).values,
        rtol=1e-5,
        equal_nan=True,
    )
