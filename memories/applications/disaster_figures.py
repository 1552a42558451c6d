"""The disaster report: sections, figures and summary of a :class:`~memories.applications.disaster.DisasterAnalyzer`
analysis (before / during / after maps, the recovery curve, affected buildings by type).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from memories.applications.common import span
from memories.applications.maps import STRETCH, basemap, class_overlay, crs_name, draw_map, map_legend
from memories.applications.report import Report, png, pyplot, quantity
from memories.applications.terrain_exposure import flood_terrain_section
from memories.applications.webmap import WebMap
from memories.errors import MissingDataError
from memories.grid import TileGrid
from memories.memory.view import describe

if TYPE_CHECKING:
    from memories.applications.disaster import DisasterAnalyzer


def build_report(an: DisasterAnalyzer, a: dict[str, Any], grid: TileGrid, tile: str, month: str) -> Report:
    """The disaster report of ``tile`` for ``month`` from the analysis ``a`` of :meth:`DisasterAnalyzer.analyze`.

    Areas in ha, road lengths in km; the summary holds the analysis under ``disaster`` (without its masks
    and geometry) and ``area_in_month_ha``, the area under the hazard in ``month``.
    """
    th = an.thresholds
    hz = an.hazard
    what = "flooded" if hz == "flood" else "burned"
    period_event = a.get("event_month")
    sections: list[dict[str, Any]] = []
    figures: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    figure_data: dict[str, Any] = {}
    alerts: list[str] = []
    view = an.view
    webmap: WebMap | None = None
    sources = {f"spectral_indices {m}": describe(view.record("spectral_indices", tile, m)) for m in a["months"]}

    if period_event is None:
        sections.append(
            {
                "title": f"No {hz} found",
                "text": (
                    f"No month up to {month} shows a new {what} footprint of at least {th.min_event_ha} ha "
                    f"({a['index'].upper()}, {len(a['months'])} months read)."
                ),
                "quantities": {
                    "open water in the baseline" if hz == "flood" else "burned ground in the baseline": quantity(
                        next(iter(a["before"].values())), "ha", period=span(a["baseline_months"])
                    )
                },
            }
        )
        now_ha = 0.0
        headline: list[str] = []
    else:
        d = a["during"]
        after = a["after"]
        now = next((x for x in after if x["month"] == month), None)
        now_ha = d["area_ha"] if month == period_event else (now["still_ha"] if now else 0.0)
        others = ", ".join(f"{c['month']} ({c['area_ha']:.1f} ha)" for c in a["others"]) or "none"
        sections.append(
            {
                "title": "Event",
                "text": (
                    f"The largest {hz} the memory shows up to {month} is in {period_event} "
                    f"({'new open water beyond the baseline' if hz == 'flood' else 'NBR drop'}); "
                    f"other months above {th.min_event_ha} ha: {others}."
                ),
                "table": {
                    "columns": ["month", f"new {what} area in the median (ha)"],
                    "rows": [[c["month"], c["area_ha"]] for c in a["candidates"]],
                },
            }
        )
        key = "baseline_water_ha" if hz == "flood" else "baseline_burned_ha"
        sections.append(
            {
                "title": "Before",
                "text": (
                    f"Baseline: {span(a['baseline_months'])}; "
                    + (
                        "open water = NDWI > 0 in most of those monthly composites (river, lakes), excluded from "
                        "the flood."
                        if hz == "flood"
                        else "burned ground = NBR < 0 in most of those months, excluded from the burn."
                    )
                ),
                "quantities": {
                    "open water in the baseline" if hz == "flood" else "burned ground in the baseline": quantity(
                        a["before"][key], "ha", period=span(a["baseline_months"])
                    ),
                    f"baseline {a['index'].upper()} median over the footprint": quantity(
                        a["before"]["baseline_index_median"], "1", period=span(a["baseline_months"])
                    ),
                },
            }
        )
        sections.append(
            {
                "title": "During",
                "text": (
                    f"{what.capitalize()} area in {period_event}: the pixels that show it in the monthly median "
                    "(visible) grown into connected pixels that show it in only part of the month's clear "
                    "observations (partly visible: NDWI risen above the baseline or a jump of the NIR spread). "
                    "Uncertainty: half the edge pixels plus the pixels with no clear observation next to it."
                ),
                "quantities": {
                    f"{what} area": quantity(
                        d["area_ha"], "ha", period=period_event, uncertainty=d["area_uncertainty_ha"], digits=2
                    ),
                    "visible in the monthly median": quantity(d["visible_ha"], "ha", period=period_event, digits=2),
                    "partly visible (part of the month)": quantity(
                        d["partly_visible_ha"],
                        "ha",
                        period=period_event,
                        digits=2,
                        note="water in fewer clear observations than land: hidden by the median",
                    ),
                    "edge pixels": quantity(d["edge_ha"], "ha", period=period_event, digits=2),
                    "unobserved next to it": quantity(d["unobserved_ha"], "ha", period=period_event, digits=2),
                    "patches": quantity(d["patches"], "patches", period=period_event, digits=0),
                    "clear-sky coverage of the tile": quantity(100 * d["clear_coverage"], "%", period=period_event),
                    "clear observations over the footprint": quantity(
                        None if d["footprint_clear_obs_share"] is None else 100 * d["footprint_clear_obs_share"],
                        "%",
                        period=period_event,
                        note=d["coverage_source"],
                    ),
                },
                "figures": ["maps"],
            }
        )
        sections.append(
            {
                "title": "After",
                "text": (
                    f"Month by month after {period_event}: the part of the footprint still "
                    f"{'under water' if hz == 'flood' else 'burned (NBR below the baseline)'}; uncertainty: "
                    "footprint pixels without a clear observation that month."
                ),
                "table": {
                    "columns": ["month", "still (ha)", "± (ha)", "recovered (%)", "clear coverage of footprint (%)"],
                    "rows": [
                        [
                            x["month"],
                            x["still_ha"],
                            x["still_uncertainty_ha"],
                            None if x["recovered_fraction"] is None else 100 * x["recovered_fraction"],
                            None if x["footprint_clear_coverage"] is None else 100 * x["footprint_clear_coverage"],
                        ]
                        for x in after
                    ],
                },
                "figures": ["recovery"],
            }
        )
        bl, rd = a["buildings"], a["roads"]
        sections.append(
            {
                "title": "Affected buildings and roads",
                "text": (
                    f"Buildings whose footprint intersects the {what} area, and road length inside it, from the "
                    f"GIS layers as they stood at the end of {period_event}."
                ),
                "quantities": {
                    "affected buildings": quantity(bl["count"], "buildings", period=period_event, digits=0),
                    f"road length {what}": quantity(rd["km"], "km", period=period_event, digits=3),
                    "road segments touched": quantity(rd["segments"], "segments", period=period_event, digits=0),
                },
                "table": {
                    "columns": ["osm_id", "building", "name", "address"],
                    "rows": [[r["osm_id"], r["building"], r["name"], r["address"]] for r in bl["list"][:200]],
                },
                "bullets": [f"{k}: {v:.3f} km" for k, v in sorted(rd["by_highway"].items())],
                "figures": ["buildings_by_type"],
            }
        )
        if "terrain" in a:  # numbers from memories.applications.terrain_exposure
            sections.append(flood_terrain_section(a["terrain"], period_event))
        if a["during"] and a["during"]["partly_visible_ha"] > 0:
            share = d["partly_visible_ha"] / d["area_ha"]
            sections.append(
                {
                    "title": "How much of it the monthly median hides",
                    "text": (
                        f"{100 * share:.0f} % of the footprint is not {what} in the {period_event} median composite: "
                        "the hazard lasted only part of the month or its days were cloudier than the rest, so those "
                        "pixels had more clear observations without it. They are counted in the area because their "
                        "observations mixed both states (NIR spread or NDWI rise); a detector on the median alone "
                        f"would report {d['visible_ha']:.1f} ha instead of {d['area_ha']:.1f} ha."
                    ),
                }
            )
        figures["maps"], webmap = _plot_maps(a, grid, month, view)
        captions["maps"] = (
            f"Before ({span(a['baseline_months'])}), during ({period_event}) and after (last month read, "
            f"{a['after'][-1]['month'] if a['after'] else period_event}), each over that month's true-colour "
            f"composite (reflectance {STRETCH[0]:g}–{STRETCH[1]:g}); buildings hit (yellow) and {what} roads "
            f"(magenta) from the GIS layers of {period_event}. Axes: longitude and latitude (WGS 84); map grid "
            f"{crs_name(grid)}."
        )
        figures["recovery"] = _plot_recovery(a)
        captions["recovery"] = f"{what.capitalize()} area per month (ha), ± its uncertainty; tile {tile}."
        figures["buildings_by_type"] = _plot_buildings(a)
        captions["buildings_by_type"] = f"Affected buildings by OSM building type (count), {period_event}."
        figure_data = {
            "maps": {
                "baseline_ha": next(iter(a["before"].values())),
                "during_ha": d["area_ha"],
                "after_ha": a["after"][-1]["still_ha"] if a["after"] else d["area_ha"],
                "footprint_wkt": a["footprint"].simplify(grid.resolution / 2).wkt if a["footprint"] else None,
            },
            "recovery": {
                "months": [period_event, *(x["month"] for x in after)],
                "area_ha": [d["area_ha"], *(x["still_ha"] for x in after)],
                "uncertainty_ha": [d["area_uncertainty_ha"], *(x["still_uncertainty_ha"] for x in after)],
            },
            "buildings_by_type": bl["by_type"],
        }
        headline = ["maps", "recovery"]
        for m in {period_event, *(x["month"] for x in after)}:
            for asset in ("surface_reflectance", "gis_layers"):
                try:
                    sources[f"{asset} {m}"] = describe(view.record(asset, tile, m))
                except MissingDataError:
                    pass
    if now_ha > th.alert_ha:
        state = "under water" if hz == "flood" else "burned"
        alerts.append(f"{now_ha:.1f} ha {state} in {month} on tile {tile} (threshold {th.alert_ha} ha)")
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": view.as_of.isoformat() if view.as_of else None,
        "crs": grid.crs,
        "alerts": alerts,
        "sections": sections,
        "figure_data": figure_data,
        "sources": sources,
        "disaster": _jsonable(a),
        "area_in_month_ha": now_ha,
    }
    title = f"{'Flood' if hz == 'flood' else 'Burn'} analysis, tile {tile}, {month}"
    if webmap is None:  # no event: the month's composite and the baseline
        webmap = WebMap(grid)
        base = basemap(view, tile, month, grid)
        webmap.add_raster("composite", base.label, base.rgba)
        webmap.add_raster(
            "baseline",
            "baseline water" if hz == "flood" else "burned before",
            class_overlay(a["masks"]["baseline"].astype(np.uint8), {1: "#2e86de"}, 0.65),
        )
    return Report(an.kind, tile, month, title, summary, figures, captions, headline, webmap=webmap)


def _jsonable(a: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in a.items() if k not in ("masks", "footprint")}
    if out.get("during"):
        out["during"] = {k: v for k, v in out["during"].items()}
    return out


def _plot_maps(a: dict[str, Any], grid: TileGrid, month: str, view: Any) -> tuple[bytes, WebMap]:
    """The before / during / after maps over each month's true-colour composite, the affected buildings and
    flooded roads on top; and the page's interactive map of the same layers."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    m = a["masks"]
    last = a["after"][-1]["month"] if a["after"] else a["event_month"]
    label = "flood" if a["hazard"] == "flood" else "burn"
    colours = {1: "#2e86de", 2: "#e74c3c", 3: "#f39c12"}
    panels = [
        (f"before: baseline {span(a['baseline_months'])}", a["baseline_months"][-1], m["baseline"], None),
        (
            f"during: {a['event_month']}",
            a["event_month"],
            m["baseline"],
            (m["visible"], m["footprint"] & ~m["visible"]),
        ),
        (f"after: still in {last}", last, m["baseline"], (m["last"], np.zeros_like(m["last"]))),
    ]
    gis = _affected_layers(view, a["tile"], a["event_month"], a["footprint"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.9), dpi=90)
    bases = []
    for ax, (title, when, base, hit) in zip(axes, panels, strict=True):
        img = np.zeros(grid.shape, dtype=np.uint8)
        img[base] = 1
        if hit is not None:
            img[hit[1]] = 3
            img[hit[0]] = 2
        bm = basemap(view, a["tile"], when, grid)
        bases.append(bm)
        draw_map(ax, bm, overlays=[class_overlay(img, colours, 0.65)], title=f"{title} · composite {bm.month or 'n/a'}")
        if gis is not None and hit is not None:
            _draw_affected(ax, gis)
    handles: list[Any] = [
        Patch(color=colours[1], label="baseline water" if label == "flood" else "burned before"),
        Patch(color=colours[2], label=f"{label}, visible in the median"),
        Patch(color=colours[3], label=f"{label}, part of the month"),
    ]
    if gis is not None:
        handles += [
            Patch(facecolor="#ffea00", edgecolor="black", label="buildings hit"),
            Line2D([], [], color="#ff00ff", lw=2, label=f"roads {label}ed" if label == "flood" else "roads burned"),
        ]
    map_legend(axes[2], handles, outside=True)
    fig.suptitle(f"tile {a['tile']}, report {month}")
    web = WebMap(grid)
    during = bases[1]
    web.add_raster("composite", during.label, during.rgba)
    web.add_raster(
        "baseline",
        "baseline water" if label == "flood" else "burned before",
        class_overlay(m["baseline"].astype(np.uint8), {1: colours[1]}, 0.65),
    )
    fp = np.zeros(grid.shape, dtype=np.uint8)
    fp[m["footprint"] & ~m["visible"]] = 3
    fp[m["visible"]] = 2
    web.add_raster("footprint", f"{label} {a['event_month']}", class_overlay(fp, colours, 0.65))
    web.add_raster(
        "still",
        f"still {'under water' if label == 'flood' else 'burned'} in {last}",
        class_overlay(m["last"].astype(np.uint8), {1: "#8e44ad"}, 0.6),
        visible=False,
    )
    if gis is not None:
        b, hit_b, r, inside = gis
        web.add_vectors(
            "buildings",
            f"buildings ({a['event_month']})",
            b.geometry[~hit_b],
            style={"color": "#333", "weight": 1, "fillOpacity": 0.3},
            visible=False,
        )
        web.add_vectors(
            "buildings_hit",
            "buildings hit",
            b.geometry[hit_b],
            style={"color": "#000", "weight": 1, "fillColor": "#ffea00", "fillOpacity": 0.9},
            props=_props(b[hit_b], ["osm_id", "building", "name"]),
        )
        web.add_vectors("roads", f"roads ({a['event_month']})", r.geometry, style={"color": "#555", "weight": 1.5})
        web.add_vectors(
            "roads_hit",
            f"roads {label}ed" if label == "flood" else "roads burned",
            inside,
            style={"color": "#ff00ff", "weight": 3},
        )
    return png(fig), web


def _affected_layers(
    view: Any, tile: str, month: str | None, footprint: Any
) -> tuple[Any, np.ndarray, Any, Any] | None:
    """(buildings, which intersect the footprint, roads, road parts inside it) of the event month's GIS layers;
    None when the memory holds no layers of that month or there is no footprint."""
    if month is None or footprint is None or footprint.is_empty:
        return None
    try:
        layers = view.layers(tile, month, ["buildings", "roads"])
    except MissingDataError:
        return None
    import geopandas as gpd
    import shapely

    b, r = layers["buildings"], layers["roads"]
    hit = np.asarray(shapely.intersects(footprint, b.geometry.values), dtype=bool) if len(b) else np.zeros(0, bool)
    inside = gpd.GeoSeries(shapely.intersection(r.geometry.values, footprint), crs=r.crs) if len(r) else r.geometry
    inside = inside[~inside.is_empty] if len(inside) else inside
    return b, hit, r, inside


def _draw_affected(ax: Any, gis: tuple[Any, np.ndarray, Any, Any]) -> None:
    b, hit, r, inside = gis
    if len(r):
        r.geometry.plot(ax=ax, color="#bdbdbd", lw=0.7, zorder=3)
    if len(inside):
        inside.plot(ax=ax, color="#ff00ff", lw=1.6, zorder=4)
    if hit.any():
        b.geometry[hit].plot(ax=ax, facecolor="#ffea00", edgecolor="black", lw=0.4, zorder=4)


def _props(frame: Any, columns: list[str]) -> Any:
    """The ``columns`` of ``frame`` that it has, as plain text (the interactive map's popups)."""
    cols = [c for c in columns if c in frame.columns]
    return frame[cols].astype(str).where(frame[cols].notna(), None) if cols else None


def _plot_recovery(a: dict[str, Any]) -> bytes:
    plt = pyplot()
    d = a["during"]
    months = [a["event_month"], *(x["month"] for x in a["after"])]
    area = [d["area_ha"], *(x["still_ha"] for x in a["after"])]
    unc = [d["area_uncertainty_ha"], *(x["still_uncertainty_ha"] for x in a["after"])]
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=90)
    ax.errorbar(months, area, yerr=unc, marker="o", capsize=3, color="#c0392b")
    ax.set_ylabel("area (ha)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{a['hazard']} area after {a['event_month']}, tile {a['tile']}")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return png(fig)


def _plot_buildings(a: dict[str, Any]) -> bytes:
    plt = pyplot()
    by = a["buildings"]["by_type"]
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=90)
    if by:
        ax.bar(list(by), list(by.values()), color="#34495e")
    else:
        ax.text(0.5, 0.5, "no building affected", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("buildings (count)")
    ax.set_title(f"affected buildings by type, {a['event_month']}")
    return png(fig)
