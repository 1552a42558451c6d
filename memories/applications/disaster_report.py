"""The disaster report: one function per section of a
:class:`~memories.applications.disaster_analysis.DisasterAnalysis`, its figures, alert and summary.

Everything here reads the analysis (and its thresholds) only. The quantity labels the asset preview looks
numbers up by are the constants and functions below (``AREA``, ``VISIBLE``, ...), as are the keys of the
summary's numbers (``SUMMARY_KEY``, ``AREA_IN_MONTH_KEY``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from memories.applications.common import span
from memories.applications.disaster_analysis import HAZARD_STATE, REPORT_KIND, DisasterAnalysis, During
from memories.applications.disaster_figures import (
    buildings_figure,
    event_webmap,
    maps_figure,
    no_event_webmap,
    recovery_figure,
    recovery_series,
)
from memories.applications.maps import STRETCH, crs_name
from memories.applications.report import Report, quantity
from memories.applications.terrain_exposure import flood_terrain_section

__all__ = [
    "AFFECTED_BUILDINGS",
    "AREA_IN_MONTH_KEY",
    "SUMMARY_KEY",
    "VISIBLE",
    "area_label",
    "build_report",
    "road_length_label",
]

SUMMARY_KEY = "disaster"
"""The summary's entry holding the analysis' numbers (``DisasterAnalysis.to_json``)."""
AREA_IN_MONTH_KEY = "area_in_month_ha"
"""The summary's number: area under the hazard in the report's month (ha)."""
VISIBLE = "visible in the monthly median"
PARTLY_VISIBLE = "partly visible (part of the month)"
AFFECTED_BUILDINGS = "affected buildings"
ROAD_SEGMENTS = "road segments touched"


def area_label(hazard: str) -> str:
    """The quantity label of the footprint's area: ``flooded area`` or ``burned area``."""
    return f"{HAZARD_STATE[hazard]} area"


def road_length_label(hazard: str) -> str:
    """The quantity label of the road length inside the footprint: ``road length flooded`` / ``... burned``."""
    return f"road length {HAZARD_STATE[hazard]}"


def baseline_label(hazard: str) -> str:
    """The quantity label of the baseline's area."""
    return "open water in the baseline" if hazard == "flood" else "burned ground in the baseline"


def build_report(a: DisasterAnalysis, month: str) -> Report:
    """The disaster report of ``a.tile`` for ``month`` from the analysis ``a`` (analyzed up to ``month``,
    with its map bases).

    Areas in ha, road lengths in km; the summary holds the analysis under ``disaster`` (without its masks
    and geometry) and ``area_in_month_ha``, the area under the hazard in ``month``.
    """
    figures: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    figure_data: dict[str, Any] = {}
    headline: list[str] = []
    if a.during is None:
        sections = [no_event_section(a, month)]
        webmap = no_event_webmap(a)
    else:
        sections = event_sections(a, a.during, month)
        figures = {
            "maps": maps_figure(a, month),
            "recovery": recovery_figure(a),
            "buildings_by_type": buildings_figure(a),
        }
        captions = figure_captions(a)
        figure_data = event_figure_data(a, a.during)
        headline = ["maps", "recovery"]
        webmap = event_webmap(a)
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": a.as_of,
        "crs": a.grid.crs,
        "alerts": alerts(a, month),
        "sections": sections,
        "figure_data": figure_data,
        "sources": a.sources,
        SUMMARY_KEY: a.to_json(),
        AREA_IN_MONTH_KEY: a.area_in(month),
    }
    title = f"{'Flood' if a.hazard == 'flood' else 'Burn'} analysis, tile {a.tile}, {month}"
    return Report(REPORT_KIND, a.tile, month, title, summary, figures, captions, headline, webmap=webmap)


def alerts(a: DisasterAnalysis, month: str) -> list[str]:
    """The alert when the area under the hazard in ``month`` exceeds ``alert_ha``."""
    now_ha, th = a.area_in(month), a.thresholds
    if now_ha <= th.alert_ha:
        return []
    state = "under water" if a.hazard == "flood" else "burned"
    return [f"{now_ha:.1f} ha {state} in {month} on tile {a.tile} (threshold {th.alert_ha} ha)"]


def no_event_section(a: DisasterAnalysis, month: str) -> dict[str, Any]:
    """The only section of a report without event: what was looked for, and the baseline."""
    return {
        "title": f"No {a.hazard} found",
        "text": (
            f"No month up to {month} shows a new {a.state} footprint of at least {a.thresholds.min_event_ha} ha "
            f"({a.index.upper()}, {len(a.months)} months read)."
        ),
        "quantities": {baseline_label(a.hazard): quantity(a.before.baseline_ha, "ha", period=span(a.baseline_months))},
    }


def event_sections(a: DisasterAnalysis, d: During, month: str) -> list[dict[str, Any]]:
    """The sections of a report with an event, in page order."""
    sections = [
        event_section(a, month),
        before_section(a),
        during_section(a, d),
        after_section(a),
        affected_section(a),
    ]
    if a.terrain is not None:  # numbers from memories.applications.terrain_exposure
        sections.append(flood_terrain_section(a.terrain, d.month))
    if d.partly_visible_ha > 0:
        sections.append(hidden_section(a, d))
    return sections


def event_section(a: DisasterAnalysis, month: str) -> dict[str, Any]:
    """The event month and the other candidate months."""
    hz = a.hazard
    others = ", ".join(f"{c.month} ({c.area_ha:.1f} ha)" for c in a.others) or "none"
    return {
        "title": "Event",
        "text": (
            f"The largest {hz} the memory shows up to {month} is in {a.event_month} "
            f"({'new open water beyond the baseline' if hz == 'flood' else 'NBR drop'}); "
            f"other months above {a.thresholds.min_event_ha} ha: {others}."
        ),
        "table": {
            "columns": ["month", f"new {a.state} area in the median (ha)"],
            "rows": [[c.month, c.area_ha] for c in a.candidates],
        },
    }


def before_section(a: DisasterAnalysis) -> dict[str, Any]:
    """The baseline months, what they already show, and the index median over the footprint."""
    period = span(a.baseline_months)
    return {
        "title": "Before",
        "text": (
            f"Baseline: {period}; "
            + (
                "open water = NDWI > 0 in most of those monthly composites (river, lakes), excluded from the flood."
                if a.hazard == "flood"
                else "burned ground = NBR < 0 in most of those months, excluded from the burn."
            )
        ),
        "quantities": {
            baseline_label(a.hazard): quantity(a.before.baseline_ha, "ha", period=period),
            f"baseline {a.index.upper()} median over the footprint": quantity(
                a.before.baseline_index_median, "1", period=period
            ),
        },
    }


def during_section(a: DisasterAnalysis, d: During) -> dict[str, Any]:
    """The footprint in the event month: its area and uncertainty, the visible and hidden parts, coverage."""
    p = d.month
    share = d.coverage.footprint_clear_obs_share
    return {
        "title": "During",
        "text": (
            f"{a.state.capitalize()} area in {p}: the pixels that show it in the monthly median "
            "(visible) grown into connected pixels that show it in only part of the month's clear "
            "observations (partly visible: NDWI risen above the baseline or a jump of the NIR spread). "
            "Uncertainty: half the edge pixels plus the pixels with no clear observation next to it."
        ),
        "quantities": {
            area_label(a.hazard): quantity(d.area_ha, "ha", period=p, uncertainty=d.area_uncertainty_ha, digits=2),
            VISIBLE: quantity(d.visible_ha, "ha", period=p, digits=2),
            PARTLY_VISIBLE: quantity(
                d.partly_visible_ha,
                "ha",
                period=p,
                digits=2,
                note="water in fewer clear observations than land: hidden by the median",
            ),
            "edge pixels": quantity(d.edge_ha, "ha", period=p, digits=2),
            "unobserved next to it": quantity(d.unobserved_ha, "ha", period=p, digits=2),
            "patches": quantity(d.patches, "patches", period=p, digits=0),
            "clear-sky coverage of the tile": quantity(100 * d.coverage.clear_coverage, "%", period=p),
            "clear observations over the footprint": quantity(
                None if share is None else 100 * share, "%", period=p, note=d.coverage.coverage_source
            ),
        },
        "figures": ["maps"],
    }


def after_section(a: DisasterAnalysis) -> dict[str, Any]:
    """Month by month after the event: the part still hit, its uncertainty, the recovered share."""
    rows = [
        [
            x.month,
            x.still_ha,
            x.still_uncertainty_ha,
            None if x.recovered_fraction is None else 100 * x.recovered_fraction,
            None if x.coverage.footprint_clear_coverage is None else 100 * x.coverage.footprint_clear_coverage,
        ]
        for x in a.after
    ]
    return {
        "title": "After",
        "text": (
            f"Month by month after {a.event_month}: the part of the footprint still "
            f"{'under water' if a.hazard == 'flood' else 'burned (NBR below the baseline)'}; uncertainty: "
            "footprint pixels without a clear observation that month."
        ),
        "table": {
            "columns": ["month", "still (ha)", "± (ha)", "recovered (%)", "clear coverage of footprint (%)"],
            "rows": rows,
        },
        "figures": ["recovery"],
    }


def affected_section(a: DisasterAnalysis) -> dict[str, Any]:
    """The buildings the footprint intersects and the road length inside it."""
    bl, rd, p = a.buildings, a.roads, a.event_month
    return {
        "title": "Affected buildings and roads",
        "text": (
            f"Buildings whose footprint intersects the {a.state} area, and road length inside it, from the "
            f"GIS layers as they stood at the end of {p}."
        ),
        "quantities": {
            AFFECTED_BUILDINGS: quantity(bl.count, "buildings", period=p, digits=0),
            road_length_label(a.hazard): quantity(rd.km, "km", period=p, digits=3),
            ROAD_SEGMENTS: quantity(rd.segments, "segments", period=p, digits=0),
        },
        "table": {
            "columns": ["osm_id", "building", "name", "address"],
            "rows": [[r.osm_id, r.building, r.name, r.address] for r in bl.rows[:200]],
        },
        "bullets": [f"{k}: {v:.3f} km" for k, v in sorted(rd.by_highway.items())],
        "figures": ["buildings_by_type"],
    }


def hidden_section(a: DisasterAnalysis, d: During) -> dict[str, Any]:
    """How much of the footprint the monthly median hides."""
    share = d.partly_visible_ha / d.area_ha
    return {
        "title": "How much of it the monthly median hides",
        "text": (
            f"{100 * share:.0f} % of the footprint is not {a.state} in the {d.month} median composite: "
            "the hazard lasted only part of the month or its days were cloudier than the rest, so those "
            "pixels had more clear observations without it. They are counted in the area because their "
            "observations mixed both states (NIR spread or NDWI rise); a detector on the median alone "
            f"would report {d.visible_ha:.1f} ha instead of {d.area_ha:.1f} ha."
        ),
    }


def figure_captions(a: DisasterAnalysis) -> dict[str, str]:
    """Caption of each figure of a report with an event."""
    p = a.event_month
    last = a.after[-1].month if a.after else p
    return {
        "maps": (
            f"Before ({span(a.baseline_months)}), during ({p}) and after (last month read, {last}), each over "
            f"that month's true-colour composite (reflectance {STRETCH[0]:g}–{STRETCH[1]:g}); buildings hit "
            f"(yellow) and {a.state} roads (magenta) from the GIS layers of {p}. Axes: longitude and latitude "
            f"(WGS 84); map grid {crs_name(a.grid)}."
        ),
        "recovery": f"{a.state.capitalize()} area per month (ha), ± its uncertainty; tile {a.tile}.",
        "buildings_by_type": f"Affected buildings by OSM building type (count), {p}.",
    }


def event_figure_data(a: DisasterAnalysis, d: During) -> dict[str, Any]:
    """The numbers behind each figure (``figure_data`` of the summary)."""
    months, area, unc = recovery_series(a)
    return {
        "maps": {
            "baseline_ha": a.before.baseline_ha,
            "during_ha": d.area_ha,
            "after_ha": a.after[-1].still_ha if a.after else d.area_ha,
            "footprint_wkt": a.footprint.simplify(a.grid.resolution / 2).wkt if a.footprint else None,
        },
        "recovery": {"months": months, "area_ha": area, "uncertainty_ha": unc},
        "buildings_by_type": a.buildings.by_type,
    }
