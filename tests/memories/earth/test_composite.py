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
