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

import numpy as np

from memories.ai.land_cover import ENCODER_PARTS, Freeze, LandCoverUNet, TrainingResult, initial_model, train_land_cover
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
