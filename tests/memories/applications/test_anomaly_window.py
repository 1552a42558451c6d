"""The anomaly model of a long series is fitted over its trailing window only (issue 13 item 4: flat in history)."""

from __future__ import annotations

import numpy as np
import pytest

from memories.applications.trends import ANOMALY_WINDOW_MONTHS, anomaly_flags
from memories.errors import ConfigError
from memories.months import add_months, month_key, parse_month

ALPHA = 0.01
ORDER = (1, 0, 0)


def _series(n: int, seed: int = 3) -> tuple[list[str], list[float | None]]:
    """``n`` months from 2015-01 of an NDVI-like tile mean: an annual cycle, AR(1) noise, two cloudy months."""
    rng = np.random.default_rng(seed)
    months = [month_key(add_months(parse_month("2015-01"), i)) for i in range(n)]
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.5 * noise[i - 1] + rng.normal(0, 0.01)
    values: list[float | None] = [float(0.5 + 0.12 * np.sin(2 * np.pi * i / 12) + noise[i]) for i in range(n)]
    values[n // 3] = values[n - 5] = None  # months without a tile mean: gaps the Kalman filter skips
    return months, values


def test_long_series_flags_and_predictions_cover_exactly_the_trailing_window():
    months, values = _series(60)
    month = months[-1]
    got = anomaly_flags(months, values, month, alpha=ALPHA, order=ORDER, window=ANOMALY_WINDOW_MONTHS)
    window = months[-ANOMALY_WINDOW_MONTHS:]
    assert got["window_months"] == ANOMALY_WINDOW_MONTHS == 24
    assert got["window_from"] == window[0] == "2018-01"
    # The fit is that of the window's months alone: the same numbers as the unbounded fit of just those months.
    alone = anomaly_flags(window, values[-ANOMALY_WINDOW_MONTHS:], month, alpha=ALPHA, order=ORDER)
    assert {k: v for k, v in got.items() if not k.startswith("window_")} == alone
    # Its one-step rows are the window's observed months (less the filter's burn-in month), none before.
    observed = [m for m, v in zip(window, values[-ANOMALY_WINDOW_MONTHS:], strict=True) if v is not None]
    assert got["months"] == observed[1:]
    assert set(got["flagged"]) <= set(window)
    assert got["this_month"] is not None
    # ... and not those of the whole series, which the model without a window is fitted to.
    whole = anomaly_flags(months, values, month, alpha=ALPHA, order=ORDER)
    assert whole["months"][0] < window[0] and "window_months" not in whole
    assert whole["this_month"]["predicted"] != got["this_month"]["predicted"]


@pytest.mark.parametrize("n, window", [(24, 24), (24, 36), (20, 24), (8, 24)])
def test_series_not_longer_than_the_window_is_fitted_as_without_one(n, window):
    months, values = _series(n)
    bounded = anomaly_flags(months, values, months[-1], alpha=ALPHA, order=ORDER, window=window)
    assert bounded == anomaly_flags(months, values, months[-1], alpha=ALPHA, order=ORDER)
    assert "window_months" not in bounded


def test_window_of_an_earlier_month_ends_with_that_month():
    months, values = _series(60)
    got = anomaly_flags(months, values, "2017-06", alpha=ALPHA, order=ORDER, window=24)
    assert got["window_from"] == "2015-07"
    assert got["months"][-1] == "2017-06" and got["months"][0] > "2015-07"
    assert got["this_month"]["observed"] == pytest.approx(values[months.index("2017-06")])
    lo, hi = months.index("2015-07"), months.index("2017-06") + 1
    alone = anomaly_flags(months[lo:hi], values[lo:hi], "2017-06", alpha=ALPHA, order=ORDER)
    assert {k: v for k, v in got.items() if not k.startswith("window_")} == alone


def test_window_shorter_than_a_model_needs_is_refused():
    months, values = _series(30)
    with pytest.raises(ConfigError, match="needs 8 observed months"):
        anomaly_flags(months, values, months[-1], alpha=ALPHA, order=ORDER, window=6)
