"""What a disaster analysis finds: the typed result of :meth:`DisasterAnalyzer.analyze
<memories.applications.disaster.DisasterAnalyzer.analyze>` and its thresholds.

The report (:mod:`memories.applications.disaster_report`) and the figures
(:mod:`memories.applications.disaster_figures`) read these values only; they never see the analyzer
or the memory. Areas in hectares, lengths in kilometres, shares 0-1, months ``YYYY-MM``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from memories.grid import TileGrid

REPORT_KIND = "disaster"
Hazard = Literal["flood", "burn"]
HAZARDS: tuple[str, ...] = ("flood", "burn")
HAZARD_INDEX = {"flood": "ndwi", "burn": "nbr"}
"""The spectral index each hazard is detected on."""
HAZARD_STATE = {"flood": "flooded", "burn": "burned"}
"""The state of a pixel the hazard hit, as the report's labels write it."""


@dataclass(frozen=True)
class DisasterThresholds:
    """Thresholds of the disaster analysis (indices dimensionless, reflectance 0-1, areas ha)."""

    water_ndwi: float = 0.0
    """NDWI (McFeeters) above this in a monthly composite: open water."""
    rise_ndwi: float = 0.15
    """NDWI rise above the pixel's baseline median that marks water in part of the month's observations."""
    spread_nir: float = 0.05
    """NIR interquartile range of the composite (reflectance) above this, and ``spread_ratio`` times the
    baseline's, marks a month that mixed water and land observations."""
    spread_ratio: float = 5.0
    burn_dnbr: float = 0.27
    """NBR drop (dNBR) above this: burned (USGS moderate severity); the core of a burn footprint."""
    burn_dnbr_low: float = 0.1
    """NBR drop above this, connected to the core: the rest of the burn footprint (USGS low severity)."""
    baseline_months: int = 6
    """Months before the event that form the baseline (open water, index median)."""
    min_patch_px: int = 10
    """Footprint patches smaller than this (pixels) are noise."""
    min_event_ha: float = 1.0
    """An event month needs at least this much new footprint (ha)."""
    alert_ha: float = 5.0
    """Area under the hazard in the report's month above this (ha) raises the alert."""
    unobserved_ring_px: int = 3
    """Pixels without clear observation within this distance of the footprint count in its uncertainty."""
    harvest_ndvi_drop: float = 0.3
    """Partial evidence on a pixel whose NDVI median fell by more than this below the baseline's, without open
    water, is a harvest, not a hidden flood (0: off). Without it, fields cut in the flood month that touch the
    flood join it: 134 ha against a 19.7 ha flood in the test world (flood in August); with it 19.6 ha."""


@dataclass(frozen=True)
class EventCandidate:
    """A month whose new footprint in the median reaches ``min_event_ha``."""

    month: str
    area_ha: float
    """New footprint visible in the month's median composite (ha)."""


@dataclass(frozen=True)
class Coverage:
    """Clear-sky coverage of one month."""

    clear_coverage: float
    """Share of the tile with a clear observation (0-1)."""
    footprint_clear_coverage: float | None
    """Share of the footprint with a clear observation (0-1); None without footprint."""
    footprint_clear_obs_share: float | None
    """Mean share of clear among all observations over the footprint (0-1); None without counts."""
    footprint_mean_clear_obs: float | None
    """Mean number of clear observations over the footprint; None without counts."""
    coverage_source: str
    """What the coverage was computed from."""


@dataclass(frozen=True)
class Before:
    """The baseline: what already showed the hazard's signal before the event."""

    baseline_ha: float
    """Open water (flood) or burned ground (burn) in most baseline months (ha)."""
    baseline_index_median: float | None
    """Median of the index over the footprint in the baseline (dimensionless); None without event."""


@dataclass(frozen=True)
class During:
    """The footprint in the event month."""

    month: str
    area_ha: float
    area_uncertainty_ha: float
    """Half the edge pixels plus the unobserved pixels next to the footprint (ha)."""
    visible_ha: float
    """Part visible in the monthly median (ha)."""
    partly_visible_ha: float
    """Part seen in only part of the month's clear observations (ha)."""
    edge_ha: float
    unobserved_ha: float
    patches: int
    coverage: Coverage

    def to_json(self) -> dict[str, Any]:
        """The summary's form: the coverage fields flattened in."""
        out = {k: v for k, v in asdict(self).items() if k != "coverage"}
        return {**out, **asdict(self.coverage)}


@dataclass(frozen=True)
class AfterMonth:
    """One month after the event."""

    month: str
    still_ha: float
    """Footprint still showing the hazard (ha)."""
    still_uncertainty_ha: float
    """Footprint pixels not observed clear that month and not counted as still hit (ha)."""
    recovered_fraction: float | None
    """1 - still / event area (0-1); None for an empty footprint."""
    coverage: Coverage

    def to_json(self) -> dict[str, Any]:
        """The summary's form: the coverage fields flattened in."""
        out = {k: v for k, v in asdict(self).items() if k != "coverage"}
        return {**out, **asdict(self.coverage)}


@dataclass(frozen=True)
class AffectedBuilding:
    """A building whose footprint intersects the hazard's."""

    osm_id: Any
    building: str
    """OSM ``building`` tag (``yes`` when untagged)."""
    name: str | None
    address: str | None


@dataclass(frozen=True)
class AffectedBuildings:
    """Buildings intersecting the footprint, from the event month's GIS layers."""

    count: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    rows: list[AffectedBuilding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The summary's form (``list`` holds the rows)."""
        return {"count": self.count, "by_type": self.by_type, "list": [asdict(r) for r in self.rows]}


@dataclass(frozen=True)
class AffectedRoads:
    """Road length inside the footprint (km), by OSM ``highway`` tag."""

    km: float = 0.0
    by_highway: dict[str, float] = field(default_factory=dict)
    segments: int = 0
    """Road segments with a part inside the footprint."""


@dataclass(frozen=True)
class DisasterMasks:
    """Bool (H, W) masks on the tile grid."""

    baseline: np.ndarray
    footprint: np.ndarray
    visible: np.ndarray
    """Footprint pixels visible in the median."""
    last: np.ndarray
    """Footprint pixels still hit in the last month read."""


@dataclass(frozen=True)
class EventLayers:
    """The event month's GIS layers against the footprint (tile CRS), for the maps."""

    buildings: Any
    """GeoDataFrame of every building."""
    hit: np.ndarray
    """Bool per building: intersects the footprint."""
    roads: Any
    """GeoDataFrame of every road."""
    inside: Any
    """GeoSeries of the road parts inside the footprint."""


@dataclass(frozen=True)
class MapBases:
    """True-colour bases (:class:`~memories.applications.maps.Basemap`) of the report's maps."""

    before: Any = None
    during: Any = None
    after: Any = None
    month: Any = None
    """The last month read's base (the map of a report without event)."""


@dataclass(frozen=True)
class DisasterAnalysis:
    """The event's extent before, during and after, and what it touched (``DisasterAnalyzer.analyze``).

    ``analysis["event_month"]`` reads a field too (the seed's dict-style access).
    """

    hazard: str
    """``flood`` or ``burn``."""
    index: str
    """``ndwi`` or ``nbr``."""
    tile: str
    crs: str
    grid: TileGrid
    months: list[str]
    """Months read (``YYYY-MM``)."""
    thresholds: DisasterThresholds
    candidates: list[EventCandidate]
    before: Before
    masks: DisasterMasks
    sources: dict[str, str]
    """Input -> the record it came from."""
    as_of: str | None = None
    """Transaction time of the memory read (ISO); None: now."""
    event_month: str | None = None
    """None: no event found."""
    others: list[EventCandidate] = field(default_factory=list)
    baseline_months: list[str] = field(default_factory=list)
    during: During | None = None
    after: list[AfterMonth] = field(default_factory=list)
    buildings: AffectedBuildings = field(default_factory=AffectedBuildings)
    roads: AffectedRoads = field(default_factory=AffectedRoads)
    gis_missing: str | None = None
    """Why the event month has no GIS layers (None: it has)."""
    terrain: dict[str, Any] | None = None
    """``terrain_exposure.flood_terrain``'s numbers and ``source``, or ``{"missing": why}``; None without event."""
    footprint: Any = None
    """The footprint as a shapely geometry in the tile CRS; None when empty."""
    event_layers: EventLayers | None = None
    bases: MapBases = field(default_factory=MapBases)
    """Filled when analyzed with ``maps=True`` (the report)."""

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    @property
    def state(self) -> str:
        """``flooded`` or ``burned``."""
        return HAZARD_STATE[self.hazard]

    def area_in(self, month: str) -> float:
        """Area under the hazard in ``month`` (ha): the event's in its month, what is still hit after, else 0."""
        if self.during is None:
            return 0.0
        if month == self.event_month:
            return self.during.area_ha
        now = next((x for x in self.after if x.month == month), None)
        return now.still_ha if now else 0.0

    def to_json(self) -> dict[str, Any]:
        """The summary's ``disaster`` entry: every number, without masks, geometry and map inputs."""
        out: dict[str, Any] = {
            "hazard": self.hazard,
            "index": self.index,
            "tile": self.tile,
            "crs": self.crs,
            "months": self.months,
            "thresholds": asdict(self.thresholds),
            "candidates": [asdict(c) for c in self.candidates],
            "event_month": self.event_month,
            "others": [asdict(c) for c in self.others],
            "baseline_months": self.baseline_months,
            "before": {
                "baseline_water_ha" if self.hazard == "flood" else "baseline_burned_ha": self.before.baseline_ha,
                "baseline_index_median": self.before.baseline_index_median,
            },
            "during": self.during.to_json() if self.during else None,
            "after": [x.to_json() for x in self.after],
            "buildings": self.buildings.to_json(),
            "roads": asdict(self.roads),
        }
        if self.gis_missing is not None:
            out["gis_missing"] = self.gis_missing
        if self.terrain is not None:
            out["terrain"] = self.terrain
        return out
