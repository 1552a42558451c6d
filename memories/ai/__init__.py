"""Models of the Earth memory: land-cover segmentation and the model registry.

Names are imported lazily, so ``import memories.ai`` does not import torch;
``from memories.ai import train_land_cover`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memories._lazy import lazy_exports

if TYPE_CHECKING:
    from memories.ai.entities import Gazetteer, extract_entities
    from memories.ai.explain import band_importance, plot_band_importance
    from memories.ai.forecast import detect_anomalies, forecast_series
    from memories.ai.land_cover import (
        LandCoverUNet,
        TrainingResult,
        confusion_metrics,
        predict_land_cover,
        train_land_cover,
    )
    from memories.ai.manager import ModelManager
    from memories.ai.multimodal import MultiModalLandUse, predict_multimodal, train_multimodal
    from memories.ai.pipeline import ModelPipeline
    from memories.ai.registry import ModelNotFoundError, ModelRegistry, ModelVersion
    from memories.ai.saliency import integrated_gradients, plot_modality_attention, plot_saliency
    from memories.ai.split import SceneSplit, spatial_split, split_scenes
    from memories.ai.transfer import fine_tune_land_cover

_EXPORTS: dict[str, str] = {
    "UncertaintyEstimator": "memories.ai.uncertainty",
    "TrendAnalyzer": "memories.ai.trend",
    "register_trend_model": "memories.ai.trend",
    "analyze_changes": "memories.ai.change_series",
    "ChangeDetector": "memories.ai.change",
    "difference_change": "memories.ai.change",
    "predict_change": "memories.ai.change",
    "train_change_detector": "memories.ai.change",
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
    "ModelManager": "memories.ai.manager",
    "ModelPipeline": "memories.ai.pipeline",
    "forecast_series": "memories.ai.forecast",
    "detect_anomalies": "memories.ai.forecast",
    "band_importance": "memories.ai.explain",
    "plot_band_importance": "memories.ai.explain",
    "extract_entities": "memories.ai.entities",
    "Gazetteer": "memories.ai.entities",
    "MultiModalLandUse": "memories.ai.multimodal",
    "train_multimodal": "memories.ai.multimodal",
    "predict_multimodal": "memories.ai.multimodal",
    "fine_tune_land_cover": "memories.ai.transfer",
    "integrated_gradients": "memories.ai.saliency",
    "plot_saliency": "memories.ai.saliency",
    "plot_modality_attention": "memories.ai.saliency",
}

__all__ = [
    "Gazetteer",
    "MultiModalLandUse",
    "fine_tune_land_cover",
    "integrated_gradients",
    "plot_modality_attention",
    "plot_saliency",
    "predict_multimodal",
    "train_multimodal",
    "LandCoverUNet",
    "ModelManager",
    "ModelPipeline",
    "TrendAnalyzer",
    "UncertaintyEstimator",
    "analyze_changes",
    "band_importance",
    "detect_anomalies",
    "extract_entities",
    "forecast_series",
    "plot_band_importance",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelVersion",
    "SceneSplit",
    "TrainingResult",
    "confusion_metrics",
    "predict_land_cover",
    "spatial_split",
    "split_scenes",
    "register_trend_model",
    "train_land_cover",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
