"""Monte-Carlo dropout: the stochastic passes that the uncertainty estimator and inference both run.

Dropout layers run in train mode, BatchNorm stays in eval mode (Gal & Ghahramani 2016): each
pass is a sample of the approximate posterior. One pass runs with dropout off, the plain
prediction. ``memories.ai.uncertainty`` documents the maps; ``memories.ai.change_series``
samples the change detector with ``dropout_active``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from memories.ai.tiling import check_input, tiled_inference
from memories.classes import NO_LABEL
from memories.errors import ConfigError

__all__ = ["DEFAULT_BATCH_PX", "UncertaintyMaps", "dropout_active", "land_cover_uncertainty"]

DEFAULT_BATCH_PX = 512
"""Tile side sent to the model, pixels, unless a caller names another."""


@dataclass(frozen=True)
class UncertaintyMaps:
    """The per-pixel outputs of :meth:`UncertaintyEstimator.predict` (NaN where there is no data)."""

    probabilities: np.ndarray
    """float32 ``(n_classes - 1, H, W)``: mean probability of class codes 1.., 0–1."""
    classes: np.ndarray
    """uint8 ``(H, W)``: predicted class code, 0 where all bands are no data."""
    confidence: np.ndarray
    """float32 ``(H, W)``: mean probability of the predicted class, 0–1."""
    variance: np.ndarray
    """float32 ``(H, W)``: variance over passes of the predicted class's probability."""
    entropy: np.ndarray
    """float32 ``(H, W)``: predictive entropy of the mean probabilities, nats."""
    passes: int


def land_cover_uncertainty(
    model: Any,
    reflectance: np.ndarray,
    *,
    passes: int,
    seed: int,
    batch_px: int,
    tiles_per_batch: int,
    scale: float | Sequence[float] | None = None,
    offset: float | Sequence[float] | None = None,
    nodata: int = 0,
) -> UncertaintyMaps:
    """Mean probabilities, class, confidence, variance and entropy of a scene ``(C, H, W)`` of any size.

    ``model`` is a land-cover model (``class_probabilities(x)``, ``hparams["n_classes"]``); ``passes``
    stochastic passes with dropout masks seeded by ``seed``; tiles of ``batch_px`` pixels,
    ``tiles_per_batch`` per forward pass. Input convention as ``predict_land_cover``.
    """
    if passes < 1:
        raise ConfigError(f"passes={passes}: Monte-Carlo dropout needs at least 1 pass; 10–30 is usual")
    check_input(model, reflectance)
    n_probs = int(model.hparams["n_classes"]) - 1

    def sample(x: Tensor) -> Tensor:
        dropout_active(model, passes > 1)  # one pass: the plain prediction, as for change
        try:
            runs = torch.stack([model.class_probabilities(x).float() for _ in range(passes)])
        finally:
            dropout_active(model, False)
        mean = runs.mean(dim=0)
        confidence, index = mean.max(dim=1, keepdim=True)
        chosen = runs.gather(2, index.unsqueeze(0).expand(passes, -1, -1, -1, -1))
        variance = chosen.var(dim=0, unbiased=False) if passes > 1 else torch.zeros_like(confidence)
        entropy = -(mean * torch.log(mean.clamp_min(1e-12))).sum(dim=1, keepdim=True)
        classes = (index + 1).float()
        out = torch.cat([mean, classes, confidence, variance, entropy], dim=1)
        nodata_px = torch.isnan(x).all(dim=1, keepdim=True)
        return out.masked_fill(nodata_px, float("nan"))

    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        out = tiled_inference(
            model,
            sample,
            reflectance,
            n_out=n_probs + 4,
            batch_px=batch_px,
            scale=scale,
            offset=offset,
            nodata=nodata,
            tiles_per_batch=tiles_per_batch,
        )
    classes = np.nan_to_num(out[n_probs], nan=NO_LABEL).astype(np.uint8)
    return UncertaintyMaps(
        probabilities=out[:n_probs],
        classes=classes,
        confidence=out[n_probs + 1],
        variance=out[n_probs + 2],
        entropy=out[n_probs + 3],
        passes=passes,
    )


def dropout_active(model: nn.Module, active: bool) -> None:
    """Dropout layers in train mode (``active``) or eval mode; every other layer is left alone."""
    for m in model.modules():
        if isinstance(m, nn.Dropout | nn.Dropout2d):
            m.train(active)
