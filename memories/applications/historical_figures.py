"""The historical report's figures: side-by-side maps, class areas, their timeline and the interactive map,
drawn from arrays and numbers (:mod:`memories.applications.historical_report` gathers them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from memories.applications.common import class_legend_handles
from memories.applications.maps import Basemap, class_overlay, draw_map, map_legend
from memories.applications.report import png, pyplot
from memories.applications.webmap import WebMap
from memories.classes import LAND_COVER_CLASSES, NO_LABEL

MAP_FIGURE_MAX_PX = 64
"""Maps in ``figure_data`` are sampled down to at most this many pixels a side (every k-th pixel)."""


def maps_figure(
    base: Basemap,
    then: np.ndarray,
    hist: np.ndarray | None,
    now: np.ndarray,
    changed: np.ndarray,
    date_txt: str,
    month: str,
) -> tuple[bytes, dict[str, Any]]:
    """The land cover at the date, the historical map and the changed pixels side by side over ``base``;
    and the maps sampled down to ``MAP_FIGURE_MAX_PX`` (the figure's data)."""
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


def changes_webmap(
    base: Basemap,
    then: np.ndarray,
    hist: np.ndarray | None,
    changed: np.ndarray,
    now: np.ndarray,
    date_txt: str,
    month: str,
) -> WebMap:
    """The page's interactive map: the composite, the land cover at the date, the historical map, the changes."""
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


def areas_figure(data: dict[str, list[Any]], date_txt: str, month: str) -> bytes:
    """Bars of each class's area (ha) at the date, in the month and on the historical map."""
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


def timeline_figure(data: dict[str, list[Any]], date_txt: str) -> bytes:
    """Each class's area (ha) month by month, the date marked."""
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
