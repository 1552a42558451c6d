"""Transfer learning for land cover: start from a registered model, fine-tune on a new region or sensor.

The recipe of :func:`fine_tune_land_cover` (torchvision's and torchgeo's usual one):

1. **frozen encoder**: the parent's weights; encoder and bottleneck fixed (weights
   and batch-norm statistics), decoder and head trained at the full learning rate;
2. **full**: everything trained, at a lower learning rate (``full_lr``).

The input normalization is recomputed on the new data in both stages: a new sensor
or processing level (Level-1C top-of-atmosphere reflectance against the sample
world's Level-2A surface reflectance) has other band statistics, and the encoder
sees standardized bands either way. Both stages train with the seeded spatial
split of ``train_land_cover``, so a fine-tuned model and one trained from scratch
with the same ``settings`` are scored on the same held-out blocks. Register the
result with ``ModelRegistry.register(..., parent=<parent version>)`` so its
lineage is kept (``ModelRegistry.lineage``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from memories.ai.land_cover import Freeze, LandCoverUNet, TrainingResult, train_land_cover
from memories.config import ModelSettings
from memories.errors import ConfigError

__all__ = ["ENCODER_PARTS", "TransferResult", "fine_tune_land_cover", "initial_model"]


@dataclass
class TransferResult:
    """The model after each stage of fine-tuning, with its held-out metrics."""

    frozen: TrainingResult
    """After training decoder and head only."""
    full: TrainingResult | None
    """After training everything (None when ``full_epochs`` is 0)."""

    @property
    def final(self) -> TrainingResult:
        """The last stage's result."""
        return self.full if self.full is not None else self.frozen


def fine_tune_land_cover(
    parent: LandCoverUNet,
    samples: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    band_names: Sequence[str],
    settings: ModelSettings,
    frozen_epochs: int,
    full_epochs: int,
    full_lr: float = 1e-3,
    val_fraction: float = 0.25,
    accelerator: str = "auto",
) -> TransferResult:
    """Fine-tune ``parent`` on ``samples``: frozen encoder first, then the whole network.

    Args:
        parent: The trained model to start from (same bands, in order).
        samples: ``(reflectance, labels)`` pairs of the new domain (see ``train_land_cover``).
        band_names: Names of the bands.
        settings: Patch size, patches per scene and seed of the split (as a from-scratch run uses).
        frozen_epochs: Epochs of stage 1 (at least 1).
        full_epochs: Epochs of stage 2 (0 skips it).
        full_lr: Peak learning rate of stage 2.
        val_fraction: Share of block positions held out.
        accelerator: Lightning accelerator.
    """
    if frozen_epochs < 1 or full_epochs < 0:
        raise ConfigError(f"frozen_epochs={frozen_epochs}, full_epochs={full_epochs}: use >= 1 and >= 0")

    def stage(init: LandCoverUNet, freeze: Freeze, epochs: int, lr: float | None) -> TrainingResult:
        return train_land_cover(
            samples,
            band_names=band_names,
            settings=settings,
            val_fraction=val_fraction,
            accelerator=accelerator,
            max_epochs=epochs,
            init_from=init,
            freeze=freeze,
            lr=lr,
        )

    frozen = stage(parent, "encoder", frozen_epochs, None)
    full = stage(frozen.model, "none", full_epochs, full_lr) if full_epochs else None
    return TransferResult(frozen, full)


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
