"""The land-cover map of one tile-month: class per pixel with its Monte-Carlo dropout uncertainty.

:func:`land_cover_map` is the ``land_cover`` product: the class codes of
:mod:`memories.classes`, the confidence, variance and entropy of
:class:`~memories.ai.uncertainty.UncertaintyEstimator`, and the statistics recorded with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from memories.classes import LAND_COVER_CLASSES

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["LandCoverMap", "class_shares", "land_cover_map"]


@dataclass(frozen=True)
class LandCoverMap:
    """A tile-month's land cover and what is recorded of it."""

    dataset: xr.Dataset
    """``land_cover`` (uint8 class codes, 0 no data), ``confidence``, ``variance``, ``entropy``
    (float32), each ``(y, x)``."""
    class_share: dict[str, float]
    """Per class name, its share (0-1) of the labelled pixels."""
    mean_confidence: float | None
    """Mean probability (0-1) of the predicted class; None when no pixel is labelled."""
    mean_variance: float | None
    """Mean variance over the passes of the predicted class's probability; None when no pixel is labelled."""
    passes: int
    """Monte-Carlo dropout passes run."""


def land_cover_map(model: Any, reflectance: np.ndarray, *, passes: int, seed: int) -> LandCoverMap:
    """Classify one composite with ``passes`` Monte-Carlo dropout passes of ``model``.

    Args:
        model: A trained :class:`~memories.ai.land_cover.LandCoverUNet`.
        reflectance: float32 ``(C, H, W)`` in the model's band order, 0-1, NaN for no data.
        passes: Monte-Carlo dropout passes (1: one deterministic pass).
        seed: Seed of the dropout masks.
    """
    import xarray as xr

    from memories.ai.uncertainty import UncertaintyEstimator

    maps = UncertaintyEstimator(model, passes=passes, seed=seed).predict(reflectance)
    classes, confidence = maps.classes, maps.confidence
    dataset = xr.Dataset(
        {
            "land_cover": (("y", "x"), classes),
            "confidence": (("y", "x"), confidence.astype(np.float32)),
            "variance": (("y", "x"), maps.variance.astype(np.float32)),
            "entropy": (("y", "x"), maps.entropy.astype(np.float32)),
        }
    )
    labelled = classes > 0
    return LandCoverMap(
        dataset=dataset,
        class_share=class_shares(classes),
        mean_confidence=float(np.nanmean(confidence)) if labelled.any() else None,
        mean_variance=float(np.nanmean(maps.variance)) if labelled.any() else None,
        passes=maps.passes,
    )


def class_shares(classes: np.ndarray) -> dict[str, float]:
    """Per land-cover class name, its share (0-1) of the labelled (non-zero) pixels of a class map."""
    labelled = classes > 0
    return {c.name: float((classes == c.code).sum() / max(labelled.sum(), 1)) for c in LAND_COVER_CLASSES}
