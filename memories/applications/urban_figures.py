"""The urban report: sections, figures (built-up change map, district bars) and summary of an urban analysis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from memories.applications.maps import Basemap, basemap, class_overlay, crs_name, draw_map, map_legend
from memories.applications.report import Report, km_extent, png, pyplot, quantity
from memories.applications.terrain_exposure import built_up_slope_section
from memories.applications.urban_metrics import BUILT_UP, GREEN_SPACE_CLASSES, REPORT_KIND, UrbanAnalysis, UrbanTargets
from memories.applications.webmap import WebMap
from memories.classes import CLASS_BY_NAME
from memories.memory.view import MemoryView


def build_report(view: MemoryView, a: UrbanAnalysis, targets: UrbanTargets) -> Report:
    """The urban report of an analysis: built-up expansion, new patches, green space, roads, recommendations."""
    r = a.result
    start, end, tile = r["start_month"], r["end_month"], r["tile"]
    period = f"{start}..{end}"
    t = r["tile_total"]
    recs = r["recommendations"]
    acc = r["land_cover_model"]["accuracy"]
    acc_text = (
        "ground truth (exact classes)"
        if r["land_cover_model"]["end"] == "truth"
        else (f"validation accuracy of built-up {acc[BUILT_UP]:.3f}" if acc and BUILT_UP in acc else "unknown")
    )
    districts = r["districts"]
    figure_data = {
        "builtup_change": {
            "extent_km": list(km_extent(a.grid)),
            "builtup_start_ha": t["builtup_start_ha"],
            "builtup_gained_ha": t["builtup_gained_ha"],
            "builtup_lost_ha": t["builtup_lost_ha"],
            "new_road_km": t["new_road_km"],
            "districts": [d["name"] for d in districts],
        },
        "districts": {
            "district": [d["name"] for d in districts],
            "builtup_start_ha": [d["builtup_start_ha"] for d in districts],
            "builtup_end_ha": [d["builtup_end_ha"] for d in districts],
            "builtup_end_uncertainty_ha": [d["builtup_end_uncertainty_ha"] for d in districts],
            "green_m2_per_inhabitant": [d["green_m2_per_inhabitant"] for d in districts],
            "green_target_m2_per_inhabitant": targets.green_m2_per_inhabitant,
            "road_km_start": [d["road_km_start"] for d in districts],
            "road_km_end": [d["road_km_end"] for d in districts],
        },
    }
    base = basemap(view, tile, end, a.grid)
    figures = {"builtup_change": _plot_change(a, base), "districts": _plot_districts(figure_data["districts"], period)}
    captions = {
        "builtup_change": f"Built-up land of tile {tile}: kept (grey), new since {start} (red), lost (blue), "
        f"roads at the start (light grey), new roads (yellow), census districts outlined (white), over the "
        f"{base.label}; axes: longitude and latitude (WGS 84), map grid {crs_name(a.grid)}.",
        "districts": f"Per census district: built-up area (ha) in {start} and {end} (± uncertainty), green space "
        f"per inhabitant (m², log scale; dashed: target {targets.green_m2_per_inhabitant:g} m²), road length (km) "
        f"in {start} and {end}.",
    }

    def q_area(value: float, unc: float | None, when: str, note: str | None = None) -> dict[str, Any]:
        return quantity(value, "ha", period=when, uncertainty=unc, note=note, digits=2)

    sections = [
        {
            "title": "Built-up expansion",
            "text": f"Built-up land (land-cover class '{BUILT_UP}') in {start} and {end} ({r['months']} months), "
            f"per census district. Land cover: {acc_text}; uncertainty = area x (1 - class accuracy) + half the "
            "edge pixels.",
            "quantities": {
                f"built-up {start}": q_area(t["builtup_start_ha"], t["builtup_start_uncertainty_ha"], start),
                f"built-up {end}": q_area(t["builtup_end_ha"], t["builtup_end_uncertainty_ha"], end),
                "built-up growth": q_area(t["builtup_growth_ha"], t["builtup_growth_uncertainty_ha"], period),
                "built-up growth (relative)": quantity(t["builtup_growth_pct"], "%", period=period, digits=1),
                "built-up growth rate": quantity(t["builtup_growth_pct_per_year"], "%/yr", period=period, digits=1),
                "new built-up on former forest": q_area(t["builtup_onto_forest_ha"], None, period),
                "new built-up patches": quantity(
                    len(r["new_patches"]), "patches", period=period, note=f">= {targets.min_patch_ha:g} ha each"
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
                        d["name"],
                        d["builtup_start_ha"],
                        d["builtup_end_ha"],
                        d["builtup_growth_ha"],
                        d["builtup_growth_uncertainty_ha"],
                        d["builtup_growth_pct"],
                        d["builtup_growth_pct_per_year"],
                        d["builtup_onto_forest_ha"],
                    ]
                    for d in districts
                ],
            },
            "figures": ["builtup_change"],
        },
        {
            "title": "New built-up patches",
            "text": f"Connected areas (4-neighbour) that became built-up between {start} and {end}, largest first "
            f"(at most 15 shown; all are in summary.json under urban.new_patches with their polygons).",
            "table": {
                "columns": ["patch", "district", "area (ha)", "of which former forest (ha)", "centroid x, y (m)"],
                "rows": [
                    [
                        p["id"],
                        p["district"],
                        p["area_ha"],
                        p["from_forest_ha"],
                        f"{p['centroid'][0]:.0f}, {p['centroid'][1]:.0f}",
                    ]
                    for p in r["new_patches"][:15]
                ],
            },
        },
        {
            "title": "Green space",
            "text": "Green space = land-cover classes " + " + ".join(GREEN_SPACE_CLASSES) + f" in {end}; per "
            "inhabitant with the district's census population of the latest year up to the month. Flagged census "
            "rows are listed: per-inhabitant figures of those districts are as good as the census.",
            "quantities": {
                "green space": q_area(t["green_ha"], t["green_uncertainty_ha"], end),
                "green share": quantity(t["green_pct"], "%", period=end, digits=1),
                "green space per inhabitant": quantity(
                    t["green_m2_per_inhabitant"], "m²/inhabitant", period=end, digits=1
                ),
                "population": quantity(t["population"], "inhabitants", period=f"census {t['census_year']}", digits=0),
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
                        d["name"],
                        d["green_ha"],
                        d["green_uncertainty_ha"],
                        d["green_pct"],
                        d["population"],
                        d["census_year"],
                        d["green_m2_per_inhabitant"],
                        ", ".join(d["census_flags"]) or "none",
                    ]
                    for d in districts
                ],
            },
        },
        {
            "title": "Road network",
            "text": f"Road length from the GIS layers as they stood in {start} and in {end} (roads filtered by "
            "start_date), clipped to each district; intersections are nodes of the noded network where three or "
            "more road ends meet.",
            "quantities": {
                f"road length {start}": quantity(t["road_km_start"], "km", period=start, digits=2),
                f"road length {end}": quantity(t["road_km_end"], "km", period=end, digits=2),
                "new roads": quantity(t["new_road_km"], "km", period=period, digits=2),
                "intersection density": quantity(t["intersections_per_km2"], "per km²", period=end, digits=1),
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
                        d["name"],
                        d["road_km_start"],
                        d["road_km_end"],
                        d["new_road_km"],
                        d["road_growth_pct"],
                        d["intersections"],
                        d["intersections_per_km2"],
                    ]
                    for d in districts
                ],
            },
            "figures": ["districts"],
        },
        {
            "title": "Recommendations",
            "text": "Rules over the numbers above, with their thresholds: "
            f"green space below {targets.green_m2_per_inhabitant:g} m²/inhabitant (the WHO-cited minimum) -> add "
            f"green space; built-up growth above {targets.builtup_growth_pct_per_year:g} %/yr with road length "
            f"growth below {targets.road_growth_pct:g} % -> plan access roads; more than "
            f"{targets.forest_conversion_ha:g} ha of new built-up on former forest -> flag."
            + ("" if recs else " No rule fired."),
            "bullets": [rec["text"] for rec in recs],
        },
    ]
    if "terrain" in r:  # numbers from memories.applications.terrain_exposure
        sections.insert(2, built_up_slope_section(r["terrain"], period))
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": view.as_of.isoformat() if view.as_of else None,
        "crs": r["crs"],
        "alerts": [rec["text"] for rec in recs],
        "sections": sections,
        "figure_data": figure_data,
        "sources": a.sources,
        "urban": r,
    }
    return Report(
        kind=REPORT_KIND,
        tile=tile,
        month=end,
        title=f"Urban planning, tile {tile}: {start} to {end}",
        summary=summary,
        figures=figures,
        captions=captions,
        headline=["builtup_change", "districts"],
        webmap=_webmap(a, base),
    )


CHANGE_COLOURS = {1: "#bdbdbd", 2: "#d62728", 3: "#1f77b4"}
"""Class code -> colour of the built-up change map: kept, new, lost."""


def _change_classes(a: UrbanAnalysis) -> np.ndarray:
    built = CLASS_BY_NAME[BUILT_UP].code
    img = np.zeros(a.grid.shape, dtype=np.uint8)
    img[(a.lc_start == built) & (a.lc_end == built)], img[a.gain], img[a.loss] = 1, 2, 3
    return img


def _plot_change(a: UrbanAnalysis, base: Basemap) -> bytes:
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    grid = a.grid
    fig, ax = plt.subplots(figsize=(8.2, 7), dpi=100)
    draw_map(
        ax,
        base,
        overlays=[class_overlay(_change_classes(a), CHANGE_COLOURS, 0.7)],
        title=f"Built-up change {a.result['start_month']} to {a.result['end_month']}, tile {grid.tile_id}",
    )
    from matplotlib import patheffects

    halo = [patheffects.Stroke(linewidth=3, foreground="black"), patheffects.Normal()]
    a.districts.geometry.boundary.plot(ax=ax, color="white", lw=1.4, zorder=3, path_effects=halo)
    for geom, label in zip(a.districts.geometry, a.districts[a.name_col], strict=True):
        c = geom.representative_point()
        ax.text(
            c.x, c.y, str(label), ha="center", fontsize=9, bbox={"facecolor": "white", "alpha": 0.7, "lw": 0}, zorder=6
        )
    for roads, color, lw in ((a.roads_start, "#e0e0e0", 0.6), (a.new_roads, "#ffea00", 1.6)):
        if len(roads):
            roads.geometry.plot(ax=ax, color=color, lw=lw, zorder=4)
    map_legend(
        ax,
        [
            Patch(color=CHANGE_COLOURS[1], label="built-up, kept"),
            Patch(color=CHANGE_COLOURS[2], label="new built-up"),
            Patch(color=CHANGE_COLOURS[3], label="built-up lost"),
            Line2D([], [], color="#ffea00", lw=2, label="new roads"),
            Line2D([], [], color="#e0e0e0", lw=1, label="roads at the start"),
            Line2D([], [], color="white", lw=1.4, path_effects=halo, label="census districts"),
        ],
        outside=True,
    )
    return png(fig)


def _webmap(a: UrbanAnalysis, base: Basemap) -> WebMap:
    web = WebMap(a.grid)
    web.add_raster("composite", base.label, base.rgba)
    web.add_raster(
        "builtup_change",
        f"built-up change {a.result['start_month']}..{a.result['end_month']}",
        class_overlay(_change_classes(a), CHANGE_COLOURS, 0.7),
    )
    web.add_vectors(
        "districts",
        "census districts",
        a.districts.geometry.boundary,
        style={"color": "#ffffff", "weight": 2},
        props=a.districts[[a.name_col]].astype(str),
    )
    if len(a.roads_start):
        web.add_vectors(
            "roads",
            f"roads {a.result['start_month']}",
            a.roads_start.geometry,
            style={"color": "#9e9e9e", "weight": 1.5},
        )
    if len(a.new_roads):
        web.add_vectors("new_roads", "new roads", a.new_roads.geometry, style={"color": "#ffea00", "weight": 3})
    return web


def _plot_districts(data: dict[str, Any], period: str) -> bytes:
    plt = pyplot()
    names = data["district"]
    x = np.arange(len(names))
    w = 0.38
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), dpi=100)
    ax = axes[0]
    ax.bar(x - w / 2, data["builtup_start_ha"], w, label="start", color="#bdbdbd")
    ax.bar(
        x + w / 2,
        data["builtup_end_ha"],
        w,
        yerr=data["builtup_end_uncertainty_ha"],
        label="end",
        color="#c0392b",
        capsize=3,
    )
    ax.set_ylabel("built-up (ha)")
    ax.set_title("Built-up area")
    ax.legend(fontsize=8)
    ax = axes[1]
    vals = [np.nan if v is None else v for v in data["green_m2_per_inhabitant"]]
    ax.bar(x, vals, 0.6, color="#2e7d32")
    ax.axhline(data["green_target_m2_per_inhabitant"], ls="--", color="k", lw=1, label="target")
    ax.set_yscale("log")
    for xi, v in zip(x, vals, strict=True):
        ax.annotate(
            "n/a" if v != v else f"{v:.0f}", (xi, v if v == v and v > 0 else 1.0), ha="center", va="bottom", fontsize=8
        )
    ax.set_ylabel("green space per inhabitant (m²)")
    ax.set_title("Green space per inhabitant")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.bar(x - w / 2, data["road_km_start"], w, label="start", color="#bdbdbd")
    ax.bar(x + w / 2, data["road_km_end"], w, label="end", color="#555")
    ax.set_ylabel("road length (km)")
    ax.set_title("Road network")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(x, names, rotation=20, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Census districts, {period}")
    return png(fig)
