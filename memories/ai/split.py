"""The seeded spatial train/validation split and the patch datasets of land-cover training.

These are the concerns of a torchgeo-style datamodule: which pixels train and
which validate, and the datasets that serve them. Input convention as in
:mod:`memories.ai.land_cover`: reflectance float32 ``(band, y, x)`` 0–1 with NaN
for no data, labels ``(y, x)`` class codes with 0 meaning "no label".

The split is *spatial* and seeded: each scene is cut into square blocks
(``2 * patch_px`` pixels by default); a seeded random share of block positions
goes to validation, the same positions for every scene of the same shape (the
months of one tile), so a location is never in both training and validation.
Training patches are drawn only from windows that lie wholly in training
blocks; validation runs on each validation block whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from memories.classes import N_CLASSES, NO_LABEL
from memories.errors import ConfigError, ProcessingError

__all__ = [
    "DOWNSAMPLING",
    "SceneSplit",
    "TrainPatches",
    "ValidationBlocks",
    "band_statistics",
    "check_samples",
    "pad_to_multiple",
    "spatial_split",
    "split_scenes",
]


DOWNSAMPLING = 8
"""The U-Net halves its input three times: network inputs are multiples of 8 px."""


@dataclass(frozen=True)
class SceneSplit:
    """Where each scene's training patches and validation blocks lie (pixel indices)."""

    patch_px: int
    block_px: int
    val_masks: tuple[np.ndarray, ...]
    """Per scene, bool ``(H, W)``: True where the pixel belongs to a validation block."""
    val_boxes: tuple[tuple[tuple[int, int, int, int], ...], ...]
    """Per scene, the validation blocks as ``(row0, row1, col0, col1)``, ends exclusive."""
    train_windows: tuple[np.ndarray, ...]
    """Per scene, int ``(N, 2)``: top-left ``(row, col)`` of every ``patch_px`` window that lies
    wholly outside validation blocks and holds at least one labelled pixel."""
    n_train_pixels: int
    """Labelled pixels with data outside the validation blocks, over all scenes."""


def spatial_split(
    shape: tuple[int, int], *, block_px: int, val_fraction: float, seed: int
) -> tuple[tuple[int, int, int, int], ...]:
    """The validation blocks of a scene of ``shape`` (rows, cols), as ``(row0, row1, col0, col1)``.

    The scene is cut into ``block_px`` squares (smaller at the bottom and right
    edges); ``round(val_fraction * n_blocks)`` of them, at least one and at most
    all but one when ``val_fraction > 0``, are drawn with a generator seeded by
    ``seed`` and the shape, so every scene of one shape gets the same blocks.

    Raises:
        ConfigError: ``val_fraction`` is outside [0, 1) or the scene holds a single block.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction={val_fraction} must be in [0, 1); 0.25 holds out a quarter")
    rows, cols = int(shape[0]), int(shape[1])
    n_r, n_c = math.ceil(rows / block_px), math.ceil(cols / block_px)
    n_blocks = n_r * n_c
    if val_fraction == 0.0:
        return ()
    if n_blocks < 2:
        raise ConfigError(
            f"a scene of {rows}x{cols} px holds one {block_px} px block, so it cannot be split spatially; "
            "use a smaller model.patch_px or val_fraction=0"
        )
    n_val = min(max(round(val_fraction * n_blocks), 1), n_blocks - 1)
    rng = np.random.default_rng([seed, rows, cols])
    chosen = np.sort(rng.choice(n_blocks, size=n_val, replace=False))
    boxes = []
    for b in chosen.tolist():
        r, c = divmod(b, n_c)
        boxes.append((r * block_px, min((r + 1) * block_px, rows), c * block_px, min((c + 1) * block_px, cols)))
    return tuple(boxes)


def split_scenes(
    labels: Sequence[np.ndarray],
    *,
    patch_px: int,
    val_fraction: float,
    seed: int,
    block_px: int | None = None,
) -> SceneSplit:
    """Split scenes spatially into training windows and validation blocks.

    Args:
        labels: Per scene, class codes ``(H, W)`` with 0 for no label or no data.
        patch_px: Side of a training patch, pixels; a multiple of 8.
        val_fraction: Share of block positions held out, 0 to below 1.
        seed: Seed of the block draw.
        block_px: Side of a split block, pixels; ``2 * patch_px`` if None, at least ``patch_px``.
    """
    if patch_px % DOWNSAMPLING or patch_px < DOWNSAMPLING:
        raise ConfigError(
            f"model.patch_px={patch_px} must be a multiple of {DOWNSAMPLING} (the U-Net halves it 3 times); "
            f"use {max(DOWNSAMPLING, patch_px // DOWNSAMPLING * DOWNSAMPLING)}"
        )
    block = 2 * patch_px if block_px is None else int(block_px)
    if block < patch_px:
        raise ConfigError(f"block_px={block} is smaller than patch_px={patch_px}; use at least patch_px")
    masks, boxes_all, windows_all = [], [], []
    n_train = 0
    for lab in labels:
        boxes = spatial_split(lab.shape, block_px=block, val_fraction=val_fraction, seed=seed)
        val = np.zeros(lab.shape, dtype=bool)
        for r0, r1, c0, c1 in boxes:
            val[r0:r1, c0:c1] = True
        train_labelled = (lab != NO_LABEL) & ~val
        n_train += int(train_labelled.sum())
        masks.append(val)
        boxes_all.append(boxes)
        windows_all.append(_windows(~val, train_labelled, patch_px))
    return SceneSplit(
        patch_px=patch_px,
        block_px=block,
        val_masks=tuple(masks),
        val_boxes=tuple(boxes_all),
        train_windows=tuple(windows_all),
        n_train_pixels=n_train,
    )


# -- the datasets and their checks ---------------------------------------------


def check_samples(
    samples: Sequence[tuple[np.ndarray, np.ndarray]], band_names: list[str]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validated float32 reflectance and int64 labels, with no-data pixels unlabelled."""
    if not samples:
        raise ProcessingError("no training samples; give at least one (reflectance, labels) pair")
    images, labels = [], []
    for i, (refl, lab) in enumerate(samples):
        x = np.asarray(refl, dtype=np.float32)
        y = np.asarray(lab)
        if x.ndim != 3 or x.shape[0] != len(band_names):
            raise ProcessingError(
                f"sample {i}: reflectance of shape {x.shape} does not match the {len(band_names)} "
                f"band_names {band_names}; give (C, H, W) with one band per name"
            )
        if y.shape != x.shape[1:]:
            raise ProcessingError(
                f"sample {i}: labels of shape {y.shape} do not match reflectance {x.shape[1:]}; "
                "rasterize the labels on the composite's grid"
            )
        if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
            raise ProcessingError(
                f"sample {i}: label codes {int(y.min())}..{int(y.max())} outside 0..{N_CLASSES - 1}; "
                "map them through memories.classes"
            )
        y = y.astype(np.int64)
        y[np.isnan(x).all(axis=0)] = NO_LABEL
        images.append(x)
        labels.append(y)
    return images, labels


def band_statistics(images: list[np.ndarray], val_masks: Sequence[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation of reflectance with data in the training region."""
    n_bands = images[0].shape[0]
    total = np.zeros(n_bands)
    total_sq = np.zeros(n_bands)
    count = np.zeros(n_bands)
    for x, val in zip(images, val_masks, strict=True):
        pixels = x[:, ~val].astype(np.float64)
        ok = ~np.isnan(pixels)
        pixels = np.where(ok, pixels, 0.0)
        total += pixels.sum(axis=1)
        total_sq += (pixels**2).sum(axis=1)
        count += ok.sum(axis=1)
    if (count == 0).any():
        empty = [i for i in range(n_bands) if count[i] == 0]
        raise ProcessingError(f"bands {empty} have no data in the training region; drop them or add scenes")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std = np.where(std > 1e-6, std, 1.0)
    return mean.tolist(), std.tolist()


class TrainPatches(Dataset[tuple[Tensor, Tensor]]):
    """``patches_per_scene`` random patches per scene and epoch, flipped and rotated at random.

    Draws come from one seeded generator in the order the loader asks, so a run
    in one process (no loader workers) is reproducible.
    """

    def __init__(
        self,
        images: list[np.ndarray],
        labels: list[np.ndarray],
        split: SceneSplit,
        patches_per_scene: int,
        seed: int,
    ) -> None:
        self.images, self.labels, self.split = images, labels, split
        self.scenes = [i for i, w in enumerate(split.train_windows) if len(w)]
        if not self.scenes:
            raise ProcessingError(
                f"no {split.patch_px} px training patch lies wholly outside the validation blocks with a "
                "labelled pixel; add labels, lower val_fraction or use a smaller model.patch_px"
            )
        self.patches_per_scene = patches_per_scene
        self.rng = np.random.default_rng([seed, 1])

    def __len__(self) -> int:
        return len(self.scenes) * self.patches_per_scene

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        s = self.scenes[index % len(self.scenes)]
        windows = self.split.train_windows[s]
        r, c = windows[self.rng.integers(len(windows))]
        p = self.split.patch_px
        x = self.images[s][:, r : r + p, c : c + p]
        y = self.labels[s][r : r + p, c : c + p]
        k = int(self.rng.integers(4))
        x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
        if self.rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


class ValidationBlocks(Dataset[tuple[Tensor, Tensor]]):
    """Each validation block whole, padded to multiples of 8 (NaN reflectance, label 0)."""

    def __init__(self, images: list[np.ndarray], labels: list[np.ndarray], split: SceneSplit) -> None:
        self.items: list[tuple[Tensor, Tensor]] = []
        for x, y, boxes in zip(images, labels, split.val_boxes, strict=True):
            for r0, r1, c0, c1 in boxes:
                xb = pad_to_multiple(x[:, r0:r1, c0:c1], np.nan)
                yb = pad_to_multiple(y[None, r0:r1, c0:c1], NO_LABEL)[0]
                self.items.append((torch.from_numpy(xb), torch.from_numpy(yb)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.items[index]


def pad_to_multiple(a: np.ndarray, fill: float) -> np.ndarray:
    """``a`` ``(C, H, W)`` padded at the bottom and right to multiples of 8."""
    pad_r = -a.shape[1] % DOWNSAMPLING
    pad_c = -a.shape[2] % DOWNSAMPLING
    if not pad_r and not pad_c:
        return np.ascontiguousarray(a)
    return np.pad(a, ((0, 0), (0, pad_r), (0, pad_c)), constant_values=fill)


# -- helpers ------------------------------------------------------------------------


def _windows(allowed: np.ndarray, labelled: np.ndarray, patch: int) -> np.ndarray:
    """Top-left corners of ``patch`` windows wholly ``allowed`` with at least one ``labelled`` pixel."""
    rows, cols = allowed.shape
    if rows < patch or cols < patch:
        return np.zeros((0, 2), dtype=np.int32)
    bad = _window_sums(~allowed, patch)
    lab = _window_sums(labelled, patch)
    r, c = np.nonzero((bad == 0) & (lab > 0))
    return np.stack([r, c], axis=1).astype(np.int32)


def _window_sums(mask: np.ndarray, patch: int) -> np.ndarray:
    """Sum of ``mask`` over every ``patch`` x ``patch`` window, indexed by its top-left corner."""
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    return integral[patch:, patch:] - integral[:-patch, patch:] - integral[patch:, :-patch] + integral[:-patch, :-patch]


def pair_band_statistics(pairs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation (float32, NaN skipped) of every pair's two dates together.

    ``pairs``: objects with ``before`` and ``after`` ``(C, H, W)`` arrays (:class:`memories.ai.change.ChangePair`).

    The figures of the images of all pairs put side by side, without putting them side by side: the
    pairs of a tile share their months' arrays (24 months make 276 pairs, 3.5 GB of float32 at
    512 px), so each distinct array is reduced once, in float64, and weighted by the times it occurs.
    """
    weights: dict[int, list[Any]] = {}
    for p in pairs:
        for image in (p.before, p.after):
            entry = weights.setdefault(id(image), [image, 0])
            entry[1] += 1
    n_bands = pairs[0].before.shape[0]
    total = np.zeros(n_bands)
    count = np.zeros(n_bands)
    for image, w in weights.values():
        flat = np.asarray(image).reshape(n_bands, -1)
        total += w * np.nansum(flat, axis=1, dtype=np.float64)
        count += w * np.count_nonzero(~np.isnan(flat), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        squares = np.zeros(n_bands)
        for image, w in weights.values():
            flat = np.asarray(image).reshape(n_bands, -1)
            squares += w * np.nansum(np.square(flat - mean[:, None]), axis=1)
        std = np.sqrt(squares / count)
    return mean.astype(np.float32), std.astype(np.float32)
