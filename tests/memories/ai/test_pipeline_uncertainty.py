"""Uncertainty carried from step to step in the model pipeline, checked against closed forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from memories.ai.change_series import ChangeSeries, ChangeStep, ChangeUncertainty
from memories.ai.pipeline import AREA_INTERVAL_Z, changed_into_classes, trend_with_input_uncertainty
from memories.ai.trend import TrendAnalyzer
from memories.ai.uncertainty import UncertaintyMaps
from memories.classes import CLASS_BY_CODE, N_CLASSES

SHAPE = (20, 30)
PIXEL_M2 = 100.0


def _series(areas: list[float], half_widths: list[float]) -> tuple[ChangeSeries, ChangeUncertainty]:
    t0 = datetime(2023, 1, 1, tzinfo=UTC)
    empty = np.zeros(SHAPE, dtype=np.float32)
    steps = [
        ChangeStep(t0 + timedelta(days=30 * i), t0 + timedelta(days=30 * (i + 1)), empty, empty > 0, a, 0.5 + 0.01 * i)
        for i, a in enumerate(areas)
    ]
    bounds = [(a - h, a + h) for a, h in zip(areas, half_widths, strict=True)]
    series = ChangeSeries(steps, 0.5, 0.0, PIXEL_M2)
    return series, ChangeUncertainty([empty] * len(areas), [empty] * len(areas), bounds, 30)


def test_a_certain_change_series_gives_the_trend_models_own_intervals() -> None:
    areas = [1000.0, 1300.0, 1450.0, 1800.0, 2050.0]
    series, unc = _series(areas, [0.0] * 5)
    analyzer = TrendAnalyzer(horizon=3)
    trends, carried = trend_with_input_uncertainty(analyzer, series, unc, {})
    base = analyzer.analyze(series)
    pd.testing.assert_frame_equal(trends.metrics["area"].forecast, base.metrics["area"].forecast)
    assert carried.draws == 0


def test_uncertain_areas_widen_the_forecast_by_the_propagated_variance_of_the_line() -> None:
    """Linear path (5 steps): the variance the input adds to the forecast mean is, in closed form,
    ``x0' (X'X)^-1 X' S X (X'X)^-1 x0`` with ``S`` the areas' variances; the draws must find it."""
    areas = [1000.0, 1300.0, 1450.0, 1800.0, 2050.0]
    half = [300.0, 200.0, 400.0, 250.0, 350.0]
    series, unc = _series(areas, half)
    analyzer = TrendAnalyzer(horizon=3)
    trends, carried = trend_with_input_uncertainty(analyzer, series, unc, {}, draws=600, seed=3)
    base = analyzer.analyze(series).metrics["area"].forecast
    got = trends.metrics["area"].forecast
    index = pd.DatetimeIndex(series.table.index)
    years = np.asarray((index - index[0]).days, dtype=float) / 365.25
    x = sm.add_constant(years)
    future = np.asarray((got.index - index[0]).days, dtype=float) / 365.25
    x0 = sm.add_constant(future, has_constant="add")
    sd = np.asarray(half) / AREA_INTERVAL_Z
    h = np.linalg.solve(x.T @ x, x.T)  # (2, n): coefficients per observation
    added = np.einsum("fi,ij,j,kj,fk->f", x0, h, sd**2, h, x0)  # variance the input adds, per future step
    z = 1.959963984540054
    base_var = ((base["upper"] - base["lower"]).to_numpy() / (2 * z)) ** 2
    got_var = ((got["upper"] - got["lower"]).to_numpy() / (2 * z)) ** 2
    # 600 draws: the sample variance is within ~6 % (one standard error) of the closed form.
    np.testing.assert_allclose(got_var - base_var, added, rtol=0.2)
    np.testing.assert_allclose(got["mean"].to_numpy(), base["mean"].to_numpy())
    assert (carried.intervals["area"]["upper"] - carried.intervals["area"]["lower"] > 0).all()
    wider = (got["upper"] - got["lower"]).to_numpy() > (base["upper"] - base["lower"]).to_numpy()
    assert wider.all()
    pd.testing.assert_frame_equal(carried.model_only["area"], base[["lower", "upper"]])
    # Intensity has no interval of its own: its forecast is the plain fit's.
    pd.testing.assert_frame_equal(
        trends.metrics["intensity"].forecast, analyzer.analyze(series).metrics["intensity"].forecast
    )


def test_change_into_each_class_is_a_sum_of_bernoulli_pixels() -> None:
    share = np.zeros(SHAPE, dtype=np.float32)
    share[:10, :10] = 1.0  # 100 pixels surely changed
    share[10:, :10] = 0.5  # 100 pixels changed in half the samples
    probs = np.zeros((N_CLASSES - 1, *SHAPE), dtype=np.float32)
    built, forest = 0, 1  # probability planes of class codes 1 and 2
    probs[built] = 0.8
    probs[forest] = 0.2
    maps = UncertaintyMaps(probs, np.ones(SHAPE, np.uint8), probs[built], np.zeros(SHAPE, np.float32), probs[0], 30)
    series, unc = _series([0.0], [0.0])
    unc = ChangeUncertainty(unc.std, [share], unc.area_interval_m2, 30)
    # The step marked every pixel with a share changed but for a column of the half-sure ones and a
    # stray pixel; pixels outside its mask do not count, whatever their share.
    changed = share > 0
    share[5, 20] = 0.3  # a stray sample outside the mask
    changed[10:, 9] = False  # 10 half-sure pixels the step did not keep
    step = series.steps[0]
    series = ChangeSeries([ChangeStep(step.before, step.after, share, changed, 0.0, 0.0)], 0.5, 0.0, PIXEL_M2)
    table = changed_into_classes(series, unc, maps).table
    name_built, name_forest = CLASS_BY_CODE[1].name, CLASS_BY_CODE[2].name
    # Expected pixels: 100 * 0.8 + 90 * 0.5 * 0.8 = 116; variance 100 * .8 * .2 + 90 * .4 * .6 = 37.6.
    assert table.loc[name_built, "expected_m2"] == pytest.approx(116 * PIXEL_M2)
    assert table.loc[name_built, "sd_m2"] == pytest.approx(PIXEL_M2 * np.sqrt(37.6))
    # Forest: 100 * 0.2 + 90 * 0.1 = 29 pixels; variance 100 * .2 * .8 + 90 * .1 * .9 = 24.1.
    assert table.loc[name_forest, "expected_m2"] == pytest.approx(29 * PIXEL_M2)
    assert table.loc[name_forest, "sd_m2"] == pytest.approx(PIXEL_M2 * np.sqrt(24.1))
    z = 1.959963984540054
    assert table.loc[name_forest, "lower_m2"] == pytest.approx(29 * PIXEL_M2 - z * np.sqrt(24.1) * PIXEL_M2)
    others = table.drop(index=[name_built, name_forest])
    assert (others["expected_m2"] == 0).all() and (others["sd_m2"] == 0).all()
