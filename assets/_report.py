"""What every report asset does: open the memory as of a time, write the report, record it, preview it."""

from typing import Any

from dagster import Config, MaterializeResult, MetadataValue

from assets._partition import record
from memories.applications.memory_view import MemoryView
from memories.applications.report import Report
from memories.grid import TileGrid
from memories.memory.temporal import TemporalMemory


class ReportConfig(Config):  # type: ignore[misc]
    """Run configuration of a report asset."""

    as_of: str | None = None
    """Transaction time the report reads the memory at (ISO date/time, UTC); empty: now."""


def memory_view(storage: Any, memory: Any, as_of: str | None = None) -> MemoryView:
    """The memory of the code location's catalog and storage root, as of ``as_of`` (None: now)."""
    return MemoryView(TemporalMemory(memory.catalog(), storage.storage_root()), as_of=as_of or None)


def report_result(
    context: Any,
    view: MemoryView,
    report: Report,
    grid: TileGrid,
    *,
    rows: list[tuple[str, Any]],
    alert: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> MaterializeResult:
    """Write ``report`` as a new version, record it in the catalog, and build the asset's metadata.

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
    return MaterializeResult(
        metadata={
            "summary": MetadataValue.md(report.markdown(rows, alert=alert)),
            "report": MetadataValue.url(files["report.html"]),
            "summary_json": MetadataValue.url(files["summary.json"]),
            "version": MetadataValue.text(str(report.version)),
            "version_report": MetadataValue.url(report.version_files["report.html"]),
            "as_of": MetadataValue.text(view.as_of.isoformat() if view.as_of else "now"),
            "alert": bool(alert),
            **(metadata or {}),
        }
    )
