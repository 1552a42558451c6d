"""Vegetation loss and gain between two months, from NDVI composites.

A pixel has lost vegetation when it was clearly vegetated in the reference month
(NDVI >= ``min_before``), is clearly not now (NDVI <= ``max_after``) and dropped by
at least ``drop``. Gain is the mirror image: clearly not vegetated then, clearly
vegetated now, up by at least ``drop``. Patches smaller than ``min_patch_px`` are
speckle and dropped. A map's area is uncertain by about one pixel along its edges
(:func:`edge_pixels`), the width of a mixed pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memories.months import month_index


@dataclass(frozen=True)
class LossThresholds:
    """Thresholds of vegetation loss (and, mirrored, gain); NDVI is dimensionless, −1..1."""

    drop: float = 0.3
    """Least NDVI change between the two months."""
    min_before: float = 0.6
    """Least NDVI of clearly vegetated land (before a loss, after a gain)."""
    max_after: float = 0.4
    """Most NDVI of clearly unvegetated land (after a loss, before a gain)."""
    min_patch_px: int = 10
    """Smallest patch kept, pixels (8-connected patches are counted, 4-connected removed)."""


def detect_vegetation_loss(
    ndvi_before: np.ndarray, ndvi_after: np.ndarray, thresholds: LossThresholds = LossThresholds()
) -> np.ndarray:
    """Boolean (H, W) map of vegetation loss; False where either NDVI is NaN."""
    from scipy import ndimage

    with np.errstate(invalid="ignore"):
        loss = (
            (ndvi_before >= thresholds.min_before)
            & (ndvi_after <= thresholds.max_after)
            & ((ndvi_before - ndvi_after) >= thresholds.drop)
        )
    loss &= np.isfinite(ndvi_before) & np.isfinite(ndvi_after)
    if thresholds.min_patch_px > 1 and loss.any():
        labels, n = ndimage.label(loss)
        sizes = ndimage.sum(loss, labels, index=np.arange(1, n + 1))
        keep = np.concatenate([[False], sizes >= thresholds.min_patch_px])
        loss = keep[labels]
    return np.asarray(loss)


def detect_vegetation_gain(
    ndvi_before: np.ndarray, ndvi_after: np.ndarray, thresholds: LossThresholds = LossThresholds()
) -> np.ndarray:
    """Boolean (H, W) map of vegetation gain (regrowth, new green): loss with the two months swapped."""
    return detect_vegetation_loss(ndvi_after, ndvi_before, thresholds)


def reference_month(available: list[str], month: str) -> str | None:
    """The month to compare ``month`` with: the one closest to 12 months earlier (within 11–13 (same
    season, so phenology cancels out) if the memory has one, else the earliest month
    before ``month``; None when there is none."""
    earlier = [m for m in available if month_index(month, m) > 0]
    same_season = [m for m in earlier if 11 <= month_index(month, m) <= 13]
    if same_season:
        return min(same_season, key=lambda m: abs(month_index(month, m) - 12))
    return min(earlier) if earlier else None


def patch_count(mask: np.ndarray) -> int:
    """Number of 8-connected patches in a boolean map."""
    from scipy import ndimage

    return int(ndimage.label(mask, structure=np.ones((3, 3)))[1])


def edge_pixels(mask: np.ndarray) -> int:
    """Pixels just outside the boundary of a boolean map (4-connected ring): the area uncertainty of
    one pixel of edge, in pixels."""
    from scipy import ndimage

    return int((ndimage.binary_dilation(mask) & ~mask).sum()) if mask.any() else 0
