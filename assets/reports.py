"""Application reports: the environmental report of each tile-month.

An HTML page with PNG figures (vegetation loss and gain, open-water change,
index trends with anomalies, NDVI per land-cover class, the band importance of
the land-cover model version that classified the tile-month) and a JSON summary
of every number in it, built by :class:`~memories.applications.environmental.EnvironmentalMonitor`
from the memory as of the run's ``as_of`` (run config), written under the
storage root as a new version and previewed in the Dagster UI.
"""

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from assets._partition import tile_month
from assets._report import ReportConfig, memory_view, report_result
from dagster_project.partitions import month_tile_partitions
from memories.applications.environmental import EnvironmentalMonitor
from memories.applications.report import quantity
from memories.errors import MissingDataError
from resources import MemoryCatalogResource, StacCatalogResource, StorageResource

from .imagery import spectral_indices
from .models import land_cover


@asset(
    partitions_def=month_tile_partitions,
    deps=[spectral_indices, land_cover],
    group_name="applications",
    kinds={"html", "matplotlib"},
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
    month, grid = tile_month(context, stac)
    view = memory_view(storage, memory, config.as_of)
    try:
        report = EnvironmentalMonitor(view).report(grid.tile_id, month)
    except MissingDataError as e:
        raise Failure(description=str(e)) from e
    s = report.summary
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
    return report_result(
        context,
        view,
        report,
        grid,
        rows=rows,
        alert=" ".join(s["alerts"]) or None,
        metadata={
            "forest_loss_ha": loss["area_ha"],
            "vegetation_gain_ha": s["vegetation_gain"]["area_ha"],
            "water_change_ha": water.get("change_vs_reference_ha"),
            "reference_month": s["reference_month"] or "",
            "model": MetadataValue.text(str(s["model_id"])),
            "model_id": MetadataValue.text(str(s["model_id"])),
            "band_importance": MetadataValue.json(s["band_importance"] or {}),
        },
    )
