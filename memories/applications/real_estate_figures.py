"""The real-estate report: a section per featured property with its map, timeline and NDVI projection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from memories.applications.common import class_legend_handles
from memories.applications.maps import basemap, class_overlay, crs_name, draw_map, map_legend
from memories.applications.report import Report, png, pyplot, quantity
from memories.applications.webmap import WebMap, add_gis_layers
from memories.classes import CLASS_BY_NAME, LAND_COVER_CLASSES
from memories.grid import TileGrid

if TYPE_CHECKING:
    from memories.applications.real_estate import RealEstateAgent


def build_report(
    agent: RealEstateAgent,
    tile: str,
    month: str,
    period: tuple[str, str],
    grid: TileGrid,
    analyses: list[dict[str, Any]],
    failures: list[str],
) -> Report:
    """The ``real_estate`` report of a tile-month from the analyses of its featured properties over ``period``
    (first month, last month); ``failures`` are the addresses that could not be analysed, with why."""
    held = list(period)
    sections: list[dict[str, Any]] = []
    figures: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    figure_data: dict[str, Any] = {}
    alerts: list[str] = []
    properties: list[dict[str, Any]] = []
    for i, a in enumerate(analyses, start=1):
        sections.append(property_section(agent, i, a, figures, captions, figure_data))
        flooded = a.get("environmental", {}).get("flood_exposure", {}).get("flooded_months", [])
        if flooded:
            alerts.append(f"{a['property']['label']}: flooded in {', '.join(flooded)} (new open water in the radius)")
        properties.append(_brief(a))
    if failures:
        sections.append({"title": "Addresses not analysed", "bullets": failures})
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": agent.view.as_of.isoformat() if agent.view.as_of else None,
        "crs": grid.crs,
        "alerts": alerts,
        "sections": sections,
        "figure_data": figure_data,
        "sources": analyses[0]["sources"] if analyses else {},
        "real_estate": {
            "radius_m": agent.radius_m,
            "period": f"{held[0]}..{month}",
            "definitions": agent.definitions(),
            "properties": properties,
            "analyses": analyses,
        },
    }
    return Report(
        kind=agent.kind,
        tile=tile,
        month=month,
        title=f"Real estate: {len(analyses)} properties on tile {tile}, {held[0]} to {month}",
        summary=summary,
        figures=figures,
        captions=captions,
        headline=[n for n in ("map_1", "timeline_1") if n in figures],
        webmap=_webmap(agent, tile, month, grid, analyses),
    )


def _webmap(agent: RealEstateAgent, tile: str, month: str, grid: TileGrid, analyses: list[dict[str, Any]]) -> WebMap:
    """The page's interactive map: the composite, the month's land cover, buildings and roads, and each featured
    property with its radius."""
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import Point

    web = WebMap(grid)
    base = basemap(agent.view, tile, month, grid)
    web.add_raster("composite", base.label, base.rgba)
    lc_months = [m for m in agent.view.months("land_cover", tile) if m <= month]
    if lc_months:
        lc = agent.array("land_cover", tile, lc_months[-1], "land_cover")
        colours = {c.code: c.color for c in LAND_COVER_CLASSES}
        web.add_raster("land_cover", f"land cover {lc_months[-1]}", class_overlay(lc, colours, 0.5), visible=False)
    add_gis_layers(web, agent.view, tile, month)
    props = [a["property"] for a in analyses if a["property"]["tile"] == tile]
    if props:
        labels = pd.DataFrame({"property": [p["label"] for p in props], "address": [a["address"] for a in analyses]})
        web.add_vectors(
            "radius",
            f"{agent.radius_m:g} m radius",
            gpd.GeoSeries([Point(p["x"], p["y"]).buffer(agent.radius_m) for p in props]),
            style={"color": "#ff00aa", "weight": 2, "fill": False},
        )
        web.add_vectors(
            "properties",
            "featured properties",
            gpd.GeoSeries([Point(p["x"], p["y"]) for p in props]),
            style={"color": "#000", "weight": 1, "fillColor": "#ff00aa", "fillOpacity": 1, "radius": 7},
            props=labels,
        )
    return web


def property_section(
    agent: RealEstateAgent,
    i: int,
    a: dict[str, Any],
    figures: dict[str, bytes],
    captions: dict[str, str],
    figure_data: dict[str, Any],
) -> dict[str, Any]:
    p = a["property"]
    tl = a["timeline"]
    first, last = tl[0], tl[-1]
    q: dict[str, Any] = {}
    if "built_up_share" in last:
        q["built-up share"] = last["built_up_share"]
        q["green space share"] = last["green_space_share"]
        q["water share"] = last["water_share"]
    if "built_up_share" in first and "built_up_share" in last and first["built_up_share"]["value"] is not None:
        q["built-up share change"] = quantity(
            (last["built_up_share"]["value"] or 0.0) - first["built_up_share"]["value"],
            "1",
            period=a["period"],
        )
    q["mean NDVI"] = last["ndvi_mean"]
    env = a.get("environmental", {})
    if env:
        q["NDVI trend"] = env["vegetation_trend"]["slope"]
        if env["flood_exposure"]["min_distance_to_water"]:
            q["least distance to open water"] = env["flood_exposure"]["min_distance_to_water"]
        q["distance to open water now"] = env["flood_exposure"]["distance_to_water"][-1]
        clim = env["climate"]
        if clim.get("available"):
            q["mean temperature"] = clim["temperature_mean"]
            q["precipitation"] = clim["precipitation_total"]
    nb = a.get("neighborhood", {})
    if "buildings" in nb:
        q["buildings in radius"] = nb["buildings"]["end"]
        q["new buildings"] = nb["buildings"]["new"]
        q["road length in radius"] = nb["roads"]["end"]
    proj = a["projections"]
    if proj["available"]:
        nxt = proj["forecast"][-1]
        q[f"projected NDVI ({agent.horizon_months} months)"] = nxt["ndvi"]
    bullets = []
    if env:
        bullets.append(f"Flood exposure: {env['flood_exposure']['statement']}.")
    if "buildings" in nb and nb["buildings"]["new_by_start_date"]:
        dates = ", ".join(f"{n} built {d}" for d, n in nb["buildings"]["new_by_start_date"].items())
        bullets.append(f"New buildings in the radius: {dates}.")
    tr = nb.get("land_cover_transitions", {})
    for t in tr.get("transitions", [])[:4]:
        bullets.append(f"{t['from']} -> {t['to']}: {t['area_m2'] / 10_000:.2f} ha ({tr['period']}).")
    if not proj["available"]:
        bullets.append(f"No projection: {proj['reason']}")
    if a.get("note"):
        bullets.append(a["note"])
    names = [f"map_{i}", f"timeline_{i}"] + ([f"forecast_{i}"] if proj["available"] else [])
    property_figures(agent, i, a, figures, captions, figure_data)
    return {
        "title": f"{i}. {p['label']} ({a['address']})",
        "text": (
            f"Within {agent.radius_m:g} m of the property (tile {p['tile']}, {p['x']:.0f} E {p['y']:.0f} N "
            f"{p['crs']}; {p['lat']:.5f}, {p['lon']:.5f}), {a['period']}. Green space = "
            f"{' + '.join(agent.green_classes)}; shares are fractions of labelled pixels."
        ),
        "quantities": q,
        "table": {
            "columns": ["month", "built-up share", "green space share", "water share", "mean NDVI"],
            "rows": [
                [
                    r["month"],
                    r.get("built_up_share", {}).get("value"),
                    r.get("green_space_share", {}).get("value"),
                    r.get("water_share", {}).get("value"),
                    r["ndvi_mean"]["value"],
                ]
                for r in tl
            ],
        },
        "bullets": bullets,
        "figures": names,
    }


def property_figures(
    agent: RealEstateAgent,
    i: int,
    a: dict[str, Any],
    figures: dict[str, bytes],
    captions: dict[str, str],
    data: dict[str, Any],
) -> None:
    from matplotlib.patches import Circle

    plt = pyplot()
    p = a["property"]
    tile, end = p["tile"], a["months"][-1]
    grid = agent.view.grid(tile)
    r = agent.radius_m
    # Map: land cover of the last month around the property, with buildings, roads and the radius.
    lc_months = [m for m in a["months"] if m in set(agent.view.months("land_cover", tile))]
    fig, ax = plt.subplots(figsize=(7.4, 5.6))
    x0, y0, x1, y1 = grid.bounds
    pad = 1.4 * r
    ex0, ex1 = max(x0, p["x"] - pad), min(x1, p["x"] + pad)
    ey0, ey1 = max(y0, p["y"] - pad), min(y1, p["y"] + pad)
    base = basemap(agent.view, tile, lc_months[-1] if lc_months else end, grid)
    overlays = []
    if lc_months:
        lc = agent.array("land_cover", tile, lc_months[-1], "land_cover")
        overlays.append(class_overlay(lc, {c.code: c.color for c in LAND_COVER_CLASSES}, 0.45))
    draw_map(
        ax,
        base,
        overlays=overlays,
        window=(ex0, ey0, ex1, ey1),
        title=f"{p['label']}: {r:g} m radius, {lc_months[-1] if lc_months else end}",
    )
    from shapely.geometry import box

    gis_month = next((m for m in reversed(agent.view.months("gis_layers", tile)) if m <= end), None)
    n_b = n_r = 0
    if gis_month:
        layers = agent.view.layers(tile, gis_month, ["buildings", "roads"])
        view_box = box(ex0, ey0, ex1, ey1)
        roads = layers["roads"][layers["roads"].intersects(view_box)]
        builds = layers["buildings"][layers["buildings"].intersects(view_box)]
        n_b, n_r = len(builds), len(roads)
        if n_r:
            roads.geometry.plot(ax=ax, color="#f1c40f", lw=1.0, zorder=3)
        if n_b:
            builds.geometry.plot(ax=ax, facecolor="#ffffff", edgecolor="#111", lw=0.4, zorder=3)
    cx, cy = p["x"], p["y"]
    ax.add_patch(Circle((cx, cy), r, fill=False, ec="#ff00aa", lw=2, zorder=5))
    ax.plot([cx], [cy], marker="*", color="#ff00aa", ms=14, mec="k", zorder=6)
    ax.set_xlim(ex0, ex1)
    ax.set_ylim(ey0, ey1)
    if lc_months:
        map_legend(ax, class_legend_handles(), outside=True)
    figures[f"map_{i}"] = png(fig)
    captions[f"map_{i}"] = (
        f"Land cover ({lc_months[-1] if lc_months else 'n/a'}) around {p['label']} over the {base.label}, with "
        f"the buildings (white) and roads (yellow) of {gis_month}; the circle is the {r:g} m radius. Axes: "
        f"longitude and latitude (WGS 84), map grid {crs_name(grid)}."
    )
    data[f"map_{i}"] = {
        "property_xy_m": [p["x"], p["y"]],
        "radius_m": r,
        "land_cover_month": lc_months[-1] if lc_months else None,
        "gis_month": gis_month,
        "buildings_drawn": n_b,
        "roads_drawn": n_r,
        "extent_m": [ex0, ey0, ex1, ey1],
    }
    # Timeline: shares and NDVI per month.
    tl = a["timeline"]
    months = [t["month"] for t in tl]
    series = {
        "built_up_share": [t.get("built_up_share", {}).get("value") for t in tl],
        "green_space_share": [t.get("green_space_share", {}).get("value") for t in tl],
        "water_share": [t.get("water_share", {}).get("value") for t in tl],
        "ndvi_mean": [t["ndvi_mean"]["value"] for t in tl],
        "ndvi_se": [t["ndvi_mean"]["uncertainty"] for t in tl],
    }
    fig, ax = plt.subplots(figsize=(8, 3.8))
    xs = np.arange(len(months))
    nan = lambda v: [np.nan if x is None else x for x in v]  # noqa: E731
    ax.plot(xs, nan(series["built_up_share"]), "-o", color=CLASS_BY_NAME["built-up"].color, label="built-up share")
    ax.plot(xs, nan(series["green_space_share"]), "-o", color=CLASS_BY_NAME["forest"].color, label="green space share")
    ax.plot(xs, nan(series["water_share"]), "-o", color=CLASS_BY_NAME["water"].color, label="water share")
    ax.plot(xs, nan(series["ndvi_mean"]), "--", color="k", label="mean NDVI")
    ax.set_ylim(min(0.0, np.nanmin(nan(series["ndvi_mean"]) + [0.0]) - 0.05), 1.0)
    step = max(1, len(months) // 12)
    ax.set_xticks(xs[::step], months[::step], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of the radius (0-1) / NDVI")
    ax.legend(fontsize=8, ncols=2)
    ax.grid(alpha=0.3)
    ax.set_title(f"{p['label']}: surroundings within {r:g} m")
    figures[f"timeline_{i}"] = png(fig)
    captions[f"timeline_{i}"] = (
        f"Monthly land-cover shares (fraction of labelled pixels) and mean NDVI within {r:g} m of {p['label']}, "
        f"{a['period']}. Green space = {' + '.join(agent.green_classes)}."
    )
    data[f"timeline_{i}"] = {"months": months, **series}
    # Forecast with its intervals.
    proj = a["projections"]
    if proj["available"]:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        fc = proj["forecast"]
        all_months = months + [f["month"] for f in fc]
        xo = np.arange(len(months))
        xf = np.arange(len(months), len(all_months))
        ax.plot(xo, nan(series["ndvi_mean"]), "-o", color="k", label="observed mean NDVI")
        ax.plot(xf, [f["ndvi"]["value"] for f in fc], "-o", color="#1f77b4", label="forecast")
        ax.fill_between(
            xf,
            [f["lower"] for f in fc],
            [f["upper"] for f in fc],
            color="#1f77b4",
            alpha=0.25,
            label=proj["interval"] + " interval",
        )
        step = max(1, len(all_months) // 12)
        ax.set_xticks(np.arange(len(all_months))[::step], all_months[::step], rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("NDVI")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_title(f"{p['label']}: NDVI projection, ARIMA{tuple(proj['order'])}")
        figures[f"forecast_{i}"] = png(fig)
        captions[f"forecast_{i}"] = (
            f"Mean NDVI within {r:g} m of {p['label']}, observed {proj['fitted_to']} and forecast "
            f"{proj['horizon_months']} months ahead with {proj['interval']} prediction intervals."
        )
        data[f"forecast_{i}"] = {
            "observed_months": months,
            "observed": series["ndvi_mean"],
            "months": [f["month"] for f in fc],
            "mean": [f["ndvi"]["value"] for f in fc],
            "lower": [f["lower"] for f in fc],
            "upper": [f["upper"] for f in fc],
        }


def _brief(a: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable key numbers of one analysis (for tests, the server and the preview)."""
    tl = a["timeline"]
    out: dict[str, Any] = {
        "address": a["address"],
        "label": a["property"]["label"],
        "tile": a["property"]["tile"],
        "x": a["property"]["x"],
        "y": a["property"]["y"],
        "built_up_share": [t.get("built_up_share", {}).get("value") for t in tl],
        "months": [t["month"] for t in tl],
    }
    env = a.get("environmental")
    if env:
        out["flooded_months"] = env["flood_exposure"]["flooded_months"]
        out["ndvi_trend"] = env["vegetation_trend"]["slope"]
    nb = a.get("neighborhood", {})
    if "buildings" in nb:
        out["new_buildings_by_start_date"] = nb["buildings"]["new_by_start_date"]
    return out
