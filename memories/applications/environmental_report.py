"""The environmental report: sections, figures and ``summary.json`` of an :class:`EnvironmentalAnalysis`.

:func:`build_report` turns the numbers and maps of one tile-month
(:meth:`EnvironmentalMonitor.analyze <memories.applications.environmental.EnvironmentalMonitor.analyze>`)
into a :class:`~memories.applications.report.Report` of kind :data:`REPORT_KIND`, rendered
with ``templates/environmental.html.j2``: every number a quantity with its unit, period and
uncertainty, every figure with a caption and the data it plots.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memories.applications.environmental_figures import (
    VEGETATION_COLOURS,
    WATER_COLOURS,
    plot_index_trends,
    plot_ndvi_by_class,
    plot_vegetation_change,
    plot_water_change,
    vegetation_classes,
    water_classes,
)
from memories.applications.maps import Basemap, basemap, class_overlay, crs_name
from memories.applications.report import Report, km_extent, quantity
from memories.applications.water import WATER_NDWI_MIN
from memories.applications.webmap import WebMap, add_gis_layers
from memories.months import month_index

if TYPE_CHECKING:
    from memories.applications.environmental import EnvironmentalAnalysis, EnvironmentalMonitor

__all__ = ["REPORT_KIND", "build_report"]

REPORT_KIND = "environmental"
"""Kind of the reports :class:`~memories.applications.environmental.EnvironmentalMonitor` writes."""


def build_report(a: EnvironmentalAnalysis, mon: EnvironmentalMonitor) -> Report:
    """The report of an analysis: sections of quantities with units, figures, captions and ``summary.json``.

    ``mon`` gives the thresholds, the anomaly ``alpha`` and the view's ``as_of`` the report records.
    """
    n, ref, month, grid = a.numbers, a.reference_month, a.month, a.grid
    since = f"{ref}..{month}" if ref else None
    model = n["model"]
    th = mon.thresholds
    same_season = ref is not None and 11 <= month_index(month, ref) <= 13
    season_note = (
        "same season a year earlier, so phenology cancels out"
        if same_season
        else "not the same season: cropland harvest and green-up count as loss and gain"
    )
    loss, veg, gain, fgain, water = (
        n["forest_loss"],
        n["vegetation_loss"],
        n["vegetation_gain"],
        n["forest_gain"],
        n["water"],
    )
    veg_section = {
        "title": "Vegetation loss and gain",
        "text": (
            f"NDVI of {month} against the reference month {ref} ({season_note}). Loss: NDVI from ≥ {th.min_before} "
            f"to ≤ {th.max_after}, a drop of ≥ {th.drop}; gain: the reverse; patches under {th.min_patch_px} px "
            "are dropped. Forest loss is loss on land classified forest in the reference month; open water now "
            "is not counted as loss. ± is one pixel along every patch edge."
            if ref
            else f"No earlier month than {month} in memory: loss and gain need a reference month."
        ),
        "quantities": {
            "forest loss (deforestation)": quantity(
                loss["area_ha"],
                "ha",
                period=since,
                uncertainty=loss["edge_uncertainty_ha"],
                digits=2,
                note=f"{loss['patches']} patch(es)" + (f"; {n['land_cover_note']}" if n["land_cover_note"] else ""),
            ),
            "all vegetation loss": quantity(
                veg["area_ha"],
                "ha",
                period=since,
                uncertainty=veg["edge_uncertainty_ha"],
                digits=2,
                note="includes harvested cropland and new built-up land",
            ),
            "vegetation gain": quantity(
                gain["area_ha"],
                "ha",
                period=since,
                uncertainty=gain["edge_uncertainty_ha"],
                digits=2,
                note="land not vegetated in the reference month (nor water then), vegetated now",
            ),
            "forest gain (regrowth)": quantity(
                fgain["area_ha"],
                "ha",
                period=since,
                uncertainty=fgain["edge_uncertainty_ha"],
                digits=2,
                note=f"vegetation gain on land classified forest in {month}",
            ),
        },
        "figures": ["vegetation_loss"],
    }
    water_q = {
        f"open water, {month}": quantity(
            water["now_ha"],
            "ha",
            period=month,
            uncertainty=water["edge_now_px"] * n["pixel_area_ha"],
            digits=2,
            note=f"NDWI > {WATER_NDWI_MIN:g} over pixels with a clear observation",
        ),
    }
    if "reference_ha" in water:
        water_q[f"open water, {ref} (reference)"] = quantity(water["reference_ha"], "ha", period=ref, digits=2)
        water_q["change vs reference month"] = quantity(
            water["change_vs_reference_ha"],
            "ha",
            period=since,
            uncertainty=water["change_uncertainty_ha"],
            digits=2,
            note=f"+{water['gained_ha']:.2f} ha new, -{water['lost_ha']:.2f} ha gone; pixels observed "
            f"in both months ({100 * water['observed_both_fraction']:.1f} %)",
        )
    if "first_ha" in water:
        first = n["first_month"]
        water_q[f"open water, {first} (first month)"] = quantity(water["first_ha"], "ha", period=first, digits=2)
        water_q["change vs first month"] = quantity(
            water["change_vs_first_ha"],
            "ha",
            period=f"{first}..{month}",
            uncertainty=water["change_vs_first_uncertainty_ha"],
            digits=2,
        )
    water_section = {
        "title": "Open-water extent",
        "text": "Open water is NDWI (green − NIR)/(green + NIR) above 0 in the monthly composite; "
        "± is one pixel along the edges of the water (or of its change).",
        "quantities": water_q,
        "figures": ["water_extent"],
    }
    rows = []
    trend_q = {}
    period = f"{a.months[0]}..{month}"
    for name, tr in n["trends"].items():
        an = n["anomalies"][name]
        this = an.get("this_month")
        now_value = a.series[name][-1]
        rows.append(
            [
                name.upper(),
                now_value,
                tr["slope_per_year"],
                tr["standard_error"],
                tr["n_months"],
                "yes" if tr["seasonal_terms"] else "no",
                ("yes" if this["anomaly"] else "no") if this else (an.get("note") or "n/a"),
                ", ".join(an["flagged"]) or "none",
            ]
        )
        trend_q[f"{name.upper()} trend"] = quantity(
            tr["slope_per_year"],
            "per year",
            period=period,
            uncertainty=tr["standard_error"],
            digits=4,
            note="OLS slope of the monthly tile mean ± standard error"
            + ("; annual sine/cosine fitted" if tr["seasonal_terms"] else "; includes the seasonal cycle"),
        )
    trend_section = {
        "title": "Index trends and anomalies",
        "text": (
            "Monthly tile means of each index (months with ≥ 5 % clear pixels). A month is an anomaly when its mean "
            f"falls outside the {round(100 * (1 - mon.anomaly_alpha))} % one-step prediction interval of an ARIMA "
            "model with annual harmonics fitted to the series up to this month."
        ),
        "quantities": trend_q,
        "table": {
            "columns": [
                "index",
                f"tile mean {month}",
                "slope / year",
                "± SE / year",
                "months",
                "seasonal terms",
                f"anomaly in {month}",
                "anomalous months",
            ],
            "digits": [0, 3, 4, 4],
            "rows": rows,
        },
        "figures": ["index_trends"],
    }
    lc_section = {
        "title": f"NDVI by land-cover class, {month}",
        "quantities": {
            f"mean NDVI, {month}": quantity(n["ndvi_mean"], "dimensionless", period=month, note="clear pixels"),
            "clear-sky coverage": quantity(
                100 * n["valid_fraction"],
                "%",
                period=month,
                digits=1,
                note="pixels with at least one clear observation this month",
            ),
        },
        "table": {
            "columns": ["class", "share %", "area ha", "mean NDVI"],
            "digits": [0, 1, 1, 3],
            "rows": [[c["name"], 100 * c["share"], c["area_ha"], c["ndvi_mean"]] for c in n["land_cover"]],
        },
        "figures": ["ndvi_timeseries"],
    }
    acc = model["val_accuracy"]
    model_section: dict[str, Any] = {
        "title": "What the land-cover model looks at",
        "quantities": {
            "land-cover model": quantity(model["id"], "id", note=model.get("note")),
            "validation accuracy": quantity(None if acc is None else 100 * acc, "%", digits=1),
        },
        "band_importance": model["band_importance"],
        "band_importance_info": model["band_importance_info"],
        "figures": ["band_importance"] if model["band_importance"] else [],
    }
    sections = [veg_section, water_section, trend_section, lc_section, model_section]

    base = basemap(mon.view, a.tile, month, grid)
    figures = {
        "vegetation_loss": plot_vegetation_change(a, base),
        "water_extent": plot_water_change(a, base),
        "index_trends": plot_index_trends(a, mon.anomaly_alpha),
        "ndvi_timeseries": plot_ndvi_by_class(a),
    }
    if model["band_importance"]:
        from memories.ai.explain import plot_band_importance

        figures["band_importance"] = plot_band_importance(
            model["band_importance"], title=f"What {model['id']} looks at"
        )
    captions = {
        "vegetation_loss": f"Left: NDVI of {month}. Right: change since {ref or '—'}: red forest loss, orange other "
        f"vegetation loss (harvest, building), green vegetation gain. Both over the {base.label}; axes: longitude "
        f"and latitude (WGS 84), map grid {crs_name(grid)}.",
        "water_extent": f"Left: NDWI of {month}. Right: open water (NDWI > 0) now, blue; new since {ref or '—'}, "
        f"dark blue; gone, orange. Both over the {base.label}.",
        "index_trends": f"Monthly tile means of {', '.join(x.upper() for x in n['trends'])}, {period}, with the "
        "fitted trend (dashed) and anomalous months (red circles).",
        "ndvi_timeseries": f"Monthly median NDVI per land-cover class (classes of {month}), {period}; shaded band: "
        "interquartile range of all pixels.",
        "band_importance": f"Permutation importance of each band of {model['id']}: drop in pixel accuracy (0–1) "
        "when the band is shuffled; most important on top.",
    }
    figure_data = {
        "ndvi_timeseries": {
            "months": a.months,
            "unit": "NDVI (dimensionless)",
            "median": a.class_series,
            "p25": a.iqr[0],
            "p75": a.iqr[1],
        },
        "index_trends": {
            "months": a.months,
            "mean": a.series,
            "fitted": {k: v["fitted"] for k, v in n["trends"].items()},
            "anomalous_months": {k: v["flagged"] for k, v in n["anomalies"].items()},
        },
        "vegetation_loss": {
            "unit": "pixels",
            "pixel_area_ha": n["pixel_area_ha"],
            "forest_loss": n["forest_loss"]["pixels"],
            "other_vegetation_loss": int((a.vegetation_loss & ~a.forest_loss).sum()),
            "vegetation_gain": n["vegetation_gain"]["pixels"],
            "extent_km": list(km_extent(grid)),
        },
        "water_extent": {
            "unit": "pixels",
            "pixel_area_ha": n["pixel_area_ha"],
            "open_water": int(a.water_now.sum()),
            "gained": int(a.water_gained.sum()),
            "lost": int(a.water_lost.sum()),
            "extent_km": list(km_extent(grid)),
        },
    }
    if model["band_importance"]:
        figure_data["band_importance"] = dict(model["band_importance"])
    model_facts = {k: v for k, v in model.items() if k != "band_importance"}
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": mon.view.as_of.isoformat() if mon.view.as_of else None,
        "crs": grid.crs,
        "grid": grid.to_dict(),
        "alerts": a.alerts,
        "alert": bool(a.alerts),
        "sections": sections,
        "figure_data": figure_data,
        "sources": a.sources,
        "reference_month": ref,
        "first_month": n["first_month"],
        "thresholds": {
            **vars(th),
            "forest_loss_alert_ha": mon.alert_threshold_ha,
            "water_change_alert_ha": mon.water_alert_threshold_ha,
            "anomaly_alpha": mon.anomaly_alpha,
        },
        "alert_threshold_ha": mon.alert_threshold_ha,
        "ndvi_mean": n["ndvi_mean"],
        "valid_fraction": n["valid_fraction"],
        "forest_loss": loss,
        "vegetation_loss": veg,
        "vegetation_gain": gain,
        "forest_gain": fgain,
        "water": water,
        "trends": {k: {kk: vv for kk, vv in v.items() if kk != "fitted"} for k, v in n["trends"].items()},
        "anomalies": {
            k: {kk: vv for kk, vv in v.items() if kk not in ("predicted", "lower", "upper", "months")}
            for k, v in n["anomalies"].items()
        },
        "land_cover": n["land_cover"],
        "model": model_facts,
        "model_id": model["id"],
        "band_importance": model["band_importance"],
    }
    return Report(
        kind=REPORT_KIND,
        tile=a.tile,
        month=month,
        title=f"Environmental report — tile {a.tile}, {month}",
        summary=summary,
        figures=figures,
        captions=captions,
        headline=["vegetation_loss", "ndvi_timeseries"],
        template="environmental.html.j2",
        webmap=_webmap(a, base, mon.view),
    )


def _webmap(a: EnvironmentalAnalysis, base: Basemap, view: Any) -> WebMap:
    """The page's interactive map: the composite, the vegetation and water change, the month's buildings and
    roads when the memory holds GIS layers of it."""
    web = WebMap(a.grid)
    web.add_raster("composite", base.label, base.rgba)
    web.add_raster(
        "vegetation_change",
        f"vegetation change since {a.reference_month or '—'}",
        class_overlay(vegetation_classes(a), VEGETATION_COLOURS),
    )
    web.add_raster(
        "water", f"open water {a.month} and its change", class_overlay(water_classes(a), WATER_COLOURS), visible=False
    )
    add_gis_layers(web, view, a.tile, a.month)
    return web
