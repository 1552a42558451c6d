"""The one home of where models run: ``processing.use_gpu`` of :mod:`memories.config`.

``processing.use_gpu`` True (the default) puts models on a CUDA GPU when this
machine has one; False keeps them on the CPU even where a GPU is present. Training
(``accelerator="auto"``) and :class:`~memories.ai.manager.ModelManager` without a
``device=`` both ask here, at the time they run, so ``update_config({"processing.use_gpu":
False})`` applies to the next model loaded or trained.
"""

from __future__ import annotations

__all__ = ["accelerator_for", "default_device", "pick_device"]


def pick_device(use_gpu: bool, cuda_available: bool) -> str:
    """``"cuda"`` when a GPU is wanted and present, else ``"cpu"``."""
    return "cuda" if use_gpu and cuda_available else "cpu"


def default_device() -> str:
    """The device a model loads to when none is named: ``processing.use_gpu`` and this machine's CUDA."""
    import torch

    from memories.config import config

    return pick_device(config.processing.use_gpu, torch.cuda.is_available())


def accelerator_for(accelerator: str) -> str:
    """The Lightning accelerator to train with: ``"auto"`` becomes ``"cpu"`` when ``processing.use_gpu`` is False.

    An explicit accelerator (``"cpu"``, ``"gpu"``, ``"cuda"``) is kept as given.
    """
    from memories.config import config

    if accelerator == "auto" and not config.processing.use_gpu:
        return "cpu"
    return accelerator
