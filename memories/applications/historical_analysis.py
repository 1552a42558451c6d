"""What a historical reconstruction finds: the typed results of
:class:`~memories.applications.historical.HistoricalReconstructor` (the state at a date, the historical map,
their agreement, and everything a report gathers).

The report (:mod:`memories.applications.historical_report`) and the figures
(:mod:`memories.applications.historical_figures`) read these values only. Areas in hectares, lengths in
kilometres and metres as named, shares 0-1, months ``YYYY-MM``. Quantities are the report's
``{"value", "unit", "period", "uncertainty", "note", ...}`` dicts (:func:`memories.applications.report.quantity`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from memories.grid import TileGrid

REPORT_KIND = "historical"


class _Fields:
    """``x["name"]`` reads the field ``name`` (the seed's dict-style access)."""

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


@dataclass(frozen=True)
class ModelAccuracy(_Fields):
    """Validation accuracy of the land-cover model version that made a record."""

    model_id: str | None
    val_accuracy: float | None
    """Overall validation accuracy (0-1); None when unknown."""
    per_class: dict[str, float]
    """Class name -> validation accuracy (0-1)."""
    source: str
    """Where the metrics came from."""
    val_miou: float | None = None
    """Validation mean IoU (0-1), when the metrics were found."""
    metrics_found: bool = False
    """The metrics came from the catalog or the model registry (then ``val_miou`` is part of the record)."""


@dataclass(frozen=True)
class LandCoverUncertainty(_Fields):
    """The land cover's uncertainty: its model's accuracy, the MC-dropout confidence, the month gap."""

    model: ModelAccuracy
    mean_confidence: float | None
    """Mean MC-dropout confidence (0-1) over labelled pixels; None without a confidence raster."""
    gap_months: int

    def to_json(self) -> dict[str, Any]:
        """The summary's form: the model's fields flattened in."""
        m = self.model
        out: dict[str, Any] = {"model_id": m.model_id, "val_accuracy": m.val_accuracy}
        if m.metrics_found:
            out["val_miou"] = m.val_miou
        out.update(per_class=m.per_class, source=m.source, mean_confidence=self.mean_confidence)
        out["gap_months"] = self.gap_months
        return out


@dataclass(frozen=True)
class GisState(_Fields):
    """The GIS layers at the date (``gis_at``), and the month they came from."""

    buildings: int
    """Buildings standing at the date (count)."""
    building_area_ha: float
    road_km: float
    landuse_ha: dict[str, float]
    """Land-use tag -> area (ha)."""
    left_out: dict[str, int]
    """Layer -> features started after the date."""
    date_filter: str
    month: str
    gap_months: int


@dataclass(frozen=True)
class IndexMeans(_Fields):
    """Tile means of the composite's spectral indices (quantities ± their spatial std)."""

    means: dict[str, dict[str, Any]]
    """``ndvi`` / ``ndwi`` -> quantity (dimensionless)."""
    month: str
    gap_months: int


@dataclass(frozen=True)
class HistoricalState(_Fields):
    """The state of a tile at a date as the memory knew it (``HistoricalReconstructor.reconstruct``)."""

    tile: str
    date: str
    """The instant (ISO date-time, UTC)."""
    as_of: str | None
    """Transaction time of the read (ISO); None: now."""
    grid: TileGrid
    land_cover: np.ndarray
    """uint8 (y, x) class codes."""
    confidence: np.ndarray | None
    """float32 (y, x) MC-dropout confidence 0-1, or None."""
    land_cover_month: str
    land_cover_gap_months: int
    land_cover_version: Any
    land_cover_uncertainty: LandCoverUncertainty
    class_area_ha: dict[str, dict[str, Any]]
    """Class name -> quantity (ha, ± expected misclassified area)."""
    layers: dict[str, Any]
    """GIS layer -> GeoDataFrame in the tile CRS (features started after the date left out)."""
    gis: GisState
    indices: IndexMeans | None
    """None when the memory holds no spectral indices near the date."""
    sources: dict[str, str]
    """Input -> the record it came from."""


@dataclass(frozen=True)
class HistoricalMap(_Fields):
    """The tile's georeferenced historical map and its positional uncertainty."""

    classes: np.ndarray
    """uint8 (y, x) on the tile grid, 0 = not mapped."""
    grid: TileGrid
    georeference: dict[str, Any]
    """The georeferencing record: method, order, GCPs, ``rmse_m``, ``loo_rmse_m``, ``max_residual_m``."""
    uncertainty: dict[str, dict[str, Any]]
    """Label -> quantity: RMSE and LOO RMSE in m and px."""
    mapped_fraction: float
    residuals: list[dict[str, Any]]
    """Per-GCP rows (metres); empty without the table."""
    source: str


@dataclass(frozen=True)
class ClassAgreement(_Fields):
    """Producer's agreement of one class of the historical map."""

    agreement: float | None
    """0-1; None when the map has no pixel of the class."""
    map_area_ha: float


@dataclass(frozen=True)
class MapAgreement(_Fields):
    """Agreement of the historical map with a land-cover raster, over the pixels both label."""

    overall: float | None
    overall_away_from_edges: float | None
    """Over pixels farther than the LOO RMSE (whole pixels, rounded up) from a class edge of the map."""
    edge_px: int
    per_class: dict[str, ClassAgreement]
    confusion_ha: list[list[float]]
    """Rows: memory class, columns: map class (ha)."""
    classes: list[str]
    compared_ha: float

    def to_json(self) -> dict[str, Any]:
        """The summary's form."""
        return asdict(self)


@dataclass(frozen=True)
class HistoricalAnalysis(_Fields):
    """Everything the historical report of a tile-month states (``HistoricalReconstructor.analyze``)."""

    tile: str
    month: str
    """The report's month."""
    date: str
    """The reconstructed date (``YYYY-MM-DD``)."""
    lc_months: list[str]
    """Months of land cover up to ``month``."""
    then: HistoricalState
    """The state at the date."""
    now: HistoricalState
    """The state in the middle of ``month``."""
    hist: HistoricalMap | None
    agreement: MapAgreement | None
    """The map against the earliest land cover; None without map."""
    timeline: dict[str, list[Any]]
    """``month`` and each class name -> area (ha) per month."""
    as_of: str | None
    basemap: Any
    """The true-colour base of the maps (:class:`~memories.applications.maps.Basemap`) of ``month``."""
