"""Training labels from GIS layers, cleaned of what the imagery contradicts.

Map layers lag the ground: a forest polygon stays ``landuse=forest`` after a
clear-cut, a meadow stays a meadow while it is flooded. Training on those pixels
teaches the model that bare soil is forest. So labels that the month's composite
plainly contradicts are set to 0 (unknown) before training.
"""

from __future__ import annotations

import numpy as np

from memories.classes import CLASS_BY_NAME, NO_LABEL
from memories.earth.indices import ndvi, ndwi

FOREST = CLASS_BY_NAME["forest"].code
WATER = CLASS_BY_NAME["water"].code
MIN_FOREST_NDVI = 0.4
"""A forest label under a lower NDVI is stale (cut, burned, built)."""
MIN_LAND_NDWI = 0.2
"""A land label over a higher NDWI is flooded; a water label under -0.1 has dried."""


def clean_labels(labels: np.ndarray, reflectance: np.ndarray, band_names: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """Labels with contradicted pixels set to 0, and how many were dropped.

    Args:
        labels: (H, W) uint8 class codes, 0 = unknown.
        reflectance: (C, H, W) float32 reflectance 0-1, NaN for no data.
        band_names: names of the C bands (needs ``green``, ``red``, ``nir``).
    """
    b = {name: reflectance[i] for i, name in enumerate(band_names)}
    with np.errstate(invalid="ignore", divide="ignore"):
        v = ndvi(b["nir"], b["red"])
        w = ndwi(b["green"], b["nir"])
        stale = (labels == FOREST) & (v < MIN_FOREST_NDVI)
        stale |= (labels != WATER) & (labels != NO_LABEL) & (w > MIN_LAND_NDWI)
        stale |= (labels == WATER) & (w < -0.1)
    out = labels.copy()
    out[stale] = NO_LABEL
    return out, int(stale.sum())
