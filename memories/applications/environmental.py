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
  (:func:`memories.ai.forecast.detect_anomalies`);
- **alerts** when a threshold is crossed: forest loss, water-extent change, an
  anomalous month;
- the NDVI series per land-cover class and the band importance of the land-cover
  model version that classified the month (from the model registry sidecar,
  see :func:`memories.ai.explain.held_out_band_importance`).

The result is a :class:`~memories.applications.report.Report` of kind
``environmental`` (HTML, PNG figures, ``summary.json``); ``Report.write`` stores it
as a new immutable version. Only :class:`MemoryView` reads are used, so a report
built ``as_of`` a past time sees the memory as it was then.

This module reads the memory and computes; the pieces live beside it:
:mod:`~memories.earth.vegetation` (loss and gain maps),
:mod:`~memories.applications.water` (open water and its change),
:mod:`~memories.applications.trends` (tile means, trends, anomaly flags),
:mod:`~memories.applications.environmental_report` (sections and ``summary.json``) and
:mod:`~memories.applications.environmental_figures` (the PNG figures).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memories.applications.awaitable import AwaitableReport
from memories.applications.common import nanmean, nanmedian, pixel_ha
from memories.applications.environmental_report import REPORT_KIND, build_report
from memories.applications.report import Report
from memories.applications.trends import (
    INDEX_VALID_MAX,
    MIN_VALID_FRACTION,
    SEASONAL_TREND_MIN_MONTHS,
    anomaly_flags,
    index_trend,
    tile_mean,
)
from memories.applications.water import WATER_NDWI_MIN, open_water, water_change
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

__all__ = [
    "INDEX_VALID_MAX",
    "MIN_VALID_FRACTION",
    "REPORT_KIND",
    "SEASONAL_TREND_MIN_MONTHS",
    "TREND_INDICES",
    "WATER_NDWI_MIN",
    "EnvironmentalAnalysis",
    "EnvironmentalMonitor",
    "index_trend",
    "open_water",
]

FOREST = CLASS_BY_NAME["forest"].code
INDICES_ASSET = "spectral_indices"
LAND_COVER_ASSET = "land_cover"
TREND_INDICES: tuple[str, ...] = ("ndvi", "ndwi", "nbr")
"""Indices whose monthly tile means get a trend and anomaly flags."""
MIN_CLASS_PX = 20
"""Classes with fewer pixels get no NDVI series."""


@dataclass
class EnvironmentalAnalysis:
    """The numbers and maps of one tile-month, before they become a report."""

    tile: str
    month: str
    grid: TileGrid
    months: list[str]
    """Months of ``spectral_indices`` up to ``month`` the memory holds (the series)."""
    reference_month: str | None
    ndvi: np.ndarray
    """NDVI of the month (H, W), NaN where no clear observation."""
    ndwi: np.ndarray
    land_cover: np.ndarray
    """Land-cover codes of the month (H, W)."""
    forest_loss: np.ndarray
    vegetation_loss: np.ndarray
    vegetation_gain: np.ndarray
    forest_gain: np.ndarray
    water_now: np.ndarray
    water_gained: np.ndarray
    """Open water now that was land in the reference month (both months observed)."""
    water_lost: np.ndarray
    series: dict[str, list[float | None]]
    """Index -> monthly tile mean over ``months`` (None: too few clear pixels)."""
    class_series: dict[str, list[float | None]]
    """Land-cover class -> monthly median NDVI over the class's pixels of ``month``."""
    iqr: tuple[list[float | None], list[float | None]]
    """Monthly 25th and 75th NDVI percentiles of all pixels."""
    numbers: dict[str, Any] = field(default_factory=dict)
    """Every figure of the report (areas, trends, anomalies, model facts)."""
    alerts: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


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
        indices: indices given a trend and anomaly flags (variables of ``spectral_indices``).

    Raises:
        ConfigError: a negative threshold or an ``anomaly_alpha`` outside (0, 1).
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
        indices: tuple[str, ...] = TREND_INDICES,
    ) -> None:
        if alert_threshold_ha < 0 or water_alert_threshold_ha < 0:
            raise ConfigError(
                f"alert thresholds must be >= 0 ha (got alert_threshold_ha={alert_threshold_ha}, "
                f"water_alert_threshold_ha={water_alert_threshold_ha}); pass 0 to alert on any change"
            )
        if not 0 < anomaly_alpha < 1:
            raise ConfigError(f"anomaly_alpha={anomaly_alpha}; use a value in (0, 1), e.g. 0.01 for 99 % intervals")
        self.view = view or MemoryView()
        self.thresholds = thresholds
        self.alert_threshold_ha = alert_threshold_ha
        self.water_alert_threshold_ha = water_alert_threshold_ha
        self.anomaly_alpha = anomaly_alpha
        self.alert_on_anomaly = alert_on_anomaly
        self.anomaly_order = anomaly_order
        self.indices = tuple(dict.fromkeys(("ndvi", "ndwi", *indices)))

    async def aanalyze(self, tile: str, month: str) -> EnvironmentalAnalysis:
        """:meth:`analyze`, awaitable (run in a worker thread)."""
        return await asyncio.to_thread(self.analyze, tile, month)

    def report(self, tile: str, month: str) -> Report:
        """The environmental report of ``tile`` for ``month`` (``YYYY-MM``), reading months <= ``month``.

        Raises:
            MissingDataError: the memory holds no ``spectral_indices`` or ``land_cover`` of the tile-month
                at the view's ``as_of`` (the message names the partition to materialize).
        """
        a = self.analyze(tile, month)
        return build_report(a, self)

    def analyze(self, tile: str, month: str) -> EnvironmentalAnalysis:
        """The maps and numbers of the report of ``tile`` for ``month`` (see :meth:`report`)."""
        view = self.view
        now_rec = view.record(INDICES_ASSET, tile, month)  # raises with the fix when missing
        lc_rec = view.record(LAND_COVER_ASSET, tile, month)
        months = view.months(INDICES_ASSET, tile, until=month)
        now = view.raster(INDICES_ASSET, tile, month)
        grid = TileGrid.from_dict(now.attrs["grid"])
        px_ha = pixel_ha(grid)
        for name in self.indices:
            if name not in now:
                raise ConfigError(
                    f"index {name!r} is not in {INDICES_ASSET} (it holds {sorted(map(str, now.data_vars))}); "
                    "pass indices= with those"
                )
        ndvi = np.asarray(now["ndvi"].values, dtype=np.float32)
        ndwi = np.asarray(now["ndwi"].values, dtype=np.float32)
        lc_now = np.asarray(view.raster(LAND_COVER_ASSET, tile, month)["land_cover"].values)
        ref = reference_month(months, month)
        first = months[0]
        sources = {f"{INDICES_ASSET} {month}": describe(now_rec), f"{LAND_COVER_ASSET} {month}": describe(lc_rec)}

        # Open water now is flooding or a new pond, not vegetation loss.
        water_now = open_water(ndwi)
        empty = np.zeros(grid.shape, dtype=bool)
        forest_loss = veg_loss = veg_gain = forest_gain = water_gained = water_lost = empty
        lc_ref_note = None
        water: dict[str, Any] = {"now_ha": float(water_now.sum() * px_ha), "edge_now_px": edge_pixels(water_now)}
        if ref is not None:
            ref_ds = view.raster(INDICES_ASSET, tile, ref)
            sources[f"{INDICES_ASSET} {ref} (reference)"] = describe(view.record(INDICES_ASSET, tile, ref))
            ndvi_ref = np.asarray(ref_ds["ndvi"].values, dtype=np.float32)
            ndwi_ref = np.asarray(ref_ds["ndwi"].values, dtype=np.float32)
            water_ref = open_water(ndwi_ref)
            if ref in view.months(LAND_COVER_ASSET, tile, until=month):
                lc_ref = np.asarray(view.raster(LAND_COVER_ASSET, tile, ref)["land_cover"].values)
                sources[f"{LAND_COVER_ASSET} {ref} (reference)"] = describe(view.record(LAND_COVER_ASSET, tile, ref))
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
        if first != month:
            ndwi_first = np.asarray(view.raster(INDICES_ASSET, tile, first)["ndwi"].values, dtype=np.float32)
            water_first = open_water(ndwi_first)
            gained, lost, _ = water_change(ndwi, ndwi_first)
            water.update(
                first_ha=float(water_first.sum() * px_ha),
                change_vs_first_ha=float((gained.sum() - lost.sum()) * px_ha),
                change_vs_first_uncertainty_ha=float((edge_pixels(gained) + edge_pixels(lost)) * px_ha),
            )
            sources[f"{INDICES_ASSET} {first} (first month)"] = describe(view.record(INDICES_ASSET, tile, first))

        series, class_series, iqr = self._series(tile, months, lc_now)
        trends = {name: index_trend(months, series[name]) for name in self.indices}
        anomalies = {
            name: anomaly_flags(months, series[name], month, alpha=self.anomaly_alpha, order=self.anomaly_order)
            for name in self.indices
        }
        sources[f"{INDICES_ASSET} series"] = f"{len(months)} monthly records, {months[0]}..{months[-1]}"

        def area(mask: np.ndarray) -> dict[str, Any]:
            return {
                "area_ha": float(mask.sum() * px_ha) if ref else None,
                "pixels": int(mask.sum()),
                "patches": patch_count(mask),
                "edge_uncertainty_ha": float(edge_pixels(mask) * px_ha) if ref else None,
                "unit": "ha",
            }

        numbers: dict[str, Any] = {
            "reference_month": ref,
            "first_month": first,
            "pixel_area_ha": px_ha,
            "ndvi_mean": nanmean(ndvi),
            "valid_fraction": float(np.isfinite(ndvi).mean()),
            "forest_loss": area(forest_loss),
            "vegetation_loss": area(veg_loss),
            "vegetation_gain": area(veg_gain),
            "forest_gain": area(forest_gain),
            "water": {"unit": "ha", "ndwi_min": WATER_NDWI_MIN, **water},
            "trends": trends,
            "anomalies": anomalies,
            "land_cover": _class_table(lc_now, ndvi, px_ha),
            "land_cover_note": lc_ref_note,
            "model": self._model_facts(lc_rec.stats or {}),
        }
        a = EnvironmentalAnalysis(
            tile=tile,
            month=month,
            grid=grid,
            months=months,
            reference_month=ref,
            ndvi=ndvi,
            ndwi=ndwi,
            land_cover=lc_now,
            forest_loss=forest_loss,
            vegetation_loss=veg_loss,
            vegetation_gain=veg_gain,
            forest_gain=forest_gain,
            water_now=water_now,
            water_gained=water_gained,
            water_lost=water_lost,
            series=series,
            class_series=class_series,
            iqr=iqr,
            numbers=numbers,
            sources=sources,
        )
        a.alerts = self._alerts(a)
        return a

    # -- pieces ------------------------------------------------------------------------------
    def _series(
        self, tile: str, months: list[str], lc_now: np.ndarray
    ) -> tuple[
        dict[str, list[float | None]],
        dict[str, list[float | None]],
        tuple[list[float | None], list[float | None]],
    ]:
        """Monthly tile means of each index (values within ±1), NDVI medians per class of ``lc_now``, quartiles."""
        series: dict[str, list[float | None]] = {name: [] for name in self.indices}
        masks = {c.name: lc_now == c.code for c in LAND_COVER_CLASSES}
        masks = {k: m for k, m in masks.items() if m.sum() >= MIN_CLASS_PX}
        class_series: dict[str, list[float | None]] = {k: [] for k in masks}
        p25: list[float | None] = []
        p75: list[float | None] = []
        for m in months:
            ds = self.view.raster(INDICES_ASSET, tile, m)
            for name in self.indices:
                series[name].append(tile_mean(ds[name].values))
            ndvi = np.asarray(ds["ndvi"].values, dtype=np.float64)
            for k, mask in masks.items():
                class_series[k].append(nanmedian(ndvi[mask]))
            finite = ndvi[np.isfinite(ndvi)]
            p25.append(float(np.percentile(finite, 25)) if finite.size else None)
            p75.append(float(np.percentile(finite, 75)) if finite.size else None)
        return series, class_series, (p25, p75)

    def _model_facts(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Id, version, validation accuracy and band importance of the model that classified the month."""
        from memories.ai.manager import ModelManager
        from memories.ai.registry import ModelNotFoundError

        model_id = model_id_of(stats)
        facts: dict[str, Any] = {
            "id": model_id,
            "version": None,
            "val_accuracy": None,
            "band_importance": None,
            "band_importance_info": None,
            "registered": False,
        }
        if model_id is None:
            facts["note"] = "the land_cover record names no model"
            return facts
        try:
            mv = ModelManager(self.view.root).resolve(model_id)
        except (ModelNotFoundError, ConfigError) as e:
            facts["note"] = f"{model_id!r} is not a version in the model registry ({e})"
            return facts
        accuracy = mv.metrics.get("val_accuracy")
        importance = mv.extra.get("band_importance")
        facts.update(
            id=f"{mv.name}:{mv.version}",
            version=mv.version,
            val_accuracy=None if accuracy is None or accuracy != accuracy else float(accuracy),
            band_importance={str(k): float(v) for k, v in importance.items()} if importance else None,
            band_importance_info=mv.extra.get("band_importance_info"),
            registered=True,
        )
        return facts

    def _alerts(self, a: EnvironmentalAnalysis) -> list[str]:
        """Texts of the thresholds crossed in the tile-month."""
        n, ref, out = a.numbers, a.reference_month, []
        loss = n["forest_loss"]
        if loss["area_ha"] is not None and loss["area_ha"] > self.alert_threshold_ha:
            out.append(
                f"Forest loss detected: {loss['area_ha']:.2f} ± {loss['edge_uncertainty_ha']:.2f} ha in "
                f"{loss['patches']} patch(es) between {ref} and {a.month} "
                f"(alert threshold {self.alert_threshold_ha:g} ha)."
            )
        change = n["water"].get("change_vs_reference_ha")
        if change is not None and abs(change) > self.water_alert_threshold_ha:
            verb = "grew" if change > 0 else "shrank"
            out.append(
                f"Open water {verb} by {abs(change):.2f} ± {n['water']['change_uncertainty_ha']:.2f} ha between "
                f"{ref} and {a.month} (NDWI > {WATER_NDWI_MIN:g}; alert threshold "
                f"{self.water_alert_threshold_ha:g} ha): flooding or drainage."
            )
        if self.alert_on_anomaly:
            for name, an in n["anomalies"].items():
                row = an.get("this_month")
                if row and row["anomaly"]:
                    pct = round(100 * (1 - an["alpha"]))
                    out.append(
                        f"Anomaly: tile mean {name.upper()} {a.month} = {row['observed']:.3f}, outside its {pct} % "
                        f"one-step prediction interval {row['lower']:.3f}..{row['upper']:.3f}."
                    )
        return out


def _class_table(lc: np.ndarray, ndvi: np.ndarray, px_ha: float) -> list[dict[str, Any]]:
    """Share (0-1), area (ha) and mean NDVI of each land-cover class of ``lc``."""
    labelled = lc > 0
    total = max(int(labelled.sum()), 1)
    rows = []
    for c in LAND_COVER_CLASSES:
        m = lc == c.code
        rows.append(
            {
                "code": c.code,
                "name": c.name,
                "share": float(m.sum() / total),
                "area_ha": float(m.sum() * px_ha),
                "ndvi_mean": nanmean(ndvi[m]) if m.any() else None,
            }
        )
    return rows
