"""What :meth:`RealEstateAgent.analyze_property` answers: typed values, with the seed's attribute names.

:class:`PropertyAnalysis` holds the property (:class:`Property`), the monthly surroundings
(:class:`MonthSurroundings`), the environment (:class:`Environment`: flood exposure, vegetation
trend, climate), the neighbourhood (:class:`Neighbourhood`: buildings, roads, land-cover
transitions) and the NDVI projection (:class:`NdviProjection`). Every number with a unit is a
*quantity*, the dict of :func:`~memories.applications.report.quantity` (``value``, ``unit``,
``period``, ``uncertainty``, ``note``): the report's one form of a number (:data:`Quantity`).

``analysis.timeline``, ``analysis.environmental_factors``, ``analysis.neighborhood_changes`` and
``analysis.future_projections`` are the seed's names: they answer the JSON view of those parts
(lists and dicts, as the seed printed them). :meth:`PropertyAnalysis.to_dict` is the JSON
document the server's ``/v1/property`` answers and the report keeps (keys ``timeline``,
``environmental``, ``neighborhood``, ``projections``, ...).

:class:`PropertyMap` is what the memory holds around a property for its map (the base, the land
cover, the buildings and roads in view): read with the analysis, so figures only draw.
"""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BuildingChanges",
    "Climate",
    "ClimateMonth",
    "Environment",
    "FloodExposure",
    "ForecastMonth",
    "LandCoverTransition",
    "LandCoverTransitions",
    "MonthSurroundings",
    "NdviProjection",
    "Neighbourhood",
    "Property",
    "PropertyAnalysis",
    "PropertyMap",
    "Quantity",
    "RoadChanges",
    "VegetationTrend",
]

Quantity = dict[str, Any]
"""A number with its unit, period and uncertainty: what :func:`~memories.applications.report.quantity` makes."""


@dataclass(frozen=True)
class Property:
    """An address resolved to a point of one tile."""

    address: str
    """The text asked for."""
    label: str
    """The feature's address (``street housenumber``) or name, as the memory holds it."""
    feature_id: str
    """``building/<osm_id>`` or ``place/<osm_id>``."""
    tile: str
    crs: str
    x: float
    y: float
    """The property's point, metres in the tile CRS."""
    lon: float
    lat: float
    """The same point, EPSG:4326 degrees."""
    score: float
    """0–1 similarity of the match."""
    candidates: int
    """Features that carry the address equally well (above 1: the text was ambiguous)."""


@dataclass(frozen=True)
class MonthSurroundings:
    """One month of the circle: land-cover shares (when the memory holds land cover that month) and mean NDVI."""

    month: str
    """``YYYY-MM``."""
    ndvi_mean: Quantity
    """Mean NDVI (-1..1) of the clear-sky pixels in the circle, ± standard error (value None: no clear pixel)."""
    ndvi_valid_fraction: float
    """Clear-sky pixels / pixels in the circle (0–1)."""
    built_up_share: Quantity | None = None
    """Built-up share (0–1) of the labelled pixels, ± expected commission error; None: no land cover this month."""
    green_space_share: Quantity | None = None
    """Green-space share (0–1), the same way."""
    water_share: Quantity | None = None
    """Water share (0–1), the same way."""
    class_shares: dict[str, float | None] | None = None
    """Share (0–1) of the labelled pixels per land-cover class name."""
    labelled_pixels: int | None = None
    """Pixels with a class (code != 0) in the circle."""

    @property
    def has_land_cover(self) -> bool:
        """Whether the memory held land cover this month."""
        return self.built_up_share is not None

    def to_dict(self) -> dict[str, Any]:
        """The timeline row of the JSON (``note`` instead of the shares when no land cover was held)."""
        out: dict[str, Any] = {"month": self.month}
        if self.has_land_cover:
            out.update(
                built_up_share=self.built_up_share,
                green_space_share=self.green_space_share,
                water_share=self.water_share,
                class_shares=self.class_shares,
                labelled_pixels=self.labelled_pixels,
            )
        else:
            out["note"] = "no land_cover in memory for this month"
        out["ndvi_mean"] = self.ndvi_mean
        out["ndvi_valid_fraction"] = self.ndvi_valid_fraction
        return out


@dataclass(frozen=True)
class FloodExposure:
    """Open water (NDWI > 0) near the property, month by month."""

    distance_to_water: list[Quantity]
    """Per month, metres from the property's point to the nearest open-water pixel centre (± half a pixel)."""
    min_distance_to_water: Quantity | None
    """The least of those (None: no open water on the tile in any month)."""
    new_water_area: list[Quantity]
    """Per month, m² of open water in the circle where the first month had none."""
    flooded_months: list[str]
    """Months whose new water reaches the flood threshold (``flood_min_area_m2``)."""
    statement: str
    """``flooded in <months>`` or ``no new open water in the radius in <period>``."""
    water_at_property: dict[str, bool]
    """Month -> whether the property's own pixel is open water."""

    def to_dict(self) -> dict[str, Any]:
        """The ``flood_exposure`` part of the JSON."""
        return {
            "distance_to_water": self.distance_to_water,
            "min_distance_to_water": self.min_distance_to_water,
            "new_water_area": self.new_water_area,
            "flooded_months": self.flooded_months,
            "statement": self.statement,
            "water_at_property": [{"month": m, "water_at_property": w} for m, w in self.water_at_property.items()],
        }


@dataclass(frozen=True)
class VegetationTrend:
    """OLS slope of the circle's monthly mean NDVI, NDVI per year."""

    slope: Quantity
    """NDVI/yr ± standard error (value None: fewer than 3 months with NDVI)."""
    method: str
    """``OLS`` or ``OLS + annual harmonic`` (24 months or more)."""
    n_months: int
    """Months with an NDVI mean."""
    fitted: bool = False
    """Whether a line was fitted (3 months or more)."""
    p_value: float | None = None
    """Two-sided p-value of the slope (fitted only; None: not finite)."""

    def to_dict(self) -> dict[str, Any]:
        """The ``vegetation_trend`` part of the JSON (``p_value`` only when fitted)."""
        out: dict[str, Any] = {"slope": self.slope, "method": self.method, "n_months": self.n_months}
        if self.fitted:
            out["p_value"] = self.p_value
        return out


@dataclass(frozen=True)
class ClimateMonth:
    """One month of the nearest station's ``climate_series`` record, as recorded (None: not recorded)."""

    month: str
    temperature_mean_c: Any
    """Mean temperature, °C."""
    precipitation_mm: Any
    """Precipitation total, mm."""
    ghi_kwh_m2: Any
    """Global horizontal irradiation, kWh/m²."""
    station_id: Any
    station_distance_km: Any
    """Distance from the tile to the station, km."""


@dataclass(frozen=True)
class Climate:
    """The climate of the period at the nearest weather station (``available`` False: the memory holds none)."""

    available: bool
    reason: str | None = None
    """Why no climate is available."""
    months: list[ClimateMonth] = field(default_factory=list)
    temperature_mean: Quantity | None = None
    """Mean of the monthly means, °C ± standard error."""
    precipitation_total: Quantity | None = None
    """Sum over the months, mm."""
    station_distance: Quantity | None = None
    """Distance to the station of the last month, km."""
    kind: Any = None
    """The record's ``kind`` (observed or modelled), as recorded."""

    def to_dict(self) -> dict[str, Any]:
        """The ``climate`` part of the JSON."""
        if not self.available:
            return {"available": False, "reason": self.reason}
        return {
            "available": True,
            "months": [asdict(m) for m in self.months],
            "temperature_mean": self.temperature_mean,
            "precipitation_total": self.precipitation_total,
            "station_distance": self.station_distance,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Environment:
    """Flood exposure, vegetation trend and climate of a property's surroundings."""

    flood_exposure: FloodExposure
    vegetation_trend: VegetationTrend
    climate: Climate

    def to_dict(self) -> dict[str, Any]:
        """The ``environmental`` part of the JSON."""
        return {
            "flood_exposure": self.flood_exposure.to_dict(),
            "vegetation_trend": self.vegetation_trend.to_dict(),
            "climate": self.climate.to_dict(),
        }


@dataclass(frozen=True)
class BuildingChanges:
    """Buildings whose representative point lies in the circle, at the start and the end of the period."""

    start: Quantity
    end: Quantity
    new: Quantity
    """Buildings at the end whose ``osm_id`` was not there at the start."""
    removed: Quantity
    new_by_start_date: dict[str, int]
    """``YYYY-MM-DD`` (or ``undated``) -> new buildings with that ``start_date``, sorted."""

    def to_dict(self) -> dict[str, Any]:
        """The ``buildings`` part of the JSON."""
        return asdict(self)


@dataclass(frozen=True)
class RoadChanges:
    """Length of the road lines clipped to the circle, km."""

    start: Quantity
    end: Quantity
    change: Quantity

    def to_dict(self) -> dict[str, Any]:
        """The ``roads`` part of the JSON."""
        return asdict(self)


@dataclass(frozen=True)
class LandCoverTransition:
    """Pixels of the circle whose class changed from ``from_class`` to ``to_class``."""

    from_class: str
    to_class: str
    area_m2: float
    """m²."""
    share: float
    """Fraction (0–1) of the pixels labelled in both months."""

    def to_dict(self) -> dict[str, Any]:
        """One transition of the JSON (keys ``from``, ``to``, ``area_m2``, ``share``)."""
        return {"from": self.from_class, "to": self.to_class, "area_m2": self.area_m2, "share": self.share}


@dataclass(frozen=True)
class LandCoverTransitions:
    """Class changes in the circle between the first and the last month with land cover."""

    available: bool
    reason: str | None = None
    """Why none (fewer than two months of land cover)."""
    period: str | None = None
    """``YYYY-MM..YYYY-MM``."""
    transitions: list[LandCoverTransition] = field(default_factory=list)
    """Largest area first."""
    changed_area: Quantity | None = None
    """m²."""
    changed_share: Quantity | None = None
    """Fraction (0–1) of the pixels labelled in both months."""

    def to_dict(self) -> dict[str, Any]:
        """The ``land_cover_transitions`` part of the JSON."""
        if not self.available:
            return {"available": False, "reason": self.reason}
        return {
            "available": True,
            "period": self.period,
            "transitions": [t.to_dict() for t in self.transitions],
            "changed_area": self.changed_area,
            "changed_share": self.changed_share,
        }


@dataclass(frozen=True)
class Neighbourhood:
    """Buildings, roads (None when no GIS layers cover the period, ``gis_reason`` says why) and land cover."""

    land_cover_transitions: LandCoverTransitions
    buildings: BuildingChanges | None = None
    roads: RoadChanges | None = None
    gis_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``neighborhood`` part of the JSON."""
        out: dict[str, Any] = {}
        if self.buildings is None or self.roads is None:
            out["gis"] = {"available": False, "reason": self.gis_reason}
        else:
            out["buildings"] = self.buildings.to_dict()
            out["roads"] = self.roads.to_dict()
        out["land_cover_transitions"] = self.land_cover_transitions.to_dict()
        return out


@dataclass(frozen=True)
class ForecastMonth:
    """One projected month."""

    month: str
    ndvi: Quantity
    """Forecast mean NDVI, ± half the prediction interval."""
    lower: float
    upper: float
    """The prediction interval, NDVI."""


@dataclass(frozen=True)
class NdviProjection:
    """ARIMA projection of the circle's monthly NDVI (``available`` False: the series is too short, ``reason``)."""

    horizon_months: int
    interval: str
    """``95 %``: the intervals' coverage."""
    fitted_to: str
    """``YYYY-MM..YYYY-MM``, the observed months."""
    available: bool
    reason: str | None = None
    order: tuple[int, ...] = ()
    """ARIMA (p, d, q)."""
    harmonics: int | None = None
    """Fourier pairs of the annual cycle."""
    aic: float | None = None
    forecast: list[ForecastMonth] = field(default_factory=list)
    variable: str = "ndvi_mean"
    unit: str = "NDVI (-1..1)"

    def to_dict(self) -> dict[str, Any]:
        """The ``projections`` part of the JSON."""
        out: dict[str, Any] = {
            "variable": self.variable,
            "unit": self.unit,
            "horizon_months": self.horizon_months,
            "interval": self.interval,
            "fitted_to": self.fitted_to,
            "available": self.available,
        }
        if not self.available:
            out["reason"] = self.reason
            return out
        out.update(
            order=list(self.order),
            harmonics=self.harmonics,
            aic=self.aic,
            forecast=[asdict(f) for f in self.forecast],
        )
        return out


@dataclass(frozen=True)
class PropertyAnalysis:
    """A property's surroundings over a period, read from the memory (see :mod:`memories.applications.real_estate`)."""

    address: str
    """The address asked for."""
    property: Property
    """The property it resolved to (tile, point, match score)."""
    radius_m: float
    """Radius of the surroundings, metres."""
    period: str
    """``YYYY-MM..YYYY-MM``, the months analysed."""
    months: list[str]
    """Every month of the period the memory holds."""
    as_of: str | None
    """Transaction time of the memory view (ISO 8601), None: now."""
    definitions: dict[str, str]
    """What each number means (circle, shares, green space...)."""
    surroundings: list[MonthSurroundings]
    """Per month: land-cover shares in the circle (0–1) and mean NDVI."""
    environment: Environment | None
    """Flood exposure, vegetation trend, climate; None when not asked for."""
    neighbourhood: Neighbourhood | None
    """Buildings, roads and land-cover transitions; None when not asked for."""
    projection: NdviProjection
    """ARIMA projection of the circle's monthly NDVI with its intervals (or why none could be fitted)."""
    sources: dict[str, str] = field(default_factory=dict)
    """The catalog records read: what -> asset, months and versions."""
    note: str | None = None
    """Set when the address was ambiguous."""

    # -- the seed's names: the JSON view of each part (``builtins.property``: ``property`` is a field here) ----
    @builtins.property
    def timeline(self) -> list[dict[str, Any]]:
        """Per month, the JSON row of :attr:`surroundings` (the seed's name)."""
        return [m.to_dict() for m in self.surroundings]

    @builtins.property
    def environmental_factors(self) -> dict[str, Any] | None:
        """The JSON of :attr:`environment` (the seed's name); None when not asked for."""
        return self.environment.to_dict() if self.environment is not None else None

    @builtins.property
    def neighborhood_changes(self) -> dict[str, Any] | None:
        """The JSON of :attr:`neighbourhood` (the seed's name); None when not asked for."""
        return self.neighbourhood.to_dict() if self.neighbourhood is not None else None

    @builtins.property
    def future_projections(self) -> dict[str, Any]:
        """The JSON of :attr:`projection` (the seed's name)."""
        return self.projection.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able document of the analysis (the server's ``/v1/property`` answer)."""
        out: dict[str, Any] = {
            "address": self.address,
            "property": asdict(self.property),
            "radius_m": self.radius_m,
            "period": self.period,
            "months": self.months,
            "as_of": self.as_of,
            "definitions": self.definitions,
            "timeline": self.timeline,
        }
        if self.note is not None:
            out["note"] = self.note
        if self.environment is not None:
            out["environmental"] = self.environmental_factors
        if self.neighbourhood is not None:
            out["neighborhood"] = self.neighborhood_changes
        out["projections"] = self.future_projections
        out["sources"] = self.sources
        return out


@dataclass(frozen=True)
class PropertyMap:
    """What the memory holds for a property's map: read with the analysis, drawn by the figures."""

    base: Any
    """The true-colour :class:`~memories.applications.maps.Basemap` of the map's month."""
    grid: Any
    """The tile's :class:`~memories.grid.TileGrid`."""
    extent_m: tuple[float, float, float, float]
    """The map's window (x0, y0, x1, y1), metres in the tile CRS: 1.4 radii around the point, on the tile."""
    land_cover_month: str | None
    """The last month of the period with land cover (None: none)."""
    land_cover: np.ndarray | None
    """Its class codes (rows, cols) of the whole tile."""
    gis_month: str | None
    """The latest ``gis_layers`` month up to the period's end (None: none)."""
    buildings: Any
    """Buildings (GeoDataFrame, tile CRS) intersecting the window; None without GIS layers."""
    roads: Any
    """Roads intersecting the window, the same way."""
