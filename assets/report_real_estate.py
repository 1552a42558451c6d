"""Real-estate report of each tile-month: the tile's featured properties and their surroundings over time.

For each featured property (configured addresses, or by default three addressed
buildings picked from the month's GIS layers: nearest the tile centre, nearest the
newest development, nearest open water) the report shows, within 500 m: monthly
built-up, green-space (forest + grassland) and water shares and mean NDVI from the
first month the memory holds to the partition's month; flood exposure (distance
to open water, months with new water in the radius); the NDVI trend; the climate;
buildings, roads and land-cover transitions; an ARIMA projection of the NDVI six
months ahead with 95 % intervals. Reads only through the memory view, so ``as_of``
in the run config reruns the report on what the memory knew then.
"""

from typing import Any

from dagster import AssetDep, AssetExecutionContext, MaterializeResult, asset

from assets._report import REPORT_ASSET, ReportConfig, alert_text, run_report
from assets.partitions import YEAR_BEFORE
from memories.applications import real_estate_report as keys
from memories.applications.real_estate import RealEstateAgent
from memories.applications.report import Report
from resources import MemoryCatalogResource, StacCatalogResource, StorageResource

from .gis import gis_layers
from .imagery import spectral_indices
from .models import land_cover


@asset(
    **REPORT_ASSET,
    # The index history of the year before the month.
    deps=[land_cover, gis_layers, AssetDep(spectral_indices, partition_mapping=YEAR_BEFORE)],
    description="Real-estate report per tile-month: for the tile's featured properties, land cover, green space "
    "and NDVI within 500 m over time, flood exposure, neighbourhood changes and a 6-month NDVI projection.",
)
def real_estate_report(
    context: AssetExecutionContext,
    config: ReportConfig,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    return run_report(context, config, stac, storage, memory, RealEstateAgent, real_estate_preview)


def real_estate_preview(report: Report) -> dict[str, Any]:
    """The preview rows, alert and scalar metadata of a real-estate report (for :func:`report_result`)."""
    part = report.summary[keys.SUMMARY_KEY]
    rows: list[tuple[str, object]] = []
    flooded = 0
    new_buildings = 0
    for p in part[keys.PROPERTIES]:
        shares = [v for v in p[keys.BUILT_UP_SHARE] if v is not None]
        period = f"{p[keys.MONTHS][0]}..{p[keys.MONTHS][-1]}"
        label = p[keys.LABEL]
        rows.append(
            (f"{label}: built-up share", f"{shares[0]:.3f} -> {shares[-1]:.3f} ({period})" if shares else "n/a")
        )
        if p.get(keys.FLOODED_MONTHS):
            flooded += 1
            rows.append((f"{label}: flooded", ", ".join(p[keys.FLOODED_MONTHS])))
        if p.get(keys.NDVI_TREND):
            rows.append((f"{label}: NDVI trend", p[keys.NDVI_TREND]))
        new_buildings += sum((p.get(keys.NEW_BUILDINGS_BY_START_DATE) or {}).values())
    return {
        "rows": rows,
        "alert": alert_text(report),
        "metadata": {
            keys.META_PROPERTIES: len(part[keys.PROPERTIES]),
            keys.META_PROPERTIES_FLOODED: flooded,
            keys.META_NEW_BUILDINGS: new_buildings,
            keys.META_RADIUS_M: float(part[keys.RADIUS_M]),
        },
    }
