"""Disaster report of each tile-month: the flood's extent before, during and after, and what it touched.

Finds the largest flood the memory shows up to the month (new open water beyond the
baseline water of the months before, from ``spectral_indices``; the part the monthly
median hides recovered from the composite's observation spread in
``surface_reflectance``), maps it, counts the buildings and road length inside it from
the ``gis_layers`` of the event month, and follows the water month by month until the
report's month. Alerts when the area under water in the month exceeds the threshold.
Reads only through the memory view, so ``as_of`` in the run config reruns the report
on what the memory knew then.
"""

from typing import Any

from dagster import AssetDep, AssetExecutionContext, MaterializeResult, asset

from assets._report import REPORT_ASSET, ReportConfig, alert_text, run_report
from assets.partitions import YEAR_BEFORE
from memories.applications.disaster import DisasterAnalyzer
from memories.applications.disaster_report import (
    AFFECTED_BUILDINGS,
    AREA_IN_MONTH_KEY,
    SUMMARY_KEY,
    VISIBLE,
    area_label,
    road_length_label,
)
from memories.applications.report import Report
from resources import MemoryCatalogResource, StacCatalogResource, StorageResource

from .gis import gis_layers
from .imagery import spectral_indices, surface_reflectance
from .terrain import terrain


@asset(
    **REPORT_ASSET,
    # The baseline water comes from the months before: the year before the month is declared.
    # terrain is tile-partitioned (Dagster infers the tile-dimension mapping): HAND and flow paths.
    deps=[AssetDep(spectral_indices, partition_mapping=YEAR_BEFORE), surface_reflectance, gis_layers, terrain],
    description="Disaster report per tile-month: flood extent before, during and after the largest event up to the "
    "month (with its uncertainty and the part the monthly median hides), affected buildings and road length, "
    "recovery month by month; alert above the area threshold.",
)
def disaster_report(
    context: AssetExecutionContext,
    config: ReportConfig,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    return run_report(context, config, stac, storage, memory, DisasterAnalyzer, disaster_preview)


def disaster_preview(report: Report) -> dict[str, Any]:
    """``rows``, ``alert`` and ``metadata`` of a disaster report for :func:`report_result`."""
    s = report.summary
    a = s[SUMMARY_KEY]
    event = a.get("event_month")
    quantities = report.quantities
    area, roads = area_label(a["hazard"]), road_length_label(a["hazard"])
    rows: list[tuple[str, object]] = [("event month", event or f"no {a['hazard']} up to {report.month}")]
    if event:
        rows += [
            (area, quantities[area]),
            (VISIBLE, quantities[VISIBLE]),
            (AFFECTED_BUILDINGS, quantities[AFFECTED_BUILDINGS]),
            (roads, quantities[roads]),
            (
                "still under water" if a["hazard"] == "flood" else "still burned",
                f"{s[AREA_IN_MONTH_KEY]:.2f} ha ({report.month})",
            ),
        ]
    return {
        "rows": rows,
        "alert": alert_text(report),
        "metadata": {
            "event_month": event or "",
            "flooded_area_ha": float(a["during"]["area_ha"]) if event else 0.0,
            "flooded_area_uncertainty_ha": float(a["during"]["area_uncertainty_ha"]) if event else 0.0,
            "affected_buildings": int(a["buildings"]["count"]),
            "flooded_road_km": float(a["roads"]["km"]),
            "area_in_month_ha": float(s[AREA_IN_MONTH_KEY]),
            **_terrain_metadata(a.get("terrain") or {}),
        },
    }


def _terrain_metadata(t: dict[str, Any]) -> dict[str, Any]:
    """HAND numbers of the flood (``memories.applications.terrain_exposure.flood_terrain``) for the asset."""
    if not t or "missing" in t:
        return {}
    low = t["low_ground_share"]
    return {
        "flood_median_hand_m": t["hand_median_m"]["footprint"] if t["hand_median_m"]["footprint"] is not None else 0.0,
        "flood_low_ground_share": low["footprint"] if low["footprint"] is not None else 0.0,
        "tile_low_ground_share": low["tile"] if low["tile"] is not None else 0.0,
    }
