"""The memory's paths of the query server: catalog assets, tiles and records, features and events.

``/assets``, ``/tiles`` and ``/records`` answer the catalog's temporal queries (valid
and transaction time, ``as_of``); ``/features`` the spatial memory near a point or
in a box and ``/events`` the relationship memory, both as GeoJSON. The spatial and
relationship memories are loaded once per stored file version (:class:`MemoryCache`).

No ``from __future__ import annotations`` here: FastAPI reads the endpoints'
annotations at runtime.
"""

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from memories.errors import MissingDataError, StorageError
from memories.memory.catalog import Materialization
from memories.products import EVENT_HYPERGRAPH, SPATIAL_INDEX
from memories.server.models import (
    BBOX,
    TILE_PATTERN,
    TIME,
    AsOfQuery,
    AssetInfo,
    AssetsAnswer,
    FeatureCollection,
    RecordOut,
    RecordsAnswer,
    TileInfo,
    TilesAnswer,
    TimeLike,
    ViewFactory,
    instant,
    invalid,
    parse_bbox,
    parsed,
    utc,
)
from memories.server.serialize import event_feature, geojson_features, iso, record_dict
from memories.store.paths import StorageRoot

MAX_FEATURES = 10_000
"""Most features one answer of ``/v1/features`` holds (``limit``)."""
SPATIAL_ASSET = SPATIAL_INDEX
EVENTS_ASSET = EVENT_HYPERGRAPH


def memory_routes(view_factory: ViewFactory) -> APIRouter:
    """The paths over the catalog, the spatial and the relationship memory of the views ``view_factory`` makes."""
    router = APIRouter(tags=["memory"])
    _inventory_routes(router, view_factory)
    _record_routes(router, view_factory)
    _map_routes(router, view_factory, MemoryCache())
    return router


def _inventory_routes(router: APIRouter, view_factory: ViewFactory) -> None:
    """``/assets`` and ``/tiles``: what the catalog holds, at ``as_of``."""

    @router.get("/assets")
    def assets(as_of: AsOfQuery = None) -> AssetsAnswer:
        """Every asset the memory catalog holds records of, in force at ``as_of``."""
        view = view_factory(utc(as_of))
        out = []
        for name in view.memory.catalog.assets():
            recs = view.records(name)
            if not recs:
                continue
            months = sorted({r.partition for r in recs if r.partition})
            out.append(
                AssetInfo(
                    asset=name,
                    records=len(recs),
                    tiles=sorted({r.tile for r in recs if r.tile}),
                    first=months[0] if months else None,
                    last=months[-1] if months else None,
                )
            )
        return AssetsAnswer(as_of=iso(view.as_of), assets=out)

    @router.get("/tiles")
    def tiles(as_of: AsOfQuery = None) -> TilesAnswer:
        """Every tile the memory holds records of, with its CRS and WGS84 bounds."""
        view = view_factory(utc(as_of))
        by_tile: dict[str, list[Materialization]] = {}
        for rec in view.memory.catalog.query(as_of=view.as_of):
            if rec.tile:
                by_tile.setdefault(rec.tile, []).append(rec)
        out = []
        for tile, recs in sorted(by_tile.items()):
            located = next((r for r in recs if r.bbox_wgs84), recs[0])
            out.append(
                TileInfo(
                    tile=tile,
                    crs=located.crs,
                    bbox_wgs84=list(located.bbox_wgs84) if located.bbox_wgs84 else None,
                    assets=sorted({r.asset for r in recs}),
                )
            )
        return TilesAnswer(as_of=iso(view.as_of), tiles=out)


def _record_routes(router: APIRouter, view_factory: ViewFactory) -> None:
    """``/records``: the temporal query of the catalog."""

    @router.get("/records")
    def records(
        asset: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,79}$", description="asset name")] = None,
        tile: Annotated[str | None, Query(pattern=TILE_PATTERN, description="MGRS tile id")] = None,
        time_point: Annotated[TimeLike | None, Query(description=TIME + " the records describe")] = None,
        start: Annotated[TimeLike | None, Query(description="valid-time range start: " + TIME)] = None,
        end: Annotated[TimeLike | None, Query(description="valid-time range end (inclusive): " + TIME)] = None,
        as_of: AsOfQuery = None,
    ) -> RecordsAnswer:
        """Temporal query: records whose valid time matches, as the memory stood at ``as_of``.

        ``time_point`` (a month stands for its whole span) or ``start`` with ``end``;
        neither: every valid time. Each record names its version and the stored
        data's version id, and its transaction period.
        """
        if time_point is not None and (start is not None or end is not None):
            invalid("query", "time_point", time_point, "give time_point or start and end, not both")
        if (start is None) != (end is None):
            missing = "end" if end is None else "start"
            invalid("query", missing, None, "start and end go together: give both, or time_point")
        view = view_factory(utc(as_of))
        recs = view.memory.query(
            tile=tile,
            asset=asset,
            time_point=time_point,
            time_range=(start, end) if start is not None and end is not None else None,
            as_of=view.as_of,
        )
        return RecordsAnswer(
            as_of=iso(view.as_of), count=len(recs), records=[RecordOut.model_validate(record_dict(r)) for r in recs]
        )


def _map_routes(router: APIRouter, view_factory: ViewFactory, cache: "MemoryCache") -> None:
    """``/features`` and ``/events``: the spatial and the relationship memory, as GeoJSON."""

    @router.get("/features")
    def features(
        lat: Annotated[float | None, Query(ge=-90, le=90, description="latitude, degrees WGS84")] = None,
        lon: Annotated[float | None, Query(ge=-180, le=180, description="longitude, degrees WGS84")] = None,
        radius_km: Annotated[float | None, Query(gt=0, le=1000, description="radius, kilometres (geodesic)")] = None,
        bbox: Annotated[str | None, Query(description=BBOX)] = None,
        layer: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="e.g. buildings")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_FEATURES, description="most features returned")] = 1000,
    ) -> FeatureCollection:
        """Features of the spatial memory within ``radius_km`` of (lat, lon), or in ``bbox``, as GeoJSON.

        Radius answers are sorted by distance and carry ``distance_km``. The spatial memory is
        the ``spatial_index`` asset's latest output (it has no transaction time: no ``as_of``).
        """
        point = [v is not None for v in (lat, lon, radius_km)]
        if bbox is not None and any(point):
            invalid("query", "bbox", bbox, "give lat, lon and radius_km, or bbox, not both")
        if bbox is None and not all(point):
            name = ("lat", "lon", "radius_km")[point.index(False)]
            invalid("query", name, None, "give lat, lon and radius_km together, or bbox=west,south,east,north")
        box = parsed(parse_bbox, "bbox", bbox)
        memory = cache.spatial(view_factory(None).root)
        flt = {"layer": layer} if layer else None
        if box is not None:
            found = memory.query(bbox=box, filter=flt)
        else:
            assert lat is not None and lon is not None
            found = memory.query(location=(lat, lon), radius_km=radius_km, filter=flt)
        return FeatureCollection(
            features=geojson_features(found.head(limit)),
            numberMatched=len(found),
            numberReturned=min(limit, len(found)),
        )

    @router.get("/events")
    def events(
        start: Annotated[TimeLike | None, Query(description="period start: " + TIME)] = None,
        end: Annotated[TimeLike | None, Query(description="period end (a month: its end): " + TIME)] = None,
        kind: Annotated[str | None, Query(pattern=r"^[a-z_]{1,40}$", description="flood, clear_cut, ...")] = None,
        bbox: Annotated[str | None, Query(description=BBOX)] = None,
    ) -> FeatureCollection:
        """Events of the relationship memory overlapping [start, end), of a kind, touching a box (GeoJSON).

        Each feature is an event footprint; its properties hold id, kind, start, end,
        members (entity and role) and attributes.
        """
        from shapely.geometry import box

        lo = instant(start) if start else datetime(1, 1, 1, tzinfo=UTC)
        hi = instant(end, end=True) if end else datetime(9999, 12, 31, tzinfo=UTC)
        if hi <= lo:
            invalid("query", "end", end, f"the period [{start}, {end}) is empty; give start before end")
        area = parsed(parse_bbox, "bbox", bbox)
        memory = cache.relationship(view_factory(None).root)
        found = memory.events_in(lo, hi, area=box(*area) if area else None, kind=kind)
        out = [event_feature(e) for e in found]
        return FeatureCollection(features=out, numberMatched=len(out), numberReturned=len(out))


class MemoryCache:
    """The spatial and relationship memories, loaded once per stored file version (size, mtime / ETag)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], tuple[Any, Any]] = {}

    def spatial(self, root: StorageRoot) -> Any:
        """The ``SpatialMemory`` stored under ``root``.

        Raises:
            MissingDataError: the ``spatial_index`` asset was not materialized.
        """
        from memories.memory.spatial import MEMORY_KIND, SpatialMemory

        return self._get(root, MEMORY_KIND, "default.parquet", SPATIAL_ASSET, SpatialMemory.load)

    def relationship(self, root: StorageRoot) -> Any:
        """The ``RelationshipMemory`` stored under ``root``.

        Raises:
            MissingDataError: the ``event_hypergraph`` asset was not materialized.
        """
        from memories.memory.relationship import MEMORY_KIND, RelationshipMemory

        return self._get(root, MEMORY_KIND, "default.json", EVENTS_ASSET, RelationshipMemory.load)

    def _get(self, root: StorageRoot, kind: str, name: str, asset: str, load: Callable[[StorageRoot], Any]) -> Any:
        uri = root.memory_uri(kind, name)
        try:
            info = root.fs.info(root.path(uri))
        except FileNotFoundError:
            raise MissingDataError(
                f"the memory has no {kind} memory at {uri}; materialize the {asset} asset first "
                "(memory_job in the Dagster UI)"
            ) from None
        stamp = f"{info.get('size')}|{info.get('mtime') or info.get('ETag') or info.get('LastModified')}"
        with self._lock:
            cached = self._items.get((root.uri, kind))
            if cached is not None and cached[0] == stamp:
                return cached[1]
            try:
                value = load(root)
            except StorageError:
                raise MissingDataError(f"the {kind} memory at {uri} vanished; materialize {asset} again") from None
            self._items[(root.uri, kind)] = (stamp, value)
            return value
