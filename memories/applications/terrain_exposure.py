"""What the terrain layer tells the applications: flood-prone low ground, flow paths, slope of new land.

The ``terrain`` product of a tile (``memories.earth.terrain``: elevation, slope, D8 flow direction, flow
accumulation, HAND) is read through the memory view like any product. Applications that find none keep
working and say so (``terrain_missing`` names the asset to materialize).

- :func:`flood_terrain`: how low the flooded ground lies. HAND (height above nearest drainage) inside
  the footprint against the whole tile: median, and the share of cells below ``LOW_HAND_M`` (the
  "flood-prone low ground" of HAND flood mapping, Nobre et al. 2011, where 5 m is the usual first
  class); for each affected building, its upstream area (what drains through its cell) and its D8
  flow path down to the drainage (length, drop).
- :func:`built_up_slope`: slope of the land that became built-up, against the tile: mean, 90th
  percentile, share steeper than ``STEEP_SLOPE_DEG`` (15 % grade, where building costs rise).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memories.errors import MissingDataError
from memories.grid import TileGrid
from memories.products import TERRAIN

LOW_HAND_M = 5.0
"""HAND below this (metres): low ground next to the drainage, flood-prone."""
STEEP_SLOPE_DEG = float(np.degrees(np.arctan(0.15)))
"""A 15 % grade (8.53 degrees): above it, built-up land is steep."""
MAX_PATH_CELLS = 100_000
"""Flow paths are followed at most this many cells (a D8 path ends far sooner on a real tile)."""


def read_terrain(view: Any, tile: str) -> tuple[Any, str | None]:
    """(terrain dataset without time, where it came from) of a tile in the memory view, or (None, why not)."""
    from memories.memory.view import describe

    try:
        record = view.record(TERRAIN, tile)
    except MissingDataError as e:
        return None, str(e)
    ds = view.load(record)
    return (ds.isel(time=0) if "time" in ds.dims else ds), describe(record)


def flood_terrain(terrain: Any, footprint: np.ndarray, buildings: Any, grid: TileGrid) -> dict[str, Any]:
    """How low the footprint lies (HAND, elevation) and the flow paths of the affected buildings.

    Args:
        terrain: the tile's terrain dataset (``read_terrain``).
        footprint: bool (H, W), the flooded pixels.
        buildings: GeoDataFrame of the affected buildings (tile CRS), or None.
        grid: the tile grid.

    Returns:
        ``hand_median_m`` (footprint, tile), ``low_ground_share`` (HAND < LOW_HAND_M: footprint, tile),
        ``elevation_median_m`` (footprint, tile), ``stream_area_m2`` and ``buildings``: one row per affected
        building (osm_id, HAND m, upstream area ha, flow path to the drainage in m and its drop in m).
    """
    hand = np.asarray(terrain["hand"].values, dtype=np.float64)
    z = np.asarray(terrain["elevation"].values, dtype=np.float64)
    mask = np.asarray(footprint, dtype=bool) & np.isfinite(hand)
    valid = np.isfinite(hand)
    out: dict[str, Any] = {
        "low_hand_m": LOW_HAND_M,
        "stream_area_m2": float(terrain["hand"].attrs["stream_area_m2"]),
        "hand_median_m": {"footprint": _median(hand[mask]), "tile": _median(hand[valid])},
        "low_ground_share": {
            "footprint": float((hand[mask] < LOW_HAND_M).mean()) if mask.any() else None,
            "tile": float((hand[valid] < LOW_HAND_M).mean()) if valid.any() else None,
        },
        "elevation_median_m": {"footprint": _median(z[mask]), "tile": _median(z[valid])},
        "buildings": [],
    }
    if buildings is None or not len(buildings):
        return out
    fdir = np.asarray(terrain["flow_direction"].values)
    acc = np.asarray(terrain["flow_accumulation"].values, dtype=np.float64)
    stream = acc >= out["stream_area_m2"] / grid.pixel_area_m2
    import shapely

    points = shapely.centroid(buildings.geometry.values)
    cols = np.floor((shapely.get_x(points) - grid.x_min) / grid.resolution).astype(int)
    rows = np.floor((grid.y_max - shapely.get_y(points)) / grid.resolution).astype(int)
    ids = buildings["osm_id"].tolist() if "osm_id" in buildings else [None] * len(buildings)
    for osm_id, r, c in zip(ids, rows, cols, strict=True):
        if not (0 <= r < grid.height and 0 <= c < grid.width):
            continue
        length, end = flow_path(fdir, stream, int(r), int(c), grid.resolution)
        out["buildings"].append(
            {
                "osm_id": None if osm_id is None else str(osm_id),
                "hand_m": float(hand[r, c]),
                "upstream_ha": float(acc[r, c] * grid.pixel_area_m2 / 1e4),
                "path_to_drainage_m": length,
                "path_drop_m": float(z[r, c] - z[end]),
            }
        )
    return out


def flow_path(fdir: np.ndarray, stream: np.ndarray, row: int, col: int, cell_m: float) -> tuple[float, tuple[int, int]]:
    """Length (metres) of the D8 path from (row, col) to the first stream cell (or where it ends), and that cell."""
    from memories.earth.terrain import D8_CODES, D8_OFFSETS, NO_FLOW

    steps = {int(code): offset for code, offset in zip(D8_CODES, D8_OFFSETS, strict=True)}
    length = 0.0
    r, c = row, col
    for _ in range(MAX_PATH_CELLS):
        code = int(fdir[r, c])
        if stream[r, c] or code == NO_FLOW:
            break
        dr, dc = steps[code]
        rr, cc = r + dr, c + dc
        if not (0 <= rr < fdir.shape[0] and 0 <= cc < fdir.shape[1]):
            break
        length += cell_m * (2**0.5 if dr and dc else 1.0)
        r, c = rr, cc
    return length, (r, c)


def built_up_slope(terrain: Any, new_built_up: np.ndarray) -> dict[str, Any]:
    """Slope (degrees) of the new built-up pixels against the tile: mean, p90, share above ``STEEP_SLOPE_DEG``."""
    slope = np.asarray(terrain["slope"].values, dtype=np.float64)
    valid = np.isfinite(slope)
    mask = np.asarray(new_built_up, dtype=bool) & valid

    def stats(values: np.ndarray) -> dict[str, Any]:
        if not values.size:
            return {"pixels": 0, "mean_deg": None, "p90_deg": None, "steep_share": None}
        return {
            "pixels": int(values.size),
            "mean_deg": float(values.mean()),
            "p90_deg": float(np.percentile(values, 90)),
            "steep_share": float((values > STEEP_SLOPE_DEG).mean()),
        }

    return {"steep_deg": STEEP_SLOPE_DEG, "new_built_up": stats(slope[mask]), "tile": stats(slope[valid])}


def flood_terrain_section(t: dict[str, Any], period: str) -> dict[str, Any]:
    """The disaster report's terrain section from :func:`flood_terrain`'s numbers (or the reason it has none)."""
    from memories.applications.report import quantity

    if "missing" in t:
        return {"title": "Terrain", "text": f"No terrain layer: {t['missing']}"}
    hm, low, zm = t["hand_median_m"], t["low_ground_share"], t["elevation_median_m"]

    def pct(v: float | None) -> float | None:
        return None if v is None else 100 * v

    return {
        "title": "Terrain: how low the flooded ground lies",
        "text": (
            f"HAND (height above the nearest drainage: cells draining at least {t['stream_area_m2'] / 1e6:.2f} km2) "
            f"inside the footprint against the whole tile; low ground = HAND below {t['low_hand_m']:.0f} m. "
            f"Flow paths follow the D8 directions from each affected building down to the drainage ({t['source']})."
        ),
        "quantities": {
            "median HAND in the footprint": quantity(hm["footprint"], "m", period=period),
            "median HAND of the tile": quantity(hm["tile"], "m", period=period),
            "low ground in the footprint": quantity(pct(low["footprint"]), "%", period=period),
            "low ground on the tile": quantity(pct(low["tile"]), "%", period=period),
            "median elevation in the footprint": quantity(zm["footprint"], "m", period=period),
            "median elevation of the tile": quantity(zm["tile"], "m", period=period),
        },
        "table": {
            "columns": ["osm_id", "HAND (m)", "upstream area (ha)", "flow path to drainage (m)", "drop (m)"],
            "rows": [
                [b["osm_id"], b["hand_m"], b["upstream_ha"], b["path_to_drainage_m"], b["path_drop_m"]]
                for b in t["buildings"][:200]
            ],
        },
    }


def built_up_slope_section(t: dict[str, Any], period: str) -> dict[str, Any]:
    """The urban report's section on the slope of new built-up land, from :func:`built_up_slope`."""
    from memories.applications.report import quantity

    if "missing" in t:
        return {"title": "Slope of new built-up land", "text": f"No terrain layer: {t['missing']}"}
    new, tile = t["new_built_up"], t["tile"]

    def pct(v: float | None) -> float | None:
        return None if v is None else 100 * v

    return {
        "title": "Slope of new built-up land",
        "text": (
            f"Terrain slope (Horn, from the tile's DEM: {t['source']}) under the land that became built-up in "
            f"{period}, against the whole tile; steep = above {t['steep_deg']:.2f} degrees (a 15 % grade)."
        ),
        "quantities": {
            "mean slope of new built-up land": quantity(new["mean_deg"], "degree", period=period, digits=2),
            "90th percentile slope of new built-up land": quantity(new["p90_deg"], "degree", period=period, digits=2),
            "steep share of new built-up land": quantity(pct(new["steep_share"]), "%", period=period, digits=1),
            "mean slope of the tile": quantity(tile["mean_deg"], "degree", period=period, digits=2),
            "steep share of the tile": quantity(pct(tile["steep_share"]), "%", period=period, digits=1),
        },
    }


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size else None
