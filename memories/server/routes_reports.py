"""The report paths of the query server: stored reports and their files, analyses and properties on demand.

``/reports/{kind}/{tile}/{month}`` serves the report version in force at ``as_of``
(its JSON summary or its page with the figures inlined) and its files;
``/analyses/{kind}`` and ``/property`` run an application over the memory as it
stood at ``as_of`` without storing anything. Analyses run one at a time because
matplotlib's pyplot state is process-global, and a bounded number wait
(:class:`~memories.server.admission.AnalysisQueue`: beyond, 503 with ``Retry-After``).

No ``from __future__ import annotations`` here: FastAPI reads the endpoints'
annotations at runtime.
"""

import base64
import importlib
import json
import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import AfterValidator

from memories.applications.webmap import inline_webmap
from memories.errors import MemoriesError, MissingDataError
from memories.memory.catalog import Materialization
from memories.memory.view import MemoryView
from memories.server.admission import AnalysisQueue, estimate_analysis_bytes
from memories.server.models import (
    BUSY,
    FILE_PATTERN,
    JSON_OR_HTML,
    KIND_PATTERN,
    MONTH_PATTERN,
    TILE_PATTERN,
    AnalysisRequest,
    AsOfQuery,
    Format,
    Kinds,
    PropertyRequest,
    ViewFactory,
    check_month,
    utc,
)
from memories.server.serialize import json_response, record_dict
from memories.store.atomic import is_temporary
from memories.store.paths import StorageRoot

logger = logging.getLogger(__name__)

MEDIA_TYPES = {"png": "image/png", "html": "text/html; charset=utf-8", "json": "application/json"}
"""Media type of a report file by its extension (others: ``application/octet-stream``)."""

_KIND = Path(pattern=KIND_PATTERN, description="report kind, e.g. environmental")
_TILE = Path(pattern=TILE_PATTERN, description="MGRS tile id")
_MONTH = Path(pattern=MONTH_PATTERN, description="YYYY-MM")


def report_routes(
    view_factory: ViewFactory, applications: dict[str, str], queue: AnalysisQueue | None = None
) -> APIRouter:
    """The paths over the stored reports of the views ``view_factory`` makes, and the ``applications`` on demand.

    Args:
        view_factory: ``as_of -> MemoryView``.
        applications: report kind -> ``module:Class``.
        queue: admits the analyses (default: one running, :data:`DEFAULT_MAX_WAITING` waiting).
    """
    router = APIRouter()
    _stored_report_routes(router, view_factory, applications)
    _analysis_routes(router, view_factory, applications, queue if queue is not None else AnalysisQueue())
    return router


def _stored_report_routes(router: APIRouter, view_factory: ViewFactory, applications: dict[str, str]) -> None:
    """``/reports/...``: the stored reports (summary, page, files) in force at ``as_of``."""

    @router.get("/reports/{kind}/{tile}/{month}", tags=["reports"], responses=JSON_OR_HTML)
    def report(
        kind: Annotated[str, _KIND],
        tile: Annotated[str, _TILE],
        month: Annotated[str, _MONTH, AfterValidator(check_month)],
        as_of: AsOfQuery = None,
        format: Annotated[Format, Query(description="json: the summary; html: the page, figures inlined")] = "json",  # noqa: A002
    ) -> Response:
        """The stored report of a tile-month in force at ``as_of``: its JSON summary or its HTML page.

        The report is the catalog record of asset ``<kind>_report``; figures are inlined
        into the HTML (and served at ``.../files/{name}``).
        """
        _known(kind, applications)
        stored = StoredReport.of(view_factory(utc(as_of)), kind, tile, month)
        if format == "html":
            return HTMLResponse(stored.html_inline())
        return json_response(
            {
                **stored.summary,
                "version": stored.version,
                "record": record_dict(stored.record),
                "files": sorted(stored.files),
            }
        )

    @router.get(
        "/reports/{kind}/{tile}/{month}/files/{name}",
        tags=["reports"],
        responses={200: {"content": {"image/png": {}, "text/html": {}, "application/json": {}}}},
    )
    def report_file(
        kind: Annotated[str, Path(pattern=KIND_PATTERN)],
        tile: Annotated[str, Path(pattern=TILE_PATTERN)],
        month: Annotated[str, Path(pattern=MONTH_PATTERN), AfterValidator(check_month)],
        name: Annotated[str, Path(pattern=FILE_PATTERN, description="e.g. ndvi_timeseries.png")],
        as_of: AsOfQuery = None,
    ) -> Response:
        """One file (figure PNG, page, summary) of the report version in force at ``as_of``."""
        _known(kind, applications)
        stored = StoredReport.of(view_factory(utc(as_of)), kind, tile, month)
        if name not in stored.files:
            raise MissingDataError(
                f"the {kind} report of {month}|{tile} (version {stored.version}) has no file {name!r}; "
                f"it has {sorted(stored.files)}"
            )
        media_type = MEDIA_TYPES.get(name.rpartition(".")[2], "application/octet-stream")
        return Response(stored.read(name), media_type=media_type)


def _analysis_routes(
    router: APIRouter, view_factory: ViewFactory, applications: dict[str, str], analyses_queue: AnalysisQueue
) -> None:
    """``/analyses`` and ``/property``: applications run on demand, admitted by ``analyses_queue``."""

    @router.get("/analyses", tags=["analyses"])
    def analyses() -> Kinds:
        """The report kinds an analysis can be run for."""
        return Kinds(kinds=sorted(applications))

    @router.post("/analyses/{kind}", tags=["analyses"], responses={**JSON_OR_HTML, **BUSY})
    def analyse(kind: Annotated[str, _KIND], body: AnalysisRequest) -> Response:
        """Run an application over a tile-month as the memory stood at ``as_of``; the report is NOT stored.

        Answers the report's JSON (``Report.json()``) or its self-contained HTML page.
        """
        _known(kind, applications)

        view = view_factory(utc(body.as_of))

        def analysis() -> Any:
            return _application(kind, applications, view).report(body.tile, body.month)

        built = analyses_queue.run(analysis, estimate_bytes=_estimate(view, [body.tile]))
        if body.format == "html":
            return HTMLResponse(built.html_inline())
        return json_response(built.json())

    @router.post("/property", tags=["analyses"], responses=BUSY)
    def property_(body: PropertyRequest) -> Response:
        """A property's surroundings over ``time_range`` (``RealEstateAgent.analyze_property``), as of ``as_of``."""
        kind = "real_estate"
        _known(kind, applications)

        view = view_factory(utc(body.as_of))

        def analysis() -> Any:
            agent = _application(kind, applications, view)
            return agent.analyze_property_sync(
                address=body.address,
                time_range=tuple(body.time_range) if body.time_range else None,
                include_environmental=body.include_environmental,
                include_neighborhood=body.include_neighborhood,
            ).to_dict()

        return json_response(analyses_queue.run(analysis, estimate_bytes=_estimate(view, view.tiles())))


class StoredReport:
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
                if "." in n and not n.startswith(("_", ".")) and not is_temporary(n)
            }
            self.summary = (
                json.loads(root.read_bytes(self.files["summary.json"])) if "summary.json" in self.files else {}
            )

    @classmethod
    def of(cls, view: MemoryView, kind: str, tile: str, month: str) -> "StoredReport":
        """The version in force in ``view`` of the ``kind`` report of a tile-month.

        Raises:
            MissingDataError: the view holds no record of ``<kind>_report`` for the tile-month.
        """
        return cls(view.root, view.record(f"{kind}_report", tile, month), kind, tile, month)

    def read(self, name: str) -> bytes:
        """The bytes of the version's file ``name``."""
        return self.root.read_bytes(self.files[name])

    def html_inline(self) -> str:
        """The page with every PNG of the version inlined as a data URI (images need no second, tokened request)."""
        html = self.read("report.html").decode()
        for name in self.files:
            if name.endswith(".png"):
                data = base64.b64encode(self.read(name)).decode()
                html = html.replace(f'src="{name}"', f'src="data:image/png;base64,{data}"')
        return inline_webmap(html, self.read)  # the interactive map's script, style and layers, if it has one


def _estimate(view: MemoryView, tiles: list[str]) -> int:
    """Memory an analysis over the largest of ``tiles`` takes, bytes; 0 for tiles the memory lacks (the analysis
    then says what is missing)."""
    pixels = 0
    for tile in tiles:
        try:
            pixels = max(pixels, math.prod(view.grid(tile).shape))
        except MemoriesError:
            continue
    return estimate_analysis_bytes(pixels)


def _known(kind: str, kinds: dict[str, str]) -> None:
    if kind not in kinds:
        raise HTTPException(404, f"no application {kind!r}; the kinds are {sorted(kinds)}")


def _application(kind: str, kinds: dict[str, str], view: MemoryView) -> Any:
    """The application of ``kind`` over ``view`` (``Cls(view)``); 501 when its module is not installed."""
    module, _, name = kinds[kind].partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        logger.warning("application %s (%s) is not available: %s", kind, kinds[kind], e)
        raise HTTPException(501, f"the {kind} application ({kinds[kind]}) is not installed on this server") from None
    return cls(view)
