"""Monte-Carlo dropout: the stochastic passes that the uncertainty estimator and inference both run.

Dropout layers run in train mode, BatchNorm stays in eval mode (Gal & Ghahramani 2016): each
pass is a sample of the approximate posterior. One pass runs with dropout off, the plain
prediction. ``memories.ai.uncertainty`` documents the maps; ``memories.ai.change_series``
samples the change detector with ``dropout_active``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from memories.ai.tiling import check_input, iter_tiled_inference
from memories.classes import NO_LABEL
from memories.errors import ConfigError

__all__ = [
    "DEFAULT_BATCH_PX",
    "UncertaintyMaps",
    "dropout_active",
    "iter_land_cover_uncertainty",
    "land_cover_uncertainty",
]

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
    n_probs = _check(model, reflectance, passes)
    rows, cols = reflectance.shape[1:]
    probabilities = np.full((n_probs, rows, cols), np.nan, dtype=np.float32)
    classes = np.zeros((rows, cols), dtype=np.uint8)
    confidence, variance, entropy = (np.full((rows, cols), np.nan, dtype=np.float32) for _ in range(3))
    for r0, r1, c0, c1, maps in iter_land_cover_uncertainty(
        model,
        reflectance,
        passes=passes,
        seed=seed,
        batch_px=batch_px,
        tiles_per_batch=tiles_per_batch,
        scale=scale,
        offset=offset,
        nodata=nodata,
    ):
        probabilities[:, r0:r1, c0:c1] = maps.probabilities
        classes[r0:r1, c0:c1] = maps.classes
        confidence[r0:r1, c0:c1] = maps.confidence
        variance[r0:r1, c0:c1] = maps.variance
        entropy[r0:r1, c0:c1] = maps.entropy
    return UncertaintyMaps(probabilities, classes, confidence, variance, entropy, passes)


def iter_land_cover_uncertainty(
    model: Any,
    image: Any,
    *,
    passes: int,
    seed: int,
    batch_px: int = DEFAULT_BATCH_PX,
    tiles_per_batch: int = 4,
    scale: float | Sequence[float] | None = None,
    offset: float | Sequence[float] | None = None,
    nodata: int = 0,
) -> Iterator[tuple[int, int, int, int, UncertaintyMaps]]:
    """:func:`land_cover_uncertainty` tile by tile: yields ``(r0, r1, c0, c1, maps)`` of each tile's core.

    ``image`` may be a lazy source (:class:`memories.ai.tiling.RowStrips`), so a scene of any size runs in
    the memory of a few strips; the cores come in the order of
    :func:`memories.ai.tiling.iter_tiled_inference`. Same tiles, batches and dropout masks as
    :func:`land_cover_uncertainty`, so the same values; the dropout masks come from a random state of
    their own, so whatever the caller draws between two tiles changes neither them nor the caller's state.
    """
    n_probs = _check(model, image, passes)
    tiles = iter_tiled_inference(
        model,
        _sampler(model, passes),
        image,
        n_out=n_probs + 4,
        batch_px=batch_px,
        scale=scale,
        offset=offset,
        nodata=nodata,
        tiles_per_batch=tiles_per_batch,
    )
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        state = _rng_state(devices)
    try:
        while True:
            with torch.random.fork_rng(devices=devices):  # ours while a batch runs; the caller's in between
                _set_rng_state(devices, state)
                tile = next(tiles, None)
                state = _rng_state(devices)
            if tile is None:
                return
            r0, r1, c0, c1, block = tile
            yield r0, r1, c0, c1, _maps(block, n_probs, passes)
    finally:
        tiles.close()


def _rng_state(devices: list[Any]) -> list[Tensor]:
    return [torch.get_rng_state(), *(torch.cuda.get_rng_state(d) for d in devices)]


def _set_rng_state(devices: list[Any], state: list[Tensor]) -> None:
    torch.set_rng_state(state[0])
    for d, s in zip(devices, state[1:]):
        torch.cuda.set_rng_state(s, d)


def _check(model: Any, image: Any, passes: int) -> int:
    """The number of class probabilities the model gives, after checking the input and the passes."""
    if passes < 1:
        raise ConfigError(f"passes={passes}: Monte-Carlo dropout needs at least 1 pass; 10–30 is usual")
    check_input(model, image)
    return int(model.hparams["n_classes"]) - 1


def _sampler(model: Any, passes: int) -> Callable[[Tensor], Tensor]:
    """A batch's mean probabilities, class, confidence, variance and entropy over ``passes`` passes."""

    def sample(x: Tensor) -> Tensor:
        dropout_active(model, passes > 1)  # one pass: the plain prediction, as for change
        try:
            if passes > 1 and hasattr(model, "encode") and hasattr(model, "decoded_probabilities"):
                # The layers before the first dropout give the same output in every pass: run them once.
                encoded = model.encode(x)
                runs = torch.stack([model.decoded_probabilities(encoded).float() for _ in range(passes)])
            else:
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

    return sample


def _maps(out: np.ndarray, n_probs: int, passes: int) -> UncertaintyMaps:
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
