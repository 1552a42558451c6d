"""Figures of the environmental report: PNG bytes of an :class:`EnvironmentalAnalysis`.

Maps are drawn in km from the tile's south-west corner
(:func:`~memories.applications.report.km_extent`); series over the analysis's months.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from memories.applications.report import km_extent, png, pyplot
from memories.classes import CLASS_BY_NAME

if TYPE_CHECKING:
    from memories.applications.environmental import EnvironmentalAnalysis

__all__ = ["plot_index_trends", "plot_ndvi_by_class", "plot_vegetation_change", "plot_water_change"]


def plot_ndvi_by_class(a: EnvironmentalAnalysis) -> bytes:
    """PNG of the monthly median NDVI per land-cover class, over the interquartile band of all pixels."""
    plt = pyplot()
    months = [np.datetime64(m) for m in a.months]
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    ax.fill_between(months, _array(a.iqr[0]), _array(a.iqr[1]), color="#bbbbbb", alpha=0.4, label="all pixels, IQR")
    for name, values in a.class_series.items():
        ax.plot(months, _array(values), marker="o", ms=3, color=CLASS_BY_NAME[name].color, label=name)
    ax.set_ylim(-0.4, 1.0)
    ax.set_ylabel("NDVI (median)")
    ax.set_title(f"NDVI by land-cover class, tile {a.tile}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=4)
    fig.autofmt_xdate()
    return png(fig)


def plot_index_trends(a: EnvironmentalAnalysis, alpha: float) -> bytes:
    """PNG of the monthly tile mean of each index, its fitted trend and its anomalous months.

    ``alpha`` is that of the anomaly intervals (0.01: 99 %), named in the title.
    """
    plt = pyplot()
    months = [np.datetime64(m) for m in a.months]
    colors = {"ndvi": "#2e7d32", "ndwi": "#1565c0", "nbr": "#8d6e63", "evi": "#9e9d24"}
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    for name, values in a.series.items():
        color = colors.get(name, "#555555")
        tr = a.numbers["trends"][name]
        label = name.upper()
        if tr["slope_per_year"] is not None:
            se = tr["standard_error"]
            label += f" ({tr['slope_per_year']:+.3f}" + (f" ± {se:.3f}" if se is not None else "") + " / yr)"
        ax.plot(months, _array(values), marker="o", ms=3, color=color, label=label)
        ax.plot(months, _array(tr["fitted"]), ls="--", lw=1, color=color)
        flagged = set(a.numbers["anomalies"][name]["flagged"])
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
    ax.set_title(f"Index trends, tile {a.tile} (red circles: outside the {round(100 * (1 - alpha))} % interval)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    return png(fig)


def plot_vegetation_change(a: EnvironmentalAnalysis) -> bytes:
    """PNG of the month's NDVI beside its forest loss, other vegetation loss and gain (axes in km)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = pyplot()
    extent = km_extent(a.grid)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), dpi=100)
    im = axes[0].imshow(a.ndvi, cmap="RdYlGn", vmin=-0.2, vmax=0.9, extent=extent)
    fig.colorbar(im, ax=axes[0], shrink=0.8, label="NDVI")
    axes[0].set_title(f"NDVI {a.month}")
    cls = np.zeros(a.grid.shape, dtype=np.uint8)
    cls[a.vegetation_gain] = 3
    cls[a.vegetation_loss] = 1
    cls[a.forest_loss] = 2
    axes[1].imshow(np.nan_to_num(a.ndvi, nan=0.0), cmap="Greys_r", vmin=-0.2, vmax=1.0, extent=extent, alpha=0.6)
    axes[1].imshow(
        np.ma.masked_equal(cls, 0),
        cmap=ListedColormap(["#f39c12", "#c0392b", "#27ae60"]),
        vmin=1,
        vmax=3,
        extent=extent,
        interpolation="nearest",
    )
    axes[1].legend(
        handles=[
            Patch(color="#c0392b", label="forest loss"),
            Patch(color="#f39c12", label="other vegetation loss"),
            Patch(color="#27ae60", label="vegetation gain"),
        ],
        loc="lower right",
        fontsize=8,
    )
    ref = a.reference_month
    axes[1].set_title(f"vegetation change since {ref}" if ref else "no reference month")
    for ax in axes:
        ax.set_xlabel("km east of tile origin")
        ax.set_ylabel("km north")
    fig.suptitle(f"tile {a.tile} ({a.grid.crs})")
    return png(fig)


def plot_water_change(a: EnvironmentalAnalysis) -> bytes:
    """PNG of the month's NDWI beside its open water, water gained and water lost (axes in km)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = pyplot()
    extent = km_extent(a.grid)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), dpi=100)
    im = axes[0].imshow(a.ndwi, cmap="BrBG", vmin=-0.8, vmax=0.8, extent=extent)
    fig.colorbar(im, ax=axes[0], shrink=0.8, label="NDWI")
    axes[0].set_title(f"NDWI {a.month}")
    cls = np.zeros(a.grid.shape, dtype=np.uint8)
    cls[a.water_now] = 1
    cls[a.water_gained] = 2
    cls[a.water_lost] = 3
    axes[1].imshow(np.nan_to_num(a.ndvi, nan=0.0), cmap="Greys_r", vmin=-0.2, vmax=1.0, extent=extent, alpha=0.5)
    axes[1].imshow(
        np.ma.masked_equal(cls, 0),
        cmap=ListedColormap(["#5dade2", "#1a237e", "#e67e22"]),
        vmin=1,
        vmax=3,
        extent=extent,
        interpolation="nearest",
    )
    ref = a.reference_month or "—"
    axes[1].legend(
        handles=[
            Patch(color="#5dade2", label="open water"),
            Patch(color="#1a237e", label=f"new since {ref}"),
            Patch(color="#e67e22", label=f"gone since {ref}"),
        ],
        loc="lower right",
        fontsize=8,
    )
    axes[1].set_title(f"open water {a.month} vs {ref}")
    for ax in axes:
        ax.set_xlabel("km east of tile origin")
        ax.set_ylabel("km north")
    fig.suptitle(f"tile {a.tile} ({a.grid.crs})")
    return png(fig)


def _array(values: list[float | None]) -> np.ndarray:
    """A series with None as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)
