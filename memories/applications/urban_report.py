"""The urban report from an :class:`~memories.applications.urban_metrics.UrbanAnalysis`: one function per section.

Every builder takes the analysis (and the thresholds it states) and returns data; none
reads the memory (``UrbanPlanner.analyze`` did). The labels of the quantities the asset
previews show are the ``Q_*`` constants; the metadata names are those of :func:`preview_metadata`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from memories.applications.maps import crs_name
from memories.applications.report import Report, km_extent, quantity
from memories.applications.terrain_exposure import built_up_slope_section
from memories.applications.urban_figures import (
    change_map,
    district_bars,
    land_use_figure,
    saliency_figure,
    urban_webmap,
)
from memories.applications.urban_land_use import LandCoverSaliency, LandUse
from memories.applications.urban_metrics import (
    BUILT_UP,
    GREEN_SPACE_CLASSES,
    REPORT_KIND,
    DistrictNumbers,
    UrbanAnalysis,
    UrbanTargets,
)
from memories.products import LAND_COVER

Q_BUILTUP_GROWTH = "built-up growth"
Q_BUILTUP_GROWTH_PCT = "built-up growth (relative)"
Q_BUILTUP_GROWTH_RATE = "built-up growth rate"
Q_ONTO_FOREST = "new built-up on former forest"
Q_NEW_PATCHES = "new built-up patches"
Q_GREEN = "green space"
Q_GREEN_SHARE = "green share"
Q_GREEN_PER_INHABITANT = "green space per inhabitant"
Q_POPULATION = "population"
Q_NEW_ROADS = "new roads"
Q_INTERSECTION_DENSITY = "intersection density"
Q_LAND_USE_AGREEMENT = "land-use agreement with land cover"
Q_MULTIMODAL_ACCURACY = "multi-modal validation accuracy"
Q_MULTIMODAL_MIOU = "multi-modal validation mean IoU"
Q_ATTENTION = {"imagery": "attention on imagery", "vector": "attention on vector layers", "text": "attention on text"}
"""Modality group -> label of its mean share of attention."""

PREVIEW_QUANTITIES = (
    Q_BUILTUP_GROWTH,
    Q_BUILTUP_GROWTH_RATE,
    Q_NEW_PATCHES,
    Q_GREEN_PER_INHABITANT,
    Q_NEW_ROADS,
    Q_INTERSECTION_DENSITY,
)
"""The quantities of the Dagster preview's table, in order."""

REFERENCE_MONTH = "reference_month"
BUILTUP_GROWTH_HA = "builtup_growth_ha"
BUILTUP_END_HA = "builtup_end_ha"
GREEN_HA = "green_ha"
NEW_ROAD_KM = "new_road_km"
RECOMMENDATIONS = "recommendations"

LAND_USE_TITLE = "Land use (multi-modal model)"


def build_report(a: UrbanAnalysis, targets: UrbanTargets) -> Report:
    """The urban report of an analysis: built-up expansion, new patches, slope, green space, roads, land use,
    recommendations."""
    period = f"{a.start_month}..{a.end_month}"
    figure_data = {"builtup_change": change_figure_data(a), "districts": districts_figure_data(a.districts, targets)}
    figures = {"builtup_change": change_map(a), "districts": district_bars(figure_data["districts"], period)}
    captions = {
        "builtup_change": f"Built-up land of tile {a.tile}: kept (grey), new since {a.start_month} (red), lost "
        f"(blue), roads at the start (light grey), new roads (yellow), census districts outlined (white), over the "
        f"{a.base.label}; axes: longitude and latitude (WGS 84), map grid {crs_name(a.grid)}.",
        "districts": f"Per census district: built-up area (ha) in {a.start_month} and {a.end_month} (± uncertainty), "
        f"green space per inhabitant (m², log scale; dashed: target {targets.green_m2_per_inhabitant:g} m²), road "
        f"length (km) in {a.start_month} and {a.end_month}.",
    }
    land_figures = _land_use_figures(a, figures, captions)
    sections = [
        builtup_section(a, targets),
        patches_section(a),
        built_up_slope_section(a.terrain, period),  # numbers from memories.applications.terrain_exposure
        green_section(a),
        roads_section(a),
        land_use_section(a.land_use, a.saliency, a.land_cover_model.end, land_figures),
        recommendations_section(a, targets),
    ]
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": a.as_of,
        "crs": a.crs,
        "alerts": [rec.text for rec in a.recommendations],
        "sections": sections,
        "figure_data": figure_data,
        "sources": a.sources,
        "urban": a.to_json(),
    }
    return Report(
        kind=REPORT_KIND,
        tile=a.tile,
        month=a.end_month,
        title=f"Urban planning, tile {a.tile}: {a.start_month} to {a.end_month}",
        summary=summary,
        figures=figures,
        captions=captions,
        headline=["builtup_change", "districts"],
        webmap=urban_webmap(a),
    )


def preview_metadata(urban: dict[str, Any]) -> dict[str, Any]:
    """The scalar metadata of an urban report's asset, from its summary's ``urban`` numbers."""
    total = urban["tile_total"]
    return {
        REFERENCE_MONTH: urban["start_month"],
        BUILTUP_GROWTH_HA: float(total["builtup_growth_ha"]),
        BUILTUP_END_HA: float(total["builtup_end_ha"]),
        GREEN_HA: float(total["green_ha"]),
        NEW_ROAD_KM: float(total["new_road_km"]),
        RECOMMENDATIONS: len(urban["recommendations"]),
    }


def change_figure_data(a: UrbanAnalysis) -> dict[str, Any]:
    """The numbers the built-up change map shows."""
    t = a.tile_total
    return {
        "extent_km": list(km_extent(a.grid)),
        "builtup_start_ha": t.builtup_start_ha,
        "builtup_gained_ha": t.builtup_gained_ha,
        "builtup_lost_ha": t.builtup_lost_ha,
        "new_road_km": t.new_road_km,
        "districts": [d.name for d in a.districts],
    }


def districts_figure_data(districts: list[DistrictNumbers], targets: UrbanTargets) -> dict[str, Any]:
    """The numbers of the district bars."""
    return {
        "district": [d.name for d in districts],
        "builtup_start_ha": [d.builtup_start_ha for d in districts],
        "builtup_end_ha": [d.builtup_end_ha for d in districts],
        "builtup_end_uncertainty_ha": [d.builtup_end_uncertainty_ha for d in districts],
        "green_m2_per_inhabitant": [d.green_m2_per_inhabitant for d in districts],
        "green_target_m2_per_inhabitant": targets.green_m2_per_inhabitant,
        "road_km_start": [d.road_km_start for d in districts],
        "road_km_end": [d.road_km_end for d in districts],
    }


def _area(value: float, unc: float | None, when: str, note: str | None = None) -> dict[str, Any]:
    return quantity(value, "ha", period=when, uncertainty=unc, note=note, digits=2)


def builtup_section(a: UrbanAnalysis, targets: UrbanTargets) -> dict[str, Any]:
    """Built-up land at both months, its growth and the growth per district."""
    start, end, t = a.start_month, a.end_month, a.tile_total
    period = f"{start}..{end}"
    acc = a.land_cover_model.accuracy
    acc_text = (
        "ground truth (exact classes)"
        if a.land_cover_model.end == "truth"
        else (f"validation accuracy of built-up {acc[BUILT_UP]:.3f}" if acc and BUILT_UP in acc else "unknown")
    )
    return {
        "title": "Built-up expansion",
        "text": f"Built-up land (land-cover class '{BUILT_UP}') in {start} and {end} ({a.months} months), "
        f"per census district. Land cover: {acc_text}; uncertainty = area x (1 - class accuracy) + half the "
        "edge pixels.",
        "quantities": {
            f"built-up {start}": _area(t.builtup_start_ha, t.builtup_start_uncertainty_ha, start),
            f"built-up {end}": _area(t.builtup_end_ha, t.builtup_end_uncertainty_ha, end),
            Q_BUILTUP_GROWTH: _area(t.builtup_growth_ha, t.builtup_growth_uncertainty_ha, period),
            Q_BUILTUP_GROWTH_PCT: quantity(t.builtup_growth_pct, "%", period=period, digits=1),
            Q_BUILTUP_GROWTH_RATE: quantity(t.builtup_growth_pct_per_year, "%/yr", period=period, digits=1),
            Q_ONTO_FOREST: _area(t.builtup_onto_forest_ha, None, period),
            Q_NEW_PATCHES: quantity(
                len(a.new_patches), "patches", period=period, note=f">= {targets.min_patch_ha:g} ha each"
            ),
        },
        "table": {
            "columns": [
                "district",
                f"built-up {start} (ha)",
                f"built-up {end} (ha)",
                "growth (ha)",
                "± (ha)",
                "growth (%)",
                "growth (%/yr)",
                "onto forest (ha)",
            ],
            "rows": [
                [
                    d.name,
                    d.builtup_start_ha,
                    d.builtup_end_ha,
                    d.builtup_growth_ha,
                    d.builtup_growth_uncertainty_ha,
                    d.builtup_growth_pct,
                    d.builtup_growth_pct_per_year,
                    d.builtup_onto_forest_ha,
                ]
                for d in a.districts
            ],
        },
        "figures": ["builtup_change"],
    }


def patches_section(a: UrbanAnalysis) -> dict[str, Any]:
    """The new built-up patches, largest first (15 at most)."""
    return {
        "title": "New built-up patches",
        "text": f"Connected areas (4-neighbour) that became built-up between {a.start_month} and {a.end_month}, "
        "largest first (at most 15 shown; all are in summary.json under urban.new_patches with their polygons).",
        "table": {
            "columns": ["patch", "district", "area (ha)", "of which former forest (ha)", "centroid x, y (m)"],
            "rows": [
                [p.id, p.district, p.area_ha, p.from_forest_ha, f"{p.centroid[0]:.0f}, {p.centroid[1]:.0f}"]
                for p in a.new_patches[:15]
            ],
        },
    }


def green_section(a: UrbanAnalysis) -> dict[str, Any]:
    """Green space of the end month, per district and per inhabitant."""
    end, t = a.end_month, a.tile_total
    return {
        "title": "Green space",
        "text": "Green space = land-cover classes " + " + ".join(GREEN_SPACE_CLASSES) + f" in {end}; per "
        "inhabitant with the district's census population of the latest year up to the month. Flagged census "
        "rows are listed: per-inhabitant figures of those districts are as good as the census.",
        "quantities": {
            Q_GREEN: _area(t.green_ha, t.green_uncertainty_ha, end),
            Q_GREEN_SHARE: quantity(t.green_pct, "%", period=end, digits=1),
            Q_GREEN_PER_INHABITANT: quantity(t.green_m2_per_inhabitant, "m²/inhabitant", period=end, digits=1),
            Q_POPULATION: quantity(t.population, "inhabitants", period=f"census {t.census_year}", digits=0),
        },
        "table": {
            "columns": [
                "district",
                "green (ha)",
                "± (ha)",
                "green (%)",
                "population",
                "census year",
                "green per inhabitant (m²)",
                "census flags",
            ],
            "rows": [
                [
                    d.name,
                    d.green_ha,
                    d.green_uncertainty_ha,
                    d.green_pct,
                    d.population,
                    d.census_year,
                    d.green_m2_per_inhabitant,
                    ", ".join(d.census_flags) or "none",
                ]
                for d in a.districts
            ],
        },
    }


def roads_section(a: UrbanAnalysis) -> dict[str, Any]:
    """Road length at both months, new roads and intersection density."""
    start, end, t = a.start_month, a.end_month, a.tile_total
    period = f"{start}..{end}"
    return {
        "title": "Road network",
        "text": f"Road length from the GIS layers as they stood in {start} and in {end} (roads filtered by "
        "start_date), clipped to each district; intersections are nodes of the noded network where three or "
        "more road ends meet.",
        "quantities": {
            f"road length {start}": quantity(t.road_km_start, "km", period=start, digits=2),
            f"road length {end}": quantity(t.road_km_end, "km", period=end, digits=2),
            Q_NEW_ROADS: quantity(t.new_road_km, "km", period=period, digits=2),
            Q_INTERSECTION_DENSITY: quantity(t.intersections_per_km2, "per km²", period=end, digits=1),
        },
        "table": {
            "columns": [
                "district",
                f"roads {start} (km)",
                f"roads {end} (km)",
                "new (km)",
                "growth (%)",
                "intersections",
                "per km²",
            ],
            "rows": [
                [
                    d.name,
                    d.road_km_start,
                    d.road_km_end,
                    d.new_road_km,
                    d.road_growth_pct,
                    d.intersections,
                    d.intersections_per_km2,
                ]
                for d in a.districts
            ],
        },
        "figures": ["districts"],
    }


def land_use_section(
    lu: LandUse, sal: LandCoverSaliency, land_cover_model: str | None, figures: list[str]
) -> dict[str, Any]:
    """The multi-modal land use of the planning area against the image-only land cover, the model's scores,
    the share of its attention per modality, and the land-cover model's saliency."""
    saliency_text = " " + saliency_sentence(sal)
    if lu.missing is not None or lu.classes is None:
        return {
            "title": LAND_USE_TITLE,
            "text": f"No multi-modal land use for {lu.month}: {lu.missing}." + saliency_text,
            **({"figures": figures} if figures else {}),
        }
    scores = ", ".join(
        f"{name} {v:.3f}" for name, v in (("accuracy", lu.val_accuracy), ("mean IoU", lu.val_miou)) if v is not None
    )
    quantities = {
        Q_LAND_USE_AGREEMENT: quantity(lu.agreement_pct, "%", period=lu.month, digits=1, note="pixels both maps label"),
        Q_MULTIMODAL_ACCURACY: quantity(lu.val_accuracy, "fraction", period="validation", digits=3),
        Q_MULTIMODAL_MIOU: quantity(lu.val_miou, "fraction", period="validation", digits=3),
    }
    for group, value in (lu.modality_share or {}).items():
        quantities[Q_ATTENTION[group]] = quantity(value, "share of attention", period=lu.month, digits=3)
    return {
        "title": LAND_USE_TITLE,
        "text": f"Land use in {lu.month} inside the planning area (the census districts on the tile, "
        f"{lu.planning_area_ha:.2f} ha) by the multi-modal model {lu.model_id} (imagery, rasterized roads, "
        f"buildings and water, and map text, fused by cross-modal attention; validation {scores or 'scores unknown'}, "
        f"{lu.metrics_source or 'no registry record'}), against the image-only {LAND_COVER} of the same month "
        f"({land_cover_model}). The attention shares say how much of each pixel's attention went to each "
        "modality (they sum to 1 per pixel)." + saliency_text,
        "quantities": quantities,
        "table": {
            "columns": ["class", "multi-modal (ha)", f"{LAND_COVER} (ha)", "both (ha)"],
            "rows": [[c.name, c.multimodal_ha, c.land_cover_ha, c.both_ha] for c in lu.classes],
        },
        "figures": figures,
    }


def saliency_sentence(sal: LandCoverSaliency) -> str:
    """What the land-cover saliency of the section shows, or why there is none."""
    if sal.missing is not None or sal.window is None:
        return f"Land-cover saliency: not available ({sal.missing})."
    r0, r1, c0, c1 = sal.window
    shares = ", ".join(f"{b} {v:.2f}" for b, v in (sal.band_share or {}).items())
    return (
        f"Land-cover saliency: integrated gradients of {sal.model_id} on rows {r0}..{r1}, columns {c0}..{c1} of "
        f"{sal.month} (share of |attribution| per band: {shares})."
    )


def recommendations_section(a: UrbanAnalysis, targets: UrbanTargets) -> dict[str, Any]:
    """The rules that fired, with their thresholds."""
    return {
        "title": "Recommendations",
        "text": "Rules over the numbers above, with their thresholds: "
        f"green space below {targets.green_m2_per_inhabitant:g} m²/inhabitant (the WHO-cited minimum) -> add "
        f"green space; built-up growth above {targets.builtup_growth_pct_per_year:g} %/yr with road length "
        f"growth below {targets.road_growth_pct:g} % -> plan access roads; more than "
        f"{targets.forest_conversion_ha:g} ha of new built-up on former forest -> flag."
        + ("" if a.recommendations else " No rule fired."),
        "bullets": [rec.text for rec in a.recommendations],
    }


def _land_use_figures(a: UrbanAnalysis, figures: dict[str, bytes], captions: dict[str, str]) -> list[str]:
    """Draw the land-use and saliency figures the analysis has data for; their names."""
    names = []
    lu, sal = a.land_use, a.saliency
    if lu.land_use is not None and lu.shares is not None:
        figures["land_use"] = land_use_figure(lu.land_use, lu.shares, title=f"{lu.model_id}, {lu.month}, {a.tile}")
        captions["land_use"] = (
            f"Multi-modal land use of tile {a.tile} in {lu.month} ({lu.model_id}) and the share of each pixel's "
            "attention on imagery, vector layers (rasterized roads, buildings, water) and text (0-1, summing to 1); "
            "the mix panel shows imagery in red, vector in green, text in blue."
        )
        names.append("land_use")
    if sal.saliency is not None and sal.reflectance is not None:
        figures["saliency"] = saliency_figure(sal.reflectance, sal.saliency, title=f"{sal.model_id}, {sal.month}")
        captions["saliency"] = (
            f"What the land-cover model {sal.model_id} looks at in {sal.month}: true colour, predicted class and "
            "the integrated-gradients attribution (|logit|, summed over bands) on a window around the largest new "
            "built-up patch, with the share of attribution per band."
        )
        names.append("saliency")
    return names
