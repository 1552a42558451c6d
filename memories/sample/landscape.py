"""The landscape of a sample tile: vector geometry first, rasterized second.

Land-use cells (a relaxed Voronoi tessellation), a lake, a river, roads and
buildings are built as shapely geometry in the tile CRS, and the land-cover
truth is rasterized from exactly that geometry, so the GIS layers and the raster
truth agree pixel for pixel. The scripted events are placed on the same
geometry: the clear-cut inside forest, the new district inside cropland or
grassland, the flood along the water by the houses.

Pixels carry a *zone* id rather than a class: a zone is a land-use cell, a water
body or an event area, with one class code and one phenology shift. A scene's
reflectance is then a lookup of a small per-zone table, which is what keeps
generation fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from scipy.ndimage import gaussian_filter

from memories.errors import ProcessingError
from memories.grid import TileGrid
from memories.sample import features
from memories.sample.spec import FLOOD_DURATION, Event, EventKind, SampleWorldSpec

WATER, FOREST, CROPLAND, GRASSLAND, BUILT_UP, BARE_SOIL = 1, 2, 3, 4, 5, 6

# Land-use classes of the cells and how often each is drawn.
CELL_CLASSES = np.array([FOREST, CROPLAND, GRASSLAND, BUILT_UP])
CELL_WEIGHTS = np.array([0.35, 0.30, 0.20, 0.15])
CELLS_PER_512PX = 18
"""Land-use cells of a 512 px tile; the count scales with the tile's area."""

EVENT_CLASS: dict[EventKind, int] = {"clear_cut": BARE_SOIL, "new_district": BUILT_UP, "flood": WATER}
EVENT_AREA_FRACTION: dict[EventKind, float] = {"clear_cut": 0.035, "new_district": 0.03, "flood": 0.03}
"""Target area of each event, as a fraction of the tile; smaller where space lacks."""

TEXTURE_AMPLITUDE = 0.05
"""Largest static per-pixel brightness variation, as a fraction of reflectance."""

_LANDSCAPE_KEY = 1  # random-stream key of landscapes (scenes use others)


@dataclass(frozen=True, eq=False)
class Landscape:
    """Everything static about a tile, plus its events.

    Attributes:
        tile: the tile grid.
        zones: uint16 (rows, cols), the zone of each 10 m pixel before any event.
        zone_class: uint8 (n_zones,), land-cover code of each zone (zone 0 unused).
        zone_shift: float32 (n_zones,), phenology shift of each zone, days
            (positive: green-up and harvest happen later).
        texture: float32 (rows, cols), static multiplicative brightness factor,
            within 1 +- ``TEXTURE_AMPLITUDE``.
        events: the scripted events, oldest first.
        event_zone: the zone that each event kind turns its pixels into.
        event_masks: bool (rows, cols) per event kind: its rasterized area.
        features: GIS features in the tile CRS per layer (``landuse``, ``water``,
            ``roads``, ``buildings``): dicts of OSM-like tags plus ``geometry``.
    """

    tile: TileGrid
    zones: np.ndarray
    zone_class: np.ndarray
    zone_shift: np.ndarray
    texture: np.ndarray
    events: tuple[Event, ...]
    event_zone: dict[EventKind, int]
    event_masks: dict[EventKind, np.ndarray]
    features: dict[str, list[dict[str, Any]]]

    def zones_at(self, when: datetime) -> np.ndarray:
        """The zone of each pixel at ``when`` (UTC): base zones with active events."""
        zones = self.zones.copy()
        for event in self.events:
            if event.active(when):
                zones[self.event_masks[event.kind]] = self.event_zone[event.kind]
        return zones

    def landcover_at(self, when: datetime) -> np.ndarray:
        """uint8 land-cover codes of each pixel at ``when`` (UTC)."""
        return np.asarray(self.zone_class[self.zones_at(when)])

    @property
    def base_landcover(self) -> np.ndarray:
        """uint8 land-cover codes before any event."""
        return np.asarray(self.zone_class[self.zones])


@lru_cache(maxsize=8)
def build_landscape(spec: SampleWorldSpec, tile_id: str) -> Landscape:
    """Build (once per process and spec) the landscape of one tile.

    The geometry depends on the seed, the tile and ``size_px``; the event dates
    on the covered time range.
    """
    tile = spec.tile(tile_id)
    index = spec.tile_ids().index(tile_id)
    rng = spec.rng(index, _LANDSCAPE_KEY)
    side = tile.width * tile.resolution
    box = shapely.box(*tile.bounds)

    river, river_line = _river(rng, tile, box)
    lake = _lake(rng, tile, box, river_line)
    water = shapely.union(lake, river)
    cells = _tessellation(rng, tile, box)
    codes, shifts = _cell_classes(rng, cells, water, side, tile.resolution)

    # Zones: 1..n cells, then the lake, the river and the three event areas.
    n = len(cells)
    zone_class = np.array([0, *codes, WATER, WATER, *EVENT_CLASS.values()], dtype=np.uint8)
    zone_shift = np.array([0.0, *shifts, 0, 0, 0, 0, 0], dtype=np.float32)
    event_zone: dict[EventKind, int] = {k: n + 3 + i for i, k in enumerate(EVENT_CLASS)}
    zones = _rasterize(tile, [*zip(cells, range(1, n + 1)), (lake, n + 1), (river, n + 2)])

    layers = features.base_features(rng, tile, box, cells, codes, lake, river, water)
    events = _place_events(spec, rng, tile, box, cells, codes, water, river_line, lake, layers)
    layers = features.add_district_features(rng, layers, events[1], water)
    masks = {e.kind: _rasterize(tile, [(e.geometry, 1)]).astype(bool) for e in events}
    if not (zone_class[zones[masks["clear_cut"]]] == FOREST).all():
        raise ProcessingError(f"sample tile {tile_id}: the clear-cut left the forest; this is a generator bug")

    texture = _texture(rng, tile)
    for array in (zones, zone_class, zone_shift, texture, *masks.values()):
        array.flags.writeable = False  # shared through the cache: nobody may change them
    return Landscape(
        tile=tile,
        zones=zones,
        zone_class=zone_class,
        zone_shift=zone_shift,
        texture=texture,
        events=tuple(events),
        event_zone=event_zone,
        event_masks=masks,
        features=layers,
    )


# -- water ---------------------------------------------------------------------
def _river(rng: np.random.Generator, tile: TileGrid, box: shapely.Geometry) -> tuple[Any, Any]:
    """A wiggly river crossing the tile, 30-60 m wide: (polygon, centre line)."""
    x0, y0, _, _ = tile.bounds
    side = tile.width * tile.resolution
    t = np.linspace(-0.05, 1.05, 240)
    crossing, slope = rng.uniform(0.25, 0.75), rng.uniform(-0.3, 0.3)
    a1, f1, p1 = rng.uniform(0.04, 0.08), rng.uniform(1.0, 2.0), rng.uniform(0, 2 * np.pi)
    a2, f2, p2 = rng.uniform(0.01, 0.03), rng.uniform(3.0, 5.0), rng.uniform(0, 2 * np.pi)
    across = crossing + slope * (t - 0.5) + a1 * np.sin(2 * np.pi * f1 * t + p1) + a2 * np.sin(2 * np.pi * f2 * t + p2)
    u, v = t * side, across * side
    xy = np.column_stack([u, v] if rng.random() < 0.5 else [v, u]) + (x0, y0)
    line = shapely.LineString(xy)
    half_width = rng.uniform(15.0, 30.0)
    return shapely.intersection(line.buffer(half_width, quad_segs=4), box), shapely.intersection(line, box)


def _lake(rng: np.random.Generator, tile: TileGrid, box: Any, river_line: Any) -> Any:
    """A smooth, slightly elongated lake of about 2-4 % of the tile, away from the river."""
    x0, y0, _, _ = tile.bounds
    side = tile.width * tile.resolution
    radius = rng.uniform(0.08, 0.11) * side
    candidates = rng.uniform(0.2, 0.8, size=(12, 2)) * side + (x0, y0)
    distance = shapely.distance(shapely.points(candidates), river_line)
    cx, cy = candidates[int(np.argmax(distance))]
    theta = np.linspace(0, 2 * np.pi, 73)[:-1]
    r = np.ones_like(theta)
    for k in (2, 3, 4):
        r += rng.uniform(0.03, 0.1) / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    stretch, angle = rng.uniform(0.8, 1.25), rng.uniform(0, np.pi)
    u, v = radius * r * np.cos(theta) * stretch, radius * r * np.sin(theta) / stretch
    x = cx + u * np.cos(angle) - v * np.sin(angle)
    y = cy + u * np.sin(angle) + v * np.cos(angle)
    return shapely.intersection(shapely.Polygon(np.column_stack([x, y])), box)


# -- land use ------------------------------------------------------------------
def _tessellation(rng: np.random.Generator, tile: TileGrid, box: Any) -> list[Any]:
    """Voronoi cells of seeded points, relaxed twice (Lloyd) so they are compact."""
    x0, y0, _, _ = tile.bounds
    side = tile.width * tile.resolution
    n = int(np.clip(round(CELLS_PER_512PX * (tile.width / 512) ** 2), 6, 2000))
    points = rng.uniform(0, 1, size=(n, 2)) * side + (x0, y0)
    for _ in range(3):
        regions = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(points), extend_to=box, ordered=True))
        cells = shapely.intersection(regions, box)
        points = shapely.get_coordinates(shapely.centroid(cells))
    return list(cells)


def _cell_classes(
    rng: np.random.Generator, cells: list[Any], water: Any, side: float, resolution: float
) -> tuple[np.ndarray, np.ndarray]:
    """Class code and phenology shift (days) of each cell.

    Classes are drawn with ``CELL_WEIGHTS``, then three cells are fixed so every
    tile can hold every event: the roomiest cell is forest (the clear-cut), the
    next roomiest cropland or grassland (the new district), and some cell by the
    water is built-up (so the flood reaches houses).
    """
    n = len(cells)
    codes = rng.choice(CELL_CLASSES, size=n, p=CELL_WEIGHTS)
    shifts = rng.uniform(-12.0, 12.0, size=n)
    land = shapely.difference(np.array(cells, dtype=object), water.buffer(3 * resolution))
    room = np.array([_inscribed(g, resolution)[1] for g in land])
    order = np.argsort(-room, kind="stable")
    forest_cell, district_cell = int(order[0]), int(order[1])
    codes[forest_cell] = FOREST
    if codes[district_cell] not in (CROPLAND, GRASSLAND):
        codes[district_cell] = CROPLAND
    near_water = shapely.area(shapely.intersection(np.array(cells, dtype=object), water.buffer(0.1 * side)))
    near_water[[forest_cell, district_cell]] = 0.0
    if not ((codes == BUILT_UP) & (near_water > 0)).any():
        codes[int(np.argmax(near_water))] = BUILT_UP
    return codes.astype(np.uint8), np.where(codes == BUILT_UP, 0.0, shifts)


# -- events --------------------------------------------------------------------
def _place_events(
    spec: SampleWorldSpec,
    rng: np.random.Generator,
    tile: TileGrid,
    box: Any,
    cells: list[Any],
    codes: np.ndarray,
    water: Any,
    river_line: Any,
    lake: Any,
    layers: dict[str, list[dict[str, Any]]],
) -> list[Event]:
    """The clear-cut, the new district and the flood of a tile, oldest first."""
    res = tile.resolution
    tile_area = (tile.width * res) ** 2
    keep_off = water.buffer(3 * res)

    forest = shapely.difference(shapely.union_all([c for c, k in zip(cells, codes) if k == FOREST]), keep_off)
    centre, room = _inscribed(forest, res)
    r = min(0.92 * room, np.sqrt(EVENT_AREA_FRACTION["clear_cut"] * tile_area / (0.82 * np.pi)))
    clear_cut = _blob(rng, centre, r)

    open_land = shapely.union_all([c for c, k in zip(cells, codes) if k in (CROPLAND, GRASSLAND)])
    open_land = shapely.difference(open_land, shapely.union(keep_off, clear_cut.buffer(5 * res)))
    centre, room = _inscribed(open_land, res)
    r = min(0.92 * room, np.sqrt(EVENT_AREA_FRACTION["new_district"] * tile_area / 2.75))
    district = _cut_square(rng, centre, r)

    flood = _flood(rng, tile, box, water, river_line, lake, layers["buildings"])

    start = {k: spec.event_start(k) for k in EVENT_CLASS}
    return [
        Event("clear_cut", tile.tile_id, clear_cut, start["clear_cut"], None),
        Event("new_district", tile.tile_id, district, start["new_district"], None),
        Event("flood", tile.tile_id, flood, start["flood"], start["flood"] + FLOOD_DURATION),
    ]


def _flood(
    rng: np.random.Generator,
    tile: TileGrid,
    box: Any,
    water: Any,
    river_line: Any,
    lake: Any,
    buildings: list[dict[str, Any]],
) -> Any:
    """Land along the lake or river that floods: a band along the water, centred
    where most houses stand within reach, of about ``EVENT_AREA_FRACTION`` of the tile."""
    res = tile.resolution
    side = tile.width * res
    reach = 0.2 * side
    shore = shapely.union(river_line, shapely.boundary(lake))
    shore = shapely.intersection(shore, shapely.box(*shapely.bounds(box) + np.array([1, 1, -1, -1]) * 0.15 * side))
    if shore.is_empty:
        shore = shapely.union(river_line, shapely.boundary(lake))
    candidates = shapely.get_coordinates(shapely.segmentize(shore, 5 * res))
    houses = shapely.get_coordinates(shapely.centroid(np.array([b["geometry"] for b in buildings], dtype=object)))
    score = rng.uniform(0, 0.5, len(candidates))
    if len(houses):
        d2 = ((candidates[:, None, :] - houses[None, :, :]) ** 2).sum(axis=2)
        score += (d2 < reach**2).sum(axis=1)
    reach_disk = shapely.Point(candidates[int(np.argmax(score))]).buffer(reach, quad_segs=16)
    target = EVENT_AREA_FRACTION["flood"] * side * side

    def extent(width: float) -> Any:
        band = shapely.intersection(shapely.intersection(water.buffer(width, quad_segs=4), reach_disk), box)
        return shapely.difference(band, water)

    lo, hi = res, 0.5 * side
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if extent(mid).area < target else (lo, mid)
    parts = [p for p in shapely.get_parts(extent(hi)) if p.area >= 10 * res * res]
    return shapely.multipolygons(parts) if len(parts) > 1 else parts[0]


def _blob(rng: np.random.Generator, centre: Any, r: float) -> Any:
    """A compact irregular polygon within ``r`` of ``centre`` (radii 0.83-1 r)."""
    theta = np.linspace(0, 2 * np.pi, 49)[:-1]
    k = 1 - 0.12 * (0.5 + 0.5 * np.cos(2 * theta + rng.uniform(0, 6.3)))
    k -= 0.05 * (0.5 + 0.5 * np.cos(3 * theta + rng.uniform(0, 6.3)))
    return shapely.Polygon(np.column_stack([centre.x + r * k * np.cos(theta), centre.y + r * k * np.sin(theta)]))


def _cut_square(rng: np.random.Generator, centre: Any, r: float) -> Any:
    """A rotated square with its corners cut by the circle of radius ``r``."""
    import shapely.affinity

    half = 1.2 * r / np.sqrt(2)
    square = shapely.box(centre.x - half, centre.y - half, centre.x + half, centre.y + half)
    square = shapely.affinity.rotate(square, rng.uniform(0, 90), origin=centre)
    return shapely.intersection(square, centre.buffer(r, quad_segs=16))


def _inscribed(region: Any, resolution: float) -> tuple[Any, float]:
    """Centre and radius (metres) of the largest circle inside ``region``."""
    if region.is_empty:
        return shapely.Point(), 0.0
    line = shapely.maximum_inscribed_circle(region, tolerance=resolution / 4)
    return shapely.get_point(line, 0), float(line.length)


# -- rasters -------------------------------------------------------------------
def _rasterize(tile: TileGrid, shapes: list[tuple[Any, int]]) -> np.ndarray:
    """Burn (geometry, value) pairs in order (later ones win) by pixel centre."""
    from rasterio.features import rasterize

    shapes = [(g, v) for g, v in shapes if not g.is_empty]
    return np.asarray(rasterize(shapes, out_shape=tile.shape, transform=tile.transform, fill=0, dtype="uint16"))


def _texture(rng: np.random.Generator, tile: TileGrid) -> np.ndarray:
    """Smooth-ish static brightness variation, 1 +- ``TEXTURE_AMPLITUDE``."""
    fine = gaussian_filter(rng.standard_normal(tile.shape, dtype=np.float32), 1.5)
    coarse = gaussian_filter(rng.standard_normal(tile.shape, dtype=np.float32), 6.0)
    z = fine / fine.std() + coarse / coarse.std()
    z /= z.std()
    return np.asarray((1.0 + TEXTURE_AMPLITUDE * np.tanh(z / 1.5)).astype(np.float32))
