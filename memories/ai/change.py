"""Change detection between two composites of one tile: a difference rule and a siamese U-Net.

Input convention as :mod:`memories.ai.land_cover`: reflectance float32
``(band, y, x)`` 0–1 with NaN for no data, bands ``blue green red nir swir16
swir22`` (:data:`memories.earth.stac_profiles.COMMON_BANDS`) unless given otherwise.

**Baseline** (:func:`difference_change`): a pixel has changed when, between the
two dates, its NDVI moved by at least ``ndvi`` (vegetation cut or built over),
its NDWI by at least ``ndwi`` (flooded or drained), or its reflectance vector by
at least ``reflectance`` (Euclidean norm over the bands, reflectance units);
patches smaller than ``min_patch_px`` are speckle and dropped.

**Learned** (:class:`ChangeDetector`): a siamese U-Net. One encoder (shared
weights) reads both dates; at every level the absolute difference of the two
feature maps feeds a U-Net decoder whose 1x1 head gives the logit of "changed".
Input is the two dates stacked on the channel axis, ``(2 * C, H, W)``.

Truth and scores: :func:`event_truth` gives, per scripted event of the sample
world, the pixels whose land cover differs between the two instants;
:func:`change_iou` scores a change map against them.

Outputs: :func:`change_polygons` turns a change mask into polygons in the tile
CRS (a GeoDataFrame ready for :func:`memories.earth.gis.write_geoparquet`).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from memories.ai import training
from memories.ai.layers import channels_last, conv_block, float_list, nhwc
from memories.ai.split import DOWNSAMPLING, pair_band_statistics, spatial_split
from memories.ai.tiling import tiled_inference
from memories.earth.indices import ndvi, ndwi
from memories.earth.stac_profiles import COMMON_BANDS
from memories.errors import ConfigError, ProcessingError

if TYPE_CHECKING:
    from memories.store.paths import StorageRoot

__all__ = [
    "ChangeDetector",
    "ChangePair",
    "ChangeThresholds",
    "ChangeTrainingResult",
    "difference_change",
    "drop_small_patches",
    "load_change_detector",
    "predict_change",
    "train_change_detector",
]

IGNORE = 255
"""Label of a pixel that is neither trained on nor scored (no data in either date)."""


# -- the baseline -----------------------------------------------------------------


@dataclass(frozen=True)
class ChangeThresholds:
    """Thresholds of the difference rule (NDVI and NDWI are dimensionless, −1..1)."""

    ndvi: float = 0.3
    """Absolute NDVI difference that marks a change."""
    ndwi: float = 0.3
    """Absolute NDWI difference that marks a change."""
    reflectance: float = 0.15
    """Euclidean norm of the reflectance difference over the bands, reflectance units."""
    min_index_brightness: float = 0.1
    """An index difference counts only where the index's two bands sum to at least this
    (reflectance) on one of the dates: on dark pixels (water) sensor noise swings NDVI and NDWI."""
    min_patch_px: int = 10
    """Changed patches (8-connected) smaller than this, pixels, are dropped as speckle."""


def difference_change(
    before: np.ndarray,
    after: np.ndarray,
    threshold: ChangeThresholds | None = None,
    *,
    band_names: Sequence[str] = COMMON_BANDS,
) -> tuple[np.ndarray, np.ndarray]:
    """The difference-operator baseline: a change mask and a change score.

    Args:
        before: Reflectance ``(C, H, W)`` of the earlier date, NaN for no data.
        after: Reflectance ``(C, H, W)`` of the later date.
        threshold: The rule's thresholds; :class:`ChangeThresholds` defaults if None.
        band_names: Names of the C bands (needs ``green``, ``red``, ``nir``).

    Returns:
        bool ``(H, W)`` change (False where either date has no data) and float32
        ``(H, W)`` score: the largest of the three differences, each divided by its
        threshold (1 = on the threshold; NaN where either date has no data).
    """
    t = threshold or ChangeThresholds()
    a, b = _check_pair(before, after, band_names)
    idx = {n: i for i, n in enumerate(band_names)}
    with np.errstate(invalid="ignore", divide="ignore"):
        nir, red, green = idx["nir"], idx["red"], idx["green"]
        d_ndvi = np.abs(ndvi(b[nir], b[red]) - ndvi(a[nir], a[red]))
        d_ndwi = np.abs(ndwi(b[green], b[nir]) - ndwi(a[green], a[nir]))
        bright_vi = np.fmax(a[nir] + a[red], b[nir] + b[red]) >= t.min_index_brightness
        bright_wi = np.fmax(a[green] + a[nir], b[green] + b[nir]) >= t.min_index_brightness
        d_ndvi = np.where(bright_vi, d_ndvi, 0.0)
        d_ndwi = np.where(bright_wi, d_ndwi, 0.0)
        d_refl = np.sqrt(np.nansum((b - a) ** 2, axis=0))
        score = np.fmax(np.fmax(d_ndvi / t.ndvi, d_ndwi / t.ndwi), d_refl / t.reflectance)
    valid = ~(np.isnan(a).all(axis=0) | np.isnan(b).all(axis=0))
    score = np.where(valid, score, np.nan).astype(np.float32)
    with np.errstate(invalid="ignore"):
        change = valid & (score >= 1.0)
    return drop_small_patches(change, t.min_patch_px), score


# -- the learned model ---------------------------------------------------------------


class ChangeDetector(pl.LightningModule):
    """A siamese U-Net that maps two dates of reflectance to the probability of change per pixel.

    The encoder (three levels of ``width``, ``2 * width``, ``4 * width`` channels
    and a bottleneck of ``8 * width`` at 1/8 resolution) runs on each date with
    the same weights; the decoder sees ``|f(after) - f(before)|`` at every level.
    Dropout follows the bottleneck and the deeper decoder blocks (Monte-Carlo
    dropout works as for the land-cover model).

    Args:
        in_channels: Bands per date (the input has twice as many).
        width: Channels of the first level.
        dropout: Dropout probability, 0–1.
        band_mean: Per-band mean reflectance used to normalize (one date's bands); zeros if None.
        band_std: Per-band standard deviation; ones if None.
        band_names: Names of one date's bands (recorded).
        pos_weight: Weight of changed pixels in the binary cross-entropy.
        lr: Learning rate of AdamW.
    """

    band_mean: Tensor
    band_std: Tensor

    def __init__(
        self,
        in_channels: int,
        *,
        width: int = 16,
        dropout: float = 0.1,
        band_mean: Sequence[float] | None = None,
        band_std: Sequence[float] | None = None,
        band_names: Sequence[str] | None = None,
        pos_weight: float = 4.0,
        lr: float = 3e-3,
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ConfigError(f"in_channels={in_channels}: a change model needs at least one band per date")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout={dropout} must be a probability in [0, 1)")
        mean = float_list(band_mean, in_channels, 0.0, "band_mean")
        std = float_list(band_std, in_channels, 1.0, "band_std")
        self.save_hyperparameters(
            {
                "in_channels": int(in_channels),
                "width": int(width),
                "dropout": float(dropout),
                "band_mean": mean,
                "band_std": std,
                "band_names": [str(n) for n in band_names] if band_names is not None else None,
                "pos_weight": float(pos_weight),
                "lr": float(lr),
            }
        )
        self.register_buffer("band_mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("band_std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))
        c, w, p = in_channels, width, dropout
        self.enc1 = conv_block(c, w)
        self.enc2 = conv_block(w, 2 * w)
        self.enc3 = conv_block(2 * w, 4 * w)
        self.enc4 = conv_block(4 * w, 8 * w)
        self.drop = nn.Dropout(p)
        self.up3 = nn.ConvTranspose2d(8 * w, 4 * w, kernel_size=2, stride=2)
        self.dec3 = nn.Sequential(conv_block(8 * w, 4 * w), nn.Dropout(p))
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, kernel_size=2, stride=2)
        self.dec2 = nn.Sequential(conv_block(4 * w, 2 * w), nn.Dropout(p))
        self.up1 = nn.ConvTranspose2d(2 * w, w, kernel_size=2, stride=2)
        self.dec1 = conv_block(2 * w, w)
        self.head = nn.Conv2d(w, 1, kernel_size=1)
        channels_last(self)

    def encode(self, x: Tensor) -> list[Tensor]:
        """Feature maps of one date at 1, 1/2, 1/4 and 1/8 resolution."""
        x = nhwc(torch.nan_to_num((x - self.band_mean) / self.band_std, nan=0.0, posinf=0.0, neginf=0.0))
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        e4 = self.enc4(F.max_pool2d(e3, 2))
        return [e1, e2, e3, e4]

    def forward(self, x: Tensor) -> Tensor:
        """Change logits ``(B, 1, H, W)`` of two dates stacked as ``(B, 2C, H, W)`` (H, W multiples of 8)."""
        c = int(self.hparams["in_channels"])
        if x.shape[1] != 2 * c:
            raise ProcessingError(f"input has {x.shape[1]} channels; the change model wants 2 x {c} (before, after)")
        if x.shape[-1] % DOWNSAMPLING or x.shape[-2] % DOWNSAMPLING:
            raise ProcessingError(
                f"input of {x.shape[-2]}x{x.shape[-1]} px: pad to multiples of {DOWNSAMPLING} or call predict_change"
            )
        fa, fb = self.encode(x[:, :c]), self.encode(x[:, c:])
        d1, d2, d3, d4 = (torch.abs(b - a) for a, b in zip(fa, fb, strict=True))
        y = self.dec3(torch.cat([self.up3(self.drop(d4)), d3], dim=1))
        y = self.dec2(torch.cat([self.up2(y), d2], dim=1))
        y = self.dec1(torch.cat([self.up1(y), d1], dim=1))
        logits: Tensor = self.head(y)
        return logits

    def change_probability(self, x: Tensor) -> Tensor:
        """Probability of change ``(B, 1, H, W)``, float32, NaN where either date has no data."""
        c = int(self.hparams["in_channels"])
        p = torch.sigmoid(self(x).float())
        nodata = torch.isnan(x[:, :c]).all(dim=1, keepdim=True) | torch.isnan(x[:, c:]).all(dim=1, keepdim=True)
        return p.masked_fill(nodata, float("nan"))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Weighted binary cross-entropy over pixels with a label."""
        x, y = batch
        loss = self._loss(self(x)[:, 0], y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        """AdamW."""
        return torch.optim.AdamW(self.parameters(), lr=self.hparams["lr"], weight_decay=1e-4)

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        keep = y != IGNORE
        if not bool(keep.any()):
            return logits.sum() * 0.0
        weight = torch.tensor(self.hparams["pos_weight"], device=logits.device)
        loss: Tensor = F.binary_cross_entropy_with_logits(logits.float()[keep], y[keep].float(), pos_weight=weight)
        return loss


@dataclass(frozen=True)
class ChangePair:
    """Two dates of one place and, for training or scoring, the change between them."""

    before: np.ndarray
    """float32 ``(C, H, W)`` reflectance, NaN for no data."""
    after: np.ndarray
    """float32 ``(C, H, W)`` reflectance of the later date."""
    label: np.ndarray | None = None
    """uint8 ``(H, W)``: 1 changed, 0 unchanged, :data:`IGNORE` unknown."""


@dataclass
class ChangeTrainingResult:
    """A trained change detector and how it did on the held-out pairs."""

    model: ChangeDetector
    metrics: dict[str, float]
    """``val_iou``, ``val_precision``, ``val_recall`` (0–1, at probability 0.5, NaN without
    held-out pairs), ``steps``, ``seconds``."""


def train_change_detector(
    train: Sequence[ChangePair],
    *,
    validation: Sequence[ChangePair] = (),
    band_names: Sequence[str] = COMMON_BANDS,
    width: int = 16,
    patch_px: int = 64,
    steps: int = 200,
    batch_size: int = 8,
    seed: int = 7,
    accelerator: str = "auto",
    fast_dev_run: bool = False,
) -> ChangeTrainingResult:
    """Train a :class:`ChangeDetector` on labelled pairs; score it on held-out pairs.

    Patches are drawn with a seeded generator, half of them centred on a changed
    pixel (changes are rare), with random flips and rotations. Keep the
    held-out pairs in places the training pairs do not cover (another tile, or
    the validation blocks of :func:`memories.ai.split.spatial_split`).

    Args:
        train: Pairs with labels.
        validation: Held-out pairs with labels, scored after training.
        band_names: Names of one date's C bands.
        width: Channels of the first level.
        patch_px: Side of a training patch, pixels (a multiple of 8).
        steps: Optimizer steps.
        batch_size: Patches per step.
        seed: Seed of initialization and patch draws.
        accelerator: Lightning accelerator; bf16 mixed precision on CUDA.
        fast_dev_run: One training batch, to check the wiring.
    """
    if patch_px % DOWNSAMPLING:
        raise ConfigError(f"patch_px={patch_px} must be a multiple of {DOWNSAMPLING}")
    names = [str(n) for n in band_names]
    for p in (*train, *validation):
        _check_pair(p.before, p.after, names)
        if p.label is None or p.label.shape != p.before.shape[1:]:
            raise ProcessingError("every training and validation pair needs a label of shape (H, W)")
    if not train:
        raise ProcessingError("no training pairs; give at least one labelled ChangePair")
    pl.seed_everything(seed, workers=True, verbose=False)
    mean, std = pair_band_statistics(train)
    std = np.where(std > 1e-6, std, 1.0)
    changed = sum(int((p.label == 1).sum()) for p in train if p.label is not None)
    unchanged = sum(int((p.label == 0).sum()) for p in train if p.label is not None)
    # Half the patches centre on a change, so the changed share of a batch is far above the share in the scene.
    pos_weight = float(np.clip(unchanged / max(changed, 1) / 8.0, 1.0, 8.0))
    model = ChangeDetector(
        len(names), width=width, band_mean=mean.tolist(), band_std=std.tolist(), band_names=names, pos_weight=pos_weight
    )
    data = _ChangePatches(train, patch_px, steps * batch_size, seed)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    trainer = training.trainer(accelerator, max_epochs=1, fast_dev_run=fast_dev_run)
    started = time.perf_counter()
    training.fit(trainer, model, loader)
    seconds = time.perf_counter() - started
    model.cpu().eval()
    metrics: dict[str, float] = {"steps": float(trainer.global_step), "seconds": round(seconds, 3)}
    tp = fp = fn = 0
    for p in validation:
        pred = predict_change(model, p.before, p.after) >= 0.5
        known = p.label != IGNORE
        truth = p.label == 1
        tp += int((pred & truth & known).sum())
        fp += int((pred & ~truth & known).sum())
        fn += int((~pred & truth & known).sum())
    metrics["val_iou"] = tp / (tp + fp + fn) if validation and tp + fp + fn else math.nan
    metrics["val_precision"] = tp / (tp + fp) if tp + fp else math.nan
    metrics["val_recall"] = tp / (tp + fn) if tp + fn else math.nan
    return ChangeTrainingResult(model=model, metrics=metrics)


def predict_change(
    model: ChangeDetector,
    before: np.ndarray,
    after: np.ndarray,
    *,
    batch_px: int = 512,
    scale: float | Sequence[float] | None = None,
    offset: float | Sequence[float] | None = None,
    nodata: int = 0,
    tiles_per_batch: int = 8,
) -> np.ndarray:
    """Probability of change float32 ``(H, W)`` (0–1, NaN where either date has no data), tile by tile.

    ``before`` and ``after`` are ``(C, H, W)`` float reflectance with NaN, or integer
    DN with ``scale``/``offset`` (uploaded as DN and scaled on the device, as
    :func:`memories.ai.tiling.tiled_inference` does).
    """
    c = int(model.hparams["in_channels"])
    a, b = np.asarray(before), np.asarray(after)
    if a.shape != b.shape or a.ndim != 3 or a.shape[0] != c:
        raise ProcessingError(
            f"before {a.shape} and after {b.shape}: the change model wants two ({c}, H, W) arrays on one grid"
        )
    scale2 = None if scale is None else np.tile(np.broadcast_to(np.asarray(scale, np.float32).ravel(), (c,)), 2)
    offset2 = None if offset is None else np.tile(np.broadcast_to(np.asarray(offset, np.float32).ravel(), (c,)), 2)
    out = tiled_inference(
        model,
        model.change_probability,
        np.concatenate([a, b], axis=0),
        n_out=1,
        batch_px=batch_px,
        scale=None if scale2 is None else scale2.tolist(),
        offset=None if offset2 is None else offset2.tolist(),
        nodata=nodata,
        tiles_per_batch=tiles_per_batch,
    )
    return np.asarray(out[0])


def load_change_detector(root: StorageRoot, uri: str, *, map_location: str = "cpu") -> ChangeDetector:
    """The :class:`ChangeDetector` of a checkpoint written by the model registry, in eval mode."""
    checkpoint = torch.load(io.BytesIO(root.read_bytes(uri)), map_location=map_location, weights_only=True)
    model = ChangeDetector(**checkpoint["hyper_parameters"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(map_location).eval()


def split_pair_for_validation(
    pair: ChangePair, *, block_px: int, val_fraction: float, seed: int
) -> tuple[ChangePair, ChangePair]:
    """A labelled pair as (training, validation) copies with the other part's labels set to IGNORE.

    Blocks come from :func:`memories.ai.split.spatial_split`, so the held-out pixels
    are whole blocks that no training label touches (patches may still read their
    reflectance as context, never their labels).
    """
    if pair.label is None:
        raise ProcessingError("a pair needs a label to be split")
    val = np.zeros(pair.label.shape, dtype=bool)
    for r0, r1, c0, c1 in spatial_split(pair.label.shape, block_px=block_px, val_fraction=val_fraction, seed=seed):
        val[r0:r1, c0:c1] = True
    train_label = np.where(val, IGNORE, pair.label).astype(np.uint8)
    val_label = np.where(val, pair.label, IGNORE).astype(np.uint8)
    return ChangePair(pair.before, pair.after, train_label), ChangePair(pair.before, pair.after, val_label)


# -- helpers -----------------------------------------------------------------------------


def _check_pair(before: np.ndarray, after: np.ndarray, band_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(before, dtype=np.float32)
    b = np.asarray(after, dtype=np.float32)
    if a.shape != b.shape or a.ndim != 3:
        raise ProcessingError(
            f"before {a.shape} and after {b.shape} differ or are not (C, H, W); read both dates on one tile grid"
        )
    if a.shape[0] != len(band_names):
        raise ProcessingError(f"{a.shape[0]} bands for band_names {list(band_names)}; give one name per band")
    missing = {"green", "red", "nir"} - set(band_names)
    if missing:
        raise ProcessingError(f"band_names {list(band_names)} lack {sorted(missing)}; the change rule needs them")
    return a, b


def drop_small_patches(mask: np.ndarray, min_patch_px: int) -> np.ndarray:
    """``mask`` without its 8-connected patches of fewer than ``min_patch_px`` pixels (speckle)."""
    if min_patch_px <= 1 or not mask.any():
        return mask
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    keep = np.concatenate([[False], sizes >= min_patch_px])
    out: np.ndarray = keep[labels]
    return out


class _ChangePatches(Dataset[tuple[Tensor, Tensor]]):
    """``n`` seeded random patches ``(2C, p, p)`` with labels; half centred on a changed pixel."""

    def __init__(self, pairs: Sequence[ChangePair], patch_px: int, n: int, seed: int) -> None:
        self.items = []
        for p in pairs:
            label = np.asarray(p.label)
            if min(label.shape) < patch_px:
                raise ConfigError(f"patch_px={patch_px} exceeds a pair of {label.shape} px; use a smaller patch")
            x = np.concatenate([p.before, p.after], axis=0).astype(np.float32)
            self.items.append((x, label, np.argwhere(label == 1)))
        self.patch, self.n = patch_px, n
        self.rng = np.random.default_rng([seed, 2])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x, y, changed = self.items[int(self.rng.integers(len(self.items)))]
        p = self.patch
        rows, cols = y.shape
        if len(changed) and self.rng.random() < 0.5:
            r, c = changed[self.rng.integers(len(changed))]
            r0 = int(np.clip(r - self.rng.integers(p), 0, rows - p))
            c0 = int(np.clip(c - self.rng.integers(p), 0, cols - p))
        else:
            r0, c0 = int(self.rng.integers(rows - p + 1)), int(self.rng.integers(cols - p + 1))
        xb, yb = x[:, r0 : r0 + p, c0 : c0 + p], y[r0 : r0 + p, c0 : c0 + p]
        k = int(self.rng.integers(4))
        xb, yb = np.rot90(xb, k, axes=(1, 2)), np.rot90(yb, k)
        if self.rng.random() < 0.5:
            xb, yb = xb[:, :, ::-1], yb[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(xb)), torch.from_numpy(np.ascontiguousarray(yb).astype(np.int64))
