"""The urban report's figures: the built-up change map, the district bars, the web map, the land-use and
saliency figures. Plots only: arrays and analysis fields in, PNG bytes (or a :class:`WebMap`) out."""

from __future__ import annotations

from typing import Any

import numpy as np

from memories.applications.maps import class_overlay, draw_map, map_legend
from memories.applications.report import png, pyplot
from memories.applications.urban_metrics import BUILT_UP, UrbanAnalysis
from memories.applications.webmap import WebMap
from memories.classes import CLASS_BY_NAME, LAND_COVER_CLASSES

BUILT_UP_CODE = CLASS_BY_NAME[BUILT_UP].code


CHANGE_COLOURS = {1: "#bdbdbd", 2: "#d62728", 3: "#1f77b4"}
"""Class code -> colour of the built-up change map: kept, new, lost."""


def change_classes(a: UrbanAnalysis) -> np.ndarray:
    """uint8 (y, x): 1 built-up kept, 2 new built-up, 3 built-up lost, 0 otherwise."""
    built = BUILT_UP_CODE
    img = np.zeros(a.grid.shape, dtype=np.uint8)
    img[(a.lc_start == built) & (a.lc_end == built)], img[a.gain], img[a.loss] = 1, 2, 3
    return img


def change_map(a: UrbanAnalysis) -> bytes:
    """The built-up change map over the base, with districts and roads."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    grid = a.grid
    fig, ax = plt.subplots(figsize=(8.2, 7), dpi=100)
    draw_map(
        ax,
        a.base,
        overlays=[class_overlay(change_classes(a), CHANGE_COLOURS, 0.7)],
        title=f"Built-up change {a.start_month} to {a.end_month}, tile {grid.tile_id}",
    )
    from matplotlib import patheffects

    halo = [patheffects.Stroke(linewidth=3, foreground="black"), patheffects.Normal()]
    a.district_frame.geometry.boundary.plot(ax=ax, color="white", lw=1.4, zorder=3, path_effects=halo)
    for geom, label in zip(a.district_frame.geometry, a.district_frame[a.name_col], strict=True):
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


def urban_webmap(a: UrbanAnalysis) -> WebMap:
    """The report's interactive map: composite, built-up change, districts, roads and new roads."""
    base = a.base
    web = WebMap(a.grid)
    web.add_raster("composite", base.label, base.rgba)
    web.add_raster(
        "builtup_change",
        f"built-up change {a.start_month}..{a.end_month}",
        class_overlay(change_classes(a), CHANGE_COLOURS, 0.7),
    )
    web.add_vectors(
        "districts",
        "census districts",
        a.district_frame.geometry.boundary,
        style={"color": "#ffffff", "weight": 2},
        props=a.district_frame[[a.name_col]].astype(str),
    )
    if len(a.roads_start):
        web.add_vectors(
            "roads",
            f"roads {a.start_month}",
            a.roads_start.geometry,
            style={"color": "#9e9e9e", "weight": 1.5},
        )
    if len(a.new_roads):
        web.add_vectors("new_roads", "new roads", a.new_roads.geometry, style={"color": "#ffea00", "weight": 3})
    return web


def district_bars(data: dict[str, Any], period: str) -> bytes:
    """Built-up area, green space per inhabitant and road length per district (``districts_figure_data``)."""
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


def land_use_figure(land_use: np.ndarray, shares: np.ndarray, *, title: str) -> bytes:
    """The multi-modal class map next to the share of attention per modality (uint8 codes (y, x); float
    (3, y, x) shares of :func:`memories.ai.saliency.modality_shares`)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from memories.ai.saliency import MODALITY_GROUPS

    plt = pyplot()
    fig, axes = plt.subplots(1, 2 + len(MODALITY_GROUPS), figsize=(15, 3.8), dpi=100)
    cmap = ListedColormap(["#ffffff", *(c.color for c in LAND_COVER_CLASSES)])
    axes[0].imshow(land_use, cmap=cmap, vmin=0, vmax=len(LAND_COVER_CLASSES), interpolation="nearest")
    axes[0].set_title("multi-modal land use", fontsize=9)
    present = {int(v) for v in np.unique(land_use)}
    axes[0].legend(
        handles=[Patch(color=c.color, label=c.name) for c in LAND_COVER_CLASSES if c.code in present],
        fontsize=7,
        loc="lower left",
    )
    axes[1].imshow(np.nan_to_num(np.moveaxis(shares, 0, -1), nan=1.0), interpolation="nearest")
    axes[1].set_title("attention mix (R imagery, G vector, B text)", fontsize=9)
    for ax, plane, name in zip(axes[2:], shares, MODALITY_GROUPS, strict=True):
        im = ax.imshow(plane, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"attention on {name}, mean {np.nanmean(plane):.2f}", fontsize=9)
    fig.colorbar(im, ax=axes[-1], fraction=0.046, label="share of attention (0-1)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    return png(fig)


def saliency_figure(reflectance: np.ndarray, saliency: Any, *, title: str) -> bytes:
    """The land-cover model's saliency figure (:func:`memories.ai.saliency.plot_saliency`) as PNG bytes."""
    from memories.ai.saliency import figure_png, plot_saliency

    return figure_png(plot_saliency(reflectance, saliency, title=f"Land-cover saliency, {title}"))
