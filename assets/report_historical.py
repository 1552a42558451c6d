"""Historical report per tile-month: the tile rebuilt at a past date, and the historical map beside it.

The state at the date (the earliest month of land cover in memory by default) is
rebuilt from the memory's valid time (land cover, GIS layers filtered on
``start_date``, spectral indices) and compared with the georeferenced historical
map; each source shows its uncertainty (model validation accuracy and MC-dropout
confidence, georeferencing RMSE, the GIS date filter, month gaps). It reads the
memory only (``as_of`` in the run config picks a transaction time).
"""

from functools import partial
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, asset

from assets._report import REPORT_ASSET, ReportConfig, run_report
from memories.applications.historical import HistoricalReconstructor
from memories.applications.historical_report import (
    AGREEMENT,
    BUILT_UP_GAINED,
    CHANGED_AREA,
    GEOREFERENCING_RMSE,
    SUMMARY_KEY,
    VALIDATION_ACCURACY,
)
from memories.applications.report import Report
from resources import MemoryCatalogResource, StacCatalogResource, StorageResource

from .gis import gis_layers
from .models import land_cover
from .sources import historical_map


class HistoricalReportConfig(ReportConfig):
    """Run configuration of ``historical_report``."""

    date: str | None = None
    """Date to reconstruct (``YYYY-MM-DD``); empty: the middle of the earliest month of land cover in memory."""


@asset(
    **REPORT_ASSET,
    # historical_map is partitioned by tile only: Dagster maps each month x tile partition to its tile
    # (MultiToSingleDimensionPartitionMapping on the tile dimension, inferred).
    deps=[land_cover, gis_layers, historical_map],
    description="Historical reconstruction per tile-month: the state at a past date from the memory and the "
    "georeferenced historical map, each source with its uncertainty, and what changed since.",
)
def historical_report(
    context: AssetExecutionContext,
    config: HistoricalReportConfig,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    build = partial(HistoricalReconstructor, date=config.date or None)
    return run_report(context, config, stac, storage, memory, build, historical_preview)


def historical_preview(report: Report) -> dict[str, Any]:
    """The preview rows and scalar metadata of a historical report (for ``report_result``)."""
    quantities = report.quantities
    h = report.summary[SUMMARY_KEY]
    date = h["date"][:10]
    rows: list[tuple[str, object]] = [
        ("reconstructed date", f"{date} (land cover of {h['land_cover_month']})"),
        (BUILT_UP_GAINED, quantities[BUILT_UP_GAINED]),
        (CHANGED_AREA, quantities[CHANGED_AREA]),
        (VALIDATION_ACCURACY, quantities[VALIDATION_ACCURACY]),
    ]
    metadata: dict[str, object] = {
        "reconstructed_date": date,
        "built_up_gained_ha": float(h["built_up_gained_ha"]),
        "changed_ha": float(h["changed_ha"]),
    }
    hist = h["historical_map"]
    if hist is not None and hist["agreement"]["overall"] is not None:
        rows += [
            ("historical map agreement", quantities[AGREEMENT]),
            (GEOREFERENCING_RMSE, quantities[GEOREFERENCING_RMSE]),
        ]
        metadata["map_agreement"] = float(hist["agreement"]["overall"])
        metadata["georeferencing_rmse_m"] = float(hist["georeference"]["rmse_m"])
    return {"rows": rows, "metadata": metadata}
