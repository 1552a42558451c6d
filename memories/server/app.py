"""The query server: an HTTP API over the memory and its reports.

``MemoriesServer(memory)`` serves, under ``/v1``, what the memory holds: the
catalog's assets, tiles and records (temporal queries over valid and transaction
time), features of the spatial memory near a point or in a box (GeoJSON), events
of the relationship memory, the stored reports as they stood at any transaction
time, and the applications run on demand. ``/health`` and the OpenAPI docs
(``/docs``, ``/openapi.json``) are open; every other path needs
``Authorization: Bearer <token>``, the token of ``MEMORIES_API_TOKEN``.

    with MemoriesServer(port=0) as server:          # uvicorn in a thread, a free port
        httpx.get(f"{server.url}/v1/tiles", headers={"Authorization": f"Bearer {token}"})

From a shell: ``python -m memories.server --port 8765`` (or ``scripts/serve.sh``).

Blocking work (catalog queries, loads, analyses) runs in FastAPI's thread pool
(the endpoints are plain ``def``); analyses run one at a time because
matplotlib's pyplot state is process-global.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints'
annotations at runtime, and some name objects local to :func:`create_app`.
"""

import base64
import hmac
import ipaddress
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from memories.applications import APPLICATIONS
from memories.applications.memory_view import MemoryView
from memories.errors import ConfigError, MemoriesError, MissingDataError, StorageError
from memories.memory.catalog import Materialization
from memories.memory.temporal import TemporalMemory
from memories.server.models import (
    FILE_PATTERN,
    KIND_PATTERN,
    MONTH_PATTERN,
    TILE_PATTERN,
    AnalysisRequest,
    AssetInfo,
    AssetsAnswer,
    ErrorAnswer,
    FeatureCollection,
    Format,
    Health,
    Kinds,
    PropertyRequest,
    RecordOut,
    RecordsAnswer,
    TileInfo,
    TilesAnswer,
    TimeLike,
    check_time,
    parse_bbox,
    utc,
)
from memories.store.paths import StorageRoot

logger = logging.getLogger(__name__)

TOKEN_ENV = "MEMORIES_API_TOKEN"
"""Environment variable holding the API token."""
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_FEATURES = 10_000
"""Most features one answer of ``/v1/features`` holds (``limit``)."""
SPATIAL_ASSET = "spatial_index"
EVENTS_ASSET = "event_hypergraph"

ViewFactory = Callable[[datetime | None], MemoryView]
"""Makes the memory view of one request from its ``as_of`` (None: now)."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorAnswer, "description": "no or wrong bearer token"},
    404: {"model": ErrorAnswer, "description": "the memory holds no such thing (the message says what to materialize)"},
    500: {"model": ErrorAnswer, "description": "the memory failed (message, no traceback)"},
}


class MemoriesServer:
    """The HTTP API over a memory, and a uvicorn server for it.

    Args:
        memory: what to serve: a :class:`TemporalMemory`, a :class:`MemoryView` (its
            memory), or a factory ``as_of -> MemoryView``; default: the configured memory.
        token: the bearer token clients must send; default: ``$MEMORIES_API_TOKEN``.
            Without one the API is open, which is refused on any host but loopback.
        host: address to listen on (``127.0.0.1``; ``0.0.0.0`` for every interface).
        port: TCP port; ``0`` picks a free one (see :attr:`port` after :meth:`start`).
        applications: report kind -> ``module:Class``; default: every application
            of :data:`memories.applications.APPLICATIONS`.

    Raises:
        ConfigError: a non-loopback host without a token, or a port out of range.
    """

    def __init__(
        self,
        memory: TemporalMemory | MemoryView | ViewFactory | None = None,
        *,
        token: str | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        applications: dict[str, str] | None = None,
    ) -> None:
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        self._token = token or None
        if self._token is None and not is_loopback(host):
            raise ConfigError(
                f"refusing to serve the memory on {host!r} without a token; set {TOKEN_ENV} "
                "(e.g. export MEMORIES_API_TOKEN=$(openssl rand -hex 32)) or listen on 127.0.0.1"
            )
        if not 0 <= port <= 65535:
            raise ConfigError(f"port {port} is out of range; choose 1..65535 (0: any free port)")
        self.host, self.port = host, port
        self.view_factory = _view_factory(memory)
        self.applications = dict(applications if applications is not None else APPLICATIONS)
        self.app = create_app(self.view_factory, token=self._token, applications=self.applications)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"MemoriesServer({self.url}, token={'***' if self._token else None})"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "MemoriesServer":
        """Serve in a background thread (tests, notebooks); returns when the socket listens.

        Raises:
            ConfigError: the address could not be bound (port in use, host not of this machine).
        """
        import uvicorn

        if self._thread is not None:
            return self
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"memories-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                self._thread.join(5)
                self._thread = self._server = None
                raise ConfigError(
                    f"could not serve on {self.host}:{self.port}: the port is in use or the host is not an "
                    "address of this machine; choose another --port / --host"
                )
            time.sleep(0.02)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        logger.info("serving the memory at %s (token %s)", self.url, "required" if self._token else "not set")
        return self

    def _run(self) -> None:
        try:
            self._server.run()
        except SystemExit:  # uvicorn exits when it cannot bind; start() reports it
            pass

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a server started with :meth:`start` (waits for open requests up to ``timeout`` s)."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._thread = self._server = None

    def serve(self) -> None:
        """Serve in this thread until SIGINT / SIGTERM (the command line)."""
        import uvicorn

        if self._token is None:
            logger.warning("no %s set: the API is open to anyone who can reach %s", TOKEN_ENV, self.host)
        logger.info("serving the memory at %s (docs at %s/docs)", self.url, self.url)
        uvicorn.Server(
            uvicorn.Config(self.app, host=self.host, port=self.port, log_config=None, access_log=False)
        ).run()

    def __enter__(self) -> "MemoriesServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_app(view_factory: ViewFactory, *, token: str | None, applications: dict[str, str] | None = None) -> FastAPI:
    """The FastAPI application over the memory views ``view_factory`` makes.

    Args:
        view_factory: ``as_of -> MemoryView``.
        token: the bearer token every ``/v1`` path needs; ``None``: open.
        applications: report kind -> ``module:Class`` (default: all).
    """
    kinds_map = dict(applications if applications is not None else APPLICATIONS)
    app = FastAPI(
        title="Earth memory API",
        version="1",
        description=(
            "Temporal and spatial queries over the Earth memory, its stored reports, and analyses on demand. "
            f"Every /v1 path needs `Authorization: Bearer <token>` (the server's {TOKEN_ENV})."
        ),
    )
    bearer = HTTPBearer(
        auto_error=False, scheme_name="bearerAuth", description=f"the server's {TOKEN_ENV}, as a bearer token"
    )
    expected = token.encode() if token else None

    def require_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if expected is None:
            return
        if creds is None:
            raise HTTPException(
                401,
                f"missing bearer token: send the header 'Authorization: Bearer <token>' with the server's {TOKEN_ENV}",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(creds.credentials.encode(), expected):
            raise HTTPException(
                401,
                f"invalid bearer token: it is not the server's {TOKEN_ENV}",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    auth = [Depends(require_token)]
    cache = _MemoryCache()
    analysis_lock = threading.Lock()

    # -- errors and access log -----------------------------------------------------------
    @app.exception_handler(MissingDataError)
    def _missing(request: Request, exc: MissingDataError) -> JSONResponse:
        return _error(404, exc)

    @app.exception_handler(ConfigError)
    def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return _error(400, exc)

    @app.exception_handler(MemoriesError)
    def _memories(request: Request, exc: MemoriesError) -> JSONResponse:
        logger.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return _error(500, exc)

    @app.middleware("http")
    async def _access_log(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # the traceback goes to the log, never to the client
            logger.exception("%s %s failed", request.method, request.url.path)
            response = JSONResponse(
                {"detail": "internal error; the server log has the details", "error": type(exc).__name__},
                status_code=500,
            )
        query = f"?{request.url.query}" if request.url.query else ""
        client = request.client.host if request.client else "-"
        logger.info(
            '%s "%s %s%s" %d %.1f ms',
            client,
            request.method,
            request.url.path,
            query,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    # -- open -----------------------------------------------------------------------------
    @app.get("/health", tags=["server"])
    def health() -> Health:
        """The server answers (no token needed)."""
        return Health(time=datetime.now(UTC).isoformat(timespec="seconds"))

    # -- the catalog ------------------------------------------------------------------------
    @app.get("/v1/assets", tags=["memory"], dependencies=auth, responses=_ERRORS)
    def assets(as_of: Annotated[datetime | None, Query(description=_AS_OF)] = None) -> AssetsAnswer:
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
        return AssetsAnswer(as_of=_iso(view.as_of), assets=out)

    @app.get("/v1/tiles", tags=["memory"], dependencies=auth, responses=_ERRORS)
    def tiles(as_of: Annotated[datetime | None, Query(description=_AS_OF)] = None) -> TilesAnswer:
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
        return TilesAnswer(as_of=_iso(view.as_of), tiles=out)

    @app.get("/v1/records", tags=["memory"], dependencies=auth, responses=_ERRORS)
    def records(
        asset: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,79}$", description="asset name")] = None,
        tile: Annotated[str | None, Query(pattern=TILE_PATTERN, description="MGRS tile id")] = None,
        time_point: Annotated[TimeLike | None, Query(description=_TIME + " the records describe")] = None,
        start: Annotated[TimeLike | None, Query(description="valid-time range start: " + _TIME)] = None,
        end: Annotated[TimeLike | None, Query(description="valid-time range end (inclusive): " + _TIME)] = None,
        as_of: Annotated[datetime | None, Query(description=_AS_OF)] = None,
    ) -> RecordsAnswer:
        """Temporal query: records whose valid time matches, as the memory stood at ``as_of``.

        ``time_point`` (a month stands for its whole span) or ``start`` with ``end``;
        neither: every valid time. Each record names its version and the stored
        data's version id, and its transaction period.
        """
        if time_point is not None and (start is not None or end is not None):
            _invalid("query", "time_point", time_point, "give time_point or start and end, not both")
        if (start is None) != (end is None):
            missing = "end" if end is None else "start"
            _invalid("query", missing, None, "start and end go together: give both, or time_point")
        view = view_factory(utc(as_of))
        recs = view.memory.query(
            tile=tile,
            asset=asset,
            time_point=time_point,
            time_range=(start, end) if start is not None and end is not None else None,
            as_of=view.as_of,
        )
        return RecordsAnswer(
            as_of=_iso(view.as_of), count=len(recs), records=[RecordOut.model_validate(record_dict(r)) for r in recs]
        )

    # -- the spatial and relationship memory ----------------------------------------------------
    @app.get("/v1/features", tags=["memory"], dependencies=auth, responses=_ERRORS)
    def features(
        lat: Annotated[float | None, Query(ge=-90, le=90, description="latitude, degrees WGS84")] = None,
        lon: Annotated[float | None, Query(ge=-180, le=180, description="longitude, degrees WGS84")] = None,
        radius_km: Annotated[float | None, Query(gt=0, le=1000, description="radius, kilometres (geodesic)")] = None,
        bbox: Annotated[str | None, Query(description=_BBOX)] = None,
        layer: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="e.g. buildings")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_FEATURES, description="most features returned")] = 1000,
    ) -> FeatureCollection:
        """Features of the spatial memory within ``radius_km`` of (lat, lon), or in ``bbox``, as GeoJSON.

        Radius answers are sorted by distance and carry ``distance_km``. The spatial memory is
        the ``spatial_index`` asset's latest output (it has no transaction time: no ``as_of``).
        """
        point = [v is not None for v in (lat, lon, radius_km)]
        if bbox is not None and any(point):
            _invalid("query", "bbox", bbox, "give lat, lon and radius_km, or bbox, not both")
        if bbox is None and not all(point):
            name = ("lat", "lon", "radius_km")[point.index(False)]
            _invalid("query", name, None, "give lat, lon and radius_km together, or bbox=west,south,east,north")
        box = _parsed(parse_bbox, "bbox", bbox)
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

    @app.get("/v1/events", tags=["memory"], dependencies=auth, responses=_ERRORS)
    def events(
        start: Annotated[TimeLike | None, Query(description="period start: " + _TIME)] = None,
        end: Annotated[TimeLike | None, Query(description="period end (a month: its end): " + _TIME)] = None,
        kind: Annotated[str | None, Query(pattern=r"^[a-z_]{1,40}$", description="flood, clear_cut, ...")] = None,
        bbox: Annotated[str | None, Query(description=_BBOX)] = None,
    ) -> FeatureCollection:
        """Events of the relationship memory overlapping [start, end), of a kind, touching a box (GeoJSON).

        Each feature is an event footprint; its properties hold id, kind, start, end,
        members (entity and role) and attributes.
        """
        from shapely.geometry import box

        lo = _period(start, first=True) if start else datetime(1, 1, 1, tzinfo=UTC)
        hi = _period(end, first=False) if end else datetime(9999, 12, 31, tzinfo=UTC)
        if hi <= lo:
            _invalid("query", "end", end, f"the period [{start}, {end}) is empty; give start before end")
        area = _parsed(parse_bbox, "bbox", bbox)
        memory = cache.relationship(view_factory(None).root)
        found = memory.events_in(lo, hi, area=box(*area) if area else None, kind=kind)
        out = [event_feature(e) for e in found]
        return FeatureCollection(features=out, numberMatched=len(out), numberReturned=len(out))

    # -- reports ------------------------------------------------------------------------------
    @app.get(
        "/v1/reports/{kind}/{tile}/{month}",
        tags=["reports"],
        dependencies=auth,
        responses={**_ERRORS, 200: {"content": {"application/json": {}, "text/html": {}}}},
    )
    def report(
        kind: Annotated[str, Path(pattern=KIND_PATTERN, description="report kind, e.g. environmental")],
        tile: Annotated[str, Path(pattern=TILE_PATTERN, description="MGRS tile id")],
        month: Annotated[str, Path(pattern=MONTH_PATTERN, description="YYYY-MM")],
        as_of: Annotated[datetime | None, Query(description=_AS_OF)] = None,
        format: Annotated[Format, Query(description="json: the summary; html: the page, figures inlined")] = "json",  # noqa: A002
    ) -> Response:
        """The stored report of a tile-month in force at ``as_of``: its JSON summary or its HTML page.

        The report is the catalog record of asset ``<kind>_report``; figures are inlined
        into the HTML (and served at ``.../files/{name}``).
        """
        _known(kind, kinds_map)
        stored = _stored_report(view_factory(utc(as_of)), kind, tile, month)
        if format == "html":
            return HTMLResponse(stored.html_inline())
        return _json(
            {
                **stored.summary,
                "version": stored.version,
                "record": record_dict(stored.record),
                "files": sorted(stored.files),
            }
        )

    @app.get(
        "/v1/reports/{kind}/{tile}/{month}/files/{name}",
        tags=["reports"],
        dependencies=auth,
        responses={**_ERRORS, 200: {"content": {"image/png": {}, "text/html": {}, "application/json": {}}}},
    )
    def report_file(
        kind: Annotated[str, Path(pattern=KIND_PATTERN)],
        tile: Annotated[str, Path(pattern=TILE_PATTERN)],
        month: Annotated[str, Path(pattern=MONTH_PATTERN)],
        name: Annotated[str, Path(pattern=FILE_PATTERN, description="e.g. ndvi_timeseries.png")],
        as_of: Annotated[datetime | None, Query(description=_AS_OF)] = None,
    ) -> Response:
        """One file (figure PNG, page, summary) of the report version in force at ``as_of``."""
        _known(kind, kinds_map)
        stored = _stored_report(view_factory(utc(as_of)), kind, tile, month)
        if name not in stored.files:
            raise MissingDataError(
                f"the {kind} report of {month}|{tile} (version {stored.version}) has no file {name!r}; "
                f"it has {sorted(stored.files)}"
            )
        return Response(stored.read(name), media_type=_MEDIA.get(name.rpartition(".")[2], "application/octet-stream"))

    # -- analyses on demand ---------------------------------------------------------------------
    @app.get("/v1/analyses", tags=["analyses"], dependencies=auth, responses=_ERRORS)
    def analyses() -> Kinds:
        """The report kinds an analysis can be run for."""
        return Kinds(kinds=sorted(kinds_map))

    @app.post(
        "/v1/analyses/{kind}",
        tags=["analyses"],
        dependencies=auth,
        responses={**_ERRORS, 200: {"content": {"application/json": {}, "text/html": {}}}},
    )
    def analyse(
        kind: Annotated[str, Path(pattern=KIND_PATTERN, description="report kind, e.g. environmental")],
        body: AnalysisRequest,
    ) -> Response:
        """Run an application over a tile-month as the memory stood at ``as_of``; the report is NOT stored.

        Answers the report's JSON (``Report.json()``) or its self-contained HTML page.
        """
        _known(kind, kinds_map)
        view = view_factory(utc(body.as_of))
        app_ = _application(kind, kinds_map, view)
        with analysis_lock:
            built = app_.report(body.tile, body.month)
        if body.format == "html":
            return HTMLResponse(built.html_inline())
        return _json(built.json())

    @app.post("/v1/property", tags=["analyses"], dependencies=auth, responses=_ERRORS)
    def property_(body: PropertyRequest) -> Response:
        """A property's surroundings over ``time_range`` (``RealEstateAgent.analyze_property``), as of ``as_of``."""
        kind = "real_estate"
        _known(kind, kinds_map)
        agent = _application(kind, kinds_map, view_factory(utc(body.as_of)))
        with analysis_lock:
            answer = agent.analyze_property(
                address=body.address,
                time_range=tuple(body.time_range) if body.time_range else None,
                include_environmental=body.include_environmental,
                include_neighborhood=body.include_neighborhood,
            )
        return _json(answer)

    return app


# -- helpers of the endpoints -------------------------------------------------------------------

_AS_OF = "transaction time, ISO 8601 (UTC if no offset): what the memory knew then; empty: now"
_TIME = "YYYY-MM (a whole month) or an ISO 8601 date/time"
_BBOX = "west,south,east,north in degrees (WGS84), e.g. 24.93,60.16,24.96,60.18"
_MEDIA = {"png": "image/png", "html": "text/html; charset=utf-8", "json": "application/json"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def record_dict(rec: Materialization) -> dict[str, Any]:
    """A catalog record as JSON-able dict (bbox as a list)."""
    d = asdict(rec)
    d["bbox_wgs84"] = list(rec.bbox_wgs84) if rec.bbox_wgs84 else None
    return d


def geojson_features(frame: Any) -> list[dict[str, Any]]:
    """GeoJSON features of a GeoDataFrame in EPSG:4326 (missing values dropped, dates as ISO strings)."""
    if not len(frame):
        return []
    frame = frame.copy()
    for col in frame.columns:
        if col != frame.geometry.name and str(frame[col].dtype).startswith("datetime"):
            frame[col] = frame[col].map(lambda t: None if t is None or t != t else t.isoformat())
    return list(json.loads(frame.to_json(na="drop", drop_id=True))["features"])


def event_feature(edge: Any) -> dict[str, Any]:
    """A GeoJSON feature of one hyperedge (event); its footprint as geometry."""
    import shapely
    from shapely.geometry import mapping

    d = edge.to_dict()
    wkt = d.pop("geometry_wkt", None)
    geometry = mapping(shapely.from_wkt(wkt)) if wkt else None
    return {"type": "Feature", "id": edge.id, "geometry": geometry, "properties": d}


class _StoredReport:
    """One stored version of a report: its record, summary and files."""

    def __init__(self, root: StorageRoot, record: Materialization, kind: str, tile: str, month: str) -> None:
        self.root, self.record = root, record
        if record.version_id:
            from memories.memory.temporal import load_report_version

            loaded = load_report_version(root, kind, tile, month, record.version_id)
            self.version: str | None = loaded.pop("version")
            self.files: dict[str, str] = loaded.pop("files")
            self.summary: dict[str, Any] = loaded
        else:  # a report written before versioning: its plain files
            folder = root.report_uri(kind, tile, month, "x").rpartition("/")[0]
            names = [str(p).rstrip("/").rpartition("/")[2] for p in root.fs.ls(root.path(folder), detail=False)]
            self.version = None
            self.files = {
                n: root.report_uri(kind, tile, month, n)
                for n in names
                if "." in n and not n.startswith(("_", ".")) and ".tmp-" not in n
            }
            self.summary = (
                json.loads(root.read_bytes(self.files["summary.json"])) if "summary.json" in self.files else {}
            )

    def read(self, name: str) -> bytes:
        return self.root.read_bytes(self.files[name])

    def html_inline(self) -> str:
        """The page with every PNG of the version inlined as a data URI (images need no second, tokened request)."""
        html = self.read("report.html").decode()
        for name in self.files:
            if name.endswith(".png"):
                data = base64.b64encode(self.read(name)).decode()
                html = html.replace(f'src="{name}"', f'src="data:image/png;base64,{data}"')
        return html


def _stored_report(view: MemoryView, kind: str, tile: str, month: str) -> _StoredReport:
    rec = view.record(f"{kind}_report", tile, month)
    return _StoredReport(view.root, rec, kind, tile, month)


class _MemoryCache:
    """The spatial and relationship memories, loaded once per stored file version (size, mtime / ETag)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], tuple[Any, Any]] = {}

    def spatial(self, root: StorageRoot) -> Any:
        from memories.memory.spatial import MEMORY_KIND, SpatialMemory

        return self._get(root, MEMORY_KIND, "default.parquet", SPATIAL_ASSET, SpatialMemory.load)

    def relationship(self, root: StorageRoot) -> Any:
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


def _view_factory(memory: TemporalMemory | MemoryView | ViewFactory | None) -> ViewFactory:
    if isinstance(memory, MemoryView):
        memory = memory.memory
    if memory is None:
        memory = TemporalMemory()
    if isinstance(memory, TemporalMemory):
        mem = memory
        return lambda as_of: MemoryView(mem, as_of=as_of)
    if callable(memory):
        return memory
    raise ConfigError(
        f"MemoriesServer needs a TemporalMemory, a MemoryView or a factory as_of -> MemoryView, "
        f"got {type(memory).__name__}"
    )


def _known(kind: str, kinds: dict[str, str]) -> None:
    if kind not in kinds:
        raise HTTPException(404, f"no application {kind!r}; the kinds are {sorted(kinds)}")


def _application(kind: str, kinds: dict[str, str], view: MemoryView) -> Any:
    """The application of ``kind`` over ``view`` (``Cls(view)``); 501 when its module is not installed."""
    import importlib

    module, _, name = kinds[kind].partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        logger.warning("application %s (%s) is not available: %s", kind, kinds[kind], e)
        raise HTTPException(501, f"the {kind} application ({kinds[kind]}) is not installed on this server") from None
    return cls(view)


def _period(t: str, *, first: bool) -> datetime:
    """The first (``first``) or the end instant of a valid-time string; a month ends where the next begins."""
    from memories.months import add_months, parse_month

    if len(t) == 7:
        start = parse_month(t)
        return start if first else add_months(start, 1)
    d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _parsed(parse: Callable[[Any], Any], name: str, value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as e:
        _invalid("query", name, value, str(e))


def _invalid(where: str, name: str, value: Any, message: str) -> NoReturn:
    """Raise a 422 with FastAPI's ``detail`` shape for one bad input."""
    raise RequestValidationError([{"type": "value_error", "loc": (where, name), "msg": message, "input": value}])


def _error(status: int, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=status)


def _json(payload: Any) -> Response:
    """A JSON answer of anything the applications return (numpy scalars and arrays, datetimes, tuples);
    NaN and infinities become ``null`` (strict JSON has no such numbers)."""
    text = json.dumps(_finite(payload), default=_json_default, allow_nan=False)
    return Response(text, media_type="application/json")


def _finite(o: Any) -> Any:
    if isinstance(o, float | np.floating):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    return o


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, set | frozenset):
        return sorted(o, key=str)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


__all__ = ["MemoriesServer", "create_app", "check_time", "is_loopback"]
