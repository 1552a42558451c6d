"""Forecasts and anomaly flags on spectral-index time series (ARIMA, statsmodels).

Satellite index series are irregular: a date exists only when a scene was
taken, and only its cloud-free pixels count. Every function here first puts a
series on a regular step with :func:`regularize`:

- observations are binned into steps of ``step`` (a pandas offset: ``"10D"``,
  the Sentinel-2 revisit, by default; ``"MS"`` for monthly composites) and the
  **median** of each bin is its value (robust to a half-cloudy date);
- empty steps are **gaps**. The model never sees an invented value for them by
  default (``gap_fill="kalman"``): SARIMAX is a state-space model and its Kalman
  filter simply skips missing steps, which keeps the intervals honest. With
  ``gap_fill="linear"`` gaps are interpolated in time first (a smoother, but
  over-confident, input). :class:`RegularSeries` keeps which steps were
  observed and which filled.

The model is a SARIMAX with an ARIMA ``(p, d, q)`` order chosen by AIC over a
small grid (:data:`ORDER_GRID`) unless given, plus a seasonal part:
``seasonal="fourier"`` (default) adds ``harmonics`` annual sine/cosine pairs as
regressors (dynamic harmonic regression: a year of phenology needs no 36-step
seasonal lag, which a 2–3 year record could not estimate), ``"none"`` fits no
seasonality, and a tuple ``(P, D, Q, s)`` is passed to SARIMAX as its seasonal
order with period ``s`` steps.

Intervals are ``1 - alpha`` prediction intervals (``alpha=0.05``: 95 %), from
the model's Gaussian forecast variance.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from memories.errors import ConfigError, ProcessingError

__all__ = [
    "ORDER_GRID",
    "AnomalyResult",
    "ForecastResult",
    "RegularSeries",
    "detect_anomalies",
    "forecast_series",
    "regularize",
    "tile_index_series",
]

Seasonal = Literal["fourier", "none"] | tuple[int, int, int, int]
"""Seasonal part of the model: annual Fourier regressors, none, or a SARIMAX seasonal order."""

GapFill = Literal["kalman", "linear"]
"""How empty steps reach the model: skipped by the Kalman filter, or linearly interpolated."""

ORDER_GRID: tuple[tuple[int, int, int], ...] = tuple(
    (p, d, q) for p, d, q in itertools.product(range(3), range(2), range(2))
)
"""ARIMA orders tried when none is given: p in 0–2, d and q in 0–1 (12 models)."""

HARMONICS_MAX = 3
"""Most annual harmonics tried when ``harmonics=None``."""

YEAR_DAYS = 365.25
"""Length of the seasonal cycle of the Fourier regressors, days."""

MIN_OBSERVED_STEPS = 8
"""Fewest observed steps a model is fitted to; fewer raise :class:`ProcessingError`."""


@dataclass(frozen=True)
class RegularSeries:
    """A series on a regular step, with the steps that were observed marked."""

    values: pd.Series
    """Value per step (DatetimeIndex at the bin starts); NaN in gaps unless filled."""
    observed: pd.Series
    """True where at least one observation fell into the step."""
    step: str
    """The pandas offset of one step."""

    @property
    def n_observed(self) -> int:
        """Steps with an observation."""
        return int(self.observed.sum())

    @property
    def n_filled(self) -> int:
        """Steps without an observation (gaps, interpolated or left to the Kalman filter)."""
        return int((~self.observed).sum())


@dataclass(frozen=True)
class ForecastResult:
    """A forecast with its prediction intervals and the model that made it."""

    forecast: pd.DataFrame
    """Columns ``mean``, ``lower``, ``upper`` (index units), indexed by the future step starts."""
    history: RegularSeries
    """The regular series the model was fitted to."""
    order: tuple[int, int, int]
    """The ARIMA ``(p, d, q)`` used."""
    seasonal: Seasonal
    harmonics: int
    """Annual harmonics of the Fourier regressors (0 without them)."""
    aic: float
    alpha: float
    """Intervals cover ``1 - alpha`` (0.05: 95 %)."""

    def at(self, times: Sequence[Any] | pd.DatetimeIndex) -> pd.DataFrame:
        """The forecast of the step that contains each of ``times`` (e.g. held-out observation dates)."""
        idx = pd.DatetimeIndex(times)
        start = self.forecast.index[0]
        end = self.forecast.index[-1] + pd.tseries.frequencies.to_offset(self.history.step)
        outside = idx[(idx < start) | (idx >= end)]
        if len(outside):
            raise ProcessingError(
                f"times {[str(t) for t in outside]} are outside the forecast span {start} to {end}: "
                "forecast a longer horizon, or hold out only times after the last fitted step"
            )
        pos = self.forecast.index.searchsorted(idx, side="right") - 1
        out = self.forecast.iloc[pos].copy()
        out.index = idx
        return out


@dataclass(frozen=True)
class AnomalyResult:
    """One-step-ahead predictions of every observed step and which fall outside their interval."""

    table: pd.DataFrame
    """Per observed step: ``observed``, ``predicted``, ``lower``, ``upper``, ``zscore`` (robust, of the
    one-step residual) and ``anomaly`` (bool)."""
    order: tuple[int, int, int]
    harmonics: int
    alpha: float

    @property
    def anomalies(self) -> pd.DataFrame:
        """The flagged rows."""
        return self.table[self.table["anomaly"]]


def regularize(series: pd.Series, step: str = "10D", *, gap_fill: GapFill = "kalman") -> RegularSeries:
    """Median per step of the finite observations of ``series``; gaps NaN or linearly interpolated.

    Args:
        series: Values (e.g. mean NDVI, dimensionless) indexed by observation time (DatetimeIndex);
            NaN values count as not observed.
        step: Pandas offset alias of one step (``"10D"``, ``"MS"``, ``"7D"``).
        gap_fill: ``"kalman"`` leaves gaps NaN, ``"linear"`` interpolates them in time.

    Raises:
        ProcessingError: the index is not a DatetimeIndex or nothing is observed.
        ConfigError: ``step`` or ``gap_fill`` is not understood.
    """
    if not isinstance(series.index, pd.DatetimeIndex):
        raise ProcessingError(
            f"series index is {type(series.index).__name__}; index the values by time (pd.DatetimeIndex)"
        )
    if gap_fill not in ("kalman", "linear"):
        raise ConfigError(f"gap_fill={gap_fill!r}; use 'kalman' or 'linear'")
    try:
        pd.tseries.frequencies.to_offset(step)
    except ValueError as e:
        raise ConfigError(f"step={step!r} is not a pandas offset ({e}); use e.g. '10D' or 'MS'") from e
    s = series.astype(float).dropna().sort_index()
    if s.index.tz is not None:
        s.index = s.index.tz_convert("UTC").tz_localize(None)
    if s.empty:
        raise ProcessingError("the series has no finite observation; nothing to model")
    origin = s.index[0].normalize()
    binned = s.resample(step, origin=origin).median() if step[-1] == "D" else s.resample(step).median()
    observed = binned.notna()
    values = binned.interpolate(method="time") if gap_fill == "linear" else binned
    return RegularSeries(values=values, observed=observed, step=step)


def forecast_series(
    series: pd.Series,
    horizon: int,
    *,
    order: tuple[int, int, int] | None = None,
    seasonal: Seasonal = "fourier",
    harmonics: int | None = 2,
    step: str = "10D",
    gap_fill: GapFill = "kalman",
    alpha: float = 0.05,
) -> ForecastResult:
    """Forecast ``horizon`` steps past the end of an index series, with ``1 - alpha`` intervals.

    Args:
        series: Observations indexed by time (see :func:`regularize`).
        horizon: Steps to forecast (of ``step``: 9 steps of 10 days is about a quarter).
        order: ARIMA ``(p, d, q)``; chosen by AIC over :data:`ORDER_GRID` if None.
        seasonal: ``"fourier"`` (annual harmonics as regressors), ``"none"``, or a SARIMAX seasonal
            order ``(P, D, Q, s)``.
        harmonics: Sine/cosine pairs of the annual cycle when ``seasonal="fourier"``; chosen by AIC
            over 1–:data:`HARMONICS_MAX` if None.
        step: Pandas offset of one step.
        gap_fill: ``"kalman"`` (gaps skipped by the filter) or ``"linear"``.
        alpha: 1 minus the interval coverage (0.05: 95 % intervals).

    Returns:
        Mean forecast and lower/upper interval per future step, the order and its AIC.

    Raises:
        ProcessingError: fewer than :data:`MIN_OBSERVED_STEPS` observed steps, or no order could be fitted.
        ConfigError: bad ``horizon``, ``alpha``, ``harmonics`` or ``seasonal``.
    """
    if horizon < 1:
        raise ConfigError(f"horizon={horizon}: forecast at least one step")
    _check_alpha(alpha)
    reg = regularize(series, step, gap_fill=gap_fill)
    fit, chosen, n_harmonics = _fit(reg, order=order, seasonal=seasonal, harmonics=harmonics)
    offset = pd.tseries.frequencies.to_offset(step)
    future = pd.date_range(reg.values.index[-1] + offset, periods=horizon, freq=offset)
    exog = _fourier(future, n_harmonics) if seasonal == "fourier" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = fit.get_forecast(horizon, exog=exog)
        ci = np.asarray(pred.conf_int(alpha=alpha))
    frame = pd.DataFrame({"mean": np.asarray(pred.predicted_mean), "lower": ci[:, 0], "upper": ci[:, 1]}, index=future)
    return ForecastResult(
        forecast=frame,
        history=reg,
        order=chosen,
        seasonal=seasonal,
        harmonics=n_harmonics,
        aic=float(fit.aic),
        alpha=alpha,
    )


def detect_anomalies(
    series: pd.Series,
    *,
    order: tuple[int, int, int] | None = None,
    seasonal: Seasonal = "fourier",
    harmonics: int | None = 2,
    step: str = "10D",
    alpha: float = 0.01,
    z_threshold: float | None = None,
) -> AnomalyResult:
    """Flag observed steps that fall outside their one-step-ahead ``1 - alpha`` prediction interval.

    The model is fitted to the whole series (gaps skipped by the Kalman filter);
    each observed step is compared with its prediction from the steps before it.
    With ``z_threshold`` set, a step is flagged instead when the robust z-score of
    its one-step residual (residual / (1.4826 x median absolute residual)) exceeds
    it in absolute value, which does not trust the model's own variance.

    Args:
        series: Observations indexed by time.
        order, seasonal, harmonics, step: As for :func:`forecast_series`.
        alpha: 1 minus the interval coverage; 0.01 flags about 1 % of normal steps.
        z_threshold: Use the robust residual z-score rule with this threshold instead.

    Returns:
        A table of every observed step (the first one, which has no prediction, is left out).
    """
    _check_alpha(alpha)
    reg = regularize(series, step, gap_fill="kalman")
    fit, chosen, n_harmonics = _fit(reg, order=order, seasonal=seasonal, harmonics=harmonics)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = fit.get_prediction()
        ci = np.asarray(pred.conf_int(alpha=alpha))
    table = pd.DataFrame(
        {
            "observed": reg.values.to_numpy(),
            "predicted": np.asarray(pred.predicted_mean),
            "lower": ci[:, 0],
            "upper": ci[:, 1],
        },
        index=reg.values.index,
    )
    # Skip the first observed steps: the filter's diffuse start predicts them with near-infinite variance.
    burn_in = max(sum(chosen[:2]), 1)
    table = table[reg.observed.to_numpy()].iloc[burn_in:]
    resid = table["observed"] - table["predicted"]
    mad = float(np.median(np.abs(resid - np.median(resid)))) * 1.4826
    table["zscore"] = resid / mad if mad > 0 else 0.0
    if z_threshold is not None:
        table["anomaly"] = table["zscore"].abs() > z_threshold
    else:
        table["anomaly"] = (table["observed"] < table["lower"]) | (table["observed"] > table["upper"])
    return AnomalyResult(table=table, order=chosen, harmonics=n_harmonics, alpha=alpha)


def tile_index_series(
    store: Any,
    index: str = "ndvi",
    *,
    classes: np.ndarray | None = None,
    class_names: dict[int, str] | None = None,
    min_valid_fraction: float = 0.05,
) -> pd.DataFrame:
    """Monthly spatial mean of an index over one tile, overall and per land-cover class.

    Args:
        store: The tile's ``spectral_indices`` :class:`~memories.store.raster.MonthlyRasterStore`.
        index: Index variable (``ndvi``, ``ndwi``, ``evi``, ``nbr``).
        classes: Optional uint8 ``(y, x)`` class codes of the tile (0 = unknown) to split the mean by.
        class_names: Column name per class code; ``memories.classes`` names if None.
        min_valid_fraction: A month (or class in a month) with a smaller share of finite pixels is NaN.

    Returns:
        One row per month in the store (DatetimeIndex at the month start), column ``all`` and one
        column per class present in ``classes``; also ``valid_fraction`` (0–1) of the whole tile.
    """
    months = store.months()
    if not months:
        raise ProcessingError(
            f"{store.product} of tile {store.grid.tile_id} has no month yet; materialize {store.product} first"
        )
    if classes is not None and classes.shape != store.grid.shape:
        raise ProcessingError(
            f"classes of shape {classes.shape} do not match tile {store.grid.tile_id} ({store.grid.shape})"
        )
    if class_names is None:
        from memories.classes import CLASS_BY_CODE

        class_names = {code: c.name for code, c in CLASS_BY_CODE.items()}
    codes = [int(c) for c in np.unique(classes) if c != 0] if classes is not None else []
    rows = []
    for month in months:
        ds = store.read_month(month)
        if index not in ds:
            raise ProcessingError(f"{store.product} has no variable {index!r}; it holds {sorted(map(str, ds))}")
        v = np.asarray(ds[index].values, dtype=np.float64)
        finite = np.isfinite(v)
        frac = float(finite.mean())
        row: dict[str, float] = {"valid_fraction": frac, "all": _masked_mean(v, finite, min_valid_fraction)}
        for code in codes:
            assert classes is not None
            sel = classes == code
            row[class_names.get(code, f"class_{code}")] = _masked_mean(v[sel], finite[sel], min_valid_fraction)
        rows.append(row)
    return pd.DataFrame(rows, index=pd.DatetimeIndex([pd.Timestamp(f"{m}-01") for m in months], name="time"))


# -- helpers ------------------------------------------------------------------


def _masked_mean(v: np.ndarray, ok: np.ndarray, min_fraction: float) -> float:
    if ok.size == 0 or ok.mean() < min_fraction:
        return math.nan
    return float(v[ok].mean())


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha={alpha} must be in (0, 1): 0.05 gives 95 % intervals")


def _fourier(index: pd.DatetimeIndex, harmonics: int) -> np.ndarray:
    """Annual sine/cosine regressors ``(n, 2 * harmonics)`` of the day of the (Julian) year."""
    t = (index - pd.Timestamp("2000-01-01")).days.to_numpy(dtype=np.float64) / YEAR_DAYS
    cols = []
    for k in range(1, harmonics + 1):
        cols += [np.sin(2 * np.pi * k * t), np.cos(2 * np.pi * k * t)]
    return np.column_stack(cols)


def _fit(
    reg: RegularSeries, *, order: tuple[int, int, int] | None, seasonal: Seasonal, harmonics: int | None
) -> tuple[Any, tuple[int, int, int], int]:
    """The fitted SARIMAX with the lowest AIC over the candidate orders, its order and its harmonics.

    BLAS runs on one thread here: the Kalman filter calls it on tiny matrices, where
    OpenBLAS's worker threads only spin; on a loaded 2-core machine they made the order
    search of an 8-month series 10-50x slower (19-156 s against 1.2-3.3 s).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_candidates(reg, order=order, seasonal=seasonal, harmonics=harmonics)


def _fit_candidates(
    reg: RegularSeries, *, order: tuple[int, int, int] | None, seasonal: Seasonal, harmonics: int | None
) -> tuple[Any, tuple[int, int, int], int]:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    if reg.n_observed < MIN_OBSERVED_STEPS:
        raise ProcessingError(
            f"only {reg.n_observed} observed steps of {reg.step}; a forecast needs at least {MIN_OBSERVED_STEPS}: "
            "wait for more months or use a shorter step"
        )
    exog = None
    seasonal_order: tuple[int, int, int, int] = (0, 0, 0, 0)
    if seasonal == "fourier":
        if harmonics is None:
            # The number of annual harmonics is part of the model choice: AIC over 1..HARMONICS_MAX.
            fits = [_fit(reg, order=order, seasonal=seasonal, harmonics=k) for k in range(1, HARMONICS_MAX + 1)]
            return min(fits, key=lambda f: float(f[0].aic))
        if harmonics < 1:
            raise ConfigError(f"harmonics={harmonics}: Fourier seasonality needs at least one harmonic")
        exog = _fourier(pd.DatetimeIndex(reg.values.index), harmonics)
    elif isinstance(seasonal, tuple) and len(seasonal) == 4:
        seasonal_order = tuple(int(x) for x in seasonal)  # type: ignore[assignment]
    elif seasonal != "none":
        raise ConfigError(f"seasonal={seasonal!r}; use 'fourier', 'none' or a SARIMAX order (P, D, Q, s)")
    candidates = [order] if order is not None else list(ORDER_GRID)
    y = reg.values.to_numpy(dtype=np.float64)
    best: tuple[float, Any, tuple[int, int, int]] | None = None
    errors: list[str] = []
    for cand in candidates:
        p, d, q = (int(x) for x in cand)
        trend = "c" if d == 0 and seasonal_order[1] == 0 else "n"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = SARIMAX(y, exog=exog, order=(p, d, q), seasonal_order=seasonal_order, trend=trend)
                fit = model.fit(disp=False, maxiter=200)
        except (ValueError, np.linalg.LinAlgError) as e:
            errors.append(f"{cand}: {e}")
            continue
        if not math.isfinite(fit.aic):
            continue
        if best is None or fit.aic < best[0]:
            best = (float(fit.aic), fit, (p, d, q))
    if best is None:
        raise ProcessingError(f"no ARIMA order could be fitted to the series ({'; '.join(errors) or 'AIC not finite'})")
    return best[1], best[2], harmonics if seasonal == "fourier" and harmonics else 0
