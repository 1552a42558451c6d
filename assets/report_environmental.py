"""Environmental report of each tile-month: vegetation loss and gain, open-water change, index trends, alerts.

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
from memories.applications.environmental_report import (
    BAND_IMPORTANCE,
    FOREST_LOSS,
    FOREST_LOSS_HA,
    MODEL_ID,
    NDVI_MEAN,
    REFERENCE_MONTH,
    TRENDS,
    VEGETATION_GAIN,
    VEGETATION_GAIN_HA,
    WATER,
    WATER_CHANGE_HA,
)
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
    loss, gain, water, ref = s[FOREST_LOSS], s[VEGETATION_GAIN], s[WATER], s[REFERENCE_MONTH]
    since = f"{ref}..{month}" if ref else None
    ndvi = s[TRENDS]["ndvi"]
    rows: list[tuple[str, object]] = [
        (
            "forest loss",
            quantity(loss["area_ha"], "ha", period=since, uncertainty=loss["edge_uncertainty_ha"], digits=2),
        ),
        ("vegetation gain", quantity(gain["area_ha"], "ha", period=since, digits=2)),
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
        ("mean NDVI", quantity(s[NDVI_MEAN], "dimensionless", period=month)),
        ("land-cover model", str(s[MODEL_ID] or "n/a")),
    ]
    return {
        "rows": rows,
        "alert": alert_text(report, " "),
        "metadata": {
            FOREST_LOSS_HA: loss["area_ha"],
            VEGETATION_GAIN_HA: gain["area_ha"],
            WATER_CHANGE_HA: water.get("change_vs_reference_ha"),
            REFERENCE_MONTH: ref or "",
            "model": MetadataValue.text(str(s[MODEL_ID])),
            MODEL_ID: MetadataValue.text(str(s[MODEL_ID])),
            BAND_IMPORTANCE: MetadataValue.json(s[BAND_IMPORTANCE] or {}),
        },
    }
