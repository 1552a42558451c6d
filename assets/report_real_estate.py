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
    s = report.summary
    rows: list[tuple[str, object]] = []
    flooded = 0
    new_buildings = 0
    for p in s["real_estate"]["properties"]:
        shares = [v for v in p["built_up_share"] if v is not None]
        period = f"{p['months'][0]}..{p['months'][-1]}"
        rows.append(
            (f"{p['label']}: built-up share", f"{shares[0]:.3f} -> {shares[-1]:.3f} ({period})" if shares else "n/a")
        )
        if p.get("flooded_months"):
            flooded += 1
            rows.append((f"{p['label']}: flooded", ", ".join(p["flooded_months"])))
        if p.get("ndvi_trend"):
            rows.append((f"{p['label']}: NDVI trend", p["ndvi_trend"]))
        new_buildings += sum((p.get("new_buildings_by_start_date") or {}).values())
    return {
        "rows": rows,
        "alert": alert_text(report),
        "metadata": {
            "properties": len(s["real_estate"]["properties"]),
            "properties_flooded": flooded,
            "new_buildings_in_radii": new_buildings,
            "radius_m": float(s["real_estate"]["radius_m"]),
        },
    }
