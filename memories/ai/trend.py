"""The trend model of index and change series: a registered, versioned statistical model (no weights).

:class:`TrendAnalyzer` fits each metric of a time series (mean NDVI per month, the
changed area and intensity per image pair of :mod:`memories.ai.change_series`) and
forecasts it with ``confidence_level`` prediction intervals:

- with at least :data:`memories.ai.forecast.MIN_OBSERVED_STEPS` observed steps: the
  ARIMA of :func:`memories.ai.forecast.forecast_series` (order by AIC), with annual
  Fourier seasonality when ``seasonality=True``;
- with fewer (3 or more): a straight line fitted by least squares (statsmodels OLS),
  whose prediction intervals include the residual spread. Seasonality cannot be
  estimated from so few steps and is refused.

Every metric also gets its linear trend per year with a confidence interval.
Forecasts are not bounded to a metric's range: on a short, spiky series (changed
area that is zero but for a few events) the ARIMA mean and intervals can go below
zero; read them as "no trend can be told", not as negative areas.
The analyzer's settings are its hyper-parameters, so a version in the model
registry (``ModelRegistry.register``) names exactly how series were analyzed; the
``ndvi_trend`` model is also called ``time_series_trend_analyzer`` (the seed's name).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from memories.errors import ConfigError, ProcessingError

__all__ = ["TREND_MODEL", "MetricTrend", "TrendAnalysis", "TrendAnalyzer", "register_trend_model"]

TREND_MODEL = "ndvi_trend"
"""Registry name of the trend model."""

MIN_LINEAR_STEPS = 3
"""Fewest observations of a metric a trend line is fitted to (one residual degree of freedom)."""

YEAR_DAYS = 365.25


@dataclass(frozen=True)
class MetricTrend:
    """The trend and forecast of one metric."""

    metric: str
    method: str
    """``"arima"`` or ``"linear"``."""
    slope_per_year: float
    """Least-squares slope, metric units per year."""
    slope_interval: tuple[float, float]
    """``confidence_level`` interval of the slope."""
    forecast: pd.DataFrame
    """Columns ``mean``, ``lower``, ``upper`` (metric units) per future step."""
    history: pd.Series
    """The observations fitted (by time)."""


@dataclass(frozen=True)
class TrendAnalysis:
    """Trends of every metric of a series, and the settings used."""

    metrics: dict[str, MetricTrend]
    confidence_level: float
    seasonality: bool

    def intervals(self) -> dict[str, pd.DataFrame]:
        """Forecast ``lower``/``upper`` per metric: the uncertainty of the forecast."""
        return {k: v.forecast[["lower", "upper"]] for k, v in self.metrics.items()}


class TrendAnalyzer:
    """Settings of trend analysis, stored in the model registry like a network's hyper-parameters.

    Args:
        confidence_level: Coverage of the intervals, 0–1 (0.95: 95 %).
        horizon: Steps to forecast.
        step: Pandas offset of one step for ARIMA (``"MS"``: monthly).
        harmonics: Annual harmonics when ``seasonality=True``.
    """

    def __init__(self, confidence_level: float = 0.95, horizon: int = 6, step: str = "MS", harmonics: int = 1) -> None:
        if not 0.0 < confidence_level < 1.0:
            raise ConfigError(f"confidence_level={confidence_level} must be in (0, 1), e.g. 0.95")
        if horizon < 1:
            raise ConfigError(f"horizon={horizon}: forecast at least one step")
        self.hparams: dict[str, Any] = {
            "confidence_level": float(confidence_level),
            "horizon": int(horizon),
            "step": str(step),
            "harmonics": int(harmonics),
        }

    # The registry stores a model as hyper-parameters and a state dict; this one has no weights.
    def state_dict(self) -> dict[str, Any]:
        """No weights: an empty state."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to load."""

    def to(self, device: Any) -> TrendAnalyzer:
        """Runs on the CPU whatever the device."""
        return self

    def eval(self) -> TrendAnalyzer:
        """Always ready."""
        return self

    def analyze(
        self,
        data: Any,
        *,
        metrics: Sequence[str] | None = None,
        seasonality: bool = False,
        confidence_level: float | None = None,
        horizon: int | None = None,
    ) -> TrendAnalysis:
        """Trend and forecast of each metric of ``data``.

        Args:
            data: A ``pd.Series`` (one metric) or ``pd.DataFrame`` (a metric per column)
                indexed by time, or anything with a ``table`` frame of that kind (a
                :class:`memories.ai.change_series.ChangeSeries`: ``area`` m², ``intensity`` 0–1).
            metrics: Columns to analyze; all numeric ones if None.
            seasonality: Fit an annual cycle (needs the ARIMA path's number of steps).
            confidence_level: Overrides the model's setting for this call.
            horizon: Overrides the model's setting for this call.

        Raises:
            ProcessingError: a metric that is missing or has fewer than 3 observations.
            ConfigError: seasonality asked of a series too short to estimate it.
        """
        from memories.ai.forecast import MIN_OBSERVED_STEPS, forecast_series

        frame = _frame(data)
        names = list(metrics) if metrics is not None else [c for c in frame.columns if _numeric(frame[c])]
        missing = [m for m in names if m not in frame.columns]
        if missing:
            raise ProcessingError(f"metrics {missing} are not in the data; it has {list(frame.columns)}")
        level = float(confidence_level if confidence_level is not None else self.hparams["confidence_level"])
        steps = int(horizon if horizon is not None else self.hparams["horizon"])
        alpha = 1.0 - level
        out: dict[str, MetricTrend] = {}
        for name in names:
            s = frame[name].astype(float).dropna()
            if len(s) < MIN_LINEAR_STEPS:
                raise ProcessingError(
                    f"metric {name!r} has {len(s)} observations; a trend needs at least {MIN_LINEAR_STEPS}"
                )
            if seasonality and len(s) < MIN_OBSERVED_STEPS:
                raise ConfigError(
                    f"seasonality=True needs at least {MIN_OBSERVED_STEPS} observed steps of {name!r}, it has "
                    f"{len(s)}; pass seasonality=False for a linear trend, or give a longer series"
                )
            slope, interval = _slope(s, alpha)
            if len(s) >= MIN_OBSERVED_STEPS:
                fc = forecast_series(
                    s,
                    steps,
                    seasonal="fourier" if seasonality else "none",
                    harmonics=int(self.hparams["harmonics"]),
                    step=str(self.hparams["step"]),
                    alpha=alpha,
                ).forecast
                method = "arima"
            else:
                fc, method = _linear_forecast(s, steps, alpha), "linear"
            out[name] = MetricTrend(name, method, slope, interval, fc, s)
        return TrendAnalysis(out, level, bool(seasonality))


def register_trend_model(registry: Any, analyzer: TrendAnalyzer | None = None) -> Any:
    """The registry version of ``analyzer``'s settings: the latest one if it has them, else a new version.

    Args:
        registry: A :class:`memories.ai.registry.ModelRegistry`.
        analyzer: The settings; :class:`TrendAnalyzer` defaults if None.
    """
    analyzer = analyzer or TrendAnalyzer()
    latest = registry.latest(TREND_MODEL)
    if latest is not None and latest.training_data.get("settings") == analyzer.hparams:
        return latest
    return registry.register(
        TREND_MODEL,
        analyzer,
        {},
        training_data={"settings": analyzer.hparams, "fitted": "per call, to the series it is given"},
    )


# -- helpers ---------------------------------------------------------------------


def _frame(data: Any) -> pd.DataFrame:
    table = getattr(data, "table", None)
    if isinstance(table, pd.DataFrame):
        data = table
    if isinstance(data, pd.Series):
        data = data.to_frame(name=str(data.name) if data.name is not None else "value")
    if not isinstance(data, pd.DataFrame):
        raise ProcessingError(
            f"data of type {type(data).__name__} is not a time series; pass a pandas Series or DataFrame "
            "indexed by time, or the changes a change model returned"
        )
    if not isinstance(data.index, pd.DatetimeIndex):
        raise ProcessingError(f"data is indexed by {type(data.index).__name__}; index it by time (pd.DatetimeIndex)")
    return data.sort_index()


def _numeric(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s)) and not pd.api.types.is_bool_dtype(s)


def _years(index: pd.DatetimeIndex, origin: pd.Timestamp) -> np.ndarray:
    return np.asarray((index - origin) / pd.Timedelta(days=1), dtype=np.float64) / YEAR_DAYS


def _ols(s: pd.Series) -> tuple[Any, pd.Timestamp]:
    import statsmodels.api as sm

    index = pd.DatetimeIndex(s.index)
    origin = index[0]
    x = sm.add_constant(_years(index, origin), has_constant="add")
    return sm.OLS(s.to_numpy(dtype=np.float64), x).fit(), origin


def _slope(s: pd.Series, alpha: float) -> tuple[float, tuple[float, float]]:
    fit, _ = _ols(s)
    lo, hi = np.asarray(fit.conf_int(alpha=alpha))[1]
    slope = float(fit.params[1])
    if not math.isfinite(lo):  # a perfect fit of 3 points has no residual spread
        lo = hi = slope
    return slope, (float(lo), float(hi))


def _linear_forecast(s: pd.Series, horizon: int, alpha: float) -> pd.DataFrame:
    """Prediction of the next ``horizon`` steps of the line, at the median spacing of the observations."""
    import statsmodels.api as sm

    fit, origin = _ols(s)
    index = pd.DatetimeIndex(s.index)
    spacing = pd.Series(index).diff().median()
    future = pd.DatetimeIndex([index[-1] + spacing * (k + 1) for k in range(horizon)])
    x = sm.add_constant(_years(future, origin), has_constant="add")
    pred = fit.get_prediction(x).summary_frame(alpha=alpha)
    frame = pd.DataFrame(
        {
            "mean": pred["mean"].to_numpy(),
            "lower": pred["obs_ci_lower"].to_numpy(),
            "upper": pred["obs_ci_upper"].to_numpy(),
        },
        index=future,
    )
    return frame.fillna({"lower": frame["mean"], "upper": frame["mean"]})
