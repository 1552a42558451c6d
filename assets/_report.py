"""What every report asset does: open the memory as of a time, write the report, record it, preview it."""

from collections.abc import Callable
from typing import Any

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue

from assets._partition import partition_metadata, record, tile_months
from assets.automation import REFRESH_WITH_INPUTS
from assets.partitions import MONTH_TILE_BACKFILL, month_tile_partitions
from memories.applications.report import Report
from memories.errors import MissingDataError
from memories.grid import TileGrid
from memories.memory.temporal import TemporalMemory
from memories.memory.view import MemoryView
from resources import MemoryCatalogResource, StacCatalogResource, StorageResource

REPORT_ASSET: dict[str, Any] = {
    "partitions_def": month_tile_partitions,
    "backfill_policy": MONTH_TILE_BACKFILL,
    "automation_condition": REFRESH_WITH_INPUTS,
    "pool": "reports",
    "group_name": "applications",
    "kinds": {"html", "matplotlib"},
}
"""What every report asset declares besides its deps and description: ``@asset(**REPORT_ASSET, deps=..., ...)``."""

Preview = Callable[[Report], dict[str, Any]]
"""A report -> ``{"rows": [(label, quantity | text)], "alert": text | None, "metadata": {...}}`` for the asset."""


class ReportConfig(Config):  # type: ignore[misc]
    """Run configuration of a report asset."""

    as_of: str | None = None
    """Transaction time the report reads the memory at (ISO date/time, UTC); empty: now."""


def memory_view(storage: StorageResource, memory: MemoryCatalogResource, as_of: str | None = None) -> MemoryView:
    """The memory of the code location's catalog and storage root, as of ``as_of`` (None: now)."""
    return MemoryView(TemporalMemory(memory.catalog(), storage.storage_root()), as_of=as_of or None)


def run_report(
    context: AssetExecutionContext,
    config: ReportConfig,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
    build: Callable[[MemoryView], Any],
    preview: Preview,
) -> MaterializeResult:
    """The body of every report asset: the memory as of ``config.as_of``, then for each tile-month of
    the run ``build(view).report(tile, month)`` and :func:`report_result` with ``preview(report)``.

    Raises:
        Failure: the memory lacks an input (the message names the partition to materialize).
    """
    view = memory_view(storage, memory, config.as_of)
    builder = build(view)
    for key, month, grid in tile_months(context, stac):
        try:
            report = builder.report(grid.tile_id, month)
        except MissingDataError as e:
            raise Failure(description=f"{key}: {e}") from e
        partition_metadata(context, key, report_result(context, view, report, grid, **preview(report)))
    return MaterializeResult()


def alert_text(report: Report, sep: str = "; ") -> str | None:
    """The report's alerts joined into one line, None when there are none."""
    alerts = report.summary.get("alerts") or []
    return sep.join(alerts) if alerts else None


def report_result(
    context: AssetExecutionContext,
    view: MemoryView,
    report: Report,
    grid: TileGrid,
    *,
    rows: list[tuple[str, Any]],
    alert: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``report`` as a new version, record it in the catalog, and return its partition's metadata.

    ``rows`` (label, quantity or text) form the Markdown preview's table; ``metadata``
    adds asset-specific scalar entries (numbers become Dagster plots over partitions).
    """
    files = report.write(view.root)
    stats = {k: v for k, v in report.json().items() if k not in ("sections", "figure_data")}
    record(
        context,
        view.memory.catalog,
        uri=files["report.html"],
        stats=stats,
        grid=grid,
        month=report.month,
        version=report.version,
    )
    return {
        "summary": MetadataValue.md(report.markdown(rows, alert=alert)),
        "report": MetadataValue.url(files["report.html"]),
        "summary_json": MetadataValue.url(files["summary.json"]),
        "version": MetadataValue.text(str(report.version)),
        "version_report": MetadataValue.url(report.version_files["report.html"]),
        "report_index": MetadataValue.url(view.root.report_index_uri()),
        "as_of": MetadataValue.text(view.as_of.isoformat() if view.as_of else "now"),
        "alert": bool(alert),
        **(metadata or {}),
    }
