"""The historical report: one function per section of a
:class:`~memories.applications.historical_analysis.HistoricalAnalysis` (the state at the reconstructed
date, each source's uncertainty, the historical map against the memory, what changed since), its figures
and summary.

Everything here reads the analysis only. The quantity labels the asset preview looks numbers up by are
the constants below (``BUILT_UP_GAINED``, ``CHANGED_AREA``, ...), as is the summary's entry (``SUMMARY_KEY``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from memories.applications.common import pixel_ha
from memories.applications.historical_analysis import REPORT_KIND, HistoricalAnalysis, HistoricalState
from memories.applications.historical_figures import areas_figure, changes_webmap, maps_figure, timeline_figure
from memories.applications.maps import crs_name
from memories.applications.report import Report, quantity
from memories.classes import CLASS_BY_CODE, CLASS_BY_NAME, LAND_COVER_CLASSES

__all__ = [
    "AGREEMENT",
    "BUILT_UP_GAINED",
    "CHANGED_AREA",
    "GEOREFERENCING_RMSE",
    "SUMMARY_KEY",
    "VALIDATION_ACCURACY",
    "build_report",
]

BUILT_UP = CLASS_BY_NAME["built-up"].code
SUMMARY_KEY = "historical"
"""The summary's entry holding the reconstruction's numbers."""
BUILT_UP_GAINED = "built-up gained"
BUILT_UP_LOST = "built-up lost"
CHANGED_AREA = "changed area"
VALIDATION_ACCURACY = "land-cover validation accuracy"
AGREEMENT = "agreement"
"""The historical map's agreement with the earliest land cover (%)."""
GEOREFERENCING_RMSE = "georeferencing RMSE"
"""The historical map's georeferencing RMSE (m), a label of ``HistoricalMap.uncertainty``."""


@dataclass(frozen=True)
class Changes:
    """What changed between the date and the report month (areas in ha)."""

    changed: np.ndarray
    """Bool (y, x): labelled at both dates with another class."""
    changed_ha: float
    built_gain_ha: float
    built_loss_ha: float
    transitions: list[dict[str, Any]]
    """``from``, ``to`` class names and ``area_ha``, largest first."""
    areas: dict[str, list[Any]]
    """``class``, ``at_date_ha``, ``at_month_ha``, ``historical_map_ha`` per class (the class-area figure)."""


def build_report(a: HistoricalAnalysis) -> Report:
    """The historical report of ``a.tile`` for ``a.month`` from its analysis."""
    ch = changes(a)
    figures, captions, figure_data, webmap = report_figures(a, ch)
    sections = [state_section(a), uncertainty_section(a)]
    if a.hist and a.agreement:
        sections.append(map_section(a))
    if a.hist and a.hist.residuals:
        sections.append(residuals_section(a))
    sections.append(changes_section(a, ch))
    sources = {**a.then.sources, **a.now.sources}
    if a.hist:
        sources["historical map"] = a.hist.source
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": a.as_of,
        "crs": a.then.grid.crs,
        "sections": sections,
        "figure_data": figure_data,
        "sources": sources,
        SUMMARY_KEY: summary_numbers(a, ch),
    }
    return Report(
        kind=REPORT_KIND,
        tile=a.tile,
        month=a.month,
        title=f"Historical reconstruction of {a.tile}: {a.date} and {a.month}",
        summary=summary,
        figures=figures,
        captions=captions,
        headline=["maps", "class_areas"],
        webmap=webmap,
    )


def changes(a: HistoricalAnalysis) -> Changes:
    """The changed pixels, built-up gained and lost, the transitions and the class areas at both dates."""
    px_ha = pixel_ha(a.then.grid)
    lc_a, lc_b = a.then.land_cover, a.now.land_cover
    changed = (lc_a > 0) & (lc_b > 0) & (lc_a != lc_b)
    areas: dict[str, list[Any]] = {"class": [], "at_date_ha": [], "at_month_ha": [], "historical_map_ha": []}
    for c in LAND_COVER_CLASSES:
        areas["class"].append(c.name)
        areas["at_date_ha"].append(a.then.class_area_ha[c.name]["value"])
        areas["at_month_ha"].append(a.now.class_area_ha[c.name]["value"])
        areas["historical_map_ha"].append(float((a.hist.classes == c.code).sum() * px_ha) if a.hist else None)
    return Changes(
        changed=changed,
        changed_ha=float(changed.sum() * px_ha),
        built_gain_ha=float(((lc_b == BUILT_UP) & (lc_a != BUILT_UP) & (lc_a > 0)).sum() * px_ha),
        built_loss_ha=float(((lc_a == BUILT_UP) & (lc_b != BUILT_UP) & (lc_b > 0)).sum() * px_ha),
        transitions=transitions(lc_a, lc_b, changed, px_ha),
        areas=areas,
    )


def report_figures(a: HistoricalAnalysis, ch: Changes) -> tuple[dict[str, bytes], dict[str, str], dict[str, Any], Any]:
    """(figures, captions, figure data, interactive map) of the report."""
    base, date, month = a.basemap, a.date, a.month
    hist = a.hist.classes if a.hist else None
    figures, figure_data = {}, {}
    figures["maps"], figure_data["maps"] = maps_figure(
        base, a.then.land_cover, hist, a.now.land_cover, ch.changed, date, month
    )
    webmap = changes_webmap(base, a.then.land_cover, hist, ch.changed, a.now.land_cover, date, month)
    figures["class_areas"] = areas_figure(ch.areas, date, month)
    figure_data["class_areas"] = ch.areas
    figures["timeline"] = timeline_figure(a.timeline, date)
    figure_data["timeline"] = a.timeline
    captions = {
        "maps": (
            f"Left: land cover the memory holds for {date} (from {a.then.land_cover_month}). Middle: the "
            "georeferenced historical map (the composite shows through outside the sheet). Right: pixels whose "
            f"class changed between {date} and {month}, coloured by their class in {month}. All over the "
            f"{base.label}; axes: longitude and latitude (WGS 84), map grid {crs_name(a.then.grid)}."
        ),
        "class_areas": f"Area of each land-cover class (ha) at {date}, in {month} and on the historical map.",
        "timeline": f"Area of each land-cover class (ha) in every month the memory holds up to {month}.",
    }
    return figures, captions, figure_data, webmap


def state_section(a: HistoricalAnalysis) -> dict[str, Any]:
    """The state at the date: class areas, GIS counts and lengths, mean indices."""
    then, date = a.then, a.date
    means = then.indices.means if then.indices else {}
    return {
        "title": f"State at {date}",
        "text": f"Rebuilt from the memory's valid time: land cover of {then.land_cover_month}, GIS layers "
        f"of {then.gis.month} filtered to features started on or before {date}, spectral indices "
        f"of {then.indices.month if then.indices else 'n/a'}.",
        "quantities": {
            **{f"{name} area": q for name, q in then.class_area_ha.items()},
            "buildings": quantity(
                then.gis.buildings, "count", period=date, digits=0, note="GIS, date filter on start_date"
            ),
            "building footprint": quantity(then.gis.building_area_ha, "ha", period=date),
            "road length": quantity(then.gis.road_km, "km", period=date),
            **{f"mean {k.upper()}": v for k, v in means.items()},
        },
        "figures": ["maps"],
    }


def uncertainty_section(a: HistoricalAnalysis) -> dict[str, Any]:
    """Each source's record and uncertainty."""
    then = a.then
    lcu = then.land_cover_uncertainty
    return {
        "title": "Uncertainty of each source",
        "table": {"columns": ["source", "record", "uncertainty"], "rows": uncertainty_rows(then, a)},
        "quantities": {
            VALIDATION_ACCURACY: quantity(lcu.model.val_accuracy, "1", note=lcu.model.source or "", digits=4),
            "land-cover mean MC-dropout confidence": quantity(
                lcu.mean_confidence, "1", digits=4, period=then.land_cover_month
            ),
            "land-cover month gap": quantity(then.land_cover_gap_months, "months", digits=0),
            "GIS month gap": quantity(then.gis.gap_months, "months", digits=0),
            **(a.hist.uncertainty if a.hist else {}),
        },
    }


def map_section(a: HistoricalAnalysis) -> dict[str, Any]:
    """The historical map against the memory's earliest land cover, class by class."""
    assert a.hist is not None and a.agreement is not None
    ag, first = a.agreement, a.lc_months[0]
    return {
        "title": "Historical map against the memory",
        "text": f"The historical map compared with the memory's land cover of {first}, the earliest "
        f"month it holds, over the {ag.compared_ha:.1f} ha both label. Away from edges: pixels "
        f"more than {ag.edge_px} px (the LOO RMSE, rounded up) from a class edge of the map.",
        "quantities": {
            AGREEMENT: quantity(ag.overall * 100 if ag.overall is not None else None, "%", period=first, digits=2),
            "agreement away from class edges": quantity(
                ag.overall_away_from_edges * 100 if ag.overall_away_from_edges is not None else None,
                "%",
                period=first,
                digits=2,
            ),
            "mapped share of the tile": quantity(a.hist.mapped_fraction * 100, "%", digits=1),
        },
        "table": {
            "columns": ["class (map)", "map area ha", "agreement %"],
            "rows": [
                [name, v.map_area_ha, None if v.agreement is None else v.agreement * 100]
                for name, v in ag.per_class.items()
            ],
        },
    }


def residuals_section(a: HistoricalAnalysis) -> dict[str, Any]:
    """The historical map's per-GCP georeferencing residuals."""
    assert a.hist is not None
    cols = ["id", "dx", "dy", "residual_m", "loo_residual_m"]
    return {
        "title": "Georeferencing residuals of the historical map",
        "text": "Per ground control point: fitted minus surveyed map position (dx, dy, m), its length, and "
        "the leave-one-out residual (the GCP predicted by a fit without it), metres.",
        "table": {
            "columns": ["GCP", "dx m", "dy m", "residual m", "LOO residual m"],
            "rows": [[r.get(c) for c in cols] for r in a.hist.residuals],
        },
    }


def changes_section(a: HistoricalAnalysis, ch: Changes) -> dict[str, Any]:
    """What changed from the date to the month: areas, built-up, GIS additions, class table, transitions."""
    date, month = a.date, a.month
    period = f"{date}..{month}"
    rows = [
        [name, at_date, at_month, at_month - at_date, hm]
        for name, at_date, at_month, hm in zip(
            ch.areas["class"],
            ch.areas["at_date_ha"],
            ch.areas["at_month_ha"],
            ch.areas["historical_map_ha"],
            strict=True,
        )
    ]
    return {
        "title": f"What changed from {date} to {month}",
        "quantities": {
            CHANGED_AREA: quantity(ch.changed_ha, "ha", period=period),
            BUILT_UP_GAINED: quantity(ch.built_gain_ha, "ha", period=period),
            BUILT_UP_LOST: quantity(ch.built_loss_ha, "ha", period=period),
            "buildings added (GIS)": quantity(
                a.now.gis.buildings - a.then.gis.buildings, "count", digits=0, period=period
            ),
            "roads added (GIS)": quantity(a.now.gis.road_km - a.then.gis.road_km, "km", period=period),
        },
        "table": {
            "columns": ["class", f"{date} ha", f"{month} ha", "change ha", "historical map ha"],
            "rows": rows,
        },
        "bullets": [f"{t['from']} → {t['to']}: {t['area_ha']:.2f} ha" for t in ch.transitions[:8]],
        "figures": ["class_areas", "timeline"],
    }


def summary_numbers(a: HistoricalAnalysis, ch: Changes) -> dict[str, Any]:
    """The summary's ``historical`` entry: the reconstruction's numbers."""
    then, now, hist = a.then, a.now, a.hist
    return {
        "date": then.date,
        "land_cover_month": then.land_cover_month,
        "land_cover_gap_months": then.land_cover_gap_months,
        "land_cover_uncertainty": then.land_cover_uncertainty.to_json(),
        "class_area_ha": {k: q["value"] for k, q in then.class_area_ha.items()},
        "class_area_ha_month": {k: q["value"] for k, q in now.class_area_ha.items()},
        "built_up_gained_ha": ch.built_gain_ha,
        "built_up_lost_ha": ch.built_loss_ha,
        "changed_ha": ch.changed_ha,
        "transitions": ch.transitions,
        "gis": asdict(then.gis),
        "gis_month": asdict(now.gis),
        "historical_map": None
        if hist is None
        else {
            "georeference": hist.georeference,
            "mapped_fraction": hist.mapped_fraction,
            "agreement": a.agreement.to_json() if a.agreement else None,
            "residuals": hist.residuals,
        },
    }


def transitions(a: np.ndarray, b: np.ndarray, changed: np.ndarray, px_ha: float) -> list[dict[str, Any]]:
    """Class transitions of the changed pixels (``from``, ``to``, ``area_ha``), largest first."""
    pairs = a[changed].astype(np.int32) * 256 + b[changed].astype(np.int32)
    codes, counts = np.unique(pairs, return_counts=True)
    rows = [
        {
            "from": CLASS_BY_CODE[int(k) // 256].name if int(k) // 256 in CLASS_BY_CODE else str(int(k) // 256),
            "to": CLASS_BY_CODE[int(k) % 256].name if int(k) % 256 in CLASS_BY_CODE else str(int(k) % 256),
            "area_ha": float(n * px_ha),
        }
        for k, n in zip(codes, counts, strict=True)
    ]
    return sorted(rows, key=lambda r: -r["area_ha"])


def uncertainty_rows(then: HistoricalState, a: HistoricalAnalysis) -> list[list[Any]]:
    """The rows of the uncertainty table: land cover, GIS layers, spectral indices, historical map."""
    lcu = then.land_cover_uncertainty
    acc, m = lcu.model.val_accuracy, lcu.model
    lc_text = (
        f"{m.model_id}: validation accuracy {acc * 100:.2f} % ({m.source})"
        if acc is not None
        else f"{m.model_id}: accuracy unknown ({m.source})"
    )
    if lcu.mean_confidence is not None:
        lc_text += f"; mean MC-dropout confidence {lcu.mean_confidence:.3f}"
    if then.land_cover_gap_months:
        lc_text += f"; {then.land_cover_gap_months} month(s) from the date"
    gis = then.gis
    gis_text = f"{gis.date_filter} ({sum(gis.left_out.values())} later features left out)"
    if gis.gap_months:
        gis_text += f"; layers of {gis.month}, {gis.gap_months} month(s) from the date"
    rows = [["land cover", then.land_cover_month, lc_text], ["GIS layers", gis.month, gis_text]]
    idx = then.indices
    if idx:
        rows.append(["spectral indices", idx.month, f"{idx.gap_months} month(s) from the date; tile mean ± std"])
    if a.hist:
        g, res = a.hist.georeference, a.hist.grid.resolution
        rows.append(
            [
                "historical map",
                f"{g.get('method')} order {g.get('order')}, {g.get('gcps')} GCPs",
                f"positional: RMSE {g['rmse_m']:.2f} m ({g['rmse_m'] / res:.2f} px), LOO RMSE "
                f"{g.get('loo_rmse_m', float('nan')):.2f} m ({g.get('loo_rmse_m', float('nan')) / res:.2f} px)",
            ]
        )
    return rows
