"""Application reports: the environmental report of each tile-month.

An HTML page with PNG figures (vegetation loss and gain, open-water change,
index trends with anomalies, NDVI per land-cover class, the band importance of
the land-cover model version that classified the tile-month) and a JSON summary
of every number in it, built by :class:`~memories.applications.environmental.EnvironmentalMonitor`
from the memory as of the run's ``as_of`` (run config), written under the
storage root as a new version and previewed in the Dagster UI.
"""

from typing import Any

from dagster import AssetDep, AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets._report import REPORT_ASSET, ReportConfig, alert_text, run_report
from assets.partitions import YEAR_BEFORE
from memories.applications.environmental import EnvironmentalMonitor
from memories.applications.report import Report, quantity
from resources import MemoryCatalogResource, StacCatalogResource, StorageResource

from .imagery import spectral_indices
from .models import land_cover


@asset(
    **REPORT_ASSET,
    # The month and the year before it: the reference month (12 months earlier) and the trends.
    deps=[
        AssetDep(spectral_indices, partition_mapping=YEAR_BEFORE),
        AssetDep(land_cover, partition_mapping=YEAR_BEFORE),
    ],
    description="Environmental report per tile-month: forest and vegetation loss and gain, open-water change, "
    "NDVI/NDWI/NBR trends and anomalies, with alerts.",
)
def environmental_report(
    context: AssetExecutionContext,
    config: ReportConfig,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    return run_report(context, config, stac, storage, memory, EnvironmentalMonitor, environmental_preview)


def environmental_preview(report: Report) -> dict[str, Any]:
    """The preview rows, alert and scalar metadata of an environmental report (for ``report_result``)."""
    s, month = report.summary, report.month
    loss, water = s["forest_loss"], s["water"]
    since = f"{s['reference_month']}..{month}" if s["reference_month"] else None
    ndvi = s["trends"]["ndvi"]
    rows: list[tuple[str, object]] = [
        (
            "forest loss",
            quantity(loss["area_ha"], "ha", period=since, uncertainty=loss["edge_uncertainty_ha"], digits=2),
        ),
        ("vegetation gain", quantity(s["vegetation_gain"]["area_ha"], "ha", period=since, digits=2)),
        (
            "open-water change",
            quantity(
                water.get("change_vs_reference_ha"),
                "ha",
                period=since,
                uncertainty=water.get("change_uncertainty_ha"),
                digits=2,
            ),
        ),
        (
            "NDVI trend",
            quantity(ndvi["slope_per_year"], "per year", uncertainty=ndvi["standard_error"], digits=4),
        ),
        ("mean NDVI", quantity(s["ndvi_mean"], "dimensionless", period=month)),
        ("land-cover model", str(s["model_id"] or "n/a")),
    ]
    return {
        "rows": rows,
        "alert": alert_text(report, " "),
        "metadata": {
            "forest_loss_ha": loss["area_ha"],
            "vegetation_gain_ha": s["vegetation_gain"]["area_ha"],
            "water_change_ha": water.get("change_vs_reference_ha"),
            "reference_month": s["reference_month"] or "",
            "model": MetadataValue.text(str(s["model_id"])),
            "model_id": MetadataValue.text(str(s["model_id"])),
            "band_importance": MetadataValue.json(s["band_importance"] or {}),
        },
    }
