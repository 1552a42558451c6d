"""The one home of how models train: Lightning Trainer settings and the quiet fit.

Every model of :mod:`memories.ai` trains through :func:`trainer` and :func:`fit`, so
the precision policy (bf16 mixed precision on CUDA, 32-bit on the CPU), determinism
and logging are decided once.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.warnings import PossibleUserWarning

from memories.ai.devices import accelerator_for

__all__ = ["fit", "trainer", "uses_cuda"]


def uses_cuda(accelerator: str) -> bool:
    """Whether ``accelerator`` ("auto", "gpu", "cuda", "cpu") puts training on a CUDA device here.

    ``"auto"`` does only when ``processing.use_gpu`` allows it (:func:`memories.ai.devices.accelerator_for`).
    """
    return torch.cuda.is_available() and accelerator_for(accelerator) in ("auto", "gpu", "cuda")


def trainer(
    accelerator: str,
    *,
    max_epochs: int,
    fast_dev_run: bool = False,
    validate: bool = False,
) -> pl.Trainer:
    """A deterministic single-device Trainer: bf16 mixed precision on CUDA, 32-bit otherwise; no logger or checkpoints.

    Args:
        accelerator: Lightning accelerator (``"auto"`` takes the GPU when there is one and
            ``processing.use_gpu`` is True).
        max_epochs: Epochs over the training loader.
        fast_dev_run: One batch of training (and validation), to check the wiring.
        validate: Run the validation loader after each epoch.
    """
    # Lightning announces the devices and advertises its cloud on every Trainer: keep that out of run logs.
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return pl.Trainer(
        accelerator=accelerator_for(accelerator),
        devices=1,
        precision="bf16-mixed" if uses_cuda(accelerator) else "32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=max_epochs,
        fast_dev_run=fast_dev_run,
        deterministic=True,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if validate else 0,
        log_every_n_steps=1,
    )


def fit(trainer: pl.Trainer, model: pl.LightningModule, train: Any, validation: Any = None) -> None:
    """``trainer.fit`` without the warnings that say nothing about our data."""
    with warnings.catch_warnings():
        # In-memory datasets need no worker processes; Lightning's hint about them is noise here.
        warnings.simplefilter("ignore", PossibleUserWarning)
        # Lightning 2.6 builds torch 2.13's deprecated LeafSpec on every batch; not ours to fix.
        warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*")
        trainer.fit(model, train_dataloaders=train, val_dataloaders=validation)
