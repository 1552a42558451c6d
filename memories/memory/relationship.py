"""Relationship memory: a hypergraph of events that tie many entities at once.

A hyperedge is one event (a flood, a clear-cut, a new district) with its time
period, its footprint and its members, each with a role: the buildings and roads
a flood covers (``affected``), the water bodies it spilled from (``source``), the
land-use parcels it lies on (``area``), the tile (``location``), the report that
documented it (``evidence``).

``RelationshipMemory.from_pipeline`` fills it from what the pipeline holds: event
footprints detected from the ``spectral_indices`` store (new open water = flood,
vegetation loss on forest parcels = clear-cut) or, where that product is missing,
events reported by the data source (the sample world's event feed); members are
always computed spatially from the ``gis_layers`` GeoParquets of the month.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from memories.errors import ConfigError
from memories.months import month_range
from memories.products import SPECTRAL_INDICES
from memories.store.paths import StorageRoot

if TYPE_CHECKING:
    from memories.grid import TileGrid

MEMORY_KIND = "relationship"
ROLES = ("affected", "source", "area", "location", "evidence", "member")
LAYER_ENTITY = {"buildings": "building", "roads": "road", "landuse": "parcel", "water": "water"}
EVIDENCE_REPORT_KIND = "environmental"
"""The report kind whose tile-month report is an event's ``evidence``: the environmental report's
``REPORT_KIND`` (``memories.applications.environmental_report``; a test pins the two equal). Named here
because the memory layer does not import the applications above it."""
"""Entity type of the features of each GIS layer."""
FLOOD_MIN_PATCH_PX = 10
"""New-water patches smaller than this (pixels) are noise, not a flood."""
FOREST_SHARE_FOR_CLEAR_CUT = 0.5
"""A vegetation-loss patch is a clear-cut when at least this share of it lies on forest parcels."""


@dataclass(frozen=True)
class Member:
    """One entity of an event, in a role (``affected``, ``source``, ``area``, ``location``, ``evidence``)."""

    entity: str
    role: str


@dataclass
class Hyperedge:
    """An event and every entity it ties together.

    Attributes:
        id: ``event:<kind>/<tile>/<month>``.
        kind: ``flood``, ``clear_cut``, ``vegetation_loss``, ``new_district``.
        start: first instant of the event (UTC).
        end: first instant after it; None while it lasts.
        members: the entities and their roles.
        geometry_wkt: footprint in EPSG:4326, WKT.
        attrs: anything else (tile, month, source of the footprint, area in m²).
    """

    id: str
    kind: str
    start: datetime
    end: datetime | None
    members: list[Member] = field(default_factory=list)
    geometry_wkt: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def entities(self, role: str | None = None) -> list[str]:
        """Member entity ids, of one role or all."""
        return [m.entity for m in self.members if role is None or m.role == role]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["start"] = self.start.isoformat()
        d["end"] = self.end.isoformat() if self.end else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hyperedge:
        """Inverse of ``to_dict``."""
        return cls(
            id=d["id"],
            kind=d["kind"],
            start=datetime.fromisoformat(d["start"]),
            end=datetime.fromisoformat(d["end"]) if d.get("end") else None,
            members=[Member(**m) for m in d["members"]],
            geometry_wkt=d.get("geometry_wkt"),
            attrs=dict(d.get("attrs") or {}),
        )


@dataclass(frozen=True)
class DetectedEvent:
    """An event footprint found in one tile-month, before its members are known.

    Attributes:
        kind: ``flood``, ``clear_cut``, ``vegetation_loss`` or ``new_district``.
        tile: MGRS tile id.
        month: ``YYYY-MM``.
        geometry: footprint in the tile CRS (metres).
        start, end: time period (UTC).
        source: where the footprint comes from: ``ndwi``, ``ndvi`` or ``reported``.
    """

    kind: str
    tile: str
    month: str
    geometry: Any
    start: datetime
    end: datetime | None
    source: str


class RelationshipMemory:
    """Hyperedges (events) over entities of the context memory."""

    def __init__(self) -> None:
        self._edges: dict[str, Hyperedge] = {}
        self._by_entity: dict[str, set[str]] = {}

    # -- filling ------------------------------------------------------------
    def add(self, edge: Hyperedge) -> None:
        """Add or replace a hyperedge.

        Raises:
            ConfigError: a member has an unknown role or the period ends before it starts.
        """
        bad = [m for m in edge.members if m.role not in ROLES]
        if bad:
            raise ConfigError(f"event {edge.id}: roles {sorted({m.role for m in bad})} are unknown; use one of {ROLES}")
        if edge.end is not None and edge.end < edge.start:
            raise ConfigError(f"event {edge.id} ends ({edge.end}) before it starts ({edge.start})")
        if edge.id in self._edges:
            self.remove(edge.id)
        self._edges[edge.id] = edge
        for e in edge.entities():
            self._by_entity.setdefault(e, set()).add(edge.id)

    def remove(self, event_id: str) -> None:
        """Drop a hyperedge."""
        edge = self._edges.pop(event_id, None)
        for e in edge.entities() if edge else []:
            self._by_entity.get(e, set()).discard(event_id)

    @classmethod
    def from_pipeline(
        cls,
        root: StorageRoot,
        grids: Iterable[TileGrid],
        months: Iterable[str],
        *,
        world: Any = None,
        origin_month: str | None = None,
    ) -> RelationshipMemory:
        """Events of every tile-month with members computed from the month's GIS layers.

        Footprints come from ``detect_events`` (the ``spectral_indices`` store when it has
        the month and an earlier one), else from ``world``'s reported events.

        Raises:
            StorageError: the GIS layers of a tile-month were not materialized.
        """
        mem = cls()
        for grid in grids:
            for month in months:
                from memories.earth.gis import read_tile_layers

                layers = read_tile_layers(root, grid.tile_id, month)
                events = detect_events(root, grid, month, origin_month=origin_month, world=world)
                for ev in events:
                    mem.add(event_hyperedge(ev, layers, grid, root=root))
        return mem

    # -- queries ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._edges)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._edges

    def event(self, event_id: str) -> Hyperedge:
        """One hyperedge.

        Raises:
            ConfigError: no such event.
        """
        try:
            return self._edges[event_id]
        except KeyError:
            raise ConfigError(
                f"no event {event_id!r} in the relationship memory; events are {sorted(self._edges)[:10]}"
            ) from None

    def events(self, kind: str | None = None) -> list[Hyperedge]:
        """All hyperedges (of one kind), by start time."""
        return sorted((e for e in self._edges.values() if kind is None or e.kind == kind), key=lambda e: e.start)

    def members(self, event_id: str, role: str | None = None) -> list[str]:
        """Entity ids of an event, of one role or all."""
        return self.event(event_id).entities(role)

    def events_touching(self, entity: str) -> list[Hyperedge]:
        """The events an entity takes part in, by start time."""
        return sorted((self._edges[i] for i in self._by_entity.get(entity, ())), key=lambda e: e.start)

    def events_in(
        self, start: datetime, end: datetime, *, area: Any = None, kind: str | None = None
    ) -> list[Hyperedge]:
        """Events whose period overlaps ``[start, end)`` and, if given, whose footprint
        intersects ``area`` (a shapely geometry in EPSG:4326)."""
        import shapely

        if end <= start:
            raise ConfigError(f"time range [{start}, {end}) is empty; give start < end")
        out = []
        for e in self.events(kind):
            if e.start >= end or (e.end is not None and e.end <= start):
                continue
            if area is not None and (e.geometry_wkt is None or not shapely.from_wkt(e.geometry_wkt).intersects(area)):
                continue
            out.append(e)
        return out

    # -- persistence --------------------------------------------------------
    def save(self, root: StorageRoot, name: str = "default") -> str:
        """Write every hyperedge as one JSON file (whole or not at all); returns its URI."""
        uri = root.memory_uri(MEMORY_KIND, f"{name}.json")
        payload = {"version": 1, "events": [e.to_dict() for e in self.events()]}
        root.write_bytes(uri, json.dumps(payload, indent=1).encode())
        return uri

    @classmethod
    def load(cls, root: StorageRoot, name: str = "default") -> RelationshipMemory:
        """Read a memory written by ``save``."""
        payload = json.loads(root.read_bytes(root.memory_uri(MEMORY_KIND, f"{name}.json")))
        mem = cls()
        for d in payload["events"]:
            mem.add(Hyperedge.from_dict(d))
        return mem


RelationshipMemoryManager = RelationshipMemory
"""The seed's name of the relationship memory."""


def event_hyperedge(
    ev: DetectedEvent, layers: dict[str, Any], grid: TileGrid, *, root: StorageRoot | None = None
) -> Hyperedge:
    """The hyperedge of one event: members are the features of ``layers`` (GeoDataFrames
    in the tile CRS, as ``gis_layers`` wrote them) whose geometry intersects the footprint.

    Buildings and roads are ``affected``; for a flood, water bodies are its ``source``;
    land-use parcels are the ``area``; the tile is the ``location``; the tile-month's
    environmental report, when it exists under ``root``, is the ``evidence``.
    """
    import geopandas as gpd
    import shapely

    members = [Member(f"tile:{grid.tile_id}", "location")]
    roles = {"buildings": "affected", "roads": "affected", "landuse": "area", "water": "source"}
    for layer, role in roles.items():
        gdf = layers.get(layer)
        if gdf is None or not len(gdf):
            continue
        if layer == "water" and ev.kind != "flood":
            continue
        # A river bank touches its flood; a 1 m tolerance keeps edge-sharing water bodies.
        geom = ev.geometry.buffer(1.0) if layer == "water" else ev.geometry
        hit = gdf.sindex.query(geom, predicate="intersects")
        for oid in sorted(gdf["osm_id"].iloc[hit].astype("int64").tolist()):
            members.append(Member(entity_id(layer, oid), role))
    if root is not None:
        kind = EVIDENCE_REPORT_KIND
        if root.exists(root.report_uri(kind, grid.tile_id, ev.month, "summary.json")):
            members.append(Member(f"report:{kind}/{grid.tile_id}/{ev.month}", "evidence"))
    footprint = gpd.GeoSeries([ev.geometry], crs=grid.crs).to_crs("EPSG:4326").iloc[0]
    return Hyperedge(
        id=f"event:{ev.kind}/{ev.tile}/{ev.month}",
        kind=ev.kind,
        start=ev.start,
        end=ev.end,
        members=members,
        geometry_wkt=shapely.to_wkt(footprint, rounding_precision=7),
        attrs={"tile": ev.tile, "month": ev.month, "source": ev.source, "area_m2": round(float(ev.geometry.area), 1)},
    )


def entity_id(layer: str, osm_id: int) -> str:
    """The entity id of a GIS feature: ``building:40000001``."""
    return f"{LAYER_ENTITY.get(layer, layer)}:{int(osm_id)}"


def detect_events(
    root: StorageRoot, grid: TileGrid, month: str, *, origin_month: str | None = None, world: Any = None
) -> list[DetectedEvent]:
    """Events of one tile-month.

    With a ``spectral_indices`` store holding ``month`` and an earlier month (and
    ``origin_month``), footprints are detected (``detect_change_events``). Otherwise
    the events that ``world`` (a ``SampleWorld``) reports active in the month are
    used, with their reported footprint. Neither: no events.
    """
    if origin_month is not None:
        from memories.store.raster import MonthlyRasterStore

        store = MonthlyRasterStore(root, SPECTRAL_INDICES, grid, origin_month)
        months = store.months() if store.exists() else []
        earlier = [m for m in months if m < month]
        if month in months and earlier:
            from memories.earth.vegetation import reference_month

            ref = reference_month(months, month) or earlier[-1]
            now_ds, ref_ds = store.read_month(month), store.read_month(ref)
            from memories.earth.gis import read_tile_layers

            landuse = read_tile_layers(root, grid.tile_id, month, ["landuse"])["landuse"]
            return detect_change_events(
                grid,
                month,
                ndvi_ref=ref_ds["ndvi"].values,
                ndvi_now=now_ds["ndvi"].values,
                ndwi_ref=ref_ds["ndwi"].values,
                ndwi_now=now_ds["ndwi"].values,
                landuse=landuse,
            )
    if world is None:
        return []
    start, end = month_range(month)
    out = []
    for e in world.events(grid.tile_id):
        if e.start <= end and (e.end is None or e.end > start):
            # Lasting changes (clear-cut, new district) are events of the month they began in.
            if e.end is None and e.start < start:
                continue
            out.append(DetectedEvent(e.kind, grid.tile_id, month, e.geometry, e.start, e.end, "reported"))
    return out


def detect_change_events(
    grid: TileGrid,
    month: str,
    *,
    ndvi_ref: np.ndarray,
    ndvi_now: np.ndarray,
    ndwi_ref: np.ndarray,
    ndwi_now: np.ndarray,
    landuse: Any = None,
) -> list[DetectedEvent]:
    """Flood and vegetation-loss footprints from two months of indices on the tile grid.

    - flood: open water now (NDWI > 0) that was land in the reference month, in
      patches of at least ``FLOOD_MIN_PATCH_PX`` pixels;
    - vegetation loss: ``detect_vegetation_loss`` (outside water now); a ``clear_cut``
      when at least ``FOREST_SHARE_FOR_CLEAR_CUT`` of it lies on ``landuse=forest``
      parcels of ``landuse`` (a GeoDataFrame in the tile CRS), else ``vegetation_loss``.

    The period of a detected event is the month.
    """
    from scipy import ndimage

    from memories.earth.vegetation import detect_vegetation_loss

    start, end = month_range(month)
    out: list[DetectedEvent] = []
    with np.errstate(invalid="ignore"):
        water_now = ndwi_now > 0
        new_water = water_now & (ndwi_ref <= 0)
    labels, n = ndimage.label(new_water)
    if n:
        sizes = ndimage.sum(new_water, labels, index=np.arange(1, n + 1))
        new_water = np.concatenate([[False], sizes >= FLOOD_MIN_PATCH_PX])[labels]
    if new_water.any():
        out.append(DetectedEvent("flood", grid.tile_id, month, grid.mask_polygon(new_water), start, end, "ndwi"))
    loss = detect_vegetation_loss(ndvi_ref, ndvi_now) & ~water_now
    if loss.any():
        import shapely

        forest = None
        if landuse is not None and len(landuse) and "landuse" in landuse.columns:
            forest = landuse[landuse["landuse"] == "forest"].geometry.union_all()
        patches: dict[str, list[Any]] = {"clear_cut": [], "vegetation_loss": []}
        geom = grid.mask_polygon(loss)
        for patch in getattr(geom, "geoms", [geom]):
            on_forest = (
                forest is not None and patch.intersection(forest).area >= FOREST_SHARE_FOR_CLEAR_CUT * patch.area
            )
            patches["clear_cut" if on_forest else "vegetation_loss"].append(patch)
        for kind, polys in patches.items():
            if polys:
                out.append(DetectedEvent(kind, grid.tile_id, month, shapely.union_all(polys), start, end, "ndvi"))
    return out
