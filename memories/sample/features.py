"""GIS features of a sample tile, OpenStreetMap-like: land use, water, roads, buildings.

Features are plain dicts of OSM-style tags plus a shapely ``geometry`` in the
tile CRS; ``memories.sample.gis`` turns them into the GeoPackage layers.
Residential roads form a rotated grid in each built-up cell and buildings stand
on a lattice between them, so houses never sit on a road.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from memories.grid import TileGrid
from memories.sample.spec import Event

LAYERS: tuple[str, ...] = ("landuse", "water", "roads", "buildings")

OSM_LANDUSE: dict[int, str] = {2: "forest", 3: "farmland", 4: "meadow", 5: "residential"}
"""The ``landuse`` tag of each cell class (the inverse of ``OSM_LANDUSE_TO_CLASS``)."""

BLOCK_M = 150.0
"""Side of a residential block between two roads, metres; three houses a side."""
BUILDING_SIDE_M = (10.0, 30.0)
"""Range of building sides, metres."""

Feature = dict[str, Any]


def base_features(
    rng: np.random.Generator,
    tile: TileGrid,
    box: Any,
    cells: list[Any],
    codes: np.ndarray,
    lake: Any,
    river: Any,
    water: Any,
) -> dict[str, list[Feature]]:
    """The features present from the start: cells, water, main and residential roads, houses."""
    landuse = [
        {"geometry": cell, "landuse": OSM_LANDUSE[int(code)], "class_code": int(code), "start_date": None}
        for cell, code in zip(cells, codes)
    ]
    water_features = [
        {"geometry": lake, "natural": "water", "water": "lake", "waterway": None, "class_code": 1, "start_date": None},
        {
            "geometry": river,
            "natural": "water",
            "water": "river",
            "waterway": "river",
            "class_code": 1,
            "start_date": None,
        },
    ]
    roads: list[Feature] = []
    for highway in ("primary", "secondary", "secondary"):
        line = shapely.difference(_crossing_road(rng, tile, box), lake.buffer(20.0))
        roads += [{"geometry": g, "highway": highway, "start_date": None} for g in _lines(line, 50.0)]
    busy = shapely.union(water.buffer(10.0), _main_roads(roads).buffer(12.0))
    buildings: list[Feature] = []
    for cell, code in zip(cells, codes):
        if code != 5:
            continue
        angle = rng.uniform(0, 90)
        phase = rng.uniform(0, BLOCK_M, size=2)
        frame = _frame(cell)
        roads += _residential_roads(shapely.difference(cell, water.buffer(10.0)), frame, angle, phase, None)
        buildings += _houses(rng, shapely.difference(cell, busy), frame, angle, phase, 0.8, None)
    return {"landuse": landuse, "water": water_features, "roads": roads, "buildings": buildings}


def add_district_features(
    rng: np.random.Generator, layers: dict[str, list[Feature]], district: Event, water: Any
) -> dict[str, list[Feature]]:
    """The layers with the new district added: its land use, roads and many houses,
    each with ``start_date`` the district's date (ISO ``YYYY-MM-DD``)."""
    date = district.start.date().isoformat()
    angle = rng.uniform(0, 90)
    phase = rng.uniform(0, BLOCK_M, size=2)
    area = shapely.difference(district.geometry, water.buffer(10.0))
    plots = shapely.difference(area, _main_roads(layers["roads"]).buffer(12.0))
    frame = _frame(district.geometry)
    landuse = {"geometry": district.geometry, "landuse": "residential", "class_code": 5, "start_date": date}
    return {
        "landuse": [*layers["landuse"], landuse],
        "water": layers["water"],
        "roads": [*layers["roads"], *_residential_roads(area, frame, angle, phase, date)],
        "buildings": [*layers["buildings"], *_houses(rng, plots, frame, angle, phase, 0.95, date)],
    }


def _main_roads(roads: list[Feature]) -> Any:
    """The primary and secondary roads as one geometry."""
    return shapely.union_all([r["geometry"] for r in roads if r["highway"] in ("primary", "secondary")])


def _crossing_road(rng: np.random.Generator, tile: TileGrid, box: Any) -> Any:
    """A gently bending road from one side of the tile to the opposite one."""
    x0, y0, _, _ = tile.bounds
    side = tile.width * tile.resolution
    t = np.linspace(-0.02, 1.02, 7)
    a, b = rng.uniform(0.1, 0.9, size=2)
    across = a + (b - a) * t
    across[1:-1] += rng.uniform(-0.04, 0.04, size=5)
    u, v = t * side, across * side
    xy = np.column_stack([u, v] if rng.random() < 0.5 else [v, u]) + (x0, y0)
    return shapely.intersection(shapely.LineString(xy), box)


def _residential_roads(
    area: Any, frame: tuple[Any, float], angle: float, phase: np.ndarray, start_date: str | None
) -> list[Feature]:
    """A grid of residential streets every ``BLOCK_M`` metres in ``frame``, rotated
    by ``angle`` degrees and shifted by ``phase`` metres, clipped to ``area``."""
    centre, reach = frame
    ks = np.arange(-np.ceil(reach / BLOCK_M), np.ceil(reach / BLOCK_M) + 1)
    lines = []
    for axis in (0, 1):
        for off in ks * BLOCK_M + phase[axis]:
            uv = np.array([[off, -reach], [off, reach]]) if axis == 0 else np.array([[-reach, off], [reach, off]])
            lines.append(_to_world(uv, centre, angle))
    grid = shapely.intersection(shapely.multilinestrings(shapely.linestrings(np.array(lines))), area)
    return [{"geometry": g, "highway": "residential", "start_date": start_date} for g in _lines(grid, 30.0)]


def _houses(
    rng: np.random.Generator,
    area: Any,
    frame: tuple[Any, float],
    angle: float,
    phase: np.ndarray,
    keep: float,
    start_date: str | None,
) -> list[Feature]:
    """Rectangular houses (10-30 m sides) on a 50 m lattice between the streets
    of ``_residential_roads``, each kept with probability ``keep`` if it lies
    fully inside ``area``."""
    centre, reach = frame
    n_blocks = int(np.ceil(reach / BLOCK_M))
    ks = np.arange(-n_blocks - 1, n_blocks + 1)
    slots = (ks[:, None] * BLOCK_M + np.array([BLOCK_M / 6, BLOCK_M / 2, 5 * BLOCK_M / 6])).ravel()
    u, v = np.meshgrid(slots + phase[0], slots + phase[1])
    n = u.size
    cu = u.ravel() + rng.uniform(-4, 4, n)
    cv = v.ravel() + rng.uniform(-4, 4, n)
    hw = rng.uniform(*BUILDING_SIDE_M, n) / 2
    hh = rng.uniform(*BUILDING_SIDE_M, n) / 2
    kept = rng.random(n) < keep
    corners = np.stack(
        [
            np.column_stack([cu - hw, cv - hh]),
            np.column_stack([cu + hw, cv - hh]),
            np.column_stack([cu + hw, cv + hh]),
            np.column_stack([cu - hw, cv + hh]),
            np.column_stack([cu - hw, cv - hh]),
        ],
        axis=1,
    )
    world = _to_world(corners.reshape(-1, 2), centre, angle).reshape(n, 5, 2)
    polygons = shapely.polygons(world)
    shapely.prepare(area)
    inside = kept & shapely.contains(area, polygons)
    return [{"geometry": p, "building": "yes", "start_date": start_date} for p in polygons[inside]]


def _frame(area: Any) -> tuple[Any, float]:
    """Origin of a local street frame over ``area`` and a distance (metres) from
    it that reaches past every part of ``area``; streets and houses of one area
    share it, so houses stand between the streets."""
    x0, y0, x1, y1 = shapely.bounds(area)
    return shapely.Point((x0 + x1) / 2, (y0 + y1) / 2), float(np.hypot(x1 - x0, y1 - y0) / 2 + BLOCK_M)


def _to_world(uv: np.ndarray, centre: Any, angle: float) -> np.ndarray:
    """Points of a frame rotated by ``angle`` degrees about ``centre`` to tile CRS."""
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.asarray(uv @ rot.T + (centre.x, centre.y))


def _lines(geometry: Any, min_length: float) -> list[Any]:
    """The LineString parts of a geometry at least ``min_length`` metres long."""
    parts = shapely.get_parts(geometry)
    return [p for p in parts if p.geom_type == "LineString" and p.length >= min_length]
