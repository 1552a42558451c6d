"""Models of the Earth memory: land-cover segmentation and the model registry.

Names are imported lazily, so ``import memories.ai`` does not import torch;
``from memories.ai import train_land_cover`` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memories.ai.land_cover import (
        LandCoverUNet,
        TrainingResult,
        confusion_metrics,
        predict_land_cover,
        train_land_cover,
    )
    from memories.ai.registry import ModelNotFoundError, ModelRegistry, ModelVersion
    from memories.ai.split import SceneSplit, spatial_split, split_scenes

_EXPORTS: dict[str, str] = {
    "LandCoverUNet": "memories.ai.land_cover",
    "SceneSplit": "memories.ai.split",
    "TrainingResult": "memories.ai.land_cover",
    "confusion_metrics": "memories.ai.land_cover",
    "predict_land_cover": "memories.ai.land_cover",
    "spatial_split": "memories.ai.split",
    "split_scenes": "memories.ai.split",
    "train_land_cover": "memories.ai.land_cover",
    "ModelNotFoundError": "memories.ai.registry",
    "ModelRegistry": "memories.ai.registry",
    "ModelVersion": "memories.ai.registry",
}

__all__ = [
    "LandCoverUNet",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelVersion",
    "SceneSplit",
    "TrainingResult",
    "confusion_metrics",
    "predict_land_cover",
    "spatial_split",
    "split_scenes",
    "train_land_cover",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memories.ai' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
