"""What an environmental analysis of one tile-month holds: typed values, before they become a report.

:meth:`EnvironmentalMonitor.analyze <memories.applications.environmental.EnvironmentalMonitor.analyze>`
reads the memory and returns an :class:`EnvironmentalAnalysis`; the report
(:mod:`~memories.applications.environmental_report`) and its figures
(:mod:`~memories.applications.environmental_figures`) take that value and read nothing else.
Units: areas in hectares (ha), indices dimensionless, months ``YYYY-MM``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memories.applications.maps import Basemap
from memories.earth.vegetation import LossThresholds
from memories.grid import TileGrid

__all__ = [
    "AlertSettings",
    "AnomalyFlags",
    "AreaChange",
    "ClassRow",
    "EnvironmentalAnalysis",
    "GisLayers",
    "IndexSeries",
    "IndexTrend",
    "ModelFacts",
    "MonthVerdict",
    "WaterExtent",
]


@dataclass(frozen=True)
class AlertSettings:
    """The thresholds an analysis was run with (recorded in ``summary.json``).

    Attributes:
        thresholds: NDVI thresholds of vegetation loss and gain.
        forest_loss_alert_ha: forest loss above this (ha) raises an alert.
        water_change_alert_ha: an open-water change vs the reference month larger than this (ha, either sign)
            raises an alert.
        anomaly_alpha: 1 minus the coverage of the one-step prediction interval (0.01: 99 % intervals).
        alert_on_anomaly: an anomalous month of any index raises an alert.
    """

    thresholds: LossThresholds
    forest_loss_alert_ha: float
    water_change_alert_ha: float
    anomaly_alpha: float
    alert_on_anomaly: bool


@dataclass(frozen=True)
class AreaChange:
    """The size of one change map (forest loss, vegetation gain, ...).

    Attributes:
        area_ha: area in hectares; None without a reference month.
        pixels: number of pixels of the map.
        patches: number of connected patches (8-neighbours).
        edge_uncertainty_ha: one pixel along every patch edge, hectares; None without a reference month.
    """

    area_ha: float | None
    pixels: int
    patches: int
    edge_uncertainty_ha: float | None
    unit: str = "ha"

    def as_dict(self) -> dict[str, Any]:
        """The ``summary.json`` form."""
        return {
            "area_ha": self.area_ha,
            "pixels": self.pixels,
            "patches": self.patches,
            "edge_uncertainty_ha": self.edge_uncertainty_ha,
            "unit": self.unit,
        }


@dataclass(frozen=True)
class WaterExtent:
    """Open water (NDWI > ``ndwi_min``) of the month and its change, in hectares.

    The ``reference_*``/``change_*``/``gained``/``lost`` fields are None without a reference month; the
    ``first_*`` ones when the month is the first the memory holds.

    Attributes:
        now_ha: open water of the month.
        edge_now_px: pixels along the edges of that water (its ± in pixels).
        reference_ha: open water of the reference month.
        change_vs_reference_ha: gained minus lost since the reference month (pixels observed in both).
        change_uncertainty_ha: one pixel along the edges of the gained and the lost water.
        gained_ha, lost_ha: water new since, and gone since, the reference month.
        observed_both_fraction: share (0-1) of the pixels observed in both months.
        first_ha: open water of the first month; change_vs_first_ha and its uncertainty likewise.
    """

    ndwi_min: float
    now_ha: float
    edge_now_px: int
    reference_ha: float | None = None
    change_vs_reference_ha: float | None = None
    change_uncertainty_ha: float | None = None
    gained_ha: float | None = None
    lost_ha: float | None = None
    observed_both_fraction: float | None = None
    first_ha: float | None = None
    change_vs_first_ha: float | None = None
    change_vs_first_uncertainty_ha: float | None = None
    unit: str = "ha"

    def as_dict(self) -> dict[str, Any]:
        """The ``summary.json`` form: the reference and first-month entries only when they exist."""
        out: dict[str, Any] = {"unit": self.unit, "ndwi_min": self.ndwi_min, "now_ha": self.now_ha}
        out["edge_now_px"] = self.edge_now_px
        if self.reference_ha is not None:
            out.update(
                reference_ha=self.reference_ha,
                change_vs_reference_ha=self.change_vs_reference_ha,
                change_uncertainty_ha=self.change_uncertainty_ha,
                gained_ha=self.gained_ha,
                lost_ha=self.lost_ha,
                observed_both_fraction=self.observed_both_fraction,
            )
        if self.first_ha is not None:
            out.update(
                first_ha=self.first_ha,
                change_vs_first_ha=self.change_vs_first_ha,
                change_vs_first_uncertainty_ha=self.change_vs_first_uncertainty_ha,
            )
        return out


@dataclass(frozen=True)
class IndexTrend:
    """Least-squares trend of an index's monthly tile means (:func:`memories.applications.trends.index_trend`).

    Attributes:
        slope_per_year: index units per year; None below 3 observed months.
        standard_error: its OLS standard error, same unit; None when no degree of freedom is left.
        intercept: the fitted value at the first month.
        n_months: observed months fitted.
        seasonal_terms: whether annual sine/cosine terms were fitted (from two years of months on).
        fitted: the model at each month of the series (None entries below 3 observed months).
    """

    slope_per_year: float | None
    standard_error: float | None
    intercept: float | None
    n_months: int
    seasonal_terms: bool
    fitted: list[float | None]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IndexTrend:
        """From :func:`~memories.applications.trends.index_trend`'s result."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        """The ``summary.json`` form (``fitted`` included; the summary drops it)."""
        return {
            "slope_per_year": self.slope_per_year,
            "standard_error": self.standard_error,
            "intercept": self.intercept,
            "n_months": self.n_months,
            "seasonal_terms": self.seasonal_terms,
            "fitted": self.fitted,
        }


@dataclass(frozen=True)
class MonthVerdict:
    """The one-step verdict of the analysed month: observed and predicted tile mean, interval, anomaly."""

    observed: float
    predicted: float
    lower: float
    upper: float
    anomaly: bool


@dataclass(frozen=True)
class AnomalyFlags:
    """One-step ARIMA anomaly flags of an index's series (:func:`memories.applications.trends.anomaly_flags`).

    Attributes:
        alpha: 1 minus the interval coverage.
        flagged: anomalous months.
        this_month: the analysed month's verdict; None when it has no prediction.
        note: why flags or the verdict are missing, else None.
        order, harmonics: the fitted ARIMA ``(p, d, q)`` and annual harmonics, None when none was fitted.
        months, predicted, lower, upper: the one-step predictions and their interval per observed month
            (of the months fitted).
        window_months, window_from: when the series is longer than the anomaly window, the window's length
            (months) and its first month: the model was fitted to ``window_from``..the analysed month only.
            None when the whole series was fitted.
    """

    alpha: float
    flagged: list[str]
    this_month: MonthVerdict | None
    note: str | None = None
    order: list[int] | None = None
    harmonics: int | None = None
    months: list[str] | None = None
    predicted: list[float] | None = None
    lower: list[float] | None = None
    upper: list[float] | None = None
    window_months: int | None = None
    window_from: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnomalyFlags:
        """From :func:`~memories.applications.trends.anomaly_flags`' result."""
        this = d.get("this_month")
        return cls(
            alpha=d["alpha"],
            flagged=list(d["flagged"]),
            this_month=MonthVerdict(**this) if this else None,
            note=d.get("note"),
            order=d.get("order"),
            harmonics=d.get("harmonics"),
            months=d.get("months"),
            predicted=d.get("predicted"),
            lower=d.get("lower"),
            upper=d.get("upper"),
            window_months=d.get("window_months"),
            window_from=d.get("window_from"),
        )

    def as_dict(self, *, series: bool = True) -> dict[str, Any]:
        """The form of :func:`~memories.applications.trends.anomaly_flags` (``series=False``: without
        ``months``/``predicted``/``lower``/``upper``, as ``summary.json`` keeps it); the window entries only when
        the window left months out."""
        out: dict[str, Any] = {"alpha": self.alpha, "flagged": self.flagged}
        out["this_month"] = vars(self.this_month).copy() if self.this_month else None
        if self.order is not None:
            out.update(order=self.order, harmonics=self.harmonics)
            if series:
                out.update(months=self.months, predicted=self.predicted, lower=self.lower, upper=self.upper)
        if self.note is not None:
            out["note"] = self.note
        if self.window_months is not None:
            out.update(window_months=self.window_months, window_from=self.window_from)
        return out


@dataclass(frozen=True)
class ClassRow:
    """One land-cover class of the month: share (0-1) of the labelled pixels, area (ha), mean NDVI."""

    code: int
    name: str
    share: float
    area_ha: float
    ndvi_mean: float | None

    def as_dict(self) -> dict[str, Any]:
        """The ``summary.json`` form."""
        return {
            "code": self.code,
            "name": self.name,
            "share": self.share,
            "area_ha": self.area_ha,
            "ndvi_mean": self.ndvi_mean,
        }


@dataclass(frozen=True)
class ModelFacts:
    """The land-cover model version that classified the month (from the model registry).

    Attributes:
        id: ``name:version`` (or the id the record names when the registry does not know it); None: unnamed.
        version: the registry version; None when not registered.
        val_accuracy: validation pixel accuracy (0-1).
        band_importance: band -> permutation importance (drop in pixel accuracy, 0-1).
        band_importance_info: how the importance was measured.
        registered: whether the registry holds the version.
        note: why the facts are missing, else None.
    """

    id: str | None
    version: int | None = None
    val_accuracy: float | None = None
    band_importance: dict[str, float] | None = None
    band_importance_info: Any = None
    registered: bool = False
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The ``summary.json`` form (``note`` only when set)."""
        out: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "val_accuracy": self.val_accuracy,
            "band_importance": self.band_importance,
            "band_importance_info": self.band_importance_info,
            "registered": self.registered,
        }
        if self.note is not None:
            out["note"] = self.note
        return out


@dataclass(frozen=True, eq=False)
class IndexSeries:
    """The monthly series of a tile's indices up to the analysed month.

    Attributes:
        months: ``YYYY-MM`` of ``spectral_indices`` the memory holds, up to the month.
        means: index -> tile mean per month (dimensionless; None: too few clear pixels).
        class_medians: land-cover class -> median NDVI per month over that class's pixels in **that month's own**
            land cover (None: under 20 of them, or no land cover that month); the classes are those with 20
            pixels or more in the analysed month (:func:`memories.applications.index_series.read_series`).
        p25, p75: the 25th and 75th NDVI percentiles of all clear pixels per month.
    """

    months: list[str]
    means: dict[str, list[float | None]]
    class_medians: dict[str, list[float | None]]
    p25: list[float | None]
    p75: list[float | None]


@dataclass(frozen=True, eq=False)
class GisLayers:
    """The GIS layers drawn on the interactive map: those of the latest ``gis_layers`` month up to the month."""

    month: str
    layers: dict[str, Any]
    """Layer name -> GeoDataFrame in the tile CRS."""


@dataclass(frozen=True, eq=False)
class EnvironmentalAnalysis:
    """The numbers and maps of one tile-month, before they become a report.

    Maps are (H, W) arrays on ``grid``; masks are bool. Areas in hectares.
    """

    tile: str
    month: str
    grid: TileGrid
    as_of: str | None
    """Transaction time (ISO) the memory was read at; None: now."""
    settings: AlertSettings
    reference_month: str | None
    """The same month a year earlier when held, else the first month; None when the month is the first."""
    first_month: str
    pixel_area_ha: float
    ndvi: np.ndarray
    """NDVI of the month, NaN where no clear observation."""
    ndwi: np.ndarray
    land_cover: np.ndarray
    """Land-cover codes of the month."""
    forest_loss: np.ndarray
    vegetation_loss: np.ndarray
    vegetation_gain: np.ndarray
    forest_gain: np.ndarray
    water_now: np.ndarray
    water_gained: np.ndarray
    """Open water now that was land in the reference month (both months observed)."""
    water_lost: np.ndarray
    series: IndexSeries
    ndvi_mean: float | None
    """Mean NDVI of the month's clear pixels."""
    valid_fraction: float
    """Share (0-1) of pixels with a clear observation this month."""
    forest_loss_area: AreaChange
    vegetation_loss_area: AreaChange
    vegetation_gain_area: AreaChange
    forest_gain_area: AreaChange
    water: WaterExtent
    trends: dict[str, IndexTrend]
    anomalies: dict[str, AnomalyFlags]
    classes: list[ClassRow]
    land_cover_note: str | None
    """Set when the reference month's forest had to be that of the month (no land cover then)."""
    model: ModelFacts
    basemap: Basemap
    """The month's true-colour composite (or the latest earlier one, or grey) the maps are drawn over."""
    gis: GisLayers | None
    alerts: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    """Input -> how it was read (product, partition, version, recorded time)."""

    @property
    def months(self) -> list[str]:
        """The months of the series."""
        return self.series.months

    @property
    def numbers(self) -> dict[str, Any]:
        """Every quantity as plain JSON values, keyed as in ``summary.json`` (the seed's ``numbers``)."""
        return {
            "reference_month": self.reference_month,
            "first_month": self.first_month,
            "pixel_area_ha": self.pixel_area_ha,
            "ndvi_mean": self.ndvi_mean,
            "valid_fraction": self.valid_fraction,
            "forest_loss": self.forest_loss_area.as_dict(),
            "vegetation_loss": self.vegetation_loss_area.as_dict(),
            "vegetation_gain": self.vegetation_gain_area.as_dict(),
            "forest_gain": self.forest_gain_area.as_dict(),
            "water": self.water.as_dict(),
            "trends": {k: v.as_dict() for k, v in self.trends.items()},
            "anomalies": {k: v.as_dict() for k, v in self.anomalies.items()},
            "land_cover": [c.as_dict() for c in self.classes],
            "land_cover_note": self.land_cover_note,
            "model": self.model.as_dict(),
        }
