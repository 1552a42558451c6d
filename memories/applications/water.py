"""Open-water maps and their change between two months, from NDWI composites.

Open water is NDWI (McFeeters: (green − NIR)/(green + NIR)) above
:data:`WATER_NDWI_MIN`. A change between two months counts only pixels observed
(NDWI finite) in both, so a cloud gap is neither water gained nor lost.
"""

from __future__ import annotations

import numpy as np

__all__ = ["WATER_NDWI_MIN", "open_water", "water_change"]

WATER_NDWI_MIN = 0.0
"""Open water: NDWI (McFeeters, green vs NIR) above this."""


def open_water(ndwi: np.ndarray) -> np.ndarray:
    """Boolean map of open water: NDWI > :data:`WATER_NDWI_MIN` (False where NDWI is NaN)."""
    with np.errstate(invalid="ignore"):
        return np.asarray((ndwi > WATER_NDWI_MIN) & np.isfinite(ndwi))


def water_change(ndwi_now: np.ndarray, ndwi_then: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open water gained and lost from ``ndwi_then`` to ``ndwi_now`` (two (H, W) NDWI maps).

    Returns:
        ``(gained, lost, both)``: boolean (H, W) maps of water now that was land then, of land now
        that was water then, and of the pixels observed in both months (the only ones counted).
    """
    now, then = open_water(ndwi_now), open_water(ndwi_then)
    both = np.isfinite(ndwi_now) & np.isfinite(ndwi_then)
    return now & ~then & both, then & ~now & both, both
