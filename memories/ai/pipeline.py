"""The one pipeline of models: steps run in order on named values, each step's uncertainty carried on.

This is what ``ModelManager().create_pipeline([...])`` builds (the seed's model chaining). A step is
a model the manager loaded (its inputs, parameters and outputs are those of
:mod:`memories.ai.inference`) or a plain function; ``input_mapping`` names which value feeds each
input, ``output_mapping`` under which name each output is kept.

``run(inputs, samples=T)`` runs each neural step with ``T`` Monte-Carlo dropout passes and keeps, next
to every value, its uncertainty (``result.uncertainty[name]``). A later step that can use the
uncertainty of its input takes it into account:

- **land cover -> change.** A change step given ``input_mapping={"land_cover": <classes>}`` also
  returns ``changed_into`` (:class:`ClassChange`): how much of the last image pair's changed area
  (the pixels the step marked changed) became each land-cover class. Per such pixel the chance of
  "changed and now class k" is the change's Monte-Carlo share ``s`` times the land-cover
  probability ``p_k`` (the two models' errors taken as independent); the area is
  ``sum(s * p_k) * a`` and its standard deviation ``a * sqrt(sum(q (1 - q)))`` with ``q = s * p_k``
  (a sum of independent Bernoulli pixels of area ``a``). Summed over the classes it is at most the
  step's changed area, less where the samples disagree.
- **change -> trend.** A trend step fed a change series whose uncertainty is known fits the trend to
  ``draws`` series drawn from each step's area interval (the 5–95 % band of the dropout samples,
  taken as a normal 90 % interval, independent between steps). The forecast is the fit to the
  observed series; its variance is the trend model's own predictive variance plus the variance of
  the draws' forecasts (what the inputs' uncertainty moves the fitted line by; for a straight line
  it converges to ``x0' (X'X)^-1 X' S X (X'X)^-1 x0``). The intervals are therefore at least as wide
  as the model's own; ``result.uncertainty[name].model_only`` keeps those for comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any, cast

import numpy as np
import pandas as pd

from memories.errors import ConfigError, ProcessingError
from memories.grid import M2_PER_HA

__all__ = [
    "ClassChange",
    "ModelPipeline",
    "Observation",
    "PipelineResult",
    "TileChain",
    "TrendUncertainty",
    "changed_into_classes",
    "run_tile_chain",
    "seed_chain",
    "trend_with_input_uncertainty",
]

TREND_DRAWS = 20
"""Series drawn from the change areas' intervals to carry their uncertainty into a trend."""
AREA_INTERVAL_Z = float(NormalDist().inv_cdf(0.95))
"""The change area interval (areas changed in >= 95 % and >= 5 % of samples) read as a normal 90 % interval."""


@dataclass(frozen=True)
class ClassChange:
    """Area of the last change step that became each land-cover class, with its standard deviation."""

    table: pd.DataFrame
    """Index: class name; columns ``expected_m2``, ``sd_m2``, ``lower_m2``, ``upper_m2`` (95 %, >= 0)."""
    month_pair: tuple[Any, Any]
    """Valid starts of the two images of the step (``None`` for plain arrays)."""


@dataclass(frozen=True)
class TrendUncertainty:
    """Forecast intervals of a trend with its input's uncertainty carried in, and without it."""

    intervals: dict[str, pd.DataFrame]
    """Per metric: ``lower``/``upper`` of the forecast, input uncertainty included."""
    model_only: dict[str, pd.DataFrame]
    """Per metric: ``lower``/``upper`` of one fit to the mean series (the trend model's own intervals)."""
    draws: int


@dataclass
class PipelineResult(Mapping[str, Any]):
    """Every value by name (the inputs and each step's outputs), with uncertainty and model ids."""

    data: dict[str, Any]
    """Every value by name (also reachable as ``result[name]``)."""
    uncertainty: dict[str, Any] = field(default_factory=dict)
    """Uncertainty of a value, by its name (only values a step produced with one)."""
    models: dict[str, str] = field(default_factory=dict)
    """``name:version`` of the model behind each step output, by the output's name."""

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class _Step:
    model: Any
    fn: Callable[..., Any] | None
    input_mapping: dict[str, str]
    output_mapping: dict[str, str]
    params: dict[str, Any]


class ModelPipeline:
    """Models (and plain functions) run in order on named values.

    Example (the seed's chain, on records of the temporal memory)::

        pipeline = ModelManager().create_pipeline([
            {"model_id": "land_cover@best", "input_mapping": {"reflectance": "latest"}},
            {"model_id": "satellite_change_detection_v2",
             "input_mapping": {"imagery": "history", "land_cover": "classes"},
             "params": {"threshold": 0.3, "min_area": 1000}},
            {"model_id": "time_series_trend_analyzer_v1", "input_mapping": {"data": "changes"}},
        ])
        result = pipeline.run({"latest": reflectance, "history": records}, samples=30)
        result["trends"], result.uncertainty["trends"].intervals, result["changed_into"].table
    """

    def __init__(self) -> None:
        self.steps: list[_Step] = []

    def add_step(
        self,
        model: Any = None,
        input_mapping: Mapping[str, str] | None = None,
        output_mapping: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        fn: Callable[..., Any] | None = None,
    ) -> ModelPipeline:
        """Append a model (a ``LoadedModel`` or a bare model) or a function ``fn(**inputs) -> {name: value}``.

        Raises:
            ConfigError: neither or both of ``model`` and ``fn``; a parameter the model does not take;
                a function step without an ``input_mapping``.
        """
        from memories.ai.inference import check_params, unwrap

        where = f"pipeline step {len(self.steps)}"
        if (model is None) == (fn is None):
            raise ConfigError(f"{where}: give a model or a function (fn=...), not {'both' if model else 'neither'}")
        if fn is not None and not input_mapping:
            raise ConfigError(f"{where}: a function step names its inputs: input_mapping={{argument: value name}}")
        if model is not None:
            check_params(unwrap(model)[0], params or {}, where)
        self.steps.append(_Step(model, fn, dict(input_mapping or {}), dict(output_mapping or {}), dict(params or {})))
        return self

    def run(
        self, inputs: Mapping[str, Any] | None = None, *, samples: int = 1, seed: int = 0, **named: Any
    ) -> PipelineResult:
        """Every value: the inputs and each step's outputs, by name, with their uncertainty.

        Args:
            inputs: The values the first steps read, by name (also as keyword arguments).
            samples: Monte-Carlo dropout passes of each neural step (1: one deterministic pass).
            seed: Seed of the dropout masks and of the trend's draws.

        Raises:
            ConfigError: no steps; a step reads a name no input or earlier step provides; a step's
                ``output_mapping`` names an output it does not give.
        """
        if not self.steps:
            raise ConfigError("the pipeline has no step; give create_pipeline at least one step")
        if samples < 1:
            raise ConfigError(f"samples={samples}: run each model at least once (1: deterministic; 10-30 usual)")
        result = PipelineResult({**(inputs or {}), **named})
        for k, step in enumerate(self.steps):
            label = _label(step)
            wanted = step.input_mapping or {n: n for n in _input_names(step.model)}
            missing = sorted(src for src in wanted.values() if src not in result.data)
            if missing:
                raise ConfigError(f"pipeline step {k} ({label}) reads {missing}; values here: {sorted(result.data)}")
            args = {dst: result.data[src] for dst, src in wanted.items()}
            upstream = {dst: result.uncertainty.get(src) for dst, src in wanted.items()}
            if step.fn is not None:
                out, unc = dict(step.fn(**args, **step.params)), dict[str, Any]()
            else:
                out, unc = _run_model_step(step, args, upstream, samples, seed)
            unknown = sorted(set(step.output_mapping) - set(out))
            if unknown:
                raise ConfigError(f"pipeline step {k} ({label}) has no outputs {unknown}; it gives {sorted(out)}")
            for name, value in out.items():
                key = str(step.output_mapping.get(name, name))
                result.data[key] = value
                if name in unc:
                    result.uncertainty[key] = unc[name]
                if step.model is not None:
                    result.models[key] = label
        return result


def _run_model_step(
    step: _Step, args: dict[str, Any], upstream: dict[str, Any], samples: int, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One model step: its named output and uncertainty, the upstream uncertainty carried in."""
    from memories.ai.inference import output_name, run_model, unwrap

    inner, defaults, _ = unwrap(step.model)
    kind = type(inner).__name__
    name = output_name(inner)
    if kind == "ChangeDetector":
        land_cover = args.pop("land_cover", None)
        lc_unc = upstream.get("land_cover")
        changes, unc = run_model(step.model, args, step.params, samples=samples, seed=seed)
        out, uncertainty = {name: changes}, {name: unc}
        if land_cover is not None:
            if lc_unc is None or not hasattr(lc_unc, "probabilities"):
                raise ConfigError(
                    "a change step's land_cover input must be a land-cover step's output (its uncertainty maps "
                    "give the class probabilities); map it to the classes a land-cover step produced"
                )
            out["changed_into"] = changed_into_classes(changes, unc, lc_unc)
        return out, uncertainty
    if kind == "TrendAnalyzer" and getattr(upstream.get("data"), "area_interval_m2", None) is not None:
        p = {**defaults, **step.params}
        trends, carried = trend_with_input_uncertainty(inner, args["data"], upstream["data"], p, seed=seed)
        return {name: trends}, {name: carried}
    result, unc = run_model(step.model, args, step.params, samples=samples, seed=seed)
    return {name: result}, {name: unc}


def changed_into_classes(changes: Any, change_uncertainty: Any, land_cover: Any) -> ClassChange:
    """Area of the last change step that became each land-cover class (see the module docstring).

    Args:
        changes: A :class:`~memories.ai.change_series.ChangeSeries`.
        change_uncertainty: Its :class:`~memories.ai.change_series.ChangeUncertainty` (the shares).
        land_cover: :class:`~memories.ai.uncertainty.UncertaintyMaps` of the later image of that step.

    Raises:
        ProcessingError: the land-cover maps and the change are on different grids.
    """
    from memories.classes import CLASS_BY_CODE

    share = np.nan_to_num(np.asarray(change_uncertainty.changed_share[-1], dtype=np.float64), nan=0.0)
    share = np.where(np.asarray(changes.steps[-1].changed, dtype=bool), share, 0.0)
    probs = np.nan_to_num(np.asarray(land_cover.probabilities, dtype=np.float64), nan=0.0)
    if probs.shape[1:] != share.shape:
        raise ProcessingError(
            f"land cover {probs.shape[1:]} and change {share.shape} are on different grids; "
            "classify the later image of the change's last pair"
        )
    a = float(changes.pixel_area_m2)
    z = float(NormalDist().inv_cdf(0.975))
    rows = {}
    for k in range(probs.shape[0]):
        q = share * probs[k]
        expected = float(q.sum()) * a
        sd = a * float(np.sqrt((q * (1.0 - q)).sum()))
        rows[CLASS_BY_CODE[k + 1].name] = (expected, sd, max(0.0, expected - z * sd), expected + z * sd)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["expected_m2", "sd_m2", "lower_m2", "upper_m2"])
    last = changes.steps[-1]
    return ClassChange(table, (last.before, last.after))


def trend_with_input_uncertainty(
    analyzer: Any,
    changes: Any,
    change_uncertainty: Any,
    params: Mapping[str, Any],
    *,
    draws: int = TREND_DRAWS,
    seed: int = 0,
) -> tuple[Any, TrendUncertainty]:
    """The trend of a change series whose areas are uncertain (see the module docstring).

    Returns the :class:`~memories.ai.trend.TrendAnalysis` whose forecasts carry the input's
    uncertainty (``area``'s intervals widened; ``intensity`` and other metrics as fitted), and the
    intervals with and without it.
    """
    if draws < 2:
        raise ConfigError(f"draws={draws}: at least 2 draws are needed to spread the input's uncertainty")
    kwargs = {k: params[k] for k in ("metrics", "seasonality", "confidence_level", "horizon") if k in params}
    base = analyzer.analyze(changes, **kwargs)
    table = changes.table
    bounds = np.asarray(change_uncertainty.area_interval_m2, dtype=np.float64).reshape(-1, 2)
    sd = np.abs(bounds[:, 1] - bounds[:, 0]) / (2.0 * AREA_INTERVAL_Z)
    if "area" not in base.metrics or not np.any(sd > 0):
        return base, TrendUncertainty(base.intervals(), base.intervals(), 0)
    rng = np.random.default_rng(seed)
    z = float(NormalDist().inv_cdf(0.5 + base.confidence_level / 2.0))
    means = []
    for _ in range(draws):
        drawn = table.copy()
        drawn["area"] = np.clip(table["area"].to_numpy() + sd * rng.standard_normal(len(sd)), 0.0, None)
        means.append(analyzer.analyze(drawn, **{**kwargs, "metrics": ["area"]}).metrics["area"].forecast["mean"])
    area = base.metrics["area"]
    own = area.forecast
    own_sd = (own["upper"] - own["lower"]).to_numpy() / (2.0 * z)
    added = np.var(np.asarray([m.to_numpy() for m in means]), axis=0, ddof=1)
    total_sd = np.sqrt(own_sd**2 + added)
    mean = own["mean"].to_numpy()
    forecast = pd.DataFrame({"mean": mean, "lower": mean - z * total_sd, "upper": mean + z * total_sd}, index=own.index)
    carried = replace(base, metrics={**base.metrics, "area": replace(area, forecast=forecast)})
    return carried, TrendUncertainty(carried.intervals(), base.intervals(), draws)


def _input_names(model: Any) -> tuple[str, ...]:
    from memories.ai.inference import input_names, unwrap

    return input_names(unwrap(model)[0])


def _label(step: _Step) -> str:
    if step.fn is not None:
        return getattr(step.fn, "__name__", "function")
    return str(getattr(step.model, "id", type(step.model).__name__))


# -- the seed's chain on a tile of the memory ------------------------------------


@dataclass(frozen=True)
class Observation:
    """One image of a place with its valid time, as the change step takes them."""

    valid_time: tuple[Any, Any]
    data: Any


@dataclass(frozen=True)
class TileChain:
    """Land cover, change and trend of one tile's last months, each step's uncertainty carried on."""

    months: list[str]
    table: pd.DataFrame
    """Per month (``time``): ``kind`` observed (change since the month before: ``area_m2`` and its
    ``lower_m2``/``upper_m2`` from the dropout samples, ``intensity``) or forecast (``area_m2``
    forecast with ``lower_m2``/``upper_m2`` carrying the change's uncertainty, and the trend
    model's own ``model_lower_m2``/``model_upper_m2``)."""
    changed_into: pd.DataFrame
    """The last month's change by land-cover class (:class:`ClassChange` table, m²)."""
    models: dict[str, str]
    samples: int

    @property
    def forecast(self) -> pd.DataFrame:
        """The ``forecast`` rows of :attr:`table`."""
        return self.table[self.table["kind"] == "forecast"]

    @property
    def interval_widening(self) -> float:
        """Mean ratio of the forecast interval carrying the change's uncertainty to the trend model's own
        interval (1: the change adds nothing; NaN when no forecast interval has a width)."""
        f = self.forecast
        ratio = (f["upper_m2"] - f["lower_m2"]) / (f["model_upper_m2"] - f["model_lower_m2"])
        return float(ratio.replace([np.inf, -np.inf], np.nan).mean())

    def summary(self) -> dict[str, Any]:
        """What the catalog keeps of the chain: months, samples, models, the interval widening (3 decimals)
        and the last month's change by class, hectares (3 decimals)."""
        return {
            "months": len(self.months),
            "samples": self.samples,
            "models": self.models,
            "interval_widening": round(self.interval_widening, 3),
            "last_change_ha_by_class": (self.changed_into["expected_m2"] / M2_PER_HA).round(3).to_dict(),
        }

    def class_markdown(self) -> str:
        """The last month's change by class as a Markdown table (ha, ± one standard deviation)."""
        lines = ["| class | changed into (ha) | ± sd (ha) |", "| --- | --- | --- |"]
        for name, row in self.changed_into.iterrows():
            lines.append(f"| {name} | {row['expected_m2'] / M2_PER_HA:.2f} | {row['sd_m2'] / M2_PER_HA:.2f} |")
        return "\n".join(lines)

    def forecast_markdown(self) -> str:
        """The forecast as a Markdown table: area, the interval carrying the change's uncertainty, the model's own."""
        lines = [
            "| month | changed area (ha) | interval, change uncertainty carried (ha) | trend model alone (ha) |",
            "| --- | --- | --- | --- |",
        ]
        for _, row in self.forecast.iterrows():
            lines.append(
                f"| {pd.Timestamp(row['time']).strftime('%Y-%m')} | {row['area_m2'] / M2_PER_HA:.2f} "
                f"| {row['lower_m2'] / M2_PER_HA:.2f} – {row['upper_m2'] / M2_PER_HA:.2f} "
                f"| {row['model_lower_m2'] / M2_PER_HA:.2f} – {row['model_upper_m2'] / M2_PER_HA:.2f} |"
            )
        return "\n".join(lines)


def seed_chain(
    manager: Any,
    land_cover_model: str,
    change_model: str,
    trend_model: str,
    *,
    threshold: float = 0.5,
    min_area_m2: float = 0.0,
) -> ModelPipeline:
    """The seed's chain: land cover of the latest image, change over the history, trend of the change."""
    return cast(
        ModelPipeline,
        manager.create_pipeline(
            [
                {
                    "model_id": land_cover_model,
                    "input_mapping": {"reflectance": "latest"},
                    "output_mapping": {"classes": "land_cover"},
                },
                {
                    "model_id": change_model,
                    "input_mapping": {"imagery": "history", "land_cover": "land_cover"},
                    "params": {"threshold": threshold, "min_area": min_area_m2},
                },
                {
                    "model_id": trend_model,
                    "input_mapping": {"data": "changes"},
                    "params": {"metrics": ["area", "intensity"]},
                },
            ]
        ),
    )


def run_tile_chain(
    pipeline: ModelPipeline,
    images: Mapping[str, Any],
    *,
    samples: int,
    seed: int = 0,
) -> TileChain:
    """Run :func:`seed_chain` on one tile's monthly images (month ``YYYY-MM`` -> reflectance DataArray).

    Raises:
        ProcessingError: fewer than four months (a trend needs three changes).
    """
    from memories.months import month_range

    months = sorted(images)
    if len(months) < 4:
        raise ProcessingError(f"{len(months)} month(s) of imagery: the chain needs 4 or more (3 changes for a trend)")
    history = [Observation(month_range(m), images[m]) for m in months]
    latest = images[months[-1]]
    result = pipeline.run({"latest": np.asarray(latest.values, dtype=np.float32), "history": history}, samples=samples)
    changes, change_unc = result["changes"], result.uncertainty["changes"]
    trend_unc: TrendUncertainty = result.uncertainty["trends"]
    observed = changes.table.rename(columns={"area": "area_m2"})
    bounds = np.asarray(change_unc.area_interval_m2, dtype=np.float64).reshape(-1, 2)
    observed["lower_m2"], observed["upper_m2"] = bounds[:, 0], bounds[:, 1]
    observed["kind"] = "observed"
    fc = result["trends"].metrics["area"].forecast
    forecast = pd.DataFrame(
        {
            "area_m2": fc["mean"],
            "lower_m2": trend_unc.intervals["area"]["lower"],
            "upper_m2": trend_unc.intervals["area"]["upper"],
            "model_lower_m2": trend_unc.model_only["area"]["lower"],
            "model_upper_m2": trend_unc.model_only["area"]["upper"],
            "kind": "forecast",
        }
    )
    table = pd.concat([observed, forecast]).rename_axis("time").reset_index()
    return TileChain(months, table, result["changed_into"].table, dict(result.models), samples)
