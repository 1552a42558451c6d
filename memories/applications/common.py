"""Building blocks the applications share: masks, polygons, statistics, months, JSON values, maps.

One home for each piece the disaster, urban, historical and real-estate
applications (and any later one) need: sieving and counting patches of a boolean
mask, growing and shrinking it, turning it into polygons on a
:class:`~memories.grid.TileGrid`, the pixel area, the pixels within a radius of a
point, nan-safe medians and means, reading month and date arguments, plain JSON
values of numpy scalars, and the legend of the land-cover classes (maps themselves are
drawn by :mod:`memories.applications.maps`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np

from memories.classes import LAND_COVER_CLASSES
from memories.earth.vegetation import patch_count
from memories.errors import ConfigError, MissingDataError
from memories.grid import TileGrid
from memories.months import month_range, parse_time

__all__ = [
    "RadiusWindow",
    "as_instant",
    "as_month",
    "class_legend_handles",
    "dilate",
    "erode",
    "nanmean",
    "nanmedian",
    "patch_count",
    "pixel_ha",
    "plain",
    "polygonize",
    "sieve",
    "span",
    "text",
]

EIGHT_NEIGHBOURS = np.ones((3, 3))
"""Structuring element of 8-connected patches (diagonal neighbours join a patch)."""


# -- masks and polygons on the tile grid -------------------------------------------------------------
def pixel_ha(grid: TileGrid) -> float:
    """Area of one pixel of ``grid``, hectares."""
    return grid.pixel_area_ha


def sieve(mask: np.ndarray, min_px: int) -> np.ndarray:
    """``mask`` without its 8-connected patches smaller than ``min_px`` pixels."""
    if not mask.any() or min_px <= 1:
        return np.asarray(mask, dtype=bool)
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=EIGHT_NEIGHBOURS)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_px
    keep[0] = False
    return np.asarray(keep[labels])


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` grown by ``px`` pixels (4-connected steps); a copy when empty or ``px`` is 0."""
    from scipy import ndimage

    return np.asarray(ndimage.binary_dilation(mask, iterations=px)) if mask.any() and px > 0 else mask.copy()


def erode(mask: np.ndarray) -> np.ndarray:
    """``mask`` shrunk by one pixel (4-connected): its edge pixels removed."""
    from scipy import ndimage

    return np.asarray(ndimage.binary_erosion(mask))


def polygonize(mask: np.ndarray, grid: TileGrid) -> Any:
    """The mask's pixels as one shapely (Multi)Polygon in the tile CRS (metres); None when the mask is empty."""
    if not mask.any():
        return None
    return grid.mask_polygon(mask)


@dataclass(frozen=True)
class RadiusWindow:
    """The pixels of a tile around a point: a row/column window and the in-radius mask inside it.

    A pixel is in the radius when its centre lies within ``radius_m`` of the point.
    """

    rows: slice
    cols: slice
    mask: np.ndarray
    """Boolean (rows, cols) mask of the pixels in the radius."""
    covered: float
    """Fraction (0-1) of the circle's pixels that lie on the tile."""

    @classmethod
    def around(cls, grid: TileGrid, x: float, y: float, radius_m: float) -> RadiusWindow:
        """The window of ``grid`` around the point ``(x, y)`` (metres, tile CRS) and a radius in metres.

        Raises:
            MissingDataError: the circle lies entirely outside the tile.
        """
        res = grid.resolution
        c0 = max(0, int(math.floor((x - radius_m - grid.x_min) / res)))
        c1 = min(grid.width, int(math.ceil((x + radius_m - grid.x_min) / res)) + 1)
        r0 = max(0, int(math.floor((grid.y_max - (y + radius_m)) / res)))
        r1 = min(grid.height, int(math.ceil((grid.y_max - (y - radius_m)) / res)) + 1)
        if c0 >= c1 or r0 >= r1:
            raise MissingDataError(
                f"the point ({x:.0f}, {y:.0f}) and its {radius_m:g} m radius lie outside tile {grid.tile_id}; "
                "pick a point on the tile or a tile that holds it"
            )
        xs, ys = grid.x[c0:c1], grid.y[r0:r1]
        mask = (xs[None, :] - x) ** 2 + (ys[:, None] - y) ** 2 <= radius_m**2
        full = math.pi * radius_m**2 / (res * res)
        return cls(slice(r0, r1), slice(c0, c1), mask, min(1.0, float(mask.sum()) / full))

    def cut(self, a: np.ndarray) -> np.ndarray:
        """The window of a (rows, cols) tile array."""
        return a[self.rows, self.cols]


# -- statistics ---------------------------------------------------------------------------------------
def nanmedian(a: np.ndarray) -> float | None:
    """Median of the finite values of ``a``; None when it has none."""
    return float(np.nanmedian(a)) if a.size and np.isfinite(a).any() else None


def nanmean(a: np.ndarray) -> float | None:
    """Mean of the finite values of ``a``; None when it has none."""
    return float(np.nanmean(a)) if a.size and np.isfinite(a).any() else None


# -- months and dates ---------------------------------------------------------------------------------
def as_month(value: Any, what: str) -> str:
    """``YYYY-MM`` of a month argument: ``YYYY-MM`` (or longer ISO text), a date or a datetime.

    Args:
        value: the argument.
        what: its name in the error message (``time_range start``).

    Raises:
        ConfigError: ``value`` is not a month.
    """
    if isinstance(value, datetime | date):
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, str) and len(value) >= 7:
        try:
            month_range(value[:7])
        except ConfigError:
            pass
        else:
            return value[:7]
    raise ConfigError(f"{what}={value!r} is not a month; give YYYY-MM (e.g. '2023-06'), a date or a datetime")


def as_instant(value: str | datetime) -> datetime:
    """A UTC datetime of ``YYYY-MM-DD``, an ISO date-time, ``YYYY-MM`` (the 15th) or a datetime.

    Raises:
        ConfigError: the text is none of these.
    """
    return parse_time(value, "date", month_at="mid")  # a month stands for its 15th (memories.months)


def span(months: list[str]) -> str:
    """``first..last`` of a list of months, the month itself when there is one, ``—`` when none."""
    return f"{months[0]}..{months[-1]}" if len(months) > 1 else (months[0] if months else "—")


# -- JSON-plain values --------------------------------------------------------------------------------
def plain(v: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else unchanged."""
    return v.item() if isinstance(v, np.generic) else v


def text(v: Any) -> str | None:
    """A table cell as text; None for None, NaN, empty text and ``"None"``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    s = str(v)
    return s if s and s.lower() != "none" else None


# -- maps ---------------------------------------------------------------------------------------------
def class_legend_handles() -> list[Any]:
    """Legend handles (coloured patches) of the land-cover classes."""
    from matplotlib.patches import Patch

    return [Patch(color=c.color, label=c.name) for c in LAND_COVER_CLASSES]
