"""Urban planning report of each tile-month: built-up expansion, green space, road growth, recommendations.

Compares the month with 12 months earlier (or the earliest month the memory holds)
per census district: built-up area from ``land_cover`` (growth in ha, %, %/yr, the new
patches), green space (forest + grassland) in ha, % and m² per inhabitant, road km and
intersection density from the ``gis_layers`` as they stood, and the recommendations
those numbers trigger. Reads only through the memory view, so ``as_of`` in the run
config reruns the report on what the memory knew then.
"""

from typing import Any

from dagster import AssetDep, AssetExecutionContext, MaterializeResult, asset

from assets._report import REPORT_ASSET, ReportConfig, alert_text, run_report
from assets.partitions import YEAR_BEFORE
from memories.applications.report import Report
from memories.applications.urban import UrbanPlanner
from memories.applications.urban_report import PREVIEW_QUANTITIES, preview_metadata
from resources import MemoryCatalogResource, StacCatalogResource, StorageResource

from .gis import gis_layers
from .models import land_cover
from .multimodal import multimodal_land_use
from .sources import socioeconomic_regions
from .terrain import terrain


@asset(
    **REPORT_ASSET,
    deps=[
        AssetDep(land_cover, partition_mapping=YEAR_BEFORE),  # compared with 12 months earlier
        AssetDep(gis_layers, partition_mapping=YEAR_BEFORE),  # roads then and now
        socioeconomic_regions,  # tile-partitioned: Dagster infers the tile-dimension mapping
        terrain,  # tile-partitioned too: the slope under new built-up land
        multimodal_land_use,  # the land-use section: the multi-modal map of the month
    ],
    description="Urban planning report per tile-month: built-up expansion, green space per inhabitant and road "
    "network growth per census district since a year earlier, with the recommendations they trigger.",
)
def urban_report(
    context: AssetExecutionContext,
    config: ReportConfig,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    return run_report(context, config, stac, storage, memory, UrbanPlanner, urban_preview)


def urban_preview(report: Report) -> dict[str, Any]:
    """The preview rows, alert and scalar metadata of an urban report (for ``report_result``)."""
    urban = report.summary["urban"]
    period = f"{urban['start_month']}..{report.month}"
    quantities = report.quantities
    rows: list[tuple[str, object]] = [(name, quantities[name]) for name in PREVIEW_QUANTITIES]
    rows.append(("recommendations", f"{len(urban['recommendations'])} ({period})"))
    return {"rows": rows, "alert": alert_text(report), "metadata": preview_metadata(urban)}
