"""A scanned historical map per tile, with ground control points, for georeferencing.

The map shows the land cover at the start of the world's first month as a
paletted image (class colours, paper colour outside the mapped area), drawn as a
scanner would have captured an old sheet: scaled (``SCAN_PIXEL_M`` metres a
pixel), rotated by ``ROTATION_DEG`` and bent by a smooth quadratic distortion of
up to ``WARP_FRACTION`` of the sheet's side (paper shrinkage), so an affine fit
leaves systematic residuals that a second-order polynomial removes.

The true pixel-to-map function is ``scan_to_map``; its parameters are kept in
``truth.json`` with exact check points that no fit sees. The GCPs a surveyor
would pick carry map positions with Gaussian noise of ``GCP_NOISE_M`` metres.

On disk, per tile, under ``historical/<tile>/``: ``scan.tif`` (uint8 class
codes with a colour table, no georeference), ``gcps.json`` (``crs``, ``gcps``:
``id, col, row, x, y``; pixel coordinates from the top-left corner of the image,
GDAL's convention) and ``truth.json``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from memories.classes import CLASS_BY_CODE
from memories.grid import TileGrid
from memories.sample.landscape import Landscape
from memories.sample.spec import SampleWorldSpec

SCAN_PIXEL_M = 9.0
ROTATION_DEG = 4.0
WARP_FRACTION = 0.015
GCP_NOISE_M = 1.5
GCP_GRID = (0.08, 0.36, 0.64, 0.92)
"""Fractions of the sheet's side where the 4 x 4 GCPs are picked (then jittered)."""
CHECK_GRID = (0.2, 0.35, 0.5, 0.65, 0.8)
PAPER_COLOUR = "#f2e8cf"
_HISTORICAL_KEY = 11  # random-stream key of the GCP picks


def scan_shape(tile: TileGrid) -> tuple[int, int]:
    """(rows, cols) of a tile's scan: 15/16 of the tile's side in pixels."""
    n = tile.width * 15 // 16
    return n, n


def true_parameters(tile: TileGrid) -> dict[str, float]:
    """The parameters of the true pixel-to-map function of a tile's scan."""
    rows, cols = scan_shape(tile)
    x0, y0, x1, y1 = tile.bounds
    return {
        "cx": (x0 + x1) / 2 + 3 * tile.resolution,
        "cy": (y0 + y1) / 2 - 2 * tile.resolution,
        "c0": cols / 2,
        "r0": rows / 2,
        "scale_m": SCAN_PIXEL_M * tile.resolution / 10.0,
        "rotation_deg": ROTATION_DEG,
        "warp_m": WARP_FRACTION * cols * SCAN_PIXEL_M * tile.resolution / 10.0,
    }


def scan_to_map(p: dict[str, float], col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates (metres, tile CRS) of scan pixel coordinates (corner convention)."""
    u, v = np.asarray(col, float) - p["c0"], np.asarray(row, float) - p["r0"]
    un, vn = u / p["c0"], v / p["r0"]
    t = np.deg2rad(p["rotation_deg"])
    x = p["cx"] + p["scale_m"] * (np.cos(t) * u - np.sin(t) * v) + p["warp_m"] * un * vn
    y = p["cy"] - p["scale_m"] * (np.sin(t) * u + np.cos(t) * v) + p["warp_m"] * (un**2 - 0.5 * vn**2)
    return x, y


def render_scan(landscape: Landscape, spec: SampleWorldSpec) -> np.ndarray:
    """uint8 class codes of the scan (0 = paper), sampled at each scan pixel's centre."""
    tile = landscape.tile
    rows, cols = scan_shape(tile)
    landcover = landscape.landcover_at(spec.time_range[0])
    c, r = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
    x, y = scan_to_map(true_parameters(tile), c, r)
    tc = np.floor((x - tile.x_min) / tile.resolution).astype(int)
    tr = np.floor((tile.y_max - y) / tile.resolution).astype(int)
    inside = (tc >= 0) & (tc < tile.width) & (tr >= 0) & (tr < tile.height)
    scan = np.zeros((rows, cols), dtype=np.uint8)
    scan[inside] = landcover[tr[inside], tc[inside]]
    return scan


def gcps_and_checks(
    tile: TileGrid, spec: SampleWorldSpec, tile_index: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(noisy GCPs, exact check points) of a tile's scan."""
    rng = spec.rng(tile_index, _HISTORICAL_KEY)
    rows, cols = scan_shape(tile)
    p = true_parameters(tile)
    fc, fr = np.meshgrid(GCP_GRID, GCP_GRID)
    col = np.round(fc.ravel() * cols + rng.uniform(-2, 2, fc.size), 1)
    row = np.round(fr.ravel() * rows + rng.uniform(-2, 2, fr.size), 1)
    x, y = scan_to_map(p, col, row)
    x = x + rng.normal(0, GCP_NOISE_M, x.size)
    y = y + rng.normal(0, GCP_NOISE_M, y.size)
    gcps = [
        {"id": f"G{i + 1:02d}", "col": float(c), "row": float(r), "x": round(float(a), 2), "y": round(float(b), 2)}
        for i, (c, r, a, b) in enumerate(zip(col, row, x, y))
    ]
    kc, kr = np.meshgrid(CHECK_GRID, CHECK_GRID)
    ccol, crow = kc.ravel() * cols, kr.ravel() * rows
    cx, cy = scan_to_map(p, ccol, crow)
    checks = [
        {"id": f"C{i + 1:02d}", "col": float(c), "row": float(r), "x": float(a), "y": float(b)}
        for i, (c, r, a, b) in enumerate(zip(ccol, crow, cx, cy))
    ]
    return gcps, checks


def write_scans(folder: Path, spec: SampleWorldSpec, landscapes: list[Landscape]) -> None:
    """Write ``scan.tif``, ``gcps.json`` and ``truth.json`` of each tile under ``folder/<tile>/``."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    for tile_index, landscape in enumerate(landscapes):
        tile = landscape.tile
        out = folder / tile.tile_id
        out.mkdir(parents=True, exist_ok=True)
        scan = render_scan(landscape, spec)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(
                out / "scan.tif", "w", driver="GTiff", width=scan.shape[1], height=scan.shape[0], count=1,
                dtype="uint8", compress="deflate", photometric="palette",
            ) as ds:  # fmt: skip
                ds.write(scan, 1)
                ds.write_colormap(1, palette())
        gcps, checks = gcps_and_checks(tile, spec, tile_index)
        (out / "gcps.json").write_text(json.dumps({"crs": tile.crs, "pixel_convention": "corner", "gcps": gcps}))
        truth = {
            "parameters": true_parameters(tile),
            "check_points": checks,
            "gcp_noise_m": GCP_NOISE_M,
            "landcover_instant": spec.time_range[0].isoformat(),
        }
        (out / "truth.json").write_text(json.dumps(truth))


def palette() -> dict[int, tuple[int, int, int, int]]:
    """The colour table of a scan: paper for 0, the class colours for 1-6."""
    table = {0: _rgba(PAPER_COLOUR)}
    table.update({code: _rgba(c.color) for code, c in CLASS_BY_CODE.items()})
    return table


def _rgba(hex_colour: str) -> tuple[int, int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 255
