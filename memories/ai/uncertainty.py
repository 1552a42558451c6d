"""Per-pixel uncertainty of land-cover predictions by Monte-Carlo dropout.

The model runs ``passes`` times with its dropout layers active and BatchNorm in
eval mode (Gal & Ghahramani 2016): each pass is a sample of the approximate
posterior. Per pixel, the mean of the class probabilities over the passes is
the prediction; the spread over passes is the model's (epistemic) uncertainty.

Reported per pixel:

- ``probabilities`` ``(K, H, W)``: mean softmax probability of class codes 1..K (0–1);
- ``classes``: the class code of the largest mean probability (0 where no data);
- ``confidence``: that largest mean probability (0–1);
- ``variance``: variance over the passes of the predicted class's probability
  (probability², 0–0.25); exactly 0 with one pass (which runs with dropout off: the plain
  prediction) or without dropout;
- ``entropy``: predictive entropy of the mean probabilities, nats (0–ln K).

Input convention as :func:`memories.ai.land_cover.predict_land_cover`: float
reflectance ``(C, H, W)`` with NaN, or integer DN with scale and offset.

The seed's form works on any model the :class:`~memories.ai.manager.ModelManager`
loads::

    uncertainty = UncertaintyEstimator(method="monte_carlo_dropout", samples=30)
    changes, change_uncertainty = uncertainty.estimate(
        model=change_detection, inputs={"imagery": records}, params={"threshold": 0.3, "min_area": 1000})
    trends, trend_uncertainty = uncertainty.estimate(model=trend_analysis, inputs={"data": changes})

For the change detector it is :func:`memories.ai.change_series.analyze_changes`
(``samples`` dropout passes per image pair); for the trend model, which has no
dropout, the uncertainty is its forecast intervals (:mod:`memories.ai.trend`);
for a land-cover model, :meth:`UncertaintyEstimator.predict` on ``inputs["reflectance"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from memories.ai.inference import run_model
from memories.ai.land_cover import LandCoverUNet
from memories.ai.mc_dropout import DEFAULT_BATCH_PX, UncertaintyMaps, land_cover_uncertainty
from memories.errors import ConfigError

__all__ = ["UncertaintyEstimator", "UncertaintyMaps"]


METHODS = ("monte_carlo_dropout",)
"""Uncertainty methods :class:`UncertaintyEstimator` implements."""


class UncertaintyEstimator:
    """Monte-Carlo dropout: ``T`` stochastic passes per pixel.

    ``UncertaintyEstimator(model, passes=T).predict(reflectance)`` for a land-cover
    model; ``UncertaintyEstimator(method="monte_carlo_dropout", samples=T).estimate(model=...,
    inputs=..., params=...)`` for any model the manager loads (see the module docstring).

    Args:
        model: A :class:`~memories.ai.land_cover.LandCoverUNet` (any module with
            ``class_probabilities(x)`` and ``hparams["in_channels"]``) for :meth:`predict`.
        passes: Number of stochastic forward passes T (1 gives the plain prediction, variance 0).
        method: ``"monte_carlo_dropout"`` (the one implemented).
        samples: The seed's name of ``passes``; overrides it when given.
        seed: Seed of the dropout masks, so a prediction is reproducible.
        batch_px: Tile side sent to the model, pixels.
        tiles_per_batch: Tiles per forward pass.
    """

    def __init__(
        self,
        model: LandCoverUNet | None = None,
        passes: int = 16,
        *,
        method: str = "monte_carlo_dropout",
        samples: int | None = None,
        seed: int = 0,
        batch_px: int = DEFAULT_BATCH_PX,
        tiles_per_batch: int = 4,
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"method={method!r} is not implemented; use one of {list(METHODS)}")
        if samples is not None:
            passes = samples
        if passes < 1:
            raise ConfigError(f"passes={passes}: Monte-Carlo dropout needs at least 1 pass; 10–30 is usual")
        self.method = method
        self.model = model
        self.passes = int(passes)
        self.seed = int(seed)
        self.batch_px = batch_px
        self.tiles_per_batch = tiles_per_batch

    def predict(
        self,
        reflectance: np.ndarray,
        *,
        scale: float | Sequence[float] | None = None,
        offset: float | Sequence[float] | None = None,
        nodata: int = 0,
    ) -> UncertaintyMaps:
        """Mean probabilities, class, confidence, variance and entropy of a scene ``(C, H, W)`` of any size."""
        model = self.model
        if model is None:
            raise ConfigError(
                "this estimator has no model: build UncertaintyEstimator(model) or call estimate(model=...)"
            )
        return land_cover_uncertainty(
            model,
            reflectance,
            passes=self.passes,
            seed=self.seed,
            batch_px=self.batch_px,
            tiles_per_batch=self.tiles_per_batch,
            scale=scale,
            offset=offset,
            nodata=nodata,
        )

    def estimate(
        self, model: Any, inputs: Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> tuple[Any, Any]:
        """``(result, uncertainty)`` of a model on named inputs.

        Args:
            model: What :meth:`ModelManager.load_model` returned (or the bare model).
            inputs: The change detector: ``{"imagery": records or images}``; the trend model:
                ``{"data": changes or a series}``; a land-cover model: ``{"reflectance": (C, H, W)}``.
            params: The change detector: ``threshold`` (probability 0–1), ``min_area`` (m²);
                the trend model: ``metrics``, ``seasonality``, ``confidence_level``, ``horizon``.

        Returns:
            change detector: (:class:`~memories.ai.change_series.ChangeSeries`,
            :class:`~memories.ai.change_series.ChangeUncertainty`); trend model:
            (:class:`~memories.ai.trend.TrendAnalysis`, its forecast intervals per metric);
            land-cover model: (class codes, :class:`UncertaintyMaps`).

        Raises:
            ConfigError: an input or parameter the model does not take (the message lists those it does).
        """
        return run_model(model, inputs, params or {}, samples=self.passes, seed=self.seed, estimator=self)
