"""The historical report: the state at the reconstructed date, each source's uncertainty, the historical
map against the memory, and what changed since, with side-by-side maps, class areas and their timeline.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from memories.applications.common import class_legend_handles, pixel_ha
from memories.applications.maps import Basemap, basemap, class_overlay, crs_name, draw_map, map_legend
from memories.applications.report import Report, png, pyplot, quantity
from memories.applications.webmap import WebMap, add_gis_layers
from memories.classes import CLASS_BY_CODE, CLASS_BY_NAME, LAND_COVER_CLASSES, NO_LABEL
from memories.grid import TileGrid
from memories.memory.view import MemoryView

BUILT_UP = CLASS_BY_NAME["built-up"].code
MAP_FIGURE_MAX_PX = 64
"""Maps in ``figure_data`` are sampled down to at most this many pixels a side (every k-th pixel)."""


def build_report(
    *,
    kind: str,
    view: MemoryView,
    tile: str,
    month: str,
    date_txt: str,
    lc_months: list[str],
    then: dict[str, Any],
    now: dict[str, Any],
    hist: dict[str, Any] | None,
    agreement: dict[str, Any] | None,
    timeline: dict[str, list[Any]],
) -> Report:
    """The historical report of ``tile`` for ``month`` from the reconstructions at the date (``then``) and in
    the month (``now``), the historical map and its ``agreement`` with the earliest land cover (or None), and
    the class areas (ha) of every month in ``timeline``."""
    grid: TileGrid = then["grid"]
    px_ha = pixel_ha(grid)

    a, b = then["land_cover"], now["land_cover"]
    changed = (a > 0) & (b > 0) & (a != b)
    transitions = _transitions(a, b, changed, px_ha)
    rows_area: list[list[Any]] = []
    area_data: dict[str, list[Any]] = {"class": [], "at_date_ha": [], "at_month_ha": [], "historical_map_ha": []}
    for c in LAND_COVER_CLASSES:
        qa, qb = then["class_area_ha"][c.name], now["class_area_ha"][c.name]
        hm = float((hist["classes"] == c.code).sum() * px_ha) if hist else None
        rows_area.append([c.name, qa["value"], qb["value"], qb["value"] - qa["value"], hm])
        area_data["class"].append(c.name)
        area_data["at_date_ha"].append(qa["value"])
        area_data["at_month_ha"].append(qb["value"])
        area_data["historical_map_ha"].append(hm)
    built_gain = float(((b == BUILT_UP) & (a != BUILT_UP) & (a > 0)).sum() * px_ha)
    built_loss = float(((a == BUILT_UP) & (b != BUILT_UP) & (b > 0)).sum() * px_ha)

    figures, captions, figure_data = {}, {}, {}
    base = basemap(view, tile, month, grid)
    figures["maps"], figure_data["maps"] = _maps_figure(
        base, a, hist["classes"] if hist else None, b, changed, date_txt, month
    )
    captions["maps"] = (
        f"Left: land cover the memory holds for {date_txt} (from {then['land_cover_month']}). Middle: the "
        "georeferenced historical map (the composite shows through outside the sheet). Right: pixels whose class "
        f"changed between {date_txt} and {month}, coloured by their class in {month}. All over the {base.label}; "
        f"axes: longitude and latitude (WGS 84), map grid {crs_name(grid)}."
    )
    webmap = _webmap(base, a, hist["classes"] if hist else None, changed, b, date_txt, month)
    add_gis_layers(webmap, view, tile, month)
    figures["class_areas"] = _areas_figure(area_data, date_txt, month)
    figure_data["class_areas"] = area_data
    captions["class_areas"] = f"Area of each land-cover class (ha) at {date_txt}, in {month} and on the historical map."
    figures["timeline"] = _timeline_figure(timeline, date_txt)
    figure_data["timeline"] = timeline
    captions["timeline"] = f"Area of each land-cover class (ha) in every month the memory holds up to {month}."

    lcu = then["land_cover_uncertainty"]
    sections: list[dict[str, Any]] = [
        {
            "title": f"State at {date_txt}",
            "text": f"Rebuilt from the memory's valid time: land cover of {then['land_cover_month']}, GIS layers "
            f"of {then['gis']['month']} filtered to features started on or before {date_txt}, spectral indices "
            f"of {then['indices'].get('month', 'n/a')}.",
            "quantities": {
                **{f"{name} area": q for name, q in then["class_area_ha"].items()},
                "buildings": quantity(
                    then["gis"]["buildings"],
                    "count",
                    period=date_txt,
                    digits=0,
                    note="GIS, date filter on start_date",
                ),
                "building footprint": quantity(then["gis"]["building_area_ha"], "ha", period=date_txt),
                "road length": quantity(then["gis"]["road_km"], "km", period=date_txt),
                **{f"mean {k.upper()}": v for k, v in then["indices"].items() if isinstance(v, dict)},
            },
            "figures": ["maps"],
        },
        {
            "title": "Uncertainty of each source",
            "table": {
                "columns": ["source", "record", "uncertainty"],
                "rows": _uncertainty_rows(then, hist),
            },
            "quantities": {
                "land-cover validation accuracy": quantity(
                    lcu.get("val_accuracy"), "1", note=lcu.get("source") or "", digits=4
                ),
                "land-cover mean MC-dropout confidence": quantity(
                    lcu.get("mean_confidence"), "1", digits=4, period=then["land_cover_month"]
                ),
                "land-cover month gap": quantity(then["land_cover_gap_months"], "months", digits=0),
                "GIS month gap": quantity(then["gis"]["gap_months"], "months", digits=0),
                **(hist["uncertainty"] if hist else {}),
            },
        },
    ]
    if hist and agreement:
        sections.append(
            {
                "title": "Historical map against the memory",
                "text": f"The historical map compared with the memory's land cover of {lc_months[0]}, the earliest "
                f"month it holds, over the {agreement['compared_ha']:.1f} ha both label. Away from edges: pixels "
                f"more than {agreement['edge_px']} px (the LOO RMSE, rounded up) from a class edge of the map.",
                "quantities": {
                    "agreement": quantity(
                        agreement["overall"] * 100 if agreement["overall"] is not None else None,
                        "%",
                        period=lc_months[0],
                        digits=2,
                    ),
                    "agreement away from class edges": quantity(
                        agreement["overall_away_from_edges"] * 100
                        if agreement["overall_away_from_edges"] is not None
                        else None,
                        "%",
                        period=lc_months[0],
                        digits=2,
                    ),
                    "mapped share of the tile": quantity(hist["mapped_fraction"] * 100, "%", digits=1),
                },
                "table": {
                    "columns": ["class (map)", "map area ha", "agreement %"],
                    "rows": [
                        [name, v["map_area_ha"], None if v["agreement"] is None else v["agreement"] * 100]
                        for name, v in agreement["per_class"].items()
                    ],
                },
            }
        )
    if hist and hist["residuals"]:
        cols = ["id", "dx", "dy", "residual_m", "loo_residual_m"]
        sections.append(
            {
                "title": "Georeferencing residuals of the historical map",
                "text": "Per ground control point: fitted minus surveyed map position (dx, dy, m), its length, and "
                "the leave-one-out residual (the GCP predicted by a fit without it), metres.",
                "table": {
                    "columns": ["GCP", "dx m", "dy m", "residual m", "LOO residual m"],
                    "rows": [[r.get(c) for c in cols] for r in hist["residuals"]],
                },
            }
        )
    sections.append(
        {
            "title": f"What changed from {date_txt} to {month}",
            "quantities": {
                "changed area": quantity(float(changed.sum() * px_ha), "ha", period=f"{date_txt}..{month}"),
                "built-up gained": quantity(built_gain, "ha", period=f"{date_txt}..{month}"),
                "built-up lost": quantity(built_loss, "ha", period=f"{date_txt}..{month}"),
                "buildings added (GIS)": quantity(
                    now["gis"]["buildings"] - then["gis"]["buildings"],
                    "count",
                    digits=0,
                    period=f"{date_txt}..{month}",
                ),
                "roads added (GIS)": quantity(
                    now["gis"]["road_km"] - then["gis"]["road_km"], "km", period=f"{date_txt}..{month}"
                ),
            },
            "table": {
                "columns": ["class", f"{date_txt} ha", f"{month} ha", "change ha", "historical map ha"],
                "rows": rows_area,
            },
            "bullets": [f"{t['from']} → {t['to']}: {t['area_ha']:.2f} ha" for t in transitions[:8]],
            "figures": ["class_areas", "timeline"],
        }
    )
    sources = {**then["sources"], **{k: v for k, v in now["sources"].items()}}
    if hist:
        sources["historical map"] = hist["source"]
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": view.as_of.isoformat() if view.as_of else None,
        "crs": grid.crs,
        "sections": sections,
        "figure_data": figure_data,
        "sources": sources,
        "historical": {
            "date": then["date"],
            "land_cover_month": then["land_cover_month"],
            "land_cover_gap_months": then["land_cover_gap_months"],
            "land_cover_uncertainty": then["land_cover_uncertainty"],
            "class_area_ha": {k: q["value"] for k, q in then["class_area_ha"].items()},
            "class_area_ha_month": {k: q["value"] for k, q in now["class_area_ha"].items()},
            "built_up_gained_ha": built_gain,
            "built_up_lost_ha": built_loss,
            "changed_ha": float(changed.sum() * px_ha),
            "transitions": transitions,
            "gis": {k: v for k, v in then["gis"].items()},
            "gis_month": {k: v for k, v in now["gis"].items()},
            "historical_map": None
            if hist is None
            else {
                "georeference": hist["georeference"],
                "mapped_fraction": hist["mapped_fraction"],
                "agreement": agreement,
                "residuals": hist["residuals"],
            },
        },
    }
    return Report(
        kind=kind,
        tile=tile,
        month=month,
        title=f"Historical reconstruction of {tile}: {date_txt} and {month}",
        summary=summary,
        figures=figures,
        captions=captions,
        headline=["maps", "class_areas"],
        webmap=webmap,
    )


def _transitions(a: np.ndarray, b: np.ndarray, changed: np.ndarray, px_ha: float) -> list[dict[str, Any]]:
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


def _uncertainty_rows(then: dict[str, Any], hist: dict[str, Any] | None) -> list[list[Any]]:
    lcu = then["land_cover_uncertainty"]
    acc = lcu.get("val_accuracy")
    lc_text = (
        f"{lcu['model_id']}: validation accuracy {acc * 100:.2f} % ({lcu['source']})"
        if acc is not None
        else f"{lcu.get('model_id')}: accuracy unknown ({lcu['source']})"
    )
    if lcu.get("mean_confidence") is not None:
        lc_text += f"; mean MC-dropout confidence {lcu['mean_confidence']:.3f}"
    if then["land_cover_gap_months"]:
        lc_text += f"; {then['land_cover_gap_months']} month(s) from the date"
    gis = then["gis"]
    gis_text = f"{gis['date_filter']} ({sum(gis['left_out'].values())} later features left out)"
    if gis["gap_months"]:
        gis_text += f"; layers of {gis['month']}, {gis['gap_months']} month(s) from the date"
    rows = [
        ["land cover", then["land_cover_month"], lc_text],
        ["GIS layers", gis["month"], gis_text],
    ]
    idx = then["indices"]
    if idx:
        rows.append(["spectral indices", idx["month"], f"{idx['gap_months']} month(s) from the date; tile mean ± std"])
    if hist:
        g = hist["georeference"]
        res = hist["grid"].resolution
        rows.append(
            [
                "historical map",
                f"{g.get('method')} order {g.get('order')}, {g.get('gcps')} GCPs",
                f"positional: RMSE {g['rmse_m']:.2f} m ({g['rmse_m'] / res:.2f} px), LOO RMSE "
                f"{g.get('loo_rmse_m', float('nan')):.2f} m ({g.get('loo_rmse_m', float('nan')) / res:.2f} px)",
            ]
        )
    return rows


def _maps_figure(
    base: Basemap,
    then: np.ndarray,
    hist: np.ndarray | None,
    now: np.ndarray,
    changed: np.ndarray,
    date_txt: str,
    month: str,
) -> tuple[bytes, dict[str, Any]]:
    plt = pyplot()

    panels = [
        (f"memory, {date_txt}", then),
        ("historical map", hist if hist is not None else np.zeros_like(then)),
        (f"changed {date_txt} → {month}", np.where(changed, now, NO_LABEL)),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    for ax, (title, arr) in zip(axes, panels, strict=True):
        draw_map(ax, base, overlays=[class_overlay(arr, CLASS_COLOURS, 0.75)], title=title)
    map_legend(axes[-1], class_legend_handles(), outside=True)
    step = max(1, math.ceil(max(then.shape) / MAP_FIGURE_MAX_PX))
    data = {
        "sampled_every_px": step,
        "class_codes": {c.name: c.code for c in LAND_COVER_CLASSES},
        "memory_at_date": then[::step, ::step].tolist(),
        "historical_map": hist[::step, ::step].tolist() if hist is not None else None,
        "changed_to": np.where(changed, now, NO_LABEL)[::step, ::step].tolist(),
    }
    buf = png(fig)
    return buf, data


CLASS_COLOURS = {c.code: c.color for c in LAND_COVER_CLASSES}
"""Land-cover class code -> colour of the class overlays (code 0, no label, transparent)."""


def _webmap(
    base: Basemap,
    then: np.ndarray,
    hist: np.ndarray | None,
    changed: np.ndarray,
    now: np.ndarray,
    date_txt: str,
    month: str,
) -> WebMap:
    web = WebMap(base.grid)
    web.add_raster("composite", base.label, base.rgba)
    web.add_raster(
        "land_cover_then", f"land cover, {date_txt}", class_overlay(then, CLASS_COLOURS, 0.75), visible=False
    )
    if hist is not None:
        web.add_raster("historical_map", "historical map", class_overlay(hist, CLASS_COLOURS, 0.75), visible=False)
    web.add_raster(
        "changed", f"changed {date_txt} → {month}", class_overlay(np.where(changed, now, NO_LABEL), CLASS_COLOURS, 0.8)
    )
    return web


def _areas_figure(data: dict[str, list[Any]], date_txt: str, month: str) -> bytes:
    plt = pyplot()
    x = np.arange(len(data["class"]))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.27, data["at_date_ha"], 0.27, label=date_txt, color="#7f8c8d")
    ax.bar(x, data["at_month_ha"], 0.27, label=month, color="#2c3e50")
    if any(v is not None for v in data["historical_map_ha"]):
        ax.bar(x + 0.27, [v or 0 for v in data["historical_map_ha"]], 0.27, label="historical map", color="#d4a373")
    ax.set_xticks(x, data["class"])
    ax.set_ylabel("area (ha)")
    ax.legend()
    return png(fig)


def _timeline_figure(data: dict[str, list[Any]], date_txt: str) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    months = data["month"]
    for c in LAND_COVER_CLASSES:
        ax.plot(months, data[c.name], marker="o", ms=3, color=c.color, label=c.name)
    if date_txt[:7] in months:
        ax.axvline(months.index(date_txt[:7]), color="#555", ls="--", lw=1)
    ax.set_ylabel("area (ha)")
    ax.tick_params(axis="x", rotation=60)
    ax.legend(fontsize=8, ncol=3)
    return png(fig)
