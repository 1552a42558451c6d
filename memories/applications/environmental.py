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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from memories.applications.memory_view import MemoryView, describe
from memories.applications.report import Report, km_extent, png, pyplot, quantity
from memories.applications.vegetation import (
    LossThresholds,
    detect_vegetation_gain,
    detect_vegetation_loss,
    edge_pixels,
    patch_count,
    reference_month,
)
from memories.classes import CLASS_BY_NAME, LAND_COVER_CLASSES
from memories.errors import ConfigError, ProcessingError
from memories.grid import TileGrid
from memories.months import month_index

__all__ = [
    "REPORT_KIND",
    "TREND_INDICES",
    "EnvironmentalAnalysis",
    "EnvironmentalMonitor",
    "index_trend",
    "open_water",
]

REPORT_KIND = "environmental"
FOREST = CLASS_BY_NAME["forest"].code
INDICES_ASSET = "spectral_indices"
LAND_COVER_ASSET = "land_cover"
TREND_INDICES: tuple[str, ...] = ("ndvi", "ndwi", "nbr")
"""Indices whose monthly tile means get a trend and anomaly flags."""
WATER_NDWI_MIN = 0.0
"""Open water: NDWI (McFeeters, green vs NIR) above this."""
SEASONAL_TREND_MIN_MONTHS = 24
"""From this many months on, trends are fitted with annual sine/cosine terms (two full cycles)."""
MIN_VALID_FRACTION = 0.05
"""A month whose share of clear pixels is smaller has no tile mean (NaN)."""
INDEX_VALID_MAX = 1.0
"""Tile means count index values within ±this only (normalized differences of non-negative reflectances)."""
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


class EnvironmentalMonitor:
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

    def report(self, tile: str, month: str) -> Report:
        """The environmental report of ``tile`` for ``month`` (``YYYY-MM``), reading months <= ``month``.

        Raises:
            MissingDataError: the memory holds no ``spectral_indices`` or ``land_cover`` of the tile-month
                at the view's ``as_of`` (the message names the partition to materialize).
        """
        a = self.analyze(tile, month)
        return _build_report(a, self)

    def analyze(self, tile: str, month: str) -> EnvironmentalAnalysis:
        """The maps and numbers of the report of ``tile`` for ``month`` (see :meth:`report`)."""
        view = self.view
        now_rec = view.record(INDICES_ASSET, tile, month)  # raises with the fix when missing
        lc_rec = view.record(LAND_COVER_ASSET, tile, month)
        months = view.months(INDICES_ASSET, tile, until=month)
        now = view.raster(INDICES_ASSET, tile, month)
        grid = TileGrid.from_dict(now.attrs["grid"])
        px_ha = grid.pixel_area_m2 / 10_000.0
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
            both = np.isfinite(ndwi) & np.isfinite(ndwi_ref)
            water_gained = water_now & ~water_ref & both
            water_lost = water_ref & ~water_now & both
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
            both_first = np.isfinite(ndwi) & np.isfinite(ndwi_first)
            gained, lost = water_now & ~water_first & both_first, water_first & ~water_now & both_first
            water.update(
                first_ha=float(water_first.sum() * px_ha),
                change_vs_first_ha=float((gained.sum() - lost.sum()) * px_ha),
                change_vs_first_uncertainty_ha=float((edge_pixels(gained) + edge_pixels(lost)) * px_ha),
            )
            sources[f"{INDICES_ASSET} {first} (first month)"] = describe(view.record(INDICES_ASSET, tile, first))

        series, class_series, iqr = self._series(tile, months, lc_now)
        trends = {name: index_trend(months, series[name]) for name in self.indices}
        anomalies = {name: self._anomalies(months, series[name], month) for name in self.indices}
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
            "ndvi_mean": _nanmean(ndvi),
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
                v = np.asarray(ds[name].values, dtype=np.float64)
                # A normalized difference outside -1..1 comes from a negative reflectance: not a valid value.
                with np.errstate(invalid="ignore"):
                    ok = np.isfinite(v) & (np.abs(v) <= INDEX_VALID_MAX)
                series[name].append(float(v[ok].mean()) if ok.mean() >= MIN_VALID_FRACTION else None)
            ndvi = np.asarray(ds["ndvi"].values, dtype=np.float64)
            for k, mask in masks.items():
                class_series[k].append(_nanmedian(ndvi[mask]))
            finite = ndvi[np.isfinite(ndvi)]
            p25.append(float(np.percentile(finite, 25)) if finite.size else None)
            p75.append(float(np.percentile(finite, 75)) if finite.size else None)
        return series, class_series, (p25, p75)

    def _anomalies(self, months: list[str], values: list[float | None], month: str) -> dict[str, Any]:
        """One-step ARIMA anomaly flags of a monthly series (see :func:`memories.ai.forecast.detect_anomalies`)."""
        import pandas as pd

        from memories.ai.forecast import MIN_OBSERVED_STEPS, detect_anomalies

        out: dict[str, Any] = {"alpha": self.anomaly_alpha, "flagged": [], "this_month": None}
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
            result = detect_anomalies(s, step="MS", order=self.anomaly_order, alpha=self.anomaly_alpha)
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

    def _model_facts(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Id, version, validation accuracy and band importance of the model that classified the month."""
        from memories.ai.manager import ModelManager
        from memories.ai.registry import ModelNotFoundError

        # Records written before model ids were recorded carry the version number only.
        model_id = stats.get("model_id") or (
            f"land_cover:{stats['model_version']}" if stats.get("model_version") is not None else None
        )
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


def open_water(ndwi: np.ndarray) -> np.ndarray:
    """Boolean map of open water: NDWI > :data:`WATER_NDWI_MIN` (False where NDWI is NaN)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(ndwi > WATER_NDWI_MIN) & np.isfinite(ndwi)


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


# -- the report --------------------------------------------------------------------------------


def _build_report(a: EnvironmentalAnalysis, mon: EnvironmentalMonitor) -> Report:
    n, ref, month, grid = a.numbers, a.reference_month, a.month, a.grid
    since = f"{ref}..{month}" if ref else None
    model = n["model"]
    th = mon.thresholds
    same_season = ref is not None and 11 <= month_index(month, ref) <= 13
    season_note = (
        "same season a year earlier, so phenology cancels out"
        if same_season
        else "not the same season: cropland harvest and green-up count as loss and gain"
    )
    loss, veg, gain, fgain, water = (
        n["forest_loss"],
        n["vegetation_loss"],
        n["vegetation_gain"],
        n["forest_gain"],
        n["water"],
    )
    veg_section = {
        "title": "Vegetation loss and gain",
        "text": (
            f"NDVI of {month} against the reference month {ref} ({season_note}). Loss: NDVI from ≥ {th.min_before} "
            f"to ≤ {th.max_after}, a drop of ≥ {th.drop}; gain: the reverse; patches under {th.min_patch_px} px "
            "are dropped. Forest loss is loss on land classified forest in the reference month; open water now "
            "is not counted as loss. ± is one pixel along every patch edge."
            if ref
            else f"No earlier month than {month} in memory: loss and gain need a reference month."
        ),
        "quantities": {
            "forest loss (deforestation)": quantity(
                loss["area_ha"],
                "ha",
                period=since,
                uncertainty=loss["edge_uncertainty_ha"],
                digits=2,
                note=f"{loss['patches']} patch(es)" + (f"; {n['land_cover_note']}" if n["land_cover_note"] else ""),
            ),
            "all vegetation loss": quantity(
                veg["area_ha"],
                "ha",
                period=since,
                uncertainty=veg["edge_uncertainty_ha"],
                digits=2,
                note="includes harvested cropland and new built-up land",
            ),
            "vegetation gain": quantity(
                gain["area_ha"],
                "ha",
                period=since,
                uncertainty=gain["edge_uncertainty_ha"],
                digits=2,
                note="land not vegetated in the reference month (nor water then), vegetated now",
            ),
            "forest gain (regrowth)": quantity(
                fgain["area_ha"],
                "ha",
                period=since,
                uncertainty=fgain["edge_uncertainty_ha"],
                digits=2,
                note=f"vegetation gain on land classified forest in {month}",
            ),
        },
        "figures": ["vegetation_loss"],
    }
    water_q = {
        f"open water, {month}": quantity(
            water["now_ha"],
            "ha",
            period=month,
            uncertainty=water["edge_now_px"] * n["pixel_area_ha"],
            digits=2,
            note=f"NDWI > {WATER_NDWI_MIN:g} over pixels with a clear observation",
        ),
    }
    if "reference_ha" in water:
        water_q[f"open water, {ref} (reference)"] = quantity(water["reference_ha"], "ha", period=ref, digits=2)
        water_q["change vs reference month"] = quantity(
            water["change_vs_reference_ha"],
            "ha",
            period=since,
            uncertainty=water["change_uncertainty_ha"],
            digits=2,
            note=f"+{water['gained_ha']:.2f} ha new, -{water['lost_ha']:.2f} ha gone; pixels observed "
            f"in both months ({100 * water['observed_both_fraction']:.1f} %)",
        )
    if "first_ha" in water:
        first = n["first_month"]
        water_q[f"open water, {first} (first month)"] = quantity(water["first_ha"], "ha", period=first, digits=2)
        water_q["change vs first month"] = quantity(
            water["change_vs_first_ha"],
            "ha",
            period=f"{first}..{month}",
            uncertainty=water["change_vs_first_uncertainty_ha"],
            digits=2,
        )
    water_section = {
        "title": "Open-water extent",
        "text": "Open water is NDWI (green − NIR)/(green + NIR) above 0 in the monthly composite; "
        "± is one pixel along the edges of the water (or of its change).",
        "quantities": water_q,
        "figures": ["water_extent"],
    }
    rows = []
    trend_q = {}
    period = f"{a.months[0]}..{month}"
    for name, tr in n["trends"].items():
        an = n["anomalies"][name]
        this = an.get("this_month")
        now_value = a.series[name][-1]
        rows.append(
            [
                name.upper(),
                now_value,
                tr["slope_per_year"],
                tr["standard_error"],
                tr["n_months"],
                "yes" if tr["seasonal_terms"] else "no",
                ("yes" if this["anomaly"] else "no") if this else (an.get("note") or "n/a"),
                ", ".join(an["flagged"]) or "none",
            ]
        )
        trend_q[f"{name.upper()} trend"] = quantity(
            tr["slope_per_year"],
            "per year",
            period=period,
            uncertainty=tr["standard_error"],
            digits=4,
            note="OLS slope of the monthly tile mean ± standard error"
            + ("; annual sine/cosine fitted" if tr["seasonal_terms"] else "; includes the seasonal cycle"),
        )
    trend_section = {
        "title": "Index trends and anomalies",
        "text": (
            "Monthly tile means of each index (months with ≥ 5 % clear pixels). A month is an anomaly when its mean "
            f"falls outside the {round(100 * (1 - mon.anomaly_alpha))} % one-step prediction interval of an ARIMA "
            "model with annual harmonics fitted to the series up to this month."
        ),
        "quantities": trend_q,
        "table": {
            "columns": [
                "index",
                f"tile mean {month}",
                "slope / year",
                "± SE / year",
                "months",
                "seasonal terms",
                f"anomaly in {month}",
                "anomalous months",
            ],
            "digits": [0, 3, 4, 4],
            "rows": rows,
        },
        "figures": ["index_trends"],
    }
    lc_section = {
        "title": f"NDVI by land-cover class, {month}",
        "quantities": {
            f"mean NDVI, {month}": quantity(n["ndvi_mean"], "dimensionless", period=month, note="clear pixels"),
            "clear-sky coverage": quantity(
                100 * n["valid_fraction"],
                "%",
                period=month,
                digits=1,
                note="pixels with at least one clear observation this month",
            ),
        },
        "table": {
            "columns": ["class", "share %", "area ha", "mean NDVI"],
            "digits": [0, 1, 1, 3],
            "rows": [[c["name"], 100 * c["share"], c["area_ha"], c["ndvi_mean"]] for c in n["land_cover"]],
        },
        "figures": ["ndvi_timeseries"],
    }
    acc = model["val_accuracy"]
    model_section: dict[str, Any] = {
        "title": "What the land-cover model looks at",
        "quantities": {
            "land-cover model": quantity(model["id"], "id", note=model.get("note")),
            "validation accuracy": quantity(None if acc is None else 100 * acc, "%", digits=1),
        },
        "band_importance": model["band_importance"],
        "band_importance_info": model["band_importance_info"],
        "figures": ["band_importance"] if model["band_importance"] else [],
    }
    sections = [veg_section, water_section, trend_section, lc_section, model_section]

    figures = {
        "vegetation_loss": _plot_vegetation(a),
        "water_extent": _plot_water(a),
        "index_trends": _plot_trends(a, mon.anomaly_alpha),
        "ndvi_timeseries": _plot_series(a),
    }
    if model["band_importance"]:
        from memories.ai.explain import plot_band_importance

        figures["band_importance"] = plot_band_importance(
            model["band_importance"], title=f"What {model['id']} looks at"
        )
    captions = {
        "vegetation_loss": f"Left: NDVI of {month}. Right: change since {ref or '—'}: red forest loss, orange other "
        "vegetation loss (harvest, building), green vegetation gain. Axes in km from the tile's south-west corner.",
        "water_extent": f"Left: NDWI of {month}. Right: open water (NDWI > 0) now, blue; new since {ref or '—'}, "
        "dark blue; gone, orange.",
        "index_trends": f"Monthly tile means of {', '.join(x.upper() for x in n['trends'])}, {period}, with the "
        "fitted trend (dashed) and anomalous months (red circles).",
        "ndvi_timeseries": f"Monthly median NDVI per land-cover class (classes of {month}), {period}; shaded band: "
        "interquartile range of all pixels.",
        "band_importance": f"Permutation importance of each band of {model['id']}: drop in pixel accuracy (0–1) "
        "when the band is shuffled; most important on top.",
    }
    figure_data = {
        "ndvi_timeseries": {
            "months": a.months,
            "unit": "NDVI (dimensionless)",
            "median": a.class_series,
            "p25": a.iqr[0],
            "p75": a.iqr[1],
        },
        "index_trends": {
            "months": a.months,
            "mean": a.series,
            "fitted": {k: v["fitted"] for k, v in n["trends"].items()},
            "anomalous_months": {k: v["flagged"] for k, v in n["anomalies"].items()},
        },
        "vegetation_loss": {
            "unit": "pixels",
            "pixel_area_ha": n["pixel_area_ha"],
            "forest_loss": n["forest_loss"]["pixels"],
            "other_vegetation_loss": int((a.vegetation_loss & ~a.forest_loss).sum()),
            "vegetation_gain": n["vegetation_gain"]["pixels"],
            "extent_km": list(km_extent(grid)),
        },
        "water_extent": {
            "unit": "pixels",
            "pixel_area_ha": n["pixel_area_ha"],
            "open_water": int(a.water_now.sum()),
            "gained": int(a.water_gained.sum()),
            "lost": int(a.water_lost.sum()),
            "extent_km": list(km_extent(grid)),
        },
    }
    if model["band_importance"]:
        figure_data["band_importance"] = dict(model["band_importance"])
    model_facts = {k: v for k, v in model.items() if k != "band_importance"}
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": mon.view.as_of.isoformat() if mon.view.as_of else None,
        "crs": grid.crs,
        "grid": grid.to_dict(),
        "alerts": a.alerts,
        "alert": bool(a.alerts),
        "sections": sections,
        "figure_data": figure_data,
        "sources": a.sources,
        "reference_month": ref,
        "first_month": n["first_month"],
        "thresholds": {
            **vars(th),
            "forest_loss_alert_ha": mon.alert_threshold_ha,
            "water_change_alert_ha": mon.water_alert_threshold_ha,
            "anomaly_alpha": mon.anomaly_alpha,
        },
        "alert_threshold_ha": mon.alert_threshold_ha,
        "ndvi_mean": n["ndvi_mean"],
        "valid_fraction": n["valid_fraction"],
        "forest_loss": loss,
        "vegetation_loss": veg,
        "vegetation_gain": gain,
        "forest_gain": fgain,
        "water": water,
        "trends": {k: {kk: vv for kk, vv in v.items() if kk != "fitted"} for k, v in n["trends"].items()},
        "anomalies": {
            k: {kk: vv for kk, vv in v.items() if kk not in ("predicted", "lower", "upper", "months")}
            for k, v in n["anomalies"].items()
        },
        "land_cover": n["land_cover"],
        "model": model_facts,
        "model_id": model["id"],
        "band_importance": model["band_importance"],
    }
    return Report(
        kind=REPORT_KIND,
        tile=a.tile,
        month=month,
        title=f"Environmental report — tile {a.tile}, {month}",
        summary=summary,
        figures=figures,
        captions=captions,
        headline=["vegetation_loss", "ndvi_timeseries"],
        template="environmental.html.j2",
    )


def _nanmean(a: np.ndarray) -> float | None:
    return float(np.nanmean(a)) if np.isfinite(a).any() else None


def _nanmedian(a: np.ndarray) -> float | None:
    return float(np.nanmedian(a)) if np.isfinite(a).any() else None


def _class_table(lc: np.ndarray, ndvi: np.ndarray, px_ha: float) -> list[dict[str, Any]]:
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
                "ndvi_mean": _nanmean(ndvi[m]) if m.any() else None,
            }
        )
    return rows


def _array(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _plot_series(a: EnvironmentalAnalysis) -> bytes:
    plt = pyplot()
    months = [np.datetime64(m) for m in a.months]
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    ax.fill_between(months, _array(a.iqr[0]), _array(a.iqr[1]), color="#bbbbbb", alpha=0.4, label="all pixels, IQR")
    for name, values in a.class_series.items():
        ax.plot(months, _array(values), marker="o", ms=3, color=CLASS_BY_NAME[name].color, label=name)
    ax.set_ylim(-0.4, 1.0)
    ax.set_ylabel("NDVI (median)")
    ax.set_title(f"NDVI by land-cover class, tile {a.tile}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=4)
    fig.autofmt_xdate()
    return png(fig)


def _plot_trends(a: EnvironmentalAnalysis, alpha: float) -> bytes:
    plt = pyplot()
    months = [np.datetime64(m) for m in a.months]
    colors = {"ndvi": "#2e7d32", "ndwi": "#1565c0", "nbr": "#8d6e63", "evi": "#9e9d24"}
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    for name, values in a.series.items():
        color = colors.get(name, "#555555")
        tr = a.numbers["trends"][name]
        label = name.upper()
        if tr["slope_per_year"] is not None:
            se = tr["standard_error"]
            label += f" ({tr['slope_per_year']:+.3f}" + (f" ± {se:.3f}" if se is not None else "") + " / yr)"
        ax.plot(months, _array(values), marker="o", ms=3, color=color, label=label)
        ax.plot(months, _array(tr["fitted"]), ls="--", lw=1, color=color)
        flagged = set(a.numbers["anomalies"][name]["flagged"])
        idx = [i for i, m in enumerate(a.months) if m in flagged]
        if idx:
            ax.scatter(
                [months[i] for i in idx],
                _array([values[i] for i in idx]),
                s=80,
                facecolors="none",
                edgecolors="#c0392b",
                linewidths=1.5,
                zorder=5,
            )
    ax.set_ylabel("tile mean (dimensionless)")
    ax.set_title(f"Index trends, tile {a.tile} (red circles: outside the {round(100 * (1 - alpha))} % interval)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    return png(fig)


def _plot_vegetation(a: EnvironmentalAnalysis) -> bytes:
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = pyplot()
    extent = km_extent(a.grid)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), dpi=100)
    im = axes[0].imshow(a.ndvi, cmap="RdYlGn", vmin=-0.2, vmax=0.9, extent=extent)
    fig.colorbar(im, ax=axes[0], shrink=0.8, label="NDVI")
    axes[0].set_title(f"NDVI {a.month}")
    cls = np.zeros(a.grid.shape, dtype=np.uint8)
    cls[a.vegetation_gain] = 3
    cls[a.vegetation_loss] = 1
    cls[a.forest_loss] = 2
    axes[1].imshow(np.nan_to_num(a.ndvi, nan=0.0), cmap="Greys_r", vmin=-0.2, vmax=1.0, extent=extent, alpha=0.6)
    axes[1].imshow(
        np.ma.masked_equal(cls, 0),
        cmap=ListedColormap(["#f39c12", "#c0392b", "#27ae60"]),
        vmin=1,
        vmax=3,
        extent=extent,
        interpolation="nearest",
    )
    axes[1].legend(
        handles=[
            Patch(color="#c0392b", label="forest loss"),
            Patch(color="#f39c12", label="other vegetation loss"),
            Patch(color="#27ae60", label="vegetation gain"),
        ],
        loc="lower right",
        fontsize=8,
    )
    ref = a.reference_month
    axes[1].set_title(f"vegetation change since {ref}" if ref else "no reference month")
    for ax in axes:
        ax.set_xlabel("km east of tile origin")
        ax.set_ylabel("km north")
    fig.suptitle(f"tile {a.tile} ({a.grid.crs})")
    return png(fig)


def _plot_water(a: EnvironmentalAnalysis) -> bytes:
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = pyplot()
    extent = km_extent(a.grid)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), dpi=100)
    im = axes[0].imshow(a.ndwi, cmap="BrBG", vmin=-0.8, vmax=0.8, extent=extent)
    fig.colorbar(im, ax=axes[0], shrink=0.8, label="NDWI")
    axes[0].set_title(f"NDWI {a.month}")
    cls = np.zeros(a.grid.shape, dtype=np.uint8)
    cls[a.water_now] = 1
    cls[a.water_gained] = 2
    cls[a.water_lost] = 3
    axes[1].imshow(np.nan_to_num(a.ndvi, nan=0.0), cmap="Greys_r", vmin=-0.2, vmax=1.0, extent=extent, alpha=0.5)
    axes[1].imshow(
        np.ma.masked_equal(cls, 0),
        cmap=ListedColormap(["#5dade2", "#1a237e", "#e67e22"]),
        vmin=1,
        vmax=3,
        extent=extent,
        interpolation="nearest",
    )
    ref = a.reference_month or "—"
    axes[1].legend(
        handles=[
            Patch(color="#5dade2", label="open water"),
            Patch(color="#1a237e", label=f"new since {ref}"),
            Patch(color="#e67e22", label=f"gone since {ref}"),
        ],
        loc="lower right",
        fontsize=8,
    )
    axes[1].set_title(f"open water {a.month} vs {ref}")
    for ax in axes:
        ax.set_xlabel("km east of tile origin")
        ax.set_ylabel("km north")
    fig.suptitle(f"tile {a.tile} ({a.grid.crs})")
    return png(fig)
