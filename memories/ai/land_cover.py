"""Land-cover segmentation: a small U-Net trained from monthly composites.

Input convention, everywhere in this module: reflectance is a float32 array
``(band, y, x)`` of surface reflectance 0–1 with NaN where there is no data
(cloud gap, nodata). Labels are uint8 ``(y, x)`` class codes of
:mod:`memories.classes`, 0 meaning "no label". A pixel whose bands are all NaN
has no data: it is never trained on, and it is predicted as class 0 with NaN
confidence.

The model normalizes reflectance with per-band mean and standard deviation
stored in its hyper-parameters (so a checkpoint is self-contained), then sets
NaN to 0, i.e. to the band mean.

Training uses the seeded *spatial* split of :mod:`memories.ai.split`, so a
location is never in both training and validation; :class:`SceneSplit`,
:func:`spatial_split` and :func:`split_scenes` are re-exported here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassConfusionMatrix

from memories.ai import training
from memories.ai.layers import channels_last, conv_block, float_list, nhwc
from memories.ai.split import (
    DOWNSAMPLING,
    SceneSplit,
    TrainPatches,
    ValidationBlocks,
    band_statistics,
    check_samples,
    spatial_split,
    split_scenes,
)
from memories.ai.tiling import check_input, tiled_inference
from memories.classes import CLASS_BY_CODE, N_CLASSES, NO_LABEL
from memories.config import ModelSettings
from memories.errors import ConfigError, ProcessingError

__all__ = [
    "ENCODER_PARTS",
    "LandCoverUNet",
    "SceneSplit",
    "TrainingResult",
    "confusion_metrics",
    "initial_model",
    "predict_land_cover",
    "spatial_split",
    "split_scenes",
    "train_land_cover",
]

Schedule = Literal["none", "cosine", "onecycle"]
"""Learning-rate schedule of :class:`LandCoverUNet`."""
Freeze = Literal["none", "encoder"]
"""Which parts of a model that training starts from stay fixed (``train_land_cover(freeze=...)``)."""

BATCH_SIZE = 16
"""Training patches per optimizer step (``settings.batch_size`` overrides it where settings have one)."""


# -- the model ----------------------------------------------------------------


class LandCoverUNet(pl.LightningModule):
    """A three-level U-Net that classifies each pixel into land-cover classes.

    Levels have ``width``, ``2 * width`` and ``4 * width`` channels, then a
    bottleneck of ``8 * width`` at 1/8 resolution; each block is two 3x3
    convolutions with BatchNorm and ReLU. Dropout (``dropout``, element-wise)
    follows the bottleneck and the two deeper decoder blocks, so Monte-Carlo
    dropout (:meth:`enable_mc_dropout`) gives per-pixel uncertainty.

    Output channel ``c`` is the logit of class code ``c``; code 0 ("no label")
    is ignored by the loss and never predicted.

    Like torchgeo's trainers, the parts are built by hooks a subclass can
    override: :meth:`configure_network`, :meth:`configure_losses`,
    :meth:`configure_metrics`.

    Args:
        in_channels: Number of reflectance bands.
        n_classes: Output channels, class code 0 included.
        width: Channels of the first level.
        dropout: Dropout probability, 0–1.
        band_mean: Per-band mean reflectance used to normalize; zeros if None.
        band_std: Per-band standard deviation of reflectance; ones if None.
        band_names: Names of the input bands, in order (recorded, not used).
        class_weights: Cross-entropy weight per class code (``n_classes`` values); None for equal.
        lr: Peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        schedule: Learning-rate schedule: ``"onecycle"`` (per step), ``"cosine"`` (per epoch) or ``"none"``.
    """

    band_mean: Tensor
    band_std: Tensor

    def __init__(
        self,
        in_channels: int,
        n_classes: int = N_CLASSES,
        *,
        width: int = 16,
        dropout: float = 0.1,
        band_mean: Sequence[float] | None = None,
        band_std: Sequence[float] | None = None,
        band_names: Sequence[str] | None = None,
        class_weights: Sequence[float] | None = None,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        schedule: Schedule = "cosine",
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ConfigError(f"in_channels={in_channels}: a land-cover model needs at least one band")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout={dropout} must be a probability in [0, 1)")
        if schedule not in ("none", "cosine", "onecycle"):
            raise ConfigError(f"schedule={schedule!r}; use 'onecycle', 'cosine' or 'none'")
        mean = float_list(band_mean, in_channels, 0.0, "band_mean")
        std = float_list(band_std, in_channels, 1.0, "band_std")
        if any(not s > 0 for s in std):
            raise ConfigError(f"band_std={std} must be positive; compute it from reflectance that varies")
        names = [str(n) for n in band_names] if band_names is not None else None
        if names is not None and len(names) != in_channels:
            raise ConfigError(f"{len(names)} band_names {names} for in_channels={in_channels}; give one per band")
        weights = float_list(class_weights, n_classes, 1.0, "class_weights") if class_weights is not None else None
        # Plain Python values only, so a checkpoint loads with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                "in_channels": int(in_channels),
                "n_classes": int(n_classes),
                "width": int(width),
                "dropout": float(dropout),
                "band_mean": mean,
                "band_std": std,
                "band_names": names,
                "class_weights": weights,
                "lr": float(lr),
                "weight_decay": float(weight_decay),
                "schedule": schedule,
            }
        )
        self.register_buffer("band_mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("band_std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))
        self.configure_network()
        channels_last(self)
        self.configure_losses()
        self.configure_metrics()
        self.val_confusion: np.ndarray | None = None
        """Confusion matrix (true code x predicted code, pixels) of the last validation epoch."""

    # -- hooks --------------------------------------------------------------
    def configure_network(self) -> None:
        """Build the encoder, bottleneck, decoder and 1x1 head."""
        c, w, p = self.hparams["in_channels"], self.hparams["width"], self.hparams["dropout"]
        self.enc1 = conv_block(c, w)
        self.enc2 = conv_block(w, 2 * w)
        self.enc3 = conv_block(2 * w, 4 * w)
        self.bottleneck = nn.Sequential(conv_block(4 * w, 8 * w), nn.Dropout(p))
        self.up3 = nn.ConvTranspose2d(8 * w, 4 * w, kernel_size=2, stride=2)
        self.dec3 = nn.Sequential(conv_block(8 * w, 4 * w), nn.Dropout(p))
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, kernel_size=2, stride=2)
        self.dec2 = nn.Sequential(conv_block(4 * w, 2 * w), nn.Dropout(p))
        self.up1 = nn.ConvTranspose2d(2 * w, w, kernel_size=2, stride=2)
        self.dec1 = conv_block(2 * w, w)
        self.head = nn.Conv2d(w, self.hparams["n_classes"], kernel_size=1)

    def configure_losses(self) -> None:
        """Cross-entropy that ignores unlabelled pixels (code 0), optionally class-weighted."""
        weights = self.hparams["class_weights"]
        weight = torch.tensor(weights, dtype=torch.float32) if weights is not None else None
        self.criterion = nn.CrossEntropyLoss(weight=weight, ignore_index=NO_LABEL)

    def configure_metrics(self) -> None:
        """A validation confusion matrix; every reported metric derives from it."""
        self.val_confmat = MulticlassConfusionMatrix(num_classes=self.hparams["n_classes"], ignore_index=NO_LABEL)

    # -- inference ----------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, n_classes, H, W)`` of reflectance ``(B, C, H, W)``.

        ``x`` is reflectance 0–1 with NaN for no data; H and W must be multiples
        of 8 (:func:`predict_land_cover` pads any size).
        """
        logits: Tensor = self.head(self.features(x))
        return logits

    def features(self, x: Tensor) -> Tensor:
        """The last decoder level ``(B, width, H, W)`` before the 1x1 head (what the multi-modal model fuses)."""
        return self.decode(self.encode(x))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The deterministic part: the encoder levels and the bottleneck's convolutions, up to its dropout.

        Every Monte-Carlo pass shares it (:mod:`memories.ai.mc_dropout` runs it once per batch and
        :meth:`decode` once per pass); ``features(x)`` is ``decode(encode(x))``.
        """
        if x.shape[-1] % DOWNSAMPLING or x.shape[-2] % DOWNSAMPLING:
            raise ProcessingError(
                f"input of {x.shape[-2]}x{x.shape[-1]} px: the U-Net needs multiples of {DOWNSAMPLING}; "
                "pad it or call predict_land_cover, which tiles and pads any size"
            )
        x = nhwc(torch.nan_to_num((x - self.band_mean) / self.band_std, nan=0.0, posinf=0.0, neginf=0.0))
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        return e1, e2, e3, self.bottleneck[0](F.max_pool2d(e3, 2))

    def decode(self, encoded: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
        """The last decoder level of :meth:`encode`'s output: the bottleneck's dropout, then the decoder."""
        e1, e2, e3, b = encoded
        b = self.bottleneck[1](b)
        d3 = self.dec3(torch.cat([self.up3(b), e3], dim=1))
        d2 = self.dec2(torch.cat([self.up2(d3), e2], dim=1))
        d1: Tensor = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return d1

    def classify(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Class codes (uint8) and confidence (float32, max softmax probability) of ``x``.

        Class 0 is never predicted for pixels with data; pixels whose bands are
        all NaN get class 0 and NaN confidence.
        """
        probs = self.class_probabilities(x)
        confidence, index = probs.max(dim=1)
        classes = (index + 1).to(torch.uint8)
        nodata = torch.isnan(x).all(dim=1)
        classes = classes.masked_fill(nodata, NO_LABEL)
        confidence = confidence.masked_fill(nodata, float("nan"))
        return classes, confidence

    def class_probabilities(self, x: Tensor) -> Tensor:
        """Softmax probabilities ``(B, n_classes - 1, H, W)`` of class codes 1.., float32."""
        return self.decoded_probabilities(self.encode(x))

    def decoded_probabilities(self, encoded: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
        """:meth:`class_probabilities` of the input whose :meth:`encode` is ``encoded``."""
        return torch.softmax(self.head(self.decode(encoded))[:, 1:].float(), dim=1)

    def predict_step(self, batch: Any, batch_idx: int) -> tuple[Tensor, Tensor]:
        """:meth:`classify` for ``Trainer.predict``; a batch is reflectance or (reflectance, ...)."""
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return self.classify(x)

    def enable_mc_dropout(self) -> None:
        """Eval mode with dropout layers active, for Monte-Carlo dropout sampling."""
        self.eval()
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.train()

    # -- training -----------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Cross-entropy of one batch of patches."""
        x, y = batch
        loss = self._loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Loss and confusion matrix of one validation block."""
        x, y = batch
        logits = self(x)
        self.log("val_loss", self._loss(logits, y), on_step=False, on_epoch=True, batch_size=x.shape[0])
        preds = logits[:, 1:].argmax(dim=1) + 1
        self.val_confmat.update(preds, y)

    def on_validation_epoch_end(self) -> None:
        """Log pixel accuracy, mean IoU and per-class accuracy and IoU."""
        cm = self.val_confmat.compute().detach().cpu().numpy().astype(np.int64)
        self.val_confmat.reset()
        self.val_confusion = cm
        metrics = confusion_metrics(cm)
        self.log_dict({k: v for k, v in metrics.items() if not math.isnan(v)})

    def configure_optimizers(self) -> Any:
        """AdamW with the configured schedule."""
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        if hp["schedule"] == "onecycle":
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            scheduler: Any = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp["lr"], total_steps=total)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        if hp["schedule"] == "cosine":
            epochs = max(int(self.trainer.max_epochs or 1), 1)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        return optimizer

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        if not bool((y != NO_LABEL).any()):
            # Cross-entropy of nothing is 0/0; a zero that keeps the graph is the honest value.
            return logits.sum() * 0.0
        loss: Tensor = self.criterion(logits.float(), y)
        return loss


# -- training -------------------------------------------------------------------


@dataclass
class TrainingResult:
    """A trained land-cover model and how well it did on the validation blocks."""

    model: LandCoverUNet
    metrics: dict[str, float]
    """``val_accuracy``, ``val_miou`` (0–1), ``val_accuracy/<class>``, ``val_iou/<class>``,
    ``n_train_pixels``, ``n_val_pixels`` (labelled pixels), ``epochs``, ``seconds`` (wall time of fitting)."""
    band_names: list[str] = field(default_factory=list)


def train_land_cover(
    samples: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    band_names: Sequence[str],
    settings: ModelSettings | None = None,
    val_fraction: float = 0.25,
    accelerator: str = "auto",
    max_epochs: int | None = None,
    fast_dev_run: bool = False,
    init_from: LandCoverUNet | None = None,
    freeze: Freeze = "none",
    lr: float | None = None,
) -> TrainingResult:
    """Train a :class:`LandCoverUNet` on labelled scenes with a seeded spatial split.

    Transfer learning (:mod:`memories.ai.transfer`) starts from ``init_from``: its
    architecture and weights, with the input normalization recomputed on these
    samples (a new sensor or processing level has other band statistics);
    ``freeze="encoder"`` trains only the decoder and head.

    Args:
        samples: ``(reflectance, labels)`` pairs: reflectance float32 ``(C, H, W)``
            0–1 with NaN for no data, labels uint8 ``(H, W)`` class codes with 0 = unknown.
            Scenes of the same shape are taken to be the same place (months of one tile).
        band_names: Names of the C bands, in order; recorded in the model.
        settings: Width, epochs, patch size, patches per scene and seed; ``config.model`` if None.
        val_fraction: Share of block positions held out for validation, 0 to below 1.
        accelerator: Lightning accelerator (``"auto"``, ``"cpu"``, ``"gpu"``).
        max_epochs: Overrides ``settings.max_epochs``.
        fast_dev_run: One training and one validation batch, to check the wiring.
        init_from: A trained model to start from (same bands); a fresh one if None.
        freeze: ``"encoder"`` keeps the encoder and bottleneck of ``init_from`` fixed; ``"none"`` trains all.
        lr: Peak learning rate; the model's default (3e-3) if None.

    Returns:
        The model (eval mode, on the CPU) and its validation metrics.

    Raises:
        ProcessingError: the samples are malformed or leave no training patch.
        ConfigError: the settings cannot work (patch size not a multiple of 8).
    """
    if settings is None:
        from memories.config import config

        settings = config.model
    epochs = int(max_epochs if max_epochs is not None else settings.max_epochs)
    names = [str(n) for n in band_names]
    images, labels = check_samples(samples, names)
    split = split_scenes(labels, patch_px=settings.patch_px, val_fraction=val_fraction, seed=settings.seed)

    pl.seed_everything(settings.seed, workers=True, verbose=False)
    mean, std = band_statistics(images, split.val_masks)
    model = initial_model(names, settings.width, mean, std, init_from=init_from, freeze=freeze, lr=lr)
    train_data = TrainPatches(images, labels, split, settings.patches_per_scene, settings.seed)
    val_data = ValidationBlocks(images, labels, split)
    generator = torch.Generator().manual_seed(settings.seed)
    # ModelSettings has no batch size yet; honour one if the settings grow it.
    batch_size = int(getattr(settings, "batch_size", BATCH_SIZE))
    train_loader = DataLoader(train_data, batch_size=batch_size, shuffle=True, generator=generator)
    val_loader = DataLoader(val_data, batch_size=1) if len(val_data) else None

    trainer = training.trainer(
        accelerator, max_epochs=epochs, fast_dev_run=fast_dev_run, validate=val_loader is not None
    )
    started = time.perf_counter()
    training.fit(trainer, model, train_loader, val_loader)
    seconds = time.perf_counter() - started
    model.cpu().eval()

    cm = model.val_confusion if model.val_confusion is not None else np.zeros((N_CLASSES, N_CLASSES), np.int64)
    metrics = confusion_metrics(cm)
    metrics.update(
        n_train_pixels=float(split.n_train_pixels),
        n_val_pixels=float(cm[1:].sum()),
        epochs=float(trainer.current_epoch),
        seconds=round(seconds, 3),
    )
    return TrainingResult(model=model, metrics=metrics, band_names=names)


ENCODER_PARTS: tuple[str, ...] = ("enc1", "enc2", "enc3", "bottleneck")
"""The modules ``freeze="encoder"`` keeps fixed."""


def initial_model(
    names: list[str],
    width: int,
    mean: list[float],
    std: list[float],
    *,
    init_from: LandCoverUNet | None,
    freeze: Freeze,
    lr: float | None,
) -> LandCoverUNet:
    """A fresh model, or a copy of ``init_from`` with this data's normalization and the frozen parts fixed."""
    if freeze not in ("none", "encoder"):
        raise ConfigError(f"freeze={freeze!r}; use 'encoder' (train decoder and head) or 'none'")
    if init_from is None:
        if freeze != "none":
            raise ConfigError("freeze='encoder' needs init_from=<a trained LandCoverUNet> to take the encoder from")
        fresh = LandCoverUNet(len(names), width=width, band_mean=mean, band_std=std, band_names=names)
        if lr is not None:
            fresh.hparams["lr"] = float(lr)  # read by configure_optimizers, saved with the checkpoint
        return fresh
    hp: dict[str, Any] = dict(init_from.hparams)
    if hp["in_channels"] != len(names):
        raise ConfigError(
            f"init_from has {hp['in_channels']} bands {hp.get('band_names')}, the samples {len(names)} {names}; "
            "fine-tune on the same bands in the same order"
        )
    hp.update(band_mean=mean, band_std=std, band_names=names)
    if lr is not None:
        hp["lr"] = float(lr)
    model = LandCoverUNet(**hp)
    state = {k: v for k, v in init_from.state_dict().items() if k not in ("band_mean", "band_std")}
    model.load_state_dict(state, strict=False)
    if freeze == "encoder":
        for part in ENCODER_PARTS:
            module = getattr(model, part)
            module.requires_grad_(False)
            _keep_eval(module)
    return model


def _keep_eval(module: nn.Module) -> None:
    """Put ``module`` in eval mode for good: ``model.train()`` leaves it (and its batch-norm statistics) alone."""
    module.eval()

    def train(mode: bool = True) -> nn.Module:
        return module

    module.train = train  # type: ignore[method-assign]


def confusion_metrics(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy and IoU from a confusion matrix ``[true code, predicted code]`` of pixel counts.

    Row and column 0 (no label) are left out. Per-class values are given for
    the classes present in the true labels; the mean IoU is over those. With no
    labelled pixel every value is NaN.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    labelled = cm[1:].sum()
    metrics: dict[str, float] = {
        "val_accuracy": float(np.trace(cm[1:, 1:]) / labelled) if labelled else math.nan,
    }
    ious = []
    for code in range(1, cm.shape[0]):
        true = cm[code].sum()
        if not true:
            continue
        hit = cm[code, code]
        iou = hit / (true + cm[1:, code].sum() - hit)
        ious.append(iou)
        name = CLASS_BY_CODE[code].name if code in CLASS_BY_CODE else f"class_{code}"
        metrics[f"val_accuracy/{name}"] = float(hit / true)
        metrics[f"val_iou/{name}"] = float(iou)
    metrics["val_miou"] = float(np.mean(ious)) if ious else math.nan
    return metrics


# -- prediction -------------------------------------------------------------------


def predict_land_cover(
    model: LandCoverUNet,
    reflectance: np.ndarray,
    *,
    batch_px: int = 512,
    scale: float | Sequence[float] | None = None,
    offset: float | Sequence[float] | None = None,
    nodata: int = 0,
    tiles_per_batch: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Classify a scene of any size, tile by tile, on the model's device.

    Tiles of at most ``batch_px`` pixels a side are read with a context margin
    of :data:`memories.ai.tiling.TILE_MARGIN_PX` that is discarded; up to ``tiles_per_batch`` tiles
    go to the model at once (see :func:`memories.ai.tiling.tiled_inference` for the GPU path:
    uint16 upload, on-device scaling, bf16 autocast, channels-last).

    Args:
        model: A trained land-cover model; it runs on its own device.
        reflectance: float ``(C, H, W)`` reflectance 0–1 with NaN for no data, or
            integer digital numbers (uint16) with ``scale``/``offset``.
        batch_px: Side of the largest tile sent to the model at once, pixels.
        scale: Reflectance per DN (per band or one value) for integer input; ``1e-4`` if None.
        offset: Reflectance added after scaling for integer input; 0 if None.
        nodata: The DN of no data for integer input.
        tiles_per_batch: Tiles per forward pass.

    Returns:
        Class codes uint8 ``(H, W)`` and confidence float32 ``(H, W)`` (max softmax
        probability, 0–1); class 0 and NaN confidence where all bands are NaN.
    """
    check_input(model, reflectance)

    def classify(x: Tensor) -> Tensor:
        classes, confidence = model.classify(x)
        return torch.stack([classes.float(), confidence.float()], dim=1)

    out = tiled_inference(
        model,
        classify,
        reflectance,
        n_out=2,
        batch_px=batch_px,
        scale=scale,
        offset=offset,
        nodata=nodata,
        tiles_per_batch=tiles_per_batch,
    )
    classes = np.nan_to_num(out[0], nan=0.0).astype(np.uint8)
    return classes, out[1].astype(np.float32)
