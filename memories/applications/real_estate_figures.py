"""The real-estate report's plots: a property's map, its monthly surroundings and its NDVI projection.

Each function draws from arrays and fields (no memory reads, no prose) and answers PNG bytes
(:func:`~memories.applications.report.png`); the captions and the data behind each figure are
written by :mod:`memories.applications.real_estate_report`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memories.applications.common import class_legend_handles
from memories.applications.maps import class_overlay, draw_map, map_legend
from memories.applications.property_analysis import PropertyMap
from memories.applications.report import png, pyplot
from memories.classes import CLASS_BY_NAME, LAND_COVER_CLASSES

__all__ = ["forecast_figure", "map_figure", "timeline_figure"]

RADIUS_COLOUR = "#ff00aa"
FORECAST_COLOUR = "#1f77b4"
LAND_COVER_ALPHA = 0.45
MAX_TICKS = 12
"""At most about this many month labels on a time axis."""


def map_figure(pmap: PropertyMap, x: float, y: float, radius_m: float, title: str) -> bytes:
    """The land cover around the point ``(x, y)`` (metres, tile CRS) over the base, with the buildings (white),
    roads (yellow) and the ``radius_m`` circle."""
    from matplotlib.patches import Circle

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.4, 5.6))
    overlays = []
    if pmap.land_cover is not None:
        overlays.append(class_overlay(pmap.land_cover, {c.code: c.color for c in LAND_COVER_CLASSES}, LAND_COVER_ALPHA))
    draw_map(ax, pmap.base, overlays=overlays, window=pmap.extent_m, title=title)
    if pmap.roads is not None and len(pmap.roads):
        pmap.roads.geometry.plot(ax=ax, color="#f1c40f", lw=1.0, zorder=3)
    if pmap.buildings is not None and len(pmap.buildings):
        pmap.buildings.geometry.plot(ax=ax, facecolor="#ffffff", edgecolor="#111", lw=0.4, zorder=3)
    ax.add_patch(Circle((x, y), radius_m, fill=False, ec=RADIUS_COLOUR, lw=2, zorder=5))
    ax.plot([x], [y], marker="*", color=RADIUS_COLOUR, ms=14, mec="k", zorder=6)
    ex0, ey0, ex1, ey1 = pmap.extent_m
    ax.set_xlim(ex0, ex1)
    ax.set_ylim(ey0, ey1)
    if pmap.land_cover is not None:
        map_legend(ax, class_legend_handles(), outside=True)
    return png(fig)


def timeline_figure(months: Sequence[str], series: dict[str, list[float | None]], title: str) -> bytes:
    """Built-up, green-space and water shares (0–1) and mean NDVI per month (``series`` keys ``built_up_share``,
    ``green_space_share``, ``water_share``, ``ndvi_mean``; None: not available)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    xs = np.arange(len(months))
    ax.plot(xs, _nan(series["built_up_share"]), "-o", color=CLASS_BY_NAME["built-up"].color, label="built-up share")
    ax.plot(xs, _nan(series["green_space_share"]), "-o", color=CLASS_BY_NAME["forest"].color, label="green space share")
    ax.plot(xs, _nan(series["water_share"]), "-o", color=CLASS_BY_NAME["water"].color, label="water share")
    ax.plot(xs, _nan(series["ndvi_mean"]), "--", color="k", label="mean NDVI")
    ax.set_ylim(min(0.0, np.nanmin(_nan(series["ndvi_mean"]) + [0.0]) - 0.05), 1.0)
    step = max(1, len(months) // MAX_TICKS)
    ax.set_xticks(xs[::step], months[::step], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of the radius (0-1) / NDVI")
    ax.legend(fontsize=8, ncols=2)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return png(fig)


def forecast_figure(
    months: Sequence[str],
    observed: list[float | None],
    forecast_months: Sequence[str],
    mean: list[float],
    lower: list[float],
    upper: list[float],
    interval: str,
    title: str,
) -> bytes:
    """Observed mean NDVI per month, then the forecast ``mean`` with its ``lower``..``upper`` band (``interval``
    names its coverage, e.g. ``95 %``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    all_months = list(months) + list(forecast_months)
    xo = np.arange(len(months))
    xf = np.arange(len(months), len(all_months))
    ax.plot(xo, _nan(observed), "-o", color="k", label="observed mean NDVI")
    ax.plot(xf, mean, "-o", color=FORECAST_COLOUR, label="forecast")
    ax.fill_between(xf, lower, upper, color=FORECAST_COLOUR, alpha=0.25, label=interval + " interval")
    step = max(1, len(all_months) // MAX_TICKS)
    ax.set_xticks(np.arange(len(all_months))[::step], all_months[::step], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("NDVI")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return png(fig)


def _nan(values: list[float | None]) -> list[float]:
    """``values`` with None as NaN (a gap in the line)."""
    return [np.nan if v is None else v for v in values]
