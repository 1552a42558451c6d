"""EnvironmentalMonitor on a real memory (``app_memory``), checked against the sample world's truth.

The world of ``app_memory`` (tile 33TVM, 2023-01..2023-08, 256 px) has a clear-cut
on 2023-04-08, a new district on 2023-05-14 and a flood 2023-07-02..07-23.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rasterio.features import rasterize

from memories.applications.environmental import (
    REPORT_KIND,
    EnvironmentalMonitor,
    index_trend,
    open_water,
)
from memories.applications.trends import MIN_VALID_FRACTION, tile_mean
from memories.applications.water import water_change
from memories.classes import CLASS_BY_NAME, LAND_COVER_CLASSES
from memories.errors import ConfigError, MissingDataError

CLEAR_CUT_AREA_TOLERANCE = 0.05
"""Forest loss of a month after the cut vs the clear-cut's true area (relative)."""
CLEAR_CUT_MIN_IOU = 0.9
"""Overlap (intersection over union) of the forest-loss map with the rasterized clear-cut."""
FLOOD_MIN_FRACTION = 0.4
"""Open-water gain of the flood month vs the flood's true area, lower bound: the monthly median composite
sees the flood only on pixels whose clear observations were mostly taken during it (measured 0.55)."""
FLOOD_MAX_FRACTION = 1.1
FLOOD_MIN_PRECISION = 0.9
"""Share of the new open water lying in the flood (dilated by one pixel)."""
AFTER_FLOOD_MAX_HA = 1.0
"""Open-water change of the month after the flood, hectares."""
TREND_ATOL = 1e-9


def _truth_mask(app_memory: Any, kind: str, dilate: int = 0) -> np.ndarray:
    from scipy import ndimage

    grid = app_memory.grid
    [event] = app_memory.events(kind)
    mask = rasterize([(event.geometry, 1)], out_shape=grid.shape, transform=grid.transform, dtype="uint8") > 0
    return ndimage.binary_dilation(mask, iterations=dilate) if dilate else mask


@pytest.fixture(scope="module")
def monitor(app_memory: Any) -> EnvironmentalMonitor:
    return EnvironmentalMonitor(app_memory.view)


@pytest.fixture(scope="module")
def june(monitor: EnvironmentalMonitor, app_memory: Any) -> Any:
    return monitor.report(app_memory.tile, "2023-06")


def test_forest_loss_after_the_cut_matches_the_clear_cut_area(monitor, app_memory):
    truth = _truth_mask(app_memory, "clear_cut")
    truth_ha = truth.sum() * app_memory.grid.pixel_area_m2 / 1e4
    for month in ("2023-05", "2023-06", "2023-08"):
        a = monitor.analyze(app_memory.tile, month)
        got = a.numbers["forest_loss"]["area_ha"]
        iou = (a.forest_loss & truth).sum() / (a.forest_loss | truth).sum()
        print(
            f"{month}: forest loss {got:.2f} ± {a.numbers['forest_loss']['edge_uncertainty_ha']:.2f} ha "
            f"vs clear-cut {truth_ha:.2f} ha, IoU {iou:.3f}"
        )
        assert a.reference_month == "2023-01"
        assert abs(got - truth_ha) / truth_ha < CLEAR_CUT_AREA_TOLERANCE
        assert iou > CLEAR_CUT_MIN_IOU
        assert any(t.startswith("Forest loss detected") for t in a.alerts)


def test_no_forest_loss_and_no_alert_before_the_cut(monitor, app_memory):
    a = monitor.analyze(app_memory.tile, "2023-03")
    assert a.numbers["forest_loss"]["area_ha"] == 0.0 and not a.forest_loss.any()
    assert a.alerts == []


def test_forest_gain_is_zero_where_the_world_has_no_regrowth(monitor, app_memory):
    for month in ("2023-06", "2023-08"):
        a = monitor.analyze(app_memory.tile, month)
        assert a.numbers["forest_gain"]["area_ha"] == 0.0
        # The cut stays bare: no gain on it.
        assert not (a.vegetation_gain & _truth_mask(app_memory, "clear_cut")).any()


def test_open_water_grows_in_the_flood_month_on_the_flooded_land_and_recedes_after(monitor, app_memory):
    flood = _truth_mask(app_memory, "flood")
    px_ha = app_memory.grid.pixel_area_m2 / 1e4
    truth_ha = flood.sum() * px_ha
    july = monitor.analyze(app_memory.tile, "2023-07")
    water = july.numbers["water"]
    gained = july.water_gained
    precision = (gained & _truth_mask(app_memory, "flood", dilate=1)).sum() / gained.sum()
    print(
        f"2023-07: open water +{water['change_vs_reference_ha']:.2f} ± {water['change_uncertainty_ha']:.2f} ha "
        f"vs flood {truth_ha:.2f} ha ({water['change_vs_reference_ha'] / truth_ha:.2f}), precision {precision:.3f}"
    )
    assert FLOOD_MIN_FRACTION * truth_ha < water["change_vs_reference_ha"] < FLOOD_MAX_FRACTION * truth_ha
    assert precision > FLOOD_MIN_PRECISION
    # Independent count: NDWI > 0 in the memory's July composite.
    ndwi = app_memory.view.raster("spectral_indices", app_memory.tile, "2023-07")["ndwi"].values
    assert water["now_ha"] == pytest.approx((ndwi > 0).sum() * px_ha)
    assert any(t.startswith("Open water grew") for t in july.alerts)
    # Flooded land is not counted as vegetation loss.
    assert not (july.vegetation_loss & july.water_now).any()
    august = monitor.analyze(app_memory.tile, "2023-08").numbers["water"]
    print(f"2023-08: open water change {august['change_vs_reference_ha']:.2f} ha vs 2023-01")
    assert abs(august["change_vs_reference_ha"]) < AFTER_FLOOD_MAX_HA
    assert abs(august["change_vs_first_ha"]) < AFTER_FLOOD_MAX_HA


def _tile_means(app_memory: Any, index: str, months: list[str]) -> list[float]:
    """Monthly tile means computed here, independently of the monitor (valid values: -1..1)."""
    out = []
    for m in months:
        v = app_memory.view.raster("spectral_indices", app_memory.tile, m)[index].values.astype(float)
        out.append(float(v[np.isfinite(v) & (np.abs(v) <= 1)].mean()))
    return out


def test_index_trends_match_an_independent_ols_fit(june, app_memory):
    import statsmodels.api as sm

    months = app_memory.months[:6]
    for index in ("ndvi", "ndwi", "nbr"):
        y = _tile_means(app_memory, index, months)
        fit = sm.OLS(np.asarray(y), sm.add_constant(np.arange(len(months)) / 12.0)).fit()
        got = june.summary["trends"][index]
        print(f"{index}: {got['slope_per_year']:+.4f} ± {got['standard_error']:.4f} per year over {months[0]}..")
        assert got["n_months"] == 6 and got["seasonal_terms"] is False
        assert got["slope_per_year"] == pytest.approx(fit.params[1], abs=TREND_ATOL)
        assert got["standard_error"] == pytest.approx(fit.bse[1], abs=TREND_ATOL)


def test_index_trend_removes_the_annual_cycle_from_two_years_on():
    months = [f"{2021 + i // 12}-{i % 12 + 1:02d}" for i in range(36)]
    t = np.arange(36) / 12.0
    phase = 2 * np.pi * (np.arange(36) % 12 + 0.5) / 12
    rng = np.random.default_rng(0)
    y = 0.5 + 0.03 * t + 0.2 * np.sin(phase) - 0.1 * np.cos(phase) + rng.normal(0, 0.005, 36)
    tr = index_trend(months, list(y))
    assert tr["seasonal_terms"] is True
    assert abs(tr["slope_per_year"] - 0.03) < 3 * tr["standard_error"] < 0.01
    short = index_trend(months[:6], list(y[:6]))
    assert short["seasonal_terms"] is False  # under two years the slope includes the season
    assert index_trend(months[:2], [0.1, 0.2])["slope_per_year"] is None
    gaps = index_trend(months[:5], [0.1, None, 0.3, None, 0.5])
    assert gaps["n_months"] == 3 and gaps["slope_per_year"] == pytest.approx(1.2)


def test_anomaly_flags_are_those_of_detect_anomalies_and_alert_when_the_interval_is_crossed(app_memory):
    from memories.ai.forecast import detect_anomalies

    months = app_memory.months
    index = pd.DatetimeIndex([pd.Timestamp(f"{m}-01") for m in months])
    strict = EnvironmentalMonitor(app_memory.view).analyze(app_memory.tile, "2023-08")
    loose = EnvironmentalMonitor(app_memory.view, anomaly_alpha=0.9).analyze(app_memory.tile, "2023-08")
    for name in ("ndvi", "ndwi", "nbr"):
        series = pd.Series(_tile_means(app_memory, name, months), index=index)
        for a, alpha in ((strict, 0.01), (loose, 0.9)):
            table = detect_anomalies(series, step="MS", order=(1, 0, 0), alpha=alpha).table
            expected = [t.strftime("%Y-%m") for t in table.index[table["anomaly"].to_numpy()]]
            got = a.numbers["anomalies"][name]
            assert got["flagged"] == expected
            assert got["this_month"]["anomaly"] == ("2023-08" in expected)
            assert got["this_month"]["observed"] == pytest.approx(series.iloc[-1], rel=1e-6)
        print(
            f"{name}: flagged at 99 % {strict.numbers['anomalies'][name]['flagged']}, "
            f"at 10 % {loose.numbers['anomalies'][name]['flagged']}"
        )
    strict_alerts = [t for t in strict.alerts if t.startswith("Anomaly")]
    loose_alerts = [t for t in loose.alerts if t.startswith("Anomaly")]
    n_loose = sum(loose.numbers["anomalies"][n]["this_month"]["anomaly"] for n in ("ndvi", "ndwi", "nbr"))
    assert strict_alerts == [] and len(loose_alerts) == n_loose >= 1
    # Fewer months than the model needs: no flags, and the reason is stated.
    early = EnvironmentalMonitor(app_memory.view).analyze(app_memory.tile, "2023-05")
    assert early.numbers["anomalies"]["ndvi"]["this_month"] is None
    assert "needs 8" in early.numbers["anomalies"]["ndvi"]["note"]


def test_alert_thresholds_decide_the_alerts(app_memory):
    high = EnvironmentalMonitor(app_memory.view, alert_threshold_ha=1000.0, water_alert_threshold_ha=1000.0)
    assert high.analyze(app_memory.tile, "2023-07").alerts == []
    with pytest.raises(ConfigError, match="alert_threshold_ha"):
        EnvironmentalMonitor(app_memory.view, alert_threshold_ha=-1)
    with pytest.raises(ConfigError, match="anomaly_alpha"):
        EnvironmentalMonitor(app_memory.view, anomaly_alpha=1.5)
    with pytest.raises(ConfigError, match="evi"):
        EnvironmentalMonitor(app_memory.view, indices=("savi",)).analyze(app_memory.tile, "2023-06")
    with pytest.raises(ConfigError, match="anomaly_window_months=6"):
        EnvironmentalMonitor(app_memory.view, anomaly_window_months=6)


def test_report_names_the_anomaly_window_only_when_it_left_months_out(app_memory):
    from dataclasses import replace

    from memories.applications.environmental_report import trend_section

    a = EnvironmentalMonitor(app_memory.view, anomaly_window_months=8).analyze(app_memory.tile, "2023-08")
    assert all(an.window_months is None for an in a.anomalies.values())  # 8 months held: fitted whole
    assert trend_section(a)["text"].endswith("fitted to the series up to this month.")
    # A longer history's flags carry the window they were fitted over; the report says so.
    flags = {k: replace(v, window_months=8, window_from="2023-01") for k, v in a.anomalies.items()}
    windowed = replace(a, anomalies=flags)
    text = trend_section(windowed)["text"]
    assert "over its last 8 months only (2023-01..2023-08, the anomaly window" in text
    assert windowed.numbers["anomalies"]["ndvi"]["window_from"] == "2023-01"


def test_report_renders_every_number_with_unit_and_writes_a_version(june, app_memory, tmp_path):
    from memories.memory.temporal import load_report_version
    from memories.store.paths import StorageRoot

    s = june.summary
    assert june.kind == REPORT_KIND and june.month == "2023-06"
    assert s["reference_month"] == "2023-01" and s["alert"] is True and s["model_id"] == "truth"
    assert set(june.figures) == {"vegetation_loss", "water_extent", "index_trends", "ndvi_timeseries"}
    assert all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in june.figures.values())
    for section in s["sections"]:
        for label, q in section.get("quantities", {}).items():
            assert q["unit"], label
    assert s["figure_data"]["index_trends"]["months"] == app_memory.months[:6]
    assert len(s["figure_data"]["ndvi_timeseries"]["median"]["forest"]) == 6
    html = june.html
    assert "Forest loss detected" in html and "What the land-cover model looks at" in html
    for name in june.figures:
        assert f'src="{name}.png"' in html
    assert "not a version in the model registry" in html  # model "truth": no band importance
    root = StorageRoot((tmp_path / "store").as_uri())
    files = june.write(root)
    stored = load_report_version(root, REPORT_KIND, app_memory.tile, "2023-06")
    assert stored["version"] == june.version
    assert stored["forest_loss"] == s["forest_loss"]
    assert json.loads(root.read_bytes(files["summary.json"]))["water"] == s["water"]


def test_as_of_reads_the_memory_as_it_stood(app_memory):
    lc_may = app_memory.view.record("land_cover", app_memory.tile, "2023-05")
    then = app_memory.view_as_of(lc_may.transaction_from)
    a = EnvironmentalMonitor(then).analyze(app_memory.tile, "2023-05")
    assert a.months == app_memory.months[:5]
    assert a.numbers["forest_loss"]["area_ha"] > 0
    with pytest.raises(MissingDataError, match=r"spectral_indices for 2023-06\|33TVM as of .*materialize"):
        EnvironmentalMonitor(then).report(app_memory.tile, "2023-06")


def test_open_water_is_ndwi_above_zero_and_never_nan():
    ndwi = np.array([[0.2, -0.1], [np.nan, 0.0]], dtype=np.float32)
    assert open_water(ndwi).tolist() == [[True, False], [False, False]]


def test_environmental_report_asset_writes_records_and_previews(app_memory, tmp_path):
    from dagster import DagsterInstance, materialize

    from assets._report import ReportConfig
    from assets.partitions import partition_key
    from assets.report_environmental import environmental_report
    from dagster_project.definitions import defs
    from memories.memory.catalog import MemoryCatalog
    from memories.store.paths import StorageRoot
    from resources import MemoryCatalogResource, StorageResource

    # A copy of the catalog: the report's record must not change the shared fixture's memory.
    catalog_path = tmp_path / "catalog.sqlite"
    shutil.copy(Path(app_memory.path) / "catalog.sqlite", catalog_path)
    store = (tmp_path / "store").as_uri()
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tiles", [app_memory.tile])
    result = materialize(
        [environmental_report],
        partition_key=partition_key("2023-06", app_memory.tile),
        resources={
            "stac": defs.resources["stac"],
            "storage": StorageResource(root=store),
            "memory": MemoryCatalogResource(path=str(catalog_path)),
        },
        run_config={"ops": {"environmental_report": {"config": ReportConfig().model_dump()}}},
        instance=instance,
    )
    meta = result.asset_materializations_for_node("environmental_report")[0].metadata
    truth_ha = _truth_mask(app_memory, "clear_cut").sum() * app_memory.grid.pixel_area_m2 / 1e4
    assert abs(meta["forest_loss_ha"].value - truth_ha) / truth_ha < CLEAR_CUT_AREA_TOLERANCE
    assert meta["alert"].value is True and meta["model_id"].value == "truth"
    assert meta["band_importance"].value == {}
    assert "data:image/png;base64," in meta["summary"].value and "ALERT" in meta["summary"].value
    [rec] = MemoryCatalog.open(catalog_path).current("environmental_report", tile=app_memory.tile)
    assert rec.partition == "2023-06" and rec.version_id == meta["version"].value
    assert rec.stats["forest_loss"]["area_ha"] == meta["forest_loss_ha"].value
    root = StorageRoot(store)
    assert root.read_bytes(rec.uri).startswith(b"<!doctype html>")


def test_tile_mean_counts_only_valid_values_and_needs_enough_clear_pixels():
    assert MIN_VALID_FRACTION == 0.05
    v = np.full((10, 10), np.nan)
    v[0, :4] = 0.5  # 4 % of the pixels clear: no mean
    assert tile_mean(v) is None
    v[1, :6] = [0.1, 0.2, 0.3, 0.4, 1.5, -3.0]  # 1.5 and -3.0 are no normalized differences: not counted
    assert tile_mean(v) == pytest.approx((4 * 0.5 + 0.1 + 0.2 + 0.3 + 0.4) / 8)  # 8 % valid
    v[1, 4:6] = 0.9  # now 10 valid values
    assert tile_mean(v) == pytest.approx((4 * 0.5 + 1.0 + 1.8) / 10)


def test_water_change_counts_pixels_observed_in_both_months_only():
    then = np.array([[0.3, -0.2, -0.2, np.nan], [0.3, 0.3, -0.5, 0.4]])
    now = np.array([[0.3, 0.2, np.nan, 0.5], [-0.1, 0.3, -0.5, np.nan]])
    gained, lost, both = water_change(now, then)
    assert gained.tolist() == [[False, True, False, False], [False, False, False, False]]
    assert lost.tolist() == [[False, False, False, False], [True, False, False, False]]
    assert both.tolist() == [[True, True, False, False], [True, True, True, False]]
    assert open_water(now).tolist() == [[True, True, False, True], [False, True, False, False]]


# -- the series from the month summaries kept in the records (issue 13 item 4) ------------------------


def _old_store_view(app_memory: Any, tmp_path: Path) -> Any:
    """``app_memory`` as a store written before month summaries were kept: a catalog copy whose
    ``spectral_indices`` and ``land_cover`` records lack them (the rasters are the same)."""
    import sqlite3

    from memories.applications.index_series import CLASS_SUMMARY, INDEX_SUMMARY
    from memories.memory.catalog import MemoryCatalog
    from memories.memory.temporal import TemporalMemory
    from memories.memory.view import MemoryView

    path = tmp_path / "old-catalog.sqlite"
    shutil.copy(Path(app_memory.path) / "catalog.sqlite", path)
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT id, stats FROM materializations WHERE asset IN ('spectral_indices', 'land_cover')")
        for rid, stats in rows.fetchall():
            d = json.loads(stats)
            assert d.pop(INDEX_SUMMARY, None) is not None or d.pop(CLASS_SUMMARY, None) is not None
            con.execute("UPDATE materializations SET stats=? WHERE id=?", (json.dumps(d), rid))
    return MemoryView(TemporalMemory(MemoryCatalog.open(path), app_memory.root))


def test_an_old_store_without_month_summaries_gives_the_same_analysis_and_says_so(monitor, app_memory, tmp_path):
    new = monitor.analyze(app_memory.tile, "2023-08")
    old = EnvironmentalMonitor(_old_store_view(app_memory, tmp_path)).analyze(app_memory.tile, "2023-08")
    assert old.series.means == new.series.means and old.series.class_medians == new.series.class_medians
    assert (old.series.p25, old.series.p75) == (new.series.p25, new.series.p75)
    assert old.numbers["trends"] == new.numbers["trends"] and old.numbers["anomalies"] == new.numbers["anomalies"]
    assert "computed from their rasters" not in new.sources["spectral_indices series"]
    assert (
        "summaries of 8 month(s) (2023-01..2023-08) computed from their rasters"
        in old.sources["spectral_indices series"]
    )


def test_the_series_is_each_months_tile_means_quartiles_and_own_land_cover_medians(june, app_memory):
    """Independently of the summaries: tile means, quartiles and per-class medians from each month's rasters."""
    months = app_memory.months[:6]
    fd = june.summary["figure_data"]["ndvi_timeseries"]
    lc_june = app_memory.view.raster("land_cover", app_memory.tile, "2023-06")["land_cover"].values
    shown = {c.name for c in LAND_COVER_CLASSES if (lc_june == c.code).sum() >= 20}
    assert set(fd["median"]) == shown
    for i, m in enumerate(months):
        ndvi = app_memory.view.raster("spectral_indices", app_memory.tile, m)["ndvi"].values.astype(float)
        lc = app_memory.view.raster("land_cover", app_memory.tile, m)["land_cover"].values
        assert fd["p25"][i] == np.percentile(ndvi[np.isfinite(ndvi)], 25)
        assert fd["p75"][i] == np.percentile(ndvi[np.isfinite(ndvi)], 75)
        for name in shown:
            mask = lc == CLASS_BY_NAME[name].code
            expected = float(np.nanmedian(ndvi[mask])) if mask.sum() >= 20 else None
            assert fd["median"][name][i] == expected, (m, name)
    assert june.summary["figure_data"]["index_trends"]["mean"]["ndvi"] == _tile_means(app_memory, "ndvi", months)


def test_the_analysis_reads_the_rasters_of_the_months_its_rules_name_only(app_memory):
    from memories.memory.view import MemoryView

    class CountingView(MemoryView):
        """The real view, remembering which rasters it was asked for."""

        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self.read: list[tuple[str, str]] = []

        def raster(self, asset: str, tile: str, month: str) -> Any:
            self.read.append((asset, month))
            return super().raster(asset, tile, month)

    view = CountingView(app_memory.view.memory)
    a = EnvironmentalMonitor(view).analyze(app_memory.tile, "2023-08")
    assert a.reference_month == "2023-01" == a.first_month
    assert set(view.read) == {
        ("spectral_indices", "2023-08"),
        ("spectral_indices", "2023-01"),
        ("land_cover", "2023-08"),
        ("land_cover", "2023-01"),
        ("surface_reflectance", "2023-08"),  # the map's base
    }
