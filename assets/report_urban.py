"""Urban planning report of each tile-month: built-up expansion, green space, road growth, recommendations.

Compares the month with 12 months earlier (or the earliest month the memory holds)
per census district: built-up area from ``land_cover`` (growth in ha, %, %/yr, the new
patches), green space (forest + grassland) in ha, % and m² per inhabitant, road km and
intersection density from the ``gis_layers`` as they stood, and the recommendations
those numbers trigger. Reads only through the memory view, so ``as_of`` in the run
config reruns the report on what the memory knew then.
"""

from dagster import AssetExecutionContext, MaterializeResult, asset

from assets._partition import tile_month
from assets._report import ReportConfig, memory_view, report_result
from dagster_project.partitions import month_tile_partitions
from memories.applications.urban import UrbanPlanner
from resources import MemoryCatalogResource, StacCatalogResource, StorageResource

from .gis import gis_layers
from .models import land_cover
from .sources import socioeconomic_regions


@asset(
    partitions_def=month_tile_partitions,
    deps=[
        land_cover,
        gis_layers,
        socioeconomic_regions,  # tile-partitioned: Dagster infers the tile-dimension mapping
    ],
    group_name="applications",
    kinds={"html", "matplotlib"},
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
    month, grid = tile_month(context, stac)
    view = memory_view(storage, memory, config.as_of)
    report = UrbanPlanner(view).report(grid.tile_id, month)
    urban = report.summary["urban"]
    total = urban["tile_total"]
    period = f"{urban['start_month']}..{month}"
    quantities = {
        name: q for section in report.summary["sections"] for name, q in section.get("quantities", {}).items()
    }
    rows: list[tuple[str, object]] = [
        ("built-up growth", quantities["built-up growth"]),
        ("built-up growth rate", quantities["built-up growth rate"]),
        ("new built-up patches", quantities["new built-up patches"]),
        ("green space per inhabitant", quantities["green space per inhabitant"]),
        ("new roads", quantities["new roads"]),
        ("intersection density", quantities["intersection density"]),
        ("recommendations", f"{len(urban['recommendations'])} ({period})"),
    ]
    alerts = report.summary["alerts"]
    return report_result(
        context,
        view,
        report,
        grid,
        rows=rows,
        alert="; ".join(alerts) if alerts else None,
        metadata={
            "reference_month": urban["start_month"],
            "builtup_growth_ha": float(total["builtup_growth_ha"]),
            "builtup_end_ha": float(total["builtup_end_ha"]),
            "green_ha": float(total["green_ha"]),
            "new_road_km": float(total["new_road_km"]),
            "recommendations": len(urban["recommendations"]),
        },
    )
