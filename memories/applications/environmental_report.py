"""The environmental report: sections, figures and ``summary.json`` of an :class:`EnvironmentalAnalysis`.

:func:`build_report` turns the numbers and maps of one tile-month
(:meth:`EnvironmentalMonitor.analyze <memories.applications.environmental.EnvironmentalMonitor.analyze>`)
into a :class:`~memories.applications.report.Report` of kind :data:`REPORT_KIND`, rendered
with ``templates/environmental.html.j2``: every number a quantity with its unit, period and
uncertainty, every figure with a caption and the data it plots. One function per section;
each takes the analysis (which carries the thresholds it was run with) and reads nothing else.

The names of the numbers in ``summary.json`` (:data:`FOREST_LOSS`, ...) and in the asset's metadata
(:data:`FOREST_LOSS_HA`, ...) are the constants below, so a preview looks them up by key, not by label.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from memories.applications.environmental_analysis import EnvironmentalAnalysis
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
from memories.applications.maps import class_overlay, crs_name
from memories.applications.report import Report, km_extent, quantity
from memories.applications.water import WATER_NDWI_MIN
from memories.applications.webmap import WebMap, add_layers
from memories.months import month_index

__all__ = [
    "BAND_IMPORTANCE",
    "FOREST_LOSS",
    "FOREST_LOSS_HA",
    "MODEL_ID",
    "NDVI_MEAN",
    "REFERENCE_MONTH",
    "REPORT_KIND",
    "TRENDS",
    "VEGETATION_GAIN",
    "VEGETATION_GAIN_HA",
    "WATER",
    "WATER_CHANGE_HA",
    "build_report",
    "captions",
    "figure_data",
    "land_cover_section",
    "model_section",
    "summary",
    "trend_section",
    "vegetation_section",
    "water_section",
]

REPORT_KIND = "environmental"
"""Kind of the reports :class:`~memories.applications.environmental.EnvironmentalMonitor` writes."""

# -- keys of summary.json -------------------------------------------------------------------------
FOREST_LOSS = "forest_loss"
"""``summary.json``: forest loss ``{area_ha, pixels, patches, edge_uncertainty_ha, unit}`` (ha)."""
VEGETATION_GAIN = "vegetation_gain"
"""``summary.json``: vegetation gain, as :data:`FOREST_LOSS`."""
WATER = "water"
"""``summary.json``: open water now and its change (``now_ha``, ``change_vs_reference_ha``, ... in ha)."""
TRENDS = "trends"
"""``summary.json``: index -> ``{slope_per_year, standard_error, ...}`` (index units per year)."""
NDVI_MEAN = "ndvi_mean"
"""``summary.json``: mean NDVI of the month's clear pixels (dimensionless)."""
REFERENCE_MONTH = "reference_month"
"""``summary.json``: the month compared with (``YYYY-MM``), None when none."""
MODEL_ID = "model_id"
"""``summary.json``: id of the land-cover model version that classified the month."""
BAND_IMPORTANCE = "band_importance"
"""``summary.json``: band -> permutation importance of that model (0-1), None when unknown."""

# -- keys of the asset's metadata -----------------------------------------------------------------
FOREST_LOSS_HA = "forest_loss_ha"
"""Asset metadata: forest loss since the reference month, ha."""
VEGETATION_GAIN_HA = "vegetation_gain_ha"
"""Asset metadata: vegetation gain since the reference month, ha."""
WATER_CHANGE_HA = "water_change_ha"
"""Asset metadata: open-water change since the reference month, ha."""

TEMPLATE = "environmental.html.j2"


def build_report(a: EnvironmentalAnalysis) -> Report:
    """The report of an analysis: sections of quantities with units, figures, captions and ``summary.json``."""
    return Report(
        kind=REPORT_KIND,
        tile=a.tile,
        month=a.month,
        title=f"Environmental report — tile {a.tile}, {a.month}",
        summary=summary(a),
        figures=figures(a),
        captions=captions(a),
        headline=["vegetation_loss", "ndvi_timeseries"],
        template=TEMPLATE,
        webmap=webmap(a),
    )


def _since(a: EnvironmentalAnalysis) -> str | None:
    return f"{a.reference_month}..{a.month}" if a.reference_month else None


def _period(a: EnvironmentalAnalysis) -> str:
    return f"{a.months[0]}..{a.month}"


def vegetation_section(a: EnvironmentalAnalysis) -> dict[str, Any]:
    """Forest loss, all vegetation loss, vegetation gain and forest gain since the reference month."""
    ref, month, th, since = a.reference_month, a.month, a.settings.thresholds, _since(a)
    same_season = ref is not None and 11 <= month_index(month, ref) <= 13
    season_note = (
        "same season a year earlier, so phenology cancels out"
        if same_season
        else "not the same season: cropland harvest and green-up count as loss and gain"
    )
    loss, veg, gain, fgain = a.forest_loss_area, a.vegetation_loss_area, a.vegetation_gain_area, a.forest_gain_area

    def change(q: Any, note: str) -> dict[str, Any]:
        return quantity(q.area_ha, "ha", period=since, uncertainty=q.edge_uncertainty_ha, digits=2, note=note)

    return {
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
            "forest loss (deforestation)": change(
                loss, f"{loss.patches} patch(es)" + (f"; {a.land_cover_note}" if a.land_cover_note else "")
            ),
            "all vegetation loss": change(veg, "includes harvested cropland and new built-up land"),
            "vegetation gain": change(
                gain, "land not vegetated in the reference month (nor water then), vegetated now"
            ),
            "forest gain (regrowth)": change(fgain, f"vegetation gain on land classified forest in {month}"),
        },
        "figures": ["vegetation_loss"],
    }


def water_section(a: EnvironmentalAnalysis) -> dict[str, Any]:
    """Open water now, in the reference and the first month, and its changes."""
    w, month, ref = a.water, a.month, a.reference_month
    water_q = {
        f"open water, {month}": quantity(
            w.now_ha,
            "ha",
            period=month,
            uncertainty=w.edge_now_px * a.pixel_area_ha,
            digits=2,
            note=f"NDWI > {WATER_NDWI_MIN:g} over pixels with a clear observation",
        ),
    }
    if w.reference_ha is not None:
        assert w.gained_ha is not None and w.lost_ha is not None and w.observed_both_fraction is not None
        water_q[f"open water, {ref} (reference)"] = quantity(w.reference_ha, "ha", period=ref, digits=2)
        water_q["change vs reference month"] = quantity(
            w.change_vs_reference_ha,
            "ha",
            period=_since(a),
            uncertainty=w.change_uncertainty_ha,
            digits=2,
            note=f"+{w.gained_ha:.2f} ha new, -{w.lost_ha:.2f} ha gone; pixels observed "
            f"in both months ({100 * w.observed_both_fraction:.1f} %)",
        )
    if w.first_ha is not None:
        first = a.first_month
        water_q[f"open water, {first} (first month)"] = quantity(w.first_ha, "ha", period=first, digits=2)
        water_q["change vs first month"] = quantity(
            w.change_vs_first_ha,
            "ha",
            period=f"{first}..{month}",
            uncertainty=w.change_vs_first_uncertainty_ha,
            digits=2,
        )
    return {
        "title": "Open-water extent",
        "text": "Open water is NDWI (green − NIR)/(green + NIR) above 0 in the monthly composite; "
        "± is one pixel along the edges of the water (or of its change).",
        "quantities": water_q,
        "figures": ["water_extent"],
    }


def trend_section(a: EnvironmentalAnalysis) -> dict[str, Any]:
    """Each index's trend per year and its anomalies: a quantity per index and one table."""
    month, period = a.month, _period(a)
    rows = []
    trend_q = {}
    for name, tr in a.trends.items():
        an = a.anomalies[name]
        this = an.this_month
        rows.append(
            [
                name.upper(),
                a.series.means[name][-1],
                tr.slope_per_year,
                tr.standard_error,
                tr.n_months,
                "yes" if tr.seasonal_terms else "no",
                ("yes" if this.anomaly else "no") if this else (an.note or "n/a"),
                ", ".join(an.flagged) or "none",
            ]
        )
        trend_q[f"{name.upper()} trend"] = quantity(
            tr.slope_per_year,
            "per year",
            period=period,
            uncertainty=tr.standard_error,
            digits=4,
            note="OLS slope of the monthly tile mean ± standard error"
            + ("; annual sine/cosine fitted" if tr.seasonal_terms else "; includes the seasonal cycle"),
        )
    columns = ["index", f"tile mean {month}", "slope / year", "± SE / year", "months", "seasonal terms"]
    return {
        "title": "Index trends and anomalies",
        "text": (
            "Monthly tile means of each index (months with ≥ 5 % clear pixels). A month is an anomaly when its mean "
            f"falls outside the {round(100 * (1 - a.settings.anomaly_alpha))} % one-step prediction interval of an "
            "ARIMA model with annual harmonics fitted to the series up to this month" + _anomaly_window_text(a) + "."
        ),
        "quantities": trend_q,
        "table": {
            "columns": [*columns, f"anomaly in {month}", "anomalous months"],
            "digits": [0, 3, 4, 4],
            "rows": rows,
        },
        "figures": ["index_trends"],
    }


def _anomaly_window_text(a: EnvironmentalAnalysis) -> str:
    """How much of the series the anomaly model saw: nothing to add when it saw all of it."""
    windows = {(an.window_months, an.window_from) for an in a.anomalies.values() if an.window_months is not None}
    if not windows:
        return ""
    n, first = next(iter(windows))  # one monitor, one window for every index
    return (
        f", over its last {n} months only ({first}..{a.month}, the anomaly window; the trends use every month "
        f"since {a.first_month})"
    )


def land_cover_section(a: EnvironmentalAnalysis) -> dict[str, Any]:
    """Mean NDVI and clear-sky coverage of the month, and the table of its land-cover classes."""
    month = a.month
    return {
        "title": f"NDVI by land-cover class, {month}",
        "quantities": {
            f"mean NDVI, {month}": quantity(a.ndvi_mean, "dimensionless", period=month, note="clear pixels"),
            "clear-sky coverage": quantity(
                100 * a.valid_fraction,
                "%",
                period=month,
                digits=1,
                note="pixels with at least one clear observation this month",
            ),
        },
        "table": {
            "columns": ["class", "share %", "area ha", "mean NDVI"],
            "digits": [0, 1, 1, 3],
            "rows": [[c.name, 100 * c.share, c.area_ha, c.ndvi_mean] for c in a.classes],
        },
        "figures": ["ndvi_timeseries"],
    }


def model_section(a: EnvironmentalAnalysis) -> dict[str, Any]:
    """The land-cover model version that classified the month, its accuracy and band importance."""
    model, acc = a.model, a.model.val_accuracy
    return {
        "title": "What the land-cover model looks at",
        "quantities": {
            # an id, not a number: the quantity shows it as given
            "land-cover model": quantity(cast(Any, model.id), "id", note=model.note),
            "validation accuracy": quantity(None if acc is None else 100 * acc, "%", digits=1),
        },
        "band_importance": model.band_importance,
        "band_importance_info": model.band_importance_info,
        "figures": ["band_importance"] if model.band_importance else [],
    }


def figures(a: EnvironmentalAnalysis) -> dict[str, bytes]:
    """Figure name -> PNG bytes."""
    out = {
        "vegetation_loss": plot_vegetation_change(a),
        "water_extent": plot_water_change(a),
        "index_trends": plot_index_trends(a),
        "ndvi_timeseries": plot_ndvi_by_class(a),
    }
    if a.model.band_importance:
        from memories.ai.explain import plot_band_importance

        out["band_importance"] = plot_band_importance(a.model.band_importance, title=f"What {a.model.id} looks at")
    return out


def captions(a: EnvironmentalAnalysis) -> dict[str, str]:
    """Figure name -> caption."""
    month, ref, base, period = a.month, a.reference_month, a.basemap, _period(a)
    return {
        "vegetation_loss": f"Left: NDVI of {month}. Right: change since {ref or '—'}: red forest loss, orange other "
        f"vegetation loss (harvest, building), green vegetation gain. Both over the {base.label}; axes: longitude "
        f"and latitude (WGS 84), map grid {crs_name(a.grid)}.",
        "water_extent": f"Left: NDWI of {month}. Right: open water (NDWI > 0) now, blue; new since {ref or '—'}, "
        f"dark blue; gone, orange. Both over the {base.label}.",
        "index_trends": f"Monthly tile means of {', '.join(x.upper() for x in a.trends)}, {period}, with the "
        "fitted trend (dashed) and anomalous months (red circles).",
        "ndvi_timeseries": f"Monthly median NDVI per land-cover class (each month over its own land cover; the "
        f"classes of {month}), {period}; shaded band: interquartile range of all pixels.",
        "band_importance": f"Permutation importance of each band of {a.model.id}: drop in pixel accuracy (0–1) "
        "when the band is shuffled; most important on top.",
    }


def figure_data(a: EnvironmentalAnalysis) -> dict[str, Any]:
    """Figure name -> the numbers it plots (``summary.json``'s ``figure_data``)."""
    extent = list(km_extent(a.grid))
    out: dict[str, Any] = {
        "ndvi_timeseries": {
            "months": a.months,
            "unit": "NDVI (dimensionless)",
            "median": a.series.class_medians,
            "p25": a.series.p25,
            "p75": a.series.p75,
        },
        "index_trends": {
            "months": a.months,
            "mean": a.series.means,
            "fitted": {k: v.fitted for k, v in a.trends.items()},
            "anomalous_months": {k: v.flagged for k, v in a.anomalies.items()},
        },
        "vegetation_loss": {
            "unit": "pixels",
            "pixel_area_ha": a.pixel_area_ha,
            "forest_loss": a.forest_loss_area.pixels,
            "other_vegetation_loss": int((a.vegetation_loss & ~a.forest_loss).sum()),
            "vegetation_gain": a.vegetation_gain_area.pixels,
            "extent_km": extent,
        },
        "water_extent": {
            "unit": "pixels",
            "pixel_area_ha": a.pixel_area_ha,
            "open_water": int(a.water_now.sum()),
            "gained": int(a.water_gained.sum()),
            "lost": int(a.water_lost.sum()),
            "extent_km": list(km_extent(a.grid)),
        },
    }
    if a.model.band_importance:
        out["band_importance"] = dict(a.model.band_importance)
    return out


def summary(a: EnvironmentalAnalysis) -> dict[str, Any]:
    """``summary.json``: every number of the report, its sections, figure data, sources and thresholds."""
    st, grid, model = a.settings, a.grid, a.model.as_dict()
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": a.as_of,
        "crs": grid.crs,
        "grid": grid.to_dict(),
        "alerts": a.alerts,
        "alert": bool(a.alerts),
        "sections": [vegetation_section(a), water_section(a), trend_section(a), land_cover_section(a)]
        + [model_section(a)],
        "figure_data": figure_data(a),
        "sources": a.sources,
        REFERENCE_MONTH: a.reference_month,
        "first_month": a.first_month,
        "thresholds": {
            **vars(st.thresholds),
            "forest_loss_alert_ha": st.forest_loss_alert_ha,
            "water_change_alert_ha": st.water_change_alert_ha,
            "anomaly_alpha": st.anomaly_alpha,
        },
        "alert_threshold_ha": st.forest_loss_alert_ha,
        NDVI_MEAN: a.ndvi_mean,
        "valid_fraction": a.valid_fraction,
        FOREST_LOSS: a.forest_loss_area.as_dict(),
        "vegetation_loss": a.vegetation_loss_area.as_dict(),
        VEGETATION_GAIN: a.vegetation_gain_area.as_dict(),
        "forest_gain": a.forest_gain_area.as_dict(),
        WATER: a.water.as_dict(),
        TRENDS: {k: {kk: vv for kk, vv in v.as_dict().items() if kk != "fitted"} for k, v in a.trends.items()},
        "anomalies": {k: v.as_dict(series=False) for k, v in a.anomalies.items()},
        "land_cover": [c.as_dict() for c in a.classes],
        "model": {k: v for k, v in model.items() if k != "band_importance"},
        MODEL_ID: a.model.id,
        BAND_IMPORTANCE: a.model.band_importance,
    }


def webmap(a: EnvironmentalAnalysis) -> WebMap:
    """The page's interactive map: the composite, the vegetation and water change, the month's buildings and
    roads when the memory held GIS layers of it."""
    web = WebMap(a.grid)
    web.add_raster("composite", a.basemap.label, a.basemap.rgba)
    web.add_raster(
        "vegetation_change",
        f"vegetation change since {a.reference_month or '—'}",
        class_overlay(vegetation_classes(a), VEGETATION_COLOURS),
    )
    web.add_raster(
        "water", f"open water {a.month} and its change", class_overlay(water_classes(a), WATER_COLOURS), visible=False
    )
    if a.gis is not None:
        add_layers(web, a.gis.month, a.gis.layers, tuple(a.gis.layers))
    return web
