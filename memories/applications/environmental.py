"""Environmental monitoring of a tile-month, read from the memory.

``EnvironmentalMonitor(view).report(tile, month)`` answers, for one tile and month,
from what the memory held at the view's ``as_of``:

- **vegetation loss and gain** since a reference month (the same month a year
  earlier when the memory has it, else its first month): forest loss
  (deforestation) on land classified forest in the reference month, other
  vegetation loss, vegetation gain and forest gain (regrowth), each in hectares
  with the uncertainty of one pixel along the patch edges;
- **open-water extent** (NDWI > 0) now, in the reference month and in the first
  month, and its change, in hectares;
- **index trends**: the monthly tile means of NDVI, NDWI and NBR with a
  least-squares slope per year and its standard error (with annual sine/cosine
  terms once two years are held, so phenology does not pass for a trend), and
  **anomalies**: months outside their one-step ARIMA prediction interval
  (:func:`memories.ai.forecast.detect_anomalies`), the model fitted over the trailing
  ``anomaly_window_months`` (default :data:`~memories.applications.trends.ANOMALY_WINDOW_MONTHS`,
  24) months; a longer history's report says which months were fitted;
- **alerts** when a threshold is crossed: forest loss, water-extent change, an
  anomalous month;
- the NDVI series per land-cover class (each month's median over that month's own land
  cover) and the band importance of the land-cover model version that classified the
  month (from the model registry sidecar, see :func:`memories.ai.explain.held_out_band_importance`).

The result is a :class:`~memories.applications.report.Report` of kind
``environmental`` (HTML, PNG figures, ``summary.json``); ``Report.write`` stores it
as a new immutable version. Only :class:`MemoryView` reads are used, so a report
built ``as_of`` a past time sees the memory as it was then.

Cost flat in history: the analysis of month N reads the rasters of the months its rules name (the
month, the reference month, the first month); the monthly series come from the per-month summaries
kept in the records (:mod:`~memories.applications.index_series`), not from every past raster, and the
anomaly model, the one part whose cost grew with the series, is fitted over a bounded trailing window.

This module reads the memory and computes; the pieces live beside it:
:mod:`~memories.earth.vegetation` (loss and gain maps),
:mod:`~memories.applications.water` (open water and its change),
:mod:`~memories.applications.trends` (tile means, trends, anomaly flags),
:mod:`~memories.applications.environmental_analysis` (the typed result of :meth:`EnvironmentalMonitor.analyze`),
:mod:`~memories.applications.environmental_report` (sections and ``summary.json``) and
:mod:`~memories.applications.environmental_figures` (the PNG figures). Every read happens here;
the report and its figures take the analysis only.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import numpy as np

from memories.applications.awaitable import AwaitableReport
from memories.applications.common import nanmean, pixel_ha
from memories.applications.environmental_analysis import (
    AlertSettings,
    AnomalyFlags,
    AreaChange,
    ClassRow,
    EnvironmentalAnalysis,
    GisLayers,
    IndexTrend,
    ModelFacts,
    WaterExtent,
)
from memories.applications.environmental_report import REPORT_KIND, build_report
from memories.applications.index_series import IndexSeriesRead, read_series
from memories.applications.maps import basemap
from memories.applications.report import Report
from memories.applications.trends import (
    ANOMALY_WINDOW_MONTHS,
    INDEX_VALID_MAX,
    MIN_VALID_FRACTION,
    SEASONAL_TREND_MIN_MONTHS,
    anomaly_flags,
    check_anomaly_window,
    index_trend,
)
from memories.applications.water import WATER_NDWI_MIN, open_water, water_change
from memories.applications.webmap import read_gis_layers
from memories.classes import CLASS_BY_NAME, LAND_COVER_CLASSES
from memories.earth.vegetation import (
    LossThresholds,
    detect_vegetation_gain,
    detect_vegetation_loss,
    edge_pixels,
    patch_count,
    reference_month,
)
from memories.errors import ConfigError
from memories.grid import TileGrid
from memories.memory.view import MemoryView, describe, model_id_of
from memories.products import LAND_COVER, SPECTRAL_INDICES

__all__ = [
    "INDEX_VALID_MAX",
    "MIN_VALID_FRACTION",
    "REPORT_KIND",
    "SEASONAL_TREND_MIN_MONTHS",
    "TREND_INDICES",
    "WATER_NDWI_MIN",
    "EnvironmentalAnalysis",
    "EnvironmentalMonitor",
    "alerts",
    "index_trend",
    "open_water",
]

FOREST = CLASS_BY_NAME["forest"].code
TREND_INDICES: tuple[str, ...] = ("ndvi", "ndwi", "nbr")
"""Indices whose monthly tile means get a trend and anomaly flags."""
GIS_LAYER_NAMES = ("buildings", "roads")
"""GIS layers drawn on the interactive map."""


class EnvironmentalMonitor(AwaitableReport):
    """Environmental reports (vegetation, water, index trends, alerts) of tile-months, from the memory.

    Args:
        view: the memory as of a transaction time (default: the configured memory, now).
        thresholds: NDVI thresholds of vegetation loss and gain.
        alert_threshold_ha: forest loss above this area (hectares) raises an alert.
        water_alert_threshold_ha: an open-water change vs the reference month larger than this
            (hectares, either sign) raises an alert.
        anomaly_alpha: 1 minus the coverage of the one-step prediction interval outside which a
            month's tile mean is an anomaly (0.01: 99 % intervals).
        alert_on_anomaly: raise an alert when the report's month is an anomaly of any index.
        anomaly_order: ARIMA ``(p, d, q)`` of the anomaly model (with two annual harmonics); None
            chooses it by AIC over :data:`memories.ai.forecast.ORDER_GRID` (12 fits per index, ~10 x slower).
        anomaly_window_months: the anomaly model is fitted over the calendar months from this many months
            back to the report's month (the one-step flags and the predicted series cover those months), so
            its cost stays flat as the history grows; a history not longer than that is fitted whole. The
            report names the window whenever it left months out. None fits the whole series (cost grows with
            the history). Default :data:`~memories.applications.trends.ANOMALY_WINDOW_MONTHS` (two annual cycles).
        indices: indices given a trend and anomaly flags (variables of ``spectral_indices``).

    Raises:
        ConfigError: a negative threshold, an ``anomaly_alpha`` outside (0, 1), or an ``anomaly_window_months``
            shorter than the months a model needs (:data:`memories.ai.forecast.MIN_OBSERVED_STEPS`).
    """

    def __init__(
        self,
        view: MemoryView | None = None,
        *,
        thresholds: LossThresholds = LossThresholds(),
        alert_threshold_ha: float = 1.0,
        water_alert_threshold_ha: float = 5.0,
        anomaly_alpha: float = 0.01,
        alert_on_anomaly: bool = True,
        anomaly_order: tuple[int, int, int] | None = (1, 0, 0),
        anomaly_window_months: int | None = ANOMALY_WINDOW_MONTHS,
        indices: tuple[str, ...] = TREND_INDICES,
    ) -> None:
        if alert_threshold_ha < 0 or water_alert_threshold_ha < 0:
            raise ConfigError(
                f"alert thresholds must be >= 0 ha (got alert_threshold_ha={alert_threshold_ha}, "
                f"water_alert_threshold_ha={water_alert_threshold_ha}); pass 0 to alert on any change"
            )
        if not 0 < anomaly_alpha < 1:
            raise ConfigError(f"anomaly_alpha={anomaly_alpha}; use a value in (0, 1), e.g. 0.01 for 99 % intervals")
        check_anomaly_window(anomaly_window_months, "anomaly_window_months")
        self.view = view or MemoryView()
        self.thresholds = thresholds
        self.alert_threshold_ha = alert_threshold_ha
        self.water_alert_threshold_ha = water_alert_threshold_ha
        self.anomaly_alpha = anomaly_alpha
        self.alert_on_anomaly = alert_on_anomaly
        self.anomaly_order = anomaly_order
        self.anomaly_window_months = anomaly_window_months
        self.indices = tuple(dict.fromkeys(("ndvi", "ndwi", *indices)))

    async def aanalyze(self, tile: str, month: str) -> EnvironmentalAnalysis:
        """:meth:`analyze`, awaitable (run in a worker thread)."""
        return await asyncio.to_thread(self.analyze, tile, month)

    @property
    def settings(self) -> AlertSettings:
        """The thresholds this monitor analyses with (recorded in each report)."""
        return AlertSettings(
            thresholds=self.thresholds,
            forest_loss_alert_ha=self.alert_threshold_ha,
            water_change_alert_ha=self.water_alert_threshold_ha,
            anomaly_alpha=self.anomaly_alpha,
            alert_on_anomaly=self.alert_on_anomaly,
        )

    def report(self, tile: str, month: str) -> Report:
        """The environmental report of ``tile`` for ``month`` (``YYYY-MM``), reading months <= ``month``.

        Raises:
            MissingDataError: the memory holds no ``spectral_indices`` or ``land_cover`` of the tile-month
                at the view's ``as_of`` (the message names the partition to materialize).
        """
        return build_report(self.analyze(tile, month))

    def analyze(self, tile: str, month: str) -> EnvironmentalAnalysis:
        """The maps and numbers of the report of ``tile`` for ``month`` (see :meth:`report`): every read of
        the memory the report needs happens here."""
        view = self.view
        now_rec = view.record(SPECTRAL_INDICES, tile, month)  # raises with the fix when missing
        lc_rec = view.record(LAND_COVER, tile, month)
        months = view.months(SPECTRAL_INDICES, tile, until=month)
        now = view.raster(SPECTRAL_INDICES, tile, month)
        grid = TileGrid.from_dict(now.attrs["grid"])
        for name in self.indices:
            if name not in now:
                raise ConfigError(
                    f"index {name!r} is not in {SPECTRAL_INDICES} (it holds {sorted(map(str, now.data_vars))}); "
                    "pass indices= with those"
                )
        ndvi = np.asarray(now["ndvi"].values, dtype=np.float32)
        ndwi = np.asarray(now["ndwi"].values, dtype=np.float32)
        lc_now = np.asarray(view.raster(LAND_COVER, tile, month)["land_cover"].values)
        ref = reference_month(months, month)
        sources = {f"{SPECTRAL_INDICES} {month}": describe(now_rec), f"{LAND_COVER} {month}": describe(lc_rec)}
        change = self._change(tile, month, months, ref, ndvi, ndwi, lc_now, pixel_ha(grid), sources)
        read = read_series(view, tile, months, self.indices, lc_now)
        series = read.series.means
        sources[f"{SPECTRAL_INDICES} series"] = _series_source(read, months)
        held_gis = read_gis_layers(view, tile, month, GIS_LAYER_NAMES)
        a = EnvironmentalAnalysis(
            tile=tile,
            month=month,
            grid=grid,
            as_of=view.as_of.isoformat() if view.as_of else None,
            settings=self.settings,
            reference_month=ref,
            first_month=months[0],
            pixel_area_ha=pixel_ha(grid),
            ndvi=ndvi,
            ndwi=ndwi,
            land_cover=lc_now,
            series=read.series,
            ndvi_mean=nanmean(ndvi),
            valid_fraction=float(np.isfinite(ndvi).mean()),
            trends={name: IndexTrend.from_dict(index_trend(months, series[name])) for name in self.indices},
            anomalies={
                name: AnomalyFlags.from_dict(
                    anomaly_flags(
                        months,
                        series[name],
                        month,
                        alpha=self.anomaly_alpha,
                        order=self.anomaly_order,
                        window=self.anomaly_window_months,
                    )
                )
                for name in self.indices
            },
            classes=class_table(lc_now, ndvi, pixel_ha(grid)),
            model=self._model_facts(lc_rec.stats or {}),
            basemap=basemap(view, tile, month, grid),
            gis=GisLayers(*held_gis) if held_gis else None,
            sources=sources,
            **change,
        )
        return _with_alerts(a)

    # -- pieces ------------------------------------------------------------------------------
    def _change(
        self,
        tile: str,
        month: str,
        months: list[str],
        ref: str | None,
        ndvi: np.ndarray,
        ndwi: np.ndarray,
        lc_now: np.ndarray,
        px_ha: float,
        sources: dict[str, str],
    ) -> dict[str, Any]:
        """The change maps and areas since the reference month and the first month (fields of the analysis);
        adds the rasters read to ``sources``."""
        view = self.view
        # Open water now is flooding or a new pond, not vegetation loss.
        water_now = open_water(ndwi)
        empty = np.zeros(ndvi.shape, dtype=bool)
        forest_loss = veg_loss = veg_gain = forest_gain = water_gained = water_lost = empty
        lc_ref_note = None
        water: dict[str, Any] = {"now_ha": float(water_now.sum() * px_ha), "edge_now_px": edge_pixels(water_now)}
        if ref is not None:
            ref_ds = view.raster(SPECTRAL_INDICES, tile, ref)
            sources[f"{SPECTRAL_INDICES} {ref} (reference)"] = describe(view.record(SPECTRAL_INDICES, tile, ref))
            ndvi_ref = np.asarray(ref_ds["ndvi"].values, dtype=np.float32)
            ndwi_ref = np.asarray(ref_ds["ndwi"].values, dtype=np.float32)
            water_ref = open_water(ndwi_ref)
            if ref in view.months(LAND_COVER, tile, until=month):
                lc_ref = np.asarray(view.raster(LAND_COVER, tile, ref)["land_cover"].values)
                sources[f"{LAND_COVER} {ref} (reference)"] = describe(view.record(LAND_COVER, tile, ref))
            else:
                lc_ref, lc_ref_note = lc_now, f"no land cover of {ref} in memory: forest is that of {month}"
            veg_loss = detect_vegetation_loss(ndvi_ref, ndvi, self.thresholds) & ~water_now
            forest_loss = veg_loss & (lc_ref == FOREST)
            veg_gain = detect_vegetation_gain(ndvi_ref, ndvi, self.thresholds) & ~water_ref
            forest_gain = veg_gain & (lc_now == FOREST)
            water_gained, water_lost, both = water_change(ndwi, ndwi_ref)
            water.update(
                reference_ha=float(water_ref.sum() * px_ha),
                change_vs_reference_ha=float((water_gained.sum() - water_lost.sum()) * px_ha),
                change_uncertainty_ha=float((edge_pixels(water_gained) + edge_pixels(water_lost)) * px_ha),
                gained_ha=float(water_gained.sum() * px_ha),
                lost_ha=float(water_lost.sum() * px_ha),
                observed_both_fraction=float(both.mean()),
            )
        first = months[0]
        if first != month:
            ndwi_first = np.asarray(view.raster(SPECTRAL_INDICES, tile, first)["ndwi"].values, dtype=np.float32)
            gained, lost, _ = water_change(ndwi, ndwi_first)
            water.update(
                first_ha=float(open_water(ndwi_first).sum() * px_ha),
                change_vs_first_ha=float((gained.sum() - lost.sum()) * px_ha),
                change_vs_first_uncertainty_ha=float((edge_pixels(gained) + edge_pixels(lost)) * px_ha),
            )
            sources[f"{SPECTRAL_INDICES} {first} (first month)"] = describe(view.record(SPECTRAL_INDICES, tile, first))
        return {
            "forest_loss": forest_loss,
            "vegetation_loss": veg_loss,
            "vegetation_gain": veg_gain,
            "forest_gain": forest_gain,
            "water_now": water_now,
            "water_gained": water_gained,
            "water_lost": water_lost,
            "forest_loss_area": area_change(forest_loss, px_ha, ref is not None),
            "vegetation_loss_area": area_change(veg_loss, px_ha, ref is not None),
            "vegetation_gain_area": area_change(veg_gain, px_ha, ref is not None),
            "forest_gain_area": area_change(forest_gain, px_ha, ref is not None),
            "water": WaterExtent(ndwi_min=WATER_NDWI_MIN, **water),
            "land_cover_note": lc_ref_note,
        }

    def _model_facts(self, stats: dict[str, Any]) -> ModelFacts:
        """Id, version, validation accuracy and band importance of the model that classified the month."""
        from memories.ai.manager import ModelManager
        from memories.ai.registry import ModelNotFoundError

        model_id = model_id_of(stats)
        if model_id is None:
            return ModelFacts(id=None, note="the land_cover record names no model")
        try:
            mv = ModelManager(self.view.root).resolve(model_id)
        except (ModelNotFoundError, ConfigError) as e:
            return ModelFacts(id=model_id, note=f"{model_id!r} is not a version in the model registry ({e})")
        accuracy = mv.metrics.get("val_accuracy")
        importance = mv.extra.get("band_importance")
        return ModelFacts(
            id=f"{mv.name}:{mv.version}",
            version=mv.version,
            val_accuracy=None if accuracy is None or accuracy != accuracy else float(accuracy),
            band_importance={str(k): float(v) for k, v in importance.items()} if importance else None,
            band_importance_info=mv.extra.get("band_importance_info"),
            registered=True,
        )


def alerts(a: EnvironmentalAnalysis) -> list[str]:
    """Texts of the thresholds of ``a.settings`` crossed in the tile-month."""
    st, ref, out = a.settings, a.reference_month, []
    loss = a.forest_loss_area
    if loss.area_ha is not None and loss.area_ha > st.forest_loss_alert_ha:
        out.append(
            f"Forest loss detected: {loss.area_ha:.2f} ± {loss.edge_uncertainty_ha:.2f} ha in "
            f"{loss.patches} patch(es) between {ref} and {a.month} "
            f"(alert threshold {st.forest_loss_alert_ha:g} ha)."
        )
    change = a.water.change_vs_reference_ha
    if change is not None and abs(change) > st.water_change_alert_ha:
        verb = "grew" if change > 0 else "shrank"
        out.append(
            f"Open water {verb} by {abs(change):.2f} ± {a.water.change_uncertainty_ha:.2f} ha between "
            f"{ref} and {a.month} (NDWI > {WATER_NDWI_MIN:g}; alert threshold "
            f"{st.water_change_alert_ha:g} ha): flooding or drainage."
        )
    if st.alert_on_anomaly:
        for name, an in a.anomalies.items():
            row = an.this_month
            if row and row.anomaly:
                pct = round(100 * (1 - an.alpha))
                out.append(
                    f"Anomaly: tile mean {name.upper()} {a.month} = {row.observed:.3f}, outside its {pct} % "
                    f"one-step prediction interval {row.lower:.3f}..{row.upper:.3f}."
                )
    return out


def _series_source(read: IndexSeriesRead, months: list[str]) -> str:
    """How the series was read, for the report's sources."""
    text = f"{len(months)} monthly records, {months[0]}..{months[-1]}"
    if read.computed:
        text += (
            f"; the summaries of {len(read.computed)} month(s) ({read.computed[0]}..{read.computed[-1]}) computed "
            "from their rasters: their records were written before month summaries were kept"
        )
    if read.no_land_cover:
        text += f"; no land cover of {', '.join(read.no_land_cover)}: no NDVI per class then"
    return text


def _with_alerts(a: EnvironmentalAnalysis) -> EnvironmentalAnalysis:
    return replace(a, alerts=alerts(a))


def area_change(mask: np.ndarray, px_ha: float, with_reference: bool) -> AreaChange:
    """Area (ha), pixels, patches and edge uncertainty (ha) of a change map; no areas without a reference."""
    return AreaChange(
        area_ha=float(mask.sum() * px_ha) if with_reference else None,
        pixels=int(mask.sum()),
        patches=patch_count(mask),
        edge_uncertainty_ha=float(edge_pixels(mask) * px_ha) if with_reference else None,
    )


def class_table(lc: np.ndarray, ndvi: np.ndarray, px_ha: float) -> list[ClassRow]:
    """Share (0-1), area (ha) and mean NDVI of each land-cover class of ``lc``."""
    labelled = lc > 0
    total = max(int(labelled.sum()), 1)
    rows = []
    for c in LAND_COVER_CLASSES:
        m = lc == c.code
        rows.append(
            ClassRow(
                code=c.code,
                name=c.name,
                share=float(m.sum() / total),
                area_ha=float(m.sum() * px_ha),
                ndvi_mean=nanmean(ndvi[m]) if m.any() else None,
            )
        )
    return rows
