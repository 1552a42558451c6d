"""The ``real_estate`` report: a section per featured property, built from its :class:`PropertyAnalysis`.

:func:`build_report` takes the analyses, the maps' inputs and the agent's configuration values
(radius, green-space classes, projection horizon) and answers the :class:`Report`; one small
function per part of a section (quantities, bullets, table, figures). Nothing here reads the
memory: the agent reads everything first (:meth:`RealEstateAgent.report`).

The names of the numbers the summary and the asset's metadata carry are the constants below;
``assets/report_real_estate.py`` looks them up by these names, not by display labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from memories.applications.maps import crs_name
from memories.applications.property_analysis import PropertyAnalysis, PropertyMap
from memories.applications.real_estate_figures import forecast_figure, map_figure, timeline_figure
from memories.applications.report import Report, quantity
from memories.applications.webmap import WebMap

__all__ = [
    "BUILT_UP_SHARE",
    "FLOODED_MONTHS",
    "LABEL",
    "META_NEW_BUILDINGS",
    "META_PROPERTIES",
    "META_PROPERTIES_FLOODED",
    "META_RADIUS_M",
    "MONTHS",
    "NDVI_TREND",
    "NEW_BUILDINGS_BY_START_DATE",
    "PROPERTIES",
    "RADIUS_M",
    "REPORT_KIND",
    "SUMMARY_KEY",
    "RealEstateReportConfig",
    "build_report",
    "property_brief",
    "property_section",
]

REPORT_KIND = "real_estate"
"""The report's kind (the first part of its key and folder)."""

# -- keys of the summary's ``real_estate`` part and of each property's brief ------------------------------
SUMMARY_KEY = "real_estate"
"""The summary's part with the radius, period, definitions, property briefs and full analyses."""
PROPERTIES = "properties"
"""The list of property briefs (:func:`property_brief`) in that part."""
RADIUS_M = "radius_m"
"""Radius of the surroundings, metres."""
LABEL = "label"
"""A brief's property label (its address as the memory holds it)."""
MONTHS = "months"
"""A brief's months (``YYYY-MM``), aligned with :data:`BUILT_UP_SHARE`."""
BUILT_UP_SHARE = "built_up_share"
"""A brief's built-up share per month (0–1; None: no land cover that month)."""
FLOODED_MONTHS = "flooded_months"
"""A brief's months with new open water in the radius."""
NDVI_TREND = "ndvi_trend"
"""A brief's NDVI trend, a quantity (NDVI/yr)."""
NEW_BUILDINGS_BY_START_DATE = "new_buildings_by_start_date"
"""A brief's new buildings in the radius per ``start_date``."""

# -- keys of the asset's scalar metadata ---------------------------------------------------------------
META_PROPERTIES = "properties"
"""Featured properties analysed."""
META_PROPERTIES_FLOODED = "properties_flooded"
"""Featured properties with a flooded month."""
META_NEW_BUILDINGS = "new_buildings_in_radii"
"""New buildings in all the radii together."""
META_RADIUS_M = "radius_m"
"""Radius of the surroundings, metres."""

# -- display labels of a section's quantities ----------------------------------------------------------
Q_BUILT_UP = "built-up share"
Q_GREEN = "green space share"
Q_WATER = "water share"
Q_BUILT_UP_CHANGE = "built-up share change"
Q_NDVI = "mean NDVI"
Q_NDVI_TREND = "NDVI trend"
Q_LEAST_WATER_DISTANCE = "least distance to open water"
Q_WATER_DISTANCE_NOW = "distance to open water now"
Q_TEMPERATURE = "mean temperature"
Q_PRECIPITATION = "precipitation"
Q_BUILDINGS = "buildings in radius"
Q_NEW_BUILDINGS = "new buildings"
Q_ROADS = "road length in radius"
TRANSITIONS_LISTED = 4
"""The largest land-cover transitions a section lists."""


@dataclass(frozen=True)
class RealEstateReportConfig:
    """The agent's values a report states: radius (metres), green-space classes, projection horizon (months)."""

    radius_m: float
    green_classes: tuple[str, ...]
    horizon_months: int
    definitions: dict[str, str] = field(default_factory=dict)
    """What the report's terms mean (the agent's ``definitions()``)."""
    as_of: str | None = None
    """Transaction time of the memory view (ISO 8601), None: now."""


def build_report(
    tile: str,
    month: str,
    period: tuple[str, str],
    crs: str,
    analyses: Sequence[PropertyAnalysis],
    maps: Sequence[PropertyMap],
    failures: list[str],
    config: RealEstateReportConfig,
    webmap: WebMap | None = None,
) -> Report:
    """The ``real_estate`` report of a tile-month from the analyses of its featured properties over ``period``
    (first month, last month), ``maps[i]`` the map inputs of ``analyses[i]``; ``failures`` are the addresses
    that could not be analysed, with why."""
    sections: list[dict[str, Any]] = []
    figures: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    figure_data: dict[str, Any] = {}
    for i, (a, pmap) in enumerate(zip(analyses, maps, strict=True), start=1):
        sections.append(property_section(i, a, config))
        for name, (data, caption, values) in property_figures(i, a, pmap, config).items():
            figures[name], captions[name], figure_data[name] = data, caption, values
    if failures:
        sections.append({"title": "Addresses not analysed", "bullets": failures})
    documents = [a.to_dict() for a in analyses]
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": config.as_of,
        "crs": crs,
        "alerts": flood_alerts(analyses),
        "sections": sections,
        "figure_data": figure_data,
        "sources": documents[0]["sources"] if documents else {},
        SUMMARY_KEY: {
            RADIUS_M: config.radius_m,
            "period": f"{period[0]}..{month}",
            "definitions": config.definitions,
            PROPERTIES: [property_brief(a) for a in analyses],
            "analyses": documents,
        },
    }
    return Report(
        kind=REPORT_KIND,
        tile=tile,
        month=month,
        title=f"Real estate: {len(analyses)} properties on tile {tile}, {period[0]} to {month}",
        summary=summary,
        figures=figures,
        captions=captions,
        headline=[n for n in ("map_1", "timeline_1") if n in figures],
        webmap=webmap,
    )


def flood_alerts(analyses: Sequence[PropertyAnalysis]) -> list[str]:
    """One alert per property with flooded months."""
    out = []
    for a in analyses:
        flooded = a.environment.flood_exposure.flooded_months if a.environment else []
        if flooded:
            out.append(f"{a.property.label}: flooded in {', '.join(flooded)} (new open water in the radius)")
    return out


def property_section(i: int, a: PropertyAnalysis, config: RealEstateReportConfig) -> dict[str, Any]:
    """Section ``i`` of the report: the property's quantities, monthly table, findings and figure names."""
    p = a.property
    names = [f"map_{i}", f"timeline_{i}"] + ([f"forecast_{i}"] if a.projection.available else [])
    return {
        "title": f"{i}. {p.label} ({a.address})",
        "text": (
            f"Within {config.radius_m:g} m of the property (tile {p.tile}, {p.x:.0f} E {p.y:.0f} N "
            f"{p.crs}; {p.lat:.5f}, {p.lon:.5f}), {a.period}. Green space = "
            f"{' + '.join(config.green_classes)}; shares are fractions of labelled pixels."
        ),
        "quantities": section_quantities(a, config.horizon_months),
        "table": timeline_table(a),
        "bullets": section_bullets(a),
        "figures": names,
    }


def section_quantities(a: PropertyAnalysis, horizon_months: int) -> dict[str, Any]:
    """The section's key numbers by display label: the last month's shares and NDVI, trend, water, climate,
    buildings, roads and the last projected NDVI."""
    first, last = a.surroundings[0], a.surroundings[-1]
    q: dict[str, Any] = {}
    if last.has_land_cover:
        q[Q_BUILT_UP], q[Q_GREEN], q[Q_WATER] = last.built_up_share, last.green_space_share, last.water_share
    if (
        first.built_up_share is not None
        and last.built_up_share is not None
        and first.built_up_share["value"] is not None
    ):
        change = (last.built_up_share["value"] or 0.0) - first.built_up_share["value"]
        q[Q_BUILT_UP_CHANGE] = quantity(change, "1", period=a.period)
    q[Q_NDVI] = last.ndvi_mean
    env = a.environment
    if env is not None:
        q[Q_NDVI_TREND] = env.vegetation_trend.slope
        if env.flood_exposure.min_distance_to_water:
            q[Q_LEAST_WATER_DISTANCE] = env.flood_exposure.min_distance_to_water
        q[Q_WATER_DISTANCE_NOW] = env.flood_exposure.distance_to_water[-1]
        if env.climate.available:
            q[Q_TEMPERATURE] = env.climate.temperature_mean
            q[Q_PRECIPITATION] = env.climate.precipitation_total
    nb = a.neighbourhood
    if nb is not None and nb.buildings is not None and nb.roads is not None:
        q[Q_BUILDINGS] = nb.buildings.end
        q[Q_NEW_BUILDINGS] = nb.buildings.new
        q[Q_ROADS] = nb.roads.end
    if a.projection.available:
        q[f"projected NDVI ({horizon_months} months)"] = a.projection.forecast[-1].ndvi
    return q


def section_bullets(a: PropertyAnalysis) -> list[str]:
    """The section's findings: flood exposure, new buildings by date, the largest land-cover transitions,
    why there is no projection, the note on an ambiguous address."""
    bullets = []
    if a.environment is not None:
        bullets.append(f"Flood exposure: {a.environment.flood_exposure.statement}.")
    nb = a.neighbourhood
    if nb is not None and nb.buildings is not None and nb.buildings.new_by_start_date:
        dates = ", ".join(f"{n} built {d}" for d, n in nb.buildings.new_by_start_date.items())
        bullets.append(f"New buildings in the radius: {dates}.")
    if nb is not None:
        tr = nb.land_cover_transitions
        for t in tr.transitions[:TRANSITIONS_LISTED]:
            bullets.append(f"{t.from_class} -> {t.to_class}: {t.area_m2 / 10_000:.2f} ha ({tr.period}).")
    if not a.projection.available:
        bullets.append(f"No projection: {a.projection.reason}")
    if a.note:
        bullets.append(a.note)
    return bullets


def timeline_table(a: PropertyAnalysis) -> dict[str, Any]:
    """The section's table: per month the three shares (0–1) and the mean NDVI."""
    return {
        "columns": ["month", "built-up share", "green space share", "water share", "mean NDVI"],
        "rows": [
            [
                m.month,
                _value(m.built_up_share),
                _value(m.green_space_share),
                _value(m.water_share),
                m.ndvi_mean["value"],
            ]
            for m in a.surroundings
        ],
    }


def property_figures(
    i: int, a: PropertyAnalysis, pmap: PropertyMap, config: RealEstateReportConfig
) -> dict[str, tuple[bytes, str, dict[str, Any]]]:
    """Figure name -> (PNG, caption, the data it shows) of property ``i``: map, timeline, projection."""
    out = {f"map_{i}": map_entry(a, pmap, config.radius_m), f"timeline_{i}": timeline_entry(a, config)}
    if a.projection.available:
        out[f"forecast_{i}"] = forecast_entry(a, config.radius_m)
    return out


def map_entry(a: PropertyAnalysis, pmap: PropertyMap, r: float) -> tuple[bytes, str, dict[str, Any]]:
    """The property's map, its caption and data."""
    p = a.property
    title = f"{p.label}: {r:g} m radius, {pmap.land_cover_month or a.months[-1]}"
    data = map_figure(pmap, p.x, p.y, r, title)
    caption = (
        f"Land cover ({pmap.land_cover_month or 'n/a'}) around {p.label} over the {pmap.base.label}, with "
        f"the buildings (white) and roads (yellow) of {pmap.gis_month}; the circle is the {r:g} m radius. Axes: "
        f"longitude and latitude (WGS 84), map grid {crs_name(pmap.grid)}."
    )
    values = {
        "property_xy_m": [p.x, p.y],
        "radius_m": r,
        "land_cover_month": pmap.land_cover_month,
        "gis_month": pmap.gis_month,
        "buildings_drawn": len(pmap.buildings) if pmap.buildings is not None else 0,
        "roads_drawn": len(pmap.roads) if pmap.roads is not None else 0,
        "extent_m": list(pmap.extent_m),
    }
    return data, caption, values


def timeline_series(a: PropertyAnalysis) -> dict[str, list[Any]]:
    """Per month the shares (0–1), the mean NDVI and its standard error (None: not available)."""
    s = a.surroundings
    return {
        "built_up_share": [_value(m.built_up_share) for m in s],
        "green_space_share": [_value(m.green_space_share) for m in s],
        "water_share": [_value(m.water_share) for m in s],
        "ndvi_mean": [m.ndvi_mean["value"] for m in s],
        "ndvi_se": [m.ndvi_mean["uncertainty"] for m in s],
    }


def timeline_entry(a: PropertyAnalysis, config: RealEstateReportConfig) -> tuple[bytes, str, dict[str, Any]]:
    """The property's monthly surroundings figure, its caption and data."""
    r, label = config.radius_m, a.property.label
    months = [m.month for m in a.surroundings]
    series = timeline_series(a)
    data = timeline_figure(months, series, f"{label}: surroundings within {r:g} m")
    caption = (
        f"Monthly land-cover shares (fraction of labelled pixels) and mean NDVI within {r:g} m of {label}, "
        f"{a.period}. Green space = {' + '.join(config.green_classes)}."
    )
    return data, caption, {"months": months, **series}


def forecast_entry(a: PropertyAnalysis, r: float) -> tuple[bytes, str, dict[str, Any]]:
    """The property's NDVI projection figure, its caption and data."""
    proj, label = a.projection, a.property.label
    months = [m.month for m in a.surroundings]
    observed = [m.ndvi_mean["value"] for m in a.surroundings]
    fc_months = [f.month for f in proj.forecast]
    mean = [f.ndvi["value"] for f in proj.forecast]
    lower, upper = [f.lower for f in proj.forecast], [f.upper for f in proj.forecast]
    title = f"{label}: NDVI projection, ARIMA{tuple(proj.order)}"
    data = forecast_figure(months, observed, fc_months, mean, lower, upper, proj.interval, title)
    caption = (
        f"Mean NDVI within {r:g} m of {label}, observed {proj.fitted_to} and forecast "
        f"{proj.horizon_months} months ahead with {proj.interval} prediction intervals."
    )
    values = {
        "observed_months": months,
        "observed": observed,
        "months": fc_months,
        "mean": mean,
        "lower": lower,
        "upper": upper,
    }
    return data, caption, values


def property_brief(a: PropertyAnalysis) -> dict[str, Any]:
    """The machine-readable key numbers of one analysis (for tests, the server and the preview)."""
    p = a.property
    out: dict[str, Any] = {
        "address": a.address,
        LABEL: p.label,
        "tile": p.tile,
        "x": p.x,
        "y": p.y,
        BUILT_UP_SHARE: [_value(m.built_up_share) for m in a.surroundings],
        MONTHS: [m.month for m in a.surroundings],
    }
    if a.environment is not None:
        out[FLOODED_MONTHS] = a.environment.flood_exposure.flooded_months
        out[NDVI_TREND] = a.environment.vegetation_trend.slope
    if a.neighbourhood is not None and a.neighbourhood.buildings is not None:
        out[NEW_BUILDINGS_BY_START_DATE] = a.neighbourhood.buildings.new_by_start_date
    return out


def _value(q: dict[str, Any] | None) -> Any:
    """A quantity's value; None for no quantity."""
    return q["value"] if q is not None else None
