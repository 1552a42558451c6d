"""Monthly index series of a tile: tile means, linear trends and one-step anomaly flags.

A month's tile mean counts valid index values only (:func:`tile_mean`); the series of
tile means gets a least-squares trend per year with its standard error
(:func:`index_trend`, with annual sine/cosine terms once two years are held, so
phenology does not pass for a trend) and anomaly flags: months outside their one-step
ARIMA prediction interval (:func:`anomaly_flags`, built on
:func:`memories.ai.forecast.detect_anomalies`), fitted over a trailing window of
:data:`ANOMALY_WINDOW_MONTHS` months so that its cost does not grow with the history.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from memories.errors import ConfigError, ProcessingError
from memories.months import add_months, month_index, month_key, parse_month

__all__ = [
    "ANOMALY_WINDOW_MONTHS",
    "INDEX_VALID_MAX",
    "MIN_VALID_FRACTION",
    "SEASONAL_TREND_MIN_MONTHS",
    "check_anomaly_window",
    "anomaly_flags",
    "index_trend",
    "tile_mean",
]

SEASONAL_TREND_MIN_MONTHS = 24
"""From this many months on, trends are fitted with annual sine/cosine terms (two full cycles)."""
MIN_VALID_FRACTION = 0.05
"""A month whose share of clear pixels is smaller has no tile mean (NaN)."""
INDEX_VALID_MAX = 1.0
"""Tile means count index values within ±this only (normalized differences of non-negative reflectances)."""
ANOMALY_WINDOW_MONTHS = 24
"""Calendar months, ending with the analysed month, the anomaly model is fitted over by default.

Two annual cycles: the least from which annual harmonics are fitted (as :data:`SEASONAL_TREND_MIN_MONTHS`
for the trend), three times the :data:`~memories.ai.forecast.MIN_OBSERVED_STEPS` a fit needs at all, and
recent enough that the intervals describe the tile as it is now (a clear-cut's new normal) rather than a
decade's average. Fitting the whole series instead made the anomaly fit of month 96 about twice that of
month 24 (the Kalman filter is linear in the months, and longer series took more optimizer iterations);
with the window the fit of every month from the 24th on costs the same (issue 13 item 4). A history not
longer than the window is fitted whole, exactly as without one.
"""


def tile_mean(values: np.ndarray) -> float | None:
    """Mean of the valid values of an index map (dimensionless); None when too few pixels are valid.

    A value is valid when finite and within ±:data:`INDEX_VALID_MAX`; the mean needs at least
    :data:`MIN_VALID_FRACTION` of the map's pixels valid.
    """
    v = np.asarray(values, dtype=np.float64)
    # A normalized difference outside -1..1 comes from a negative reflectance: not a valid value.
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(v) & (np.abs(v) <= INDEX_VALID_MAX)
    return float(v[ok].mean()) if ok.mean() >= MIN_VALID_FRACTION else None


def index_trend(months: list[str], values: list[float | None]) -> dict[str, Any]:
    """Least-squares linear trend of a monthly series, per year, with its standard error.

    ``months`` are ``YYYY-MM``; ``values`` the monthly means (None: not observed).
    From :data:`SEASONAL_TREND_MIN_MONTHS` observed months on, an annual sine and cosine
    (of the calendar month) are fitted beside the line, so a phenological cycle is not
    taken for a trend; with fewer months the slope includes any seasonal change.

    Returns:
        ``slope_per_year`` (index units per year), ``standard_error`` (same unit, OLS),
        ``intercept`` (value at the first month), ``n_months``, ``seasonal_terms`` (bool),
        ``fitted`` (the model at each month of ``months``); slope None below 3 observed months.
    """
    t_all = np.array([month_index(m, months[0]) / 12.0 for m in months]) if months else np.zeros(0)
    phase_all = np.array([2 * np.pi * (int(m[5:7]) - 0.5) / 12 for m in months])
    y = np.array([np.nan if v is None else v for v in values], dtype=float)
    ok = np.isfinite(y)
    n = int(ok.sum())
    out: dict[str, Any] = {"slope_per_year": None, "standard_error": None, "intercept": None, "n_months": n}
    seasonal = n >= SEASONAL_TREND_MIN_MONTHS
    out["seasonal_terms"] = seasonal
    out["fitted"] = [None] * len(months)
    if n < 3:
        return out

    def design(t: np.ndarray, phase: np.ndarray) -> np.ndarray:
        cols = [np.ones_like(t), t] + ([np.sin(phase), np.cos(phase)] if seasonal else [])
        return np.column_stack(cols)

    x = design(t_all[ok], phase_all[ok])
    beta, *_ = np.linalg.lstsq(x, y[ok], rcond=None)
    dof = n - x.shape[1]
    resid = y[ok] - x @ beta
    if dof > 0:
        sigma2 = float(resid @ resid) / dof
        cov = sigma2 * np.linalg.pinv(x.T @ x)
        out["standard_error"] = float(math.sqrt(max(cov[1, 1], 0.0)))
    out["slope_per_year"] = float(beta[1])
    out["intercept"] = float(beta[0])
    out["fitted"] = [float(v) for v in design(t_all, phase_all) @ beta]
    return out


def check_anomaly_window(window: int | None, name: str = "anomaly window") -> None:
    """Raise ConfigError when ``window`` (months; None: the whole series) is shorter than a model needs."""
    from memories.ai.forecast import MIN_OBSERVED_STEPS

    if window is not None and window < MIN_OBSERVED_STEPS:
        raise ConfigError(
            f"{name}={window} months; a model needs {MIN_OBSERVED_STEPS} observed months: use at least that "
            f"(default {ANOMALY_WINDOW_MONTHS}), or None to fit the whole series"
        )


def anomaly_flags(
    months: list[str],
    values: list[float | None],
    month: str,
    *,
    alpha: float,
    order: tuple[int, int, int] | None,
    window: int | None = None,
) -> dict[str, Any]:
    """One-step ARIMA anomaly flags of a monthly series (see :func:`memories.ai.forecast.detect_anomalies`).

    Args:
        months: ``YYYY-MM`` of each value.
        values: the monthly tile means (None: not observed).
        month: the month whose own verdict is reported as ``this_month``.
        alpha: 1 minus the coverage of the prediction interval (0.01: 99 % intervals).
        order: ARIMA ``(p, d, q)``; None chooses it by AIC.
        window: fit the model over the ``window`` calendar months ending with ``month`` only (earlier and
            later months are left out; e.g. :data:`ANOMALY_WINDOW_MONTHS`); None: the whole series. A series
            with no month outside the window is fitted exactly as with None.

    Returns:
        ``alpha``, ``flagged`` (anomalous months), ``this_month`` (observed, predicted, lower, upper,
        anomaly; None when ``month`` has no prediction), and when a model was fitted ``order``,
        ``harmonics``, ``months``, ``predicted``, ``lower``, ``upper`` (the flags and predictions cover
        the months fitted); ``note`` says why flags are missing. When the window left months out:
        ``window_months`` (``window``) and ``window_from`` (its first month, ``YYYY-MM``).

    Raises:
        ConfigError: ``window`` below :data:`~memories.ai.forecast.MIN_OBSERVED_STEPS`.
    """
    import pandas as pd

    from memories.ai.forecast import MIN_OBSERVED_STEPS, detect_anomalies

    out: dict[str, Any] = {"alpha": alpha, "flagged": [], "this_month": None}
    if window is not None:
        check_anomaly_window(window)
        kept = [i for i, m in enumerate(months) if 0 <= month_index(month, m) < window]
        if len(kept) < len(months):
            months, values = [months[i] for i in kept], [values[i] for i in kept]
            out["window_months"] = window
            out["window_from"] = month_key(add_months(parse_month(month), 1 - window))
    observed = sum(v is not None for v in values)
    if observed < MIN_OBSERVED_STEPS:
        out["note"] = f"{observed} observed months; anomaly detection needs {MIN_OBSERVED_STEPS}"
        return out
    s = pd.Series(
        [np.nan if v is None else v for v in values],
        index=pd.DatetimeIndex([pd.Timestamp(f"{m}-01") for m in months]),
        dtype=float,
    )
    try:
        result = detect_anomalies(s, step="MS", order=order, alpha=alpha)
    except ProcessingError as e:
        out["note"] = f"no model could be fitted: {e}"
        return out
    table = result.table
    out["order"] = list(result.order)
    out["harmonics"] = result.harmonics
    out["flagged"] = [t.strftime("%Y-%m") for t in table.index[table["anomaly"].to_numpy()]]
    out["months"] = [t.strftime("%Y-%m") for t in table.index]
    for col in ("predicted", "lower", "upper"):
        out[col] = [float(x) for x in table[col]]
    stamp = pd.Timestamp(f"{month}-01")
    if stamp in table.index:
        row = table.loc[stamp]
        out["this_month"] = {
            "observed": float(row["observed"]),
            "predicted": float(row["predicted"]),
            "lower": float(row["lower"]),
            "upper": float(row["upper"]),
            "anomaly": bool(row["anomaly"]),
        }
    else:
        out["note"] = f"{month} has no one-step prediction (first observed months or a gap)"
    return out
