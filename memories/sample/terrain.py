"""The sample world's DEM: a tilted plane plus a smooth valley, so slope and drainage are known exactly.

Elevation of a tile (metres, ``x``/``y`` in the tile CRS)::

    z = BASE_M + SLOPE_NORTH * (y - y_min) + SIDE_SLOPE * sqrt((x - x_axis)^2 + FLOOR_M^2)

The ground rises northwards at 1 % and away from a north-south valley at 10 %; the valley's axis is the
pixel-centre column nearest the tile's flood (so the flood lies on low ground, as floods do). The
hyperbolic cross-section is smooth, so Horn's slope and aspect approach the analytic gradient, and the
side slope is ten times the down-valley slope, so the D8 truth is closed-form (checked in the tests):
every cell off the axis drains straight across to the axis (E or W), every axis cell drains south, and
the axis cell of the last row is the tile's one outlet (no lower neighbour inside the tile). Hence the
flow accumulation (cells, itself included) of cell (row r, column c) is ``c + 1`` west of the axis,
``width - c`` east of it and ``(r + 1) * width`` on it, and the whole tile drains through every chunk to
one cell: a hard test of chunked accumulation.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memories.grid import TileGrid
from memories.sample.spec import SampleWorldSpec

BASE_M = 200.0
"""Elevation of the valley floor at the tile's south edge, metres (before the floor's ``SIDE_SLOPE * FLOOR_M``)."""
SLOPE_NORTH = 0.01
"""Rise per metre northwards (the valley's down-valley gradient), m/m."""
SIDE_SLOPE = 0.10
"""Rise per metre away from the valley axis, far from it, m/m."""
FLOOR_M = 5.0
"""Half-width scale of the valley floor's rounding, metres."""
D8_E, D8_S, D8_W = 1, 4, 16


@dataclass(frozen=True)
class SampleTerrain:
    """The analytic DEM of one sample tile and its exact terrain.

    Attributes:
        grid: the tile grid.
        axis_col: the column of the valley axis (pixel centres on it).
    """

    grid: TileGrid
    axis_col: int

    @property
    def x_axis(self) -> float:
        """x of the valley axis, metres in the tile CRS."""
        return float(self.grid.x[self.axis_col])

    def elevation(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Exact elevation (metres, float64) at points ``x``, ``y`` (metres in the tile CRS)."""
        y_min = self.grid.bounds[1]
        return BASE_M + SLOPE_NORTH * (y - y_min) + SIDE_SLOPE * np.hypot(x - self.x_axis, FLOOR_M)

    def dem(self) -> np.ndarray:
        """The DEM on the tile grid at pixel centres, float32 metres."""
        x, y = np.meshgrid(self.grid.x, self.grid.y)
        return self.elevation(x, y).astype(np.float32)

    def gradient(self) -> tuple[np.ndarray, np.ndarray]:
        """(dz/dx east, dz/dy north) at pixel centres, m/m."""
        x, _ = np.meshgrid(self.grid.x, self.grid.y)
        u = x - self.x_axis
        return SIDE_SLOPE * u / np.hypot(u, FLOOR_M), np.full(x.shape, SLOPE_NORTH)

    def slope_deg(self) -> np.ndarray:
        """Exact slope, degrees."""
        gx, gy = self.gradient()
        return np.asarray(np.degrees(np.arctan(np.hypot(gx, gy))))

    def aspect_deg(self) -> np.ndarray:
        """Exact aspect (downslope direction, degrees clockwise from north)."""
        gx, gy = self.gradient()
        return np.asarray(np.degrees(np.arctan2(-gx, -gy)) % 360.0)

    def flow_direction(self) -> np.ndarray:
        """The D8 truth (ESRI codes): E west of the axis, W east of it, S on it, 0 at the outlet."""
        cols = np.arange(self.grid.width)[None, :].repeat(self.grid.height, axis=0)
        out = np.where(cols < self.axis_col, D8_E, np.where(cols > self.axis_col, D8_W, D8_S)).astype(np.uint8)
        out[-1, self.axis_col] = 0
        return out

    def flow_accumulation(self) -> np.ndarray:
        """The exact flow accumulation, cells (itself included)."""
        h, w = self.grid.shape
        rows, cols = np.mgrid[0:h, 0:w]
        return np.asarray(
            np.where(cols < self.axis_col, cols + 1, np.where(cols > self.axis_col, w - cols, (rows + 1) * w)),
            dtype=np.float64,
        )

    def hand(self, stream_cells: float) -> np.ndarray:
        """Exact height above nearest drainage (metres) for streams of ``stream_cells`` upstream cells.

        Valid when no off-axis cell is a stream (``stream_cells`` above ``max(axis_col, width - axis_col - 1)``):
        a cell drains across to the axis, then down it to the first axis row that is a stream.
        """
        h, w = self.grid.shape
        if stream_cells <= max(self.axis_col, w - self.axis_col - 1):
            raise ValueError(f"stream_cells={stream_cells} makes off-axis cells streams; the closed form needs more")
        first = max(math.ceil(stream_cells / w) - 1, 0)
        z = self.dem().astype(np.float64)
        rows = np.maximum(np.arange(h), min(first, h - 1))
        return np.asarray(z - z[rows, self.axis_col][:, None])


def sample_terrain(spec: SampleWorldSpec, tile_id: str) -> SampleTerrain:
    """The analytic terrain of a sample tile: the valley axis under its flood (deterministic from the spec)."""
    from memories.sample.landscape import build_landscape

    grid = spec.tile(tile_id)
    flood = build_landscape(spec, tile_id).event_masks["flood"]
    cols = np.nonzero(flood)[1]
    centre = int(round(float(cols.mean()))) if cols.size else grid.width // 2
    return SampleTerrain(grid, int(np.clip(centre, 2, grid.width - 3)))


def write_dem_cog(terrain: SampleTerrain, path: Path) -> Path:
    """Write the DEM as a single-band float32 Cloud-Optimized GeoTIFF (nodata NaN), atomically."""
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    grid = terrain.grid
    profile = {
        "driver": "COG",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": "float32",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": float("nan"),
        "blocksize": 256,
        "overviews": "NONE",
    }
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(terrain.dem(), 1)
        dst.update_tags(1, units="m")
    os.replace(tmp, path)
    return path
