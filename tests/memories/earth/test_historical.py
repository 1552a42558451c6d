"""Georeferencing a scanned map from GCPs, against the sample scan's known transform."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile

from memories.earth.historical import GroundControlPoint, fit_transform, georeference, geotiff_bytes
from memories.errors import ConfigError, ProcessingError
from memories.sample import SampleWorldSpec
from memories.sample.historical import GCP_NOISE_M, gcps_and_checks, render_scan
from memories.sample.landscape import build_landscape

SPEC = SampleWorldSpec(seed=42, n_tiles=1, start_month="2023-05", n_months=3, size_px=128)
CHECK_TOLERANCE_M = 2 * GCP_NOISE_M
"""Largest error allowed at an exact check point for the right model: twice the GCP noise."""


@pytest.fixture(scope="module")
def scan():  # type: ignore[no-untyped-def]
    landscape = build_landscape(SPEC, "33TVM")
    gcps, checks = gcps_and_checks(landscape.tile, SPEC, 0)
    points = [GroundControlPoint(**g) for g in gcps]
    return landscape, render_scan(landscape, SPEC), points, checks


def _check_errors(geo, checks) -> np.ndarray:  # type: ignore[no-untyped-def]
    x, y = geo.forward(np.array([c["col"] for c in checks]), np.array([c["row"] for c in checks]))
    return np.hypot(x - [c["x"] for c in checks], y - [c["y"] for c in checks])


def test_polynomial_recovers_the_warped_scan_within_tolerance(scan) -> None:  # type: ignore[no-untyped-def]
    landscape, image, gcps, checks = scan
    poly = fit_transform(gcps, "polynomial", 2, crs=landscape.tile.crs)
    affine = fit_transform(gcps, "affine", crs=landscape.tile.crs)
    poly_err, affine_err = _check_errors(poly, checks), _check_errors(affine, checks)
    assert poly_err.max() < CHECK_TOLERANCE_M
    # The paper is bent: an affine fit leaves systematic error that the polynomial removes.
    assert np.sqrt((affine_err**2).mean()) > 2 * np.sqrt((poly_err**2).mean())
    assert affine.rmse_m > 2 * poly.rmse_m and affine.loo_rmse_m > poly.loo_rmse_m
    # RMSE of the right model is about the GCP noise; leave-one-out is never below it.
    assert 0.5 * GCP_NOISE_M < poly.rmse_m < 2 * GCP_NOISE_M
    assert poly.loo_rmse_m > poly.rmse_m
    assert list(poly.residuals.columns[-3:]) == ["dy", "residual_m", "loo_residual_m"] and len(poly.residuals) == 16
    assert poly.residuals["residual_m"].pow(2).mean() == pytest.approx(poly.rmse_m**2)


def test_resampled_scan_matches_the_land_cover_it_was_drawn_from(scan) -> None:  # type: ignore[no-untyped-def]
    landscape, image, gcps, _ = scan
    on_grid, geo = georeference(image, gcps, landscape.tile, method="polynomial")
    truth = landscape.landcover_at(SPEC.time_range[0])
    mapped = on_grid > 0
    assert 0.6 < mapped.mean() < 0.9  # the sheet covers the middle of the tile
    assert (on_grid[mapped] == truth[mapped]).mean() > 0.99


def test_noiseless_affine_gcps_give_back_the_affine_exactly() -> None:
    from affine import Affine

    true = Affine.translation(460000, 5100000) * Affine.rotation(-3.0) * Affine.scale(2.5, -2.5)
    pts = [(10, 20), (500, 40), (30, 700), (480, 650), (250, 333)]
    gcps = [GroundControlPoint(f"P{i}", c, r, *(true * (c, r))) for i, (c, r) in enumerate(pts)]
    geo = fit_transform(gcps, "affine")
    assert geo.rmse_m < 1e-6 and geo.loo_rmse_m < 1e-6
    assert np.allclose(geo.forward.affine()[:6], true[:6], atol=1e-6)


def test_geotiff_carries_the_tile_grid(scan) -> None:  # type: ignore[no-untyped-def]
    landscape, image, gcps, _ = scan
    on_grid, _ = georeference(image, gcps, landscape.tile, method="affine")
    data = geotiff_bytes(on_grid, landscape.tile, tags={"rmse_m": "1.0"})
    with MemoryFile(data) as mem, mem.open() as ds:
        assert ds.crs == rasterio.crs.CRS.from_epsg(32633)
        assert ds.transform == landscape.tile.transform
        assert ds.tags()["rmse_m"] == "1.0"
        np.testing.assert_array_equal(ds.read(1), on_grid)


def test_too_few_or_collinear_gcps_are_refused() -> None:
    line = [GroundControlPoint(f"P{i}", i, i, i * 10.0, -i * 10.0) for i in range(8)]
    with pytest.raises(ConfigError, match="at least 7 GCPs"):
        fit_transform(line[:6], "polynomial", 2)
    with pytest.raises(ProcessingError, match="lie on a line"):
        fit_transform(line, "affine")
    with pytest.raises(ConfigError, match="'affine' or 'polynomial'"):
        fit_transform(line, "spline")  # type: ignore[arg-type]
