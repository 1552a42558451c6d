"""Figures of the environmental report: PNG bytes of an :class:`EnvironmentalAnalysis`.

Plots only: each function draws fields of the analysis (arrays, series) and reads nothing else.
Maps are drawn over the month's true-colour composite in the tile CRS with geographic axes
(:mod:`~memories.applications.maps`); series over the analysis's months.
"""

from __future__ import annotations

import numpy as np

from memories.applications.environmental_analysis import EnvironmentalAnalysis
from memories.applications.maps import class_overlay, draw_map, map_legend
from memories.applications.report import png, pyplot
from memories.classes import CLASS_BY_NAME

__all__ = [
    "VEGETATION_COLOURS",
    "WATER_COLOURS",
    "plot_index_trends",
    "plot_ndvi_by_class",
    "plot_vegetation_change",
    "plot_water_change",
    "vegetation_classes",
    "water_classes",
]


def plot_ndvi_by_class(a: EnvironmentalAnalysis) -> bytes:
    """PNG of the monthly median NDVI per land-cover class, over the interquartile band of all pixels."""
    plt = pyplot()
    months = [np.datetime64(m) for m in a.months]
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    ax.fill_between(
        months, _array(a.series.p25), _array(a.series.p75), color="#bbbbbb", alpha=0.4, label="all pixels, IQR"
    )
    for name, values in a.series.class_medians.items():
        ax.plot(months, _array(values), marker="o", ms=3, color=CLASS_BY_NAME[name].color, label=name)
    ax.set_ylim(-0.4, 1.0)
    ax.set_ylabel("NDVI (median)")
    ax.set_title(f"NDVI by land-cover class, tile {a.tile}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=4)
    fig.autofmt_xdate()
    return png(fig)


def plot_index_trends(a: EnvironmentalAnalysis) -> bytes:
    """PNG of the monthly tile mean of each index, its fitted trend and its anomalous months (the ``alpha`` of
    the anomaly intervals, 0.01: 99 %, named in the title)."""
    plt = pyplot()
    months = [np.datetime64(m) for m in a.months]
    colors = {"ndvi": "#2e7d32", "ndwi": "#1565c0", "nbr": "#8d6e63", "evi": "#9e9d24"}
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    for name, values in a.series.means.items():
        color = colors.get(name, "#555555")
        tr = a.trends[name]
        label = name.upper()
        if tr.slope_per_year is not None:
            se = tr.standard_error
            label += f" ({tr.slope_per_year:+.3f}" + (f" ± {se:.3f}" if se is not None else "") + " / yr)"
        ax.plot(months, _array(values), marker="o", ms=3, color=color, label=label)
        ax.plot(months, _array(tr.fitted), ls="--", lw=1, color=color)
        flagged = set(a.anomalies[name].flagged)
        idx = [i for i, m in enumerate(a.months) if m in flagged]
        if idx:
            ax.scatter(
                [months[i] for i in idx],
                _array([values[i] for i in idx]),
                s=80,
                facecolors="none",
                edgecolors="#c0392b",
                linewidths=1.5,
                zorder=5,
            )
    ax.set_ylabel("tile mean (dimensionless)")
    pct = round(100 * (1 - a.settings.anomaly_alpha))
    ax.set_title(f"Index trends, tile {a.tile} (red circles: outside the {pct} % interval)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    return png(fig)


def plot_vegetation_change(a: EnvironmentalAnalysis) -> bytes:
    """PNG of the month's NDVI beside its forest loss, other vegetation loss and gain, both over the month's
    true-colour composite ``a.basemap`` (:mod:`~memories.applications.maps`)."""
    from matplotlib.patches import Patch

    base = a.basemap
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4), dpi=100)
    draw_map(axes[0], base, title=f"NDVI {a.month} over the composite")
    im = axes[0].imshow(a.ndvi, cmap="RdYlGn", vmin=-0.2, vmax=0.9, extent=_extent(a), alpha=0.55, zorder=1)
    fig.colorbar(im, ax=axes[0], shrink=0.8, label="NDVI")
    draw_map(axes[1], base, overlays=[class_overlay(vegetation_classes(a), VEGETATION_COLOURS)])
    map_legend(
        axes[1],
        [
            Patch(color=VEGETATION_COLOURS[2], label="forest loss"),
            Patch(color=VEGETATION_COLOURS[1], label="other vegetation loss"),
            Patch(color=VEGETATION_COLOURS[3], label="vegetation gain"),
        ],
    )
    ref = a.reference_month
    axes[1].set_title(f"vegetation change since {ref}" if ref else "no reference month", fontsize=10)
    fig.suptitle(f"tile {a.tile}, {base.label}")
    return png(fig)


def plot_water_change(a: EnvironmentalAnalysis) -> bytes:
    """PNG of the month's NDWI beside its open water, water gained and water lost, both over the month's
    true-colour composite ``a.basemap``."""
    from matplotlib.patches import Patch

    base = a.basemap
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4), dpi=100)
    draw_map(axes[0], base, title=f"NDWI {a.month} over the composite")
    im = axes[0].imshow(a.ndwi, cmap="BrBG", vmin=-0.8, vmax=0.8, extent=_extent(a), alpha=0.55, zorder=1)
    fig.colorbar(im, ax=axes[0], shrink=0.8, label="NDWI")
    draw_map(axes[1], base, overlays=[class_overlay(water_classes(a), WATER_COLOURS)])
    ref = a.reference_month or "—"
    map_legend(
        axes[1],
        [
            Patch(color=WATER_COLOURS[1], label="open water"),
            Patch(color=WATER_COLOURS[2], label=f"new since {ref}"),
            Patch(color=WATER_COLOURS[3], label=f"gone since {ref}"),
        ],
    )
    axes[1].set_title(f"open water {a.month} vs {ref}", fontsize=10)
    fig.suptitle(f"tile {a.tile}, {base.label}")
    return png(fig)


VEGETATION_COLOURS = {1: "#f39c12", 2: "#c0392b", 3: "#27ae60"}
"""Class code -> colour of :func:`vegetation_classes`: other vegetation loss, forest loss, vegetation gain."""
WATER_COLOURS = {1: "#5dade2", 2: "#1a237e", 3: "#e67e22"}
"""Class code -> colour of :func:`water_classes`: open water now, new since the reference, gone since."""


def vegetation_classes(a: EnvironmentalAnalysis) -> np.ndarray:
    """uint8 raster of :data:`VEGETATION_COLOURS`' codes (0: no change)."""
    cls = np.zeros(a.grid.shape, dtype=np.uint8)
    cls[a.vegetation_gain] = 3
    cls[a.vegetation_loss] = 1
    cls[a.forest_loss] = 2
    return cls


def water_classes(a: EnvironmentalAnalysis) -> np.ndarray:
    """uint8 raster of :data:`WATER_COLOURS`' codes (0: no water, no change)."""
    cls = np.zeros(a.grid.shape, dtype=np.uint8)
    cls[a.water_now] = 1
    cls[a.water_gained] = 2
    cls[a.water_lost] = 3
    return cls


def _extent(a: EnvironmentalAnalysis) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = a.grid.bounds
    return (x0, x1, y0, y1)


def _array(values: list[float | None]) -> np.ndarray:
    """A series with None as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)
