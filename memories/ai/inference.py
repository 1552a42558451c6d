"""Running any loaded model on named inputs: the one table of what each kind of model takes and gives.

- :class:`~memories.ai.change.ChangeDetector`: input ``imagery`` (records or images);
  parameters ``threshold`` (0–1), ``min_area`` (m²); output ``changes``;
- :class:`~memories.ai.trend.TrendAnalyzer`: input ``data`` (changes or a series); parameters
  ``metrics``, ``seasonality``, ``confidence_level``, ``horizon``; output ``trends``;
- :class:`~memories.ai.land_cover.LandCoverUNet`: input ``reflectance`` ``(C, H, W)``; output ``classes``.

:func:`run_model` (behind ``UncertaintyEstimator.estimate``) returns a result and
its uncertainty (Monte-Carlo dropout: :mod:`memories.ai.mc_dropout`); :func:`predict`
(behind ``LoadedModel.predict`` and pipelines) returns the named outputs of one
deterministic pass. :class:`memories.ai.pipeline.ModelPipeline` runs models in order
on these names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memories.ai.registry import ModelVersion
from memories.errors import ConfigError

__all__ = ["LoadedModel", "check_params", "input_names", "output_name", "predict", "run_model", "unwrap"]

_SPECS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "ChangeDetector": (("imagery",), ("threshold", "min_area"), "changes"),
    "TrendAnalyzer": (("data",), ("metrics", "seasonality", "confidence_level", "horizon"), "trends"),
    "LandCoverUNet": (("reflectance",), (), "classes"),
}
"""Per model class: input names, parameter names, output name."""

DEFAULT_THRESHOLD = 0.5
"""Probability of change at which a pixel has changed when no ``threshold`` is given."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, the registered version it came from, and how it runs."""

    model: Any
    version: ModelVersion
    device: str = "cpu"
    """Where the model's weights are (``"cpu"``, ``"cuda"``)."""
    batch_size: int | None = None
    """Tiles per forward pass at inference; the model's default if None."""
    params: dict[str, Any] = field(default_factory=dict)
    """Defaults of the model's parameters given to ``load_model`` (``threshold``, ``confidence_level``...)."""

    @property
    def id(self) -> str:
        """``name:version``, the exact id to record in metadata."""
        return f"{self.version.name}:{self.version.version}"

    def predict(self, **inputs: Any) -> dict[str, Any]:
        """Named outputs of the model on named inputs (see :mod:`memories.ai.inference`)."""
        return predict(self, inputs)

    def visualize(
        self,
        changes: Any,
        uncertainty: Any = None,
        base_imagery: Any = None,
        color_map: str = "viridis",
        overlay_opacity: float = 0.7,
        step: int = -1,
    ) -> Any:
        """A matplotlib Figure of changes over ``base_imagery`` (:func:`memories.ai.change_series.plot_changes`)."""
        from memories.ai.change_series import ChangeSeries, plot_changes

        if not isinstance(changes, ChangeSeries):
            raise ConfigError(
                f"visualize() draws the changes a change model found; got {type(changes).__name__} from {self.id}"
            )
        return plot_changes(
            changes, uncertainty, base_imagery, step=step, color_map=color_map, overlay_opacity=overlay_opacity
        )


def check_params(model: Any, params: Mapping[str, Any], where: str) -> None:
    """Refuse parameters the model does not take (models of other kinds accept any).

    Raises:
        ConfigError: naming the parameter and those the model takes.
    """
    spec = _SPECS.get(type(model).__name__)
    if spec is None:
        return
    unknown = sorted(set(params) - set(spec[1]))
    if unknown:
        raise ConfigError(
            f"{where}: {type(model).__name__} takes no parameter {unknown}; it takes {list(spec[1]) or 'none'}"
        )


def run_model(
    model: Any,
    inputs: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    samples: int,
    seed: int = 0,
    estimator: Any = None,
) -> tuple[Any, Any]:
    """``(result, uncertainty)`` of a model (a ``LoadedModel`` or a bare model) on named inputs.

    ``samples`` Monte-Carlo dropout passes for the neural models; the trend model's
    uncertainty is its forecast intervals. See the module table for names.
    """
    inner, defaults, batch = unwrap(model)
    kind = type(inner).__name__
    spec = _SPECS.get(kind)
    if spec is None:
        raise ConfigError(f"no estimate for a {kind}; models with one: {sorted(_SPECS)}")
    names, allowed, _ = spec
    if set(inputs) != set(names):
        raise ConfigError(f"{kind} takes inputs {list(names)}; got {sorted(inputs)}")
    check_params(inner, params, "estimate(params=...)")
    p = {**defaults, **params}
    if kind == "ChangeDetector":
        from memories.ai.change_series import analyze_changes

        return analyze_changes(
            inner,
            inputs["imagery"],
            threshold=float(p.get("threshold", DEFAULT_THRESHOLD)),
            min_area=float(p.get("min_area", 0.0)),
            samples=samples,
            seed=seed,
            tiles_per_batch=batch or 8,
        )
    if kind == "TrendAnalyzer":
        result = inner.analyze(
            inputs["data"],
            metrics=p.get("metrics"),
            seasonality=bool(p.get("seasonality", False)),
            confidence_level=p.get("confidence_level"),
            horizon=p.get("horizon"),
        )
        return result, result.intervals()
    from memories.ai.mc_dropout import DEFAULT_BATCH_PX, land_cover_uncertainty

    tiles = batch or (estimator.tiles_per_batch if estimator is not None else 4)
    maps = land_cover_uncertainty(
        inner, inputs["reflectance"], passes=samples, seed=seed, batch_px=DEFAULT_BATCH_PX, tiles_per_batch=tiles
    )
    return maps.classes, maps


def predict(model: Any, inputs: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The named output of one deterministic pass (dropout off), e.g. ``{"changes": ChangeSeries}``."""
    inner, _, _ = unwrap(model)
    spec = _SPECS.get(type(inner).__name__)
    if spec is None:
        raise ConfigError(f"a {type(inner).__name__} has no named outputs; models with them: {sorted(_SPECS)}")
    result, _ = run_model(model, inputs, params or {}, samples=1)
    return {spec[2]: result}


def input_names(model: Any) -> tuple[str, ...]:
    """Names of the inputs a bare model of a known kind takes (empty for other kinds)."""
    spec = _SPECS.get(type(model).__name__)
    return spec[0] if spec else ()


def output_name(model: Any) -> str:
    """Name of the output of a bare model of a known kind.

    Raises:
        ConfigError: a model of a kind without named outputs.
    """
    spec = _SPECS.get(type(model).__name__)
    if spec is None:
        raise ConfigError(f"a {type(model).__name__} has no named outputs; models with them: {sorted(_SPECS)}")
    return spec[2]


def unwrap(model: Any) -> tuple[Any, dict[str, Any], int | None]:
    """(bare model, default parameters, batch size) of a LoadedModel or a bare model."""
    if isinstance(model, LoadedModel):
        return model.model, dict(model.params), model.batch_size
    return model, {}, None
