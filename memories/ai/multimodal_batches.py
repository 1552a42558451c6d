"""Batches of the multi-modal land-use model: patches, validation blocks and their collation.

A batch is a dict of tensors: ``image`` (B, C, H, W) reflectance with NaN,
``context`` (B, R, H, W), ``text_ids`` (B, L, H, W) int64 rows of ``grams`` (-1:
no feature near), ``text_distance`` (B, L, H, W) metres, ``grams`` (S, G) int64
byte n-gram buckets of the S texts of the batch (0 = padding), ``labels`` (B, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import Dataset

from memories.ai.multimodal_data import MAX_GRAMS, TEXT_RADIUS_M, ModalityInputs
from memories.ai.split import pad_to_multiple
from memories.classes import NO_LABEL
from memories.config import ModelSettings
from memories.errors import ProcessingError

__all__ = ["Blocks", "Patches", "collate", "context_statistics", "patch_item"]


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
    """Stack patches; each patch's text ids are renumbered into one gram matrix for the batch."""
    grams, ids, offset = [], [], 0
    for it in items:
        local = it["text_ids"]
        ids.append(torch.where(local >= 0, local + offset, local))
        grams.append(it["grams"])
        offset += it["grams"].shape[0]
    width = max([g.shape[1] for g in grams] + [1])
    stacked = torch.cat([F.pad(g, (0, width - g.shape[1])) for g in grams]) if offset else torch.zeros((0, width))
    return {
        "image": torch.stack([it["image"] for it in items]),
        "context": torch.stack([it["context"] for it in items]),
        "text_ids": torch.stack(ids),
        "text_distance": torch.stack([it["text_distance"] for it in items]),
        "grams": stacked.long(),
        "labels": torch.stack([it["labels"] for it in items]),
    }


def patch_item(
    x: np.ndarray,
    y: np.ndarray,
    m: ModalityInputs,
    grams: np.ndarray,
    window: tuple[int, int, int, int] | None,
    k: int = 0,
    flip: bool = False,
) -> dict[str, Any]:
    """One patch (``window`` = rows and cols, ends exclusive; the whole scene padded to 8 if None), rotated
    ``k`` quarter turns and flipped; its text ids renumbered into its own rows of ``grams``."""
    r0, r1, c0, c1 = window if window is not None else (0, x.shape[1], 0, x.shape[2])
    parts = [
        x[:, r0:r1, c0:c1],
        m.context[:, r0:r1, c0:c1],
        m.text_distance[:, r0:r1, c0:c1],
    ]
    ids = m.text_ids[:, r0:r1, c0:c1]
    lab = y[None, r0:r1, c0:c1]
    fills = [np.nan, 0.0, m.text_distance.max(initial=TEXT_RADIUS_M)]
    if window is None:
        parts = [pad_to_multiple(p, f) for p, f in zip(parts, fills, strict=True)]
        ids, lab = pad_to_multiple(ids, -1), pad_to_multiple(lab, NO_LABEL)
    arrays = [*parts, ids, lab]
    arrays = [np.rot90(a, k, axes=(1, 2)) for a in arrays]
    if flip:
        arrays = [a[:, :, ::-1] for a in arrays]
    image, ctx, dist, ids, lab = (np.ascontiguousarray(a) for a in arrays)
    used = np.unique(ids[ids >= 0])
    local = np.full(ids.shape, -1, np.int64)
    if used.size:
        local[ids >= 0] = np.searchsorted(used, ids[ids >= 0])
    rows = grams[used] if used.size else np.zeros((0, max(grams.shape[1] if grams.ndim == 2 else 1, 1)), np.int64)
    return {
        "image": torch.from_numpy(image),
        "context": torch.from_numpy(ctx.astype(np.float32)),
        "text_ids": torch.from_numpy(local),
        "text_distance": torch.from_numpy(dist.astype(np.float32)),
        "grams": torch.from_numpy(rows[:, :MAX_GRAMS].astype(np.int64)),
        "labels": torch.from_numpy(lab[0].astype(np.int64)),
    }


class Patches(Dataset[dict[str, Any]]):
    """``patches_per_scene`` random training patches per scene and epoch, rotated and flipped (seeded)."""

    def __init__(
        self,
        images: list[np.ndarray],
        labels: list[np.ndarray],
        modalities: list[ModalityInputs],
        grams: list[np.ndarray],
        split: Any,
        settings: ModelSettings,
    ) -> None:
        self.images, self.labels, self.modalities, self.grams, self.split = images, labels, modalities, grams, split
        self.scenes = [i for i, w in enumerate(split.train_windows) if len(w)]
        if not self.scenes:
            raise ProcessingError(
                f"no {split.patch_px} px training patch lies outside the validation blocks with a labelled pixel; "
                "add labels, lower val_fraction or use a smaller patch_px"
            )
        self.per_scene = settings.patches_per_scene
        self.rng = np.random.default_rng([settings.seed, 1])

    def __len__(self) -> int:
        return len(self.scenes) * self.per_scene

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.scenes[index % len(self.scenes)]
        windows = self.split.train_windows[s]
        r, c = (int(v) for v in windows[self.rng.integers(len(windows))])
        p = self.split.patch_px
        k, flip = int(self.rng.integers(4)), bool(self.rng.random() < 0.5)
        return patch_item(
            self.images[s], self.labels[s], self.modalities[s], self.grams[s], (r, r + p, c, c + p), k, flip
        )


class Blocks(Dataset[dict[str, Any]]):
    """Each validation block whole, padded to a multiple of 8."""

    def __init__(
        self,
        images: list[np.ndarray],
        labels: list[np.ndarray],
        modalities: list[ModalityInputs],
        grams: list[np.ndarray],
        split: Any,
    ) -> None:
        self.items = []
        for x, y, m, g, boxes in zip(images, labels, modalities, grams, split.val_boxes, strict=True):
            for r0, r1, c0, c1 in boxes:
                sub = ModalityInputs(
                    m.context[:, r0:r1, c0:c1],
                    m.context_names,
                    m.text_ids[:, r0:r1, c0:c1],
                    m.text_distance[:, r0:r1, c0:c1],
                    m.text_layers,
                    m.texts,
                )
                self.items.append(patch_item(x[:, r0:r1, c0:c1], y[r0:r1, c0:c1], sub, g, None))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def context_statistics(contexts: list[np.ndarray], val_masks: Sequence[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the context rasters in the training region (std >= 1e-6 else 1)."""
    n = contexts[0].shape[0]
    if n == 0:
        return [], []
    values = np.concatenate([c[:, ~v].astype(np.float64) for c, v in zip(contexts, val_masks, strict=True)], axis=1)
    mean = np.nanmean(values, axis=1)
    std = np.nanstd(values, axis=1)
    return mean.tolist(), np.where(std > 1e-6, std, 1.0).tolist()
