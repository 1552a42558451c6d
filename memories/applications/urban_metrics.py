"""The numbers of the urban application per census district, and the recommendation rules over them.

Built-up area and its growth with their uncertainty (class validation accuracy and half
the edge pixels), green space, census population, road length, new roads, intersections,
new built-up patches, and :func:`recommendations` with the thresholds of
:class:`UrbanTargets`. :class:`~memories.applications.urban.UrbanPlanner` reads the memory
and calls these.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from memories.applications.common import pixel_ha
from memories.applications.maps import Basemap
from memories.applications.urban_land_use import LandCoverSaliency, LandUse
from memories.classes import CLASS_BY_NAME
from memories.errors import ConfigError
from memories.grid import TileGrid
from memories.memory.view import MemoryView, model_id_of

REPORT_KIND = "urban"
BUILT_UP = "built-up"
GREEN_SPACE_CLASSES: tuple[str, ...] = ("forest", "grassland")
"""Land-cover classes counted as green space: land covered by trees or grass (cropland is farmed, not green space)."""
WHO_GREEN_M2_PER_INHABITANT = 9.0
"""The minimum of urban green space per inhabitant commonly cited after the WHO (m²)."""


@dataclass(frozen=True)
class UrbanTargets:
    """Thresholds of the recommendation rules (each one is printed in the report)."""

    green_m2_per_inhabitant: float = WHO_GREEN_M2_PER_INHABITANT
    """Green space per inhabitant below this (m²) -> "add green space in district X"."""
    builtup_growth_pct_per_year: float = 5.0
    """Built-up growth above this (%/yr) with road length growth below ``road_growth_pct`` -> "plan access roads"."""
    road_growth_pct: float = 1.0
    """Road length growth (%, over the period) below which a district's road network counts as not growing."""
    forest_conversion_ha: float = 0.5
    """New built-up on land that was forest at the start, above this (ha) -> flagged."""
    min_patch_ha: float = 0.1
    """New built-up patches smaller than this (ha) are not listed as patches (they still count in the areas)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"urban target {f.name}={v!r}: use a finite number >= 0")


class FieldAccess:
    """``x["field"]`` reads ``x.field``: the seed's examples index the analysis like the dict it once was."""

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:  # type: ignore[arg-type]
            raise KeyError(key)
        return getattr(self, key)


@dataclass(frozen=True)
class Census(FieldAccess):
    """A district's census population of the latest year up to the end month, with its flags."""

    population: float | None
    """Inhabitants; None when the census lacks it."""
    year: int | None
    """Census year used."""
    flags: list[str]
    """Why the figure is doubtful (census flags, a missing year, no census table)."""


@dataclass(frozen=True)
class DistrictNumbers(FieldAccess):
    """The numbers of one census district (or of the whole tile) between the two months.

    Areas in ha, each with its ``*_uncertainty_ha`` (± ha; see the module docstring of
    :mod:`memories.applications.urban`), growth in % over the period and %/yr, green space
    per inhabitant in m², road lengths in km, intersections per km². None: not defined
    (a growth from zero, a district without population).
    """

    name: str
    district_id: str
    area_ha: float
    builtup_start_ha: float
    builtup_start_uncertainty_ha: float
    builtup_end_ha: float
    builtup_end_uncertainty_ha: float
    builtup_gained_ha: float
    builtup_lost_ha: float
    builtup_growth_ha: float
    builtup_growth_uncertainty_ha: float
    builtup_growth_pct: float | None
    builtup_growth_pct_per_year: float | None
    builtup_onto_forest_ha: float
    green_ha: float
    green_uncertainty_ha: float
    green_pct: float | None
    population: float | None
    census_year: int | None
    census_flags: list[str]
    green_m2_per_inhabitant: float | None
    road_km_start: float
    road_km_end: float
    new_road_km: float
    road_growth_pct: float | None
    intersections: int
    intersections_per_km2: float | None


@dataclass(frozen=True)
class NewPatch(FieldAccess):
    """A connected (4-neighbour) area that became built-up: pixel area and former forest in ha,
    the polygon's own area in ha, its district, centroid (x, y in the tile CRS, metres), WKT, rank (1 = largest)."""

    area_ha: float
    polygon_area_ha: float
    from_forest_ha: float
    district: str | None
    centroid: list[float]
    wkt: str
    id: int


@dataclass(frozen=True)
class Recommendation(FieldAccess):
    """A fired rule: its name, district, threshold, the numbers that fired it and the sentence the report prints."""

    rule: str
    district: str
    threshold: float
    numbers: dict[str, float | None]
    text: str


@dataclass(frozen=True)
class LandCoverModel(FieldAccess):
    """The land-cover model ids of the two months (``"truth"`` for rasterized ground truth) and the class
    validation accuracy (0-1) used for the uncertainties (None: unknown, only edge pixels count)."""

    start: str | None
    end: str | None
    accuracy: dict[str, float] | None


@dataclass(frozen=True)
class UrbanAnalysis(FieldAccess):
    """One comparison of two months of a tile: the numbers of the report and the maps its figures draw.

    Areas in ha, lengths in km, densities per km², populations in inhabitants; every area has its
    ``*_uncertainty_ha`` (± ha). :meth:`to_json` is what ``summary.json`` holds under ``urban``.
    """

    tile: str
    start_month: str
    end_month: str
    months: int
    """Months from the start to the end month."""
    crs: str
    pixel_area_m2: float
    definitions: dict[str, str]
    """Term -> its definition, as the report states it."""
    targets: UrbanTargets
    land_cover_model: LandCoverModel
    tile_total: DistrictNumbers
    """The numbers of the whole tile (``name`` "tile", ``district_id`` the tile id)."""
    districts: list[DistrictNumbers]
    """Per census district, by name."""
    new_patches: list[NewPatch]
    """Largest first."""
    recommendations: list[Recommendation]
    terrain: dict[str, Any]
    """Slope of the new built-up land (:func:`~memories.applications.terrain_exposure.built_up_slope` and its
    ``source``), or ``{"missing": why}``."""
    land_use: LandUse
    """The multi-modal land use of the planning area (:mod:`memories.applications.urban_land_use`)."""
    saliency: LandCoverSaliency
    """What the land-cover model of the end month looks at."""
    grid: TileGrid
    lc_start: np.ndarray
    """uint8 (y, x): land-cover codes at the start."""
    lc_end: np.ndarray
    gain: np.ndarray
    """bool (y, x): became built-up."""
    loss: np.ndarray
    """bool (y, x): built-up no more."""
    district_frame: Any
    """GeoDataFrame of the census districts clipped to the tile (tile CRS), sorted by name."""
    roads_start: Any
    new_roads: Any
    base: Basemap
    """The true-colour base of the maps."""
    sources: dict[str, str]
    """Input -> how the report names its record."""
    name_col: str
    as_of: str | None
    """The memory's transaction time the analysis read (ISO), None: now."""

    def to_json(self) -> dict[str, Any]:
        """The JSON numbers of the analysis (no arrays, no frames)."""
        return {
            "tile": self.tile,
            "start_month": self.start_month,
            "end_month": self.end_month,
            "months": self.months,
            "crs": self.crs,
            "pixel_area_m2": self.pixel_area_m2,
            "definitions": dict(self.definitions),
            "targets": asdict(self.targets),
            "land_cover_model": asdict(self.land_cover_model),
            "tile_total": asdict(self.tile_total),
            "districts": [asdict(d) for d in self.districts],
            "new_patches": [asdict(p) for p in self.new_patches],
            "recommendations": [asdict(r) for r in self.recommendations],
            "terrain": self.terrain,
            "land_use": {**self.land_use.to_json(), "saliency": self.saliency.to_json()},
        }


@dataclass(frozen=True)
class Layers:
    """The rasters and road frames every district is measured on (the tile total too)."""

    b0: np.ndarray
    """bool (y, x): built-up at the start."""
    b1: np.ndarray
    """bool (y, x): built-up at the end."""
    gain: np.ndarray
    loss: np.ndarray
    green: np.ndarray
    """bool (y, x): green space at the end."""
    was_forest: np.ndarray
    px_ha: float
    acc_b: float | None
    """Validation accuracy (0-1) of built-up."""
    acc_g: float | None
    """Mean validation accuracy (0-1) of the green-space classes."""
    roads0: Any
    roads1: Any
    new_roads: Any
    n_months: int


def district_numbers(
    name: str, district_id: str, polygon: Any, inside: np.ndarray, census: Census | None, lay: Layers
) -> DistrictNumbers:
    """The numbers of the pixels ``inside`` (bool (y, x)) and the roads within ``polygon`` (tile CRS)."""
    px_ha = lay.px_ha
    area_ha = float(inside.sum() * px_ha)
    area_km2 = polygon.area / 1e6
    built0, built1 = float((lay.b0 & inside).sum() * px_ha), float((lay.b1 & inside).sum() * px_ha)
    gained, lost = float((lay.gain & inside).sum() * px_ha), float((lay.loss & inside).sum() * px_ha)
    growth = built1 - built0
    growth_pct = 100.0 * growth / built0 if built0 > 0 else None
    green_ha = float((lay.green & inside).sum() * px_ha)
    km0 = _length_km(lay.roads0, polygon)
    km1 = _length_km(lay.roads1, polygon)
    nodes = _intersections(lay.roads1, polygon)
    pop = census.population if census else None
    n_months = lay.n_months
    return DistrictNumbers(
        name=name,
        district_id=district_id,
        area_ha=area_ha,
        builtup_start_ha=built0,
        builtup_start_uncertainty_ha=_area_uncertainty(lay.b0 & inside, inside, px_ha, lay.acc_b),
        builtup_end_ha=built1,
        builtup_end_uncertainty_ha=_area_uncertainty(lay.b1 & inside, inside, px_ha, lay.acc_b),
        builtup_gained_ha=gained,
        builtup_lost_ha=lost,
        builtup_growth_ha=growth,
        builtup_growth_uncertainty_ha=_change_uncertainty(
            lay.gain & inside, lay.loss & inside, inside, px_ha, lay.acc_b
        ),
        builtup_growth_pct=growth_pct,
        builtup_growth_pct_per_year=growth_pct * 12.0 / n_months if growth_pct is not None and n_months else None,
        builtup_onto_forest_ha=float((lay.gain & inside & lay.was_forest).sum() * px_ha),
        green_ha=green_ha,
        green_uncertainty_ha=_area_uncertainty(lay.green & inside, inside, px_ha, lay.acc_g),
        green_pct=100.0 * green_ha / area_ha if area_ha else None,
        population=pop,
        census_year=census.year if census else None,
        census_flags=list(census.flags) if census else ["no census row"],
        green_m2_per_inhabitant=green_ha * 10_000.0 / pop if pop else None,
        road_km_start=km0,
        road_km_end=km1,
        new_road_km=_length_km(lay.new_roads, polygon),
        road_growth_pct=100.0 * (km1 - km0) / km0 if km0 > 0 else None,
        intersections=nodes,
        intersections_per_km2=nodes / area_km2 if area_km2 else None,
    )


def sum_census(rows: list[Census | None]) -> Census:
    """The census of several districts: their total population (None if one lacks it), latest year, all flags."""
    pops = [r.population for r in rows if r]
    if not pops or any(p is None for p in pops):
        return Census(None, None, ["a district lacks its population"])
    years = sorted({r.year for r in rows if r and r.year is not None})
    flags = sorted({f for r in rows if r for f in r.flags})
    return Census(float(sum(p for p in pops if p is not None)), years[-1] if years else None, flags)


def _edge_pixels(mask: np.ndarray, within: np.ndarray) -> int:
    """Pixels of ``mask`` with a 4-neighbour outside it (inside ``within``): half in, half out."""
    from scipy import ndimage

    if not mask.any():
        return 0
    return int((mask & ~ndimage.binary_erosion(mask, border_value=1) & within).sum())


def _area_uncertainty(mask: np.ndarray, within: np.ndarray, px_ha: float, accuracy: float | None) -> float:
    area = float(mask.sum() * px_ha)
    model = area * (1.0 - accuracy) if accuracy is not None else 0.0
    return model + 0.5 * _edge_pixels(mask, within) * px_ha


def _change_uncertainty(
    gain: np.ndarray, loss: np.ndarray, within: np.ndarray, px_ha: float, accuracy: float | None
) -> float:
    changed = float((gain.sum() + loss.sum()) * px_ha)
    model = changed * (1.0 - accuracy) if accuracy is not None else 0.0
    return model + 0.5 * (_edge_pixels(gain, within) + _edge_pixels(loss, within)) * px_ha


def class_accuracy(view: MemoryView, records: list[Any]) -> dict[str, float] | None:
    """Class -> validation accuracy (0-1) of the land-cover model(s) of the records; the lower of two.

    Land cover recorded as ground truth (``model_id = "truth"``) is exact (1.0). ``None``
    when no record names a model the registry knows (then only edge pixels count).
    """
    out: dict[str, float] = {}
    for rec in records:
        model_id = model_id_of(rec.stats)
        if model_id == "truth":
            acc = {name: 1.0 for name in CLASS_BY_NAME}
        elif model_id:
            found = view.model_metrics(model_id)
            if found is None:  # an unknown model leaves the edge term only
                return None
            metrics = found[0]
            acc = {
                name: float(metrics[f"val_accuracy/{name}"])
                for name in CLASS_BY_NAME
                if metrics.get(f"val_accuracy/{name}") is not None
            }
        else:
            return None
        for name, v in acc.items():
            out[name] = min(out.get(name, 1.0), v)
    return out


def mean_accuracy(accuracy: dict[str, float] | None, names: tuple[str, ...]) -> float | None:
    if accuracy is None or not all(n in accuracy for n in names):
        return None
    return float(np.mean([accuracy[n] for n in names]))


def district_raster(districts: Any, grid: TileGrid) -> np.ndarray:
    """District number (1..n, order of ``districts``; 0 outside) of each pixel (pixel centres)."""
    from rasterio.features import rasterize

    shapes = [(geom, i) for i, geom in enumerate(districts.geometry, start=1) if geom is not None and not geom.is_empty]
    return np.asarray(rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=0, dtype="int32"))


def new_roads(roads0: Any, roads1: Any) -> tuple[Any, Any]:
    """(roads of the start, roads of the end the start lacks: by ``osm_id``, else by geometry)."""
    if "osm_id" in roads0.columns and "osm_id" in roads1.columns:
        return roads0, roads1[~roads1["osm_id"].isin(set(roads0["osm_id"]))]
    before = set(roads0.geometry.to_wkb())
    return roads0, roads1[~roads1.geometry.to_wkb().isin(before)]


def _length_km(roads: Any, polygon: Any) -> float:
    if roads is None or len(roads) == 0:
        return 0.0
    return float(roads.geometry.intersection(polygon).length.sum() / 1000.0)


def _intersections(roads: Any, polygon: Any) -> int:
    """Nodes of the noded road network inside ``polygon`` where three or more road ends meet."""
    import shapely

    if roads is None or len(roads) == 0:
        return 0
    noded = shapely.unary_union(shapely.line_merge(np.asarray(roads.geometry.values)))
    parts = shapely.get_parts(noded)
    ends = np.concatenate(
        [shapely.get_coordinates(shapely.get_point(parts, 0)), shapely.get_coordinates(shapely.get_point(parts, -1))]
    )
    keys, counts = np.unique(np.round(ends, 2), axis=0, return_counts=True)
    nodes = shapely.points(keys[counts >= 3])
    return int(shapely.covers(polygon, nodes).sum()) if len(nodes) else 0


def new_built_up_patches(
    gain: np.ndarray, was_forest: np.ndarray, grid: TileGrid, districts: Any, name_col: str, min_ha: float
) -> list[NewPatch]:
    """New built-up patches (4-connected) as polygons, largest first, with area and former forest."""
    import shapely
    from rasterio.features import shapes
    from scipy import ndimage

    labels, n = ndimage.label(gain)
    if n == 0:
        return []
    px_ha = pixel_ha(grid)
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * px_ha
    forest = np.bincount(labels.ravel(), weights=was_forest.ravel().astype(float), minlength=n + 1) * px_ha
    keep = {i for i in range(1, n + 1) if sizes[i] >= min_ha}
    geoms: dict[int, list[Any]] = {}
    for geom, value in shapes(labels.astype(np.int32), mask=gain, transform=grid.transform, connectivity=4):
        if int(value) in keep:
            geoms.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    found = []
    for i, parts in geoms.items():
        poly = shapely.union_all(parts)
        c = poly.centroid
        where = districts[districts.geometry.covers(c)]
        found.append((i, poly, c, str(where.iloc[0][name_col]) if len(where) else None))
    found.sort(key=lambda f: -sizes[f[0]])
    return [
        NewPatch(
            area_ha=float(sizes[i]),
            polygon_area_ha=float(poly.area / 10_000.0),
            from_forest_ha=float(forest[i]),
            district=district,
            centroid=[float(c.x), float(c.y)],
            wkt=shapely.to_wkt(poly, rounding_precision=1),
            id=k,
        )
        for k, (i, poly, c, district) in enumerate(found, start=1)
    ]


def recommendations(
    districts: list[DistrictNumbers], start_month: str, end_month: str, t: UrbanTargets
) -> list[Recommendation]:
    """Rules over the district numbers; each names its rule, threshold, district and the numbers that fired it."""
    period = f"{start_month}..{end_month}"
    out: list[Recommendation] = []
    for d in districts:
        out += [r for r in (_green_rule(d, t), _roads_rule(d, t, period), _forest_rule(d, t, period, start_month)) if r]
    return out


def _green_rule(d: DistrictNumbers, t: UrbanTargets) -> Recommendation | None:
    per_inh = d.green_m2_per_inhabitant
    if per_inh is None or per_inh >= t.green_m2_per_inhabitant:
        return None
    flags = f"; census flags: {', '.join(d.census_flags)}" if d.census_flags else ""
    return Recommendation(
        rule="green_space",
        district=d.name,
        threshold=t.green_m2_per_inhabitant,
        numbers={"green_m2_per_inhabitant": per_inh, "green_ha": d.green_ha, "population": d.population},
        text=f"Add green space in district {d.name}: {per_inh:.1f} m²/inhabitant "
        f"({d.green_ha:.2f} ha of forest + grassland for {d.population:.0f} inhabitants, census "
        f"{d.census_year}{flags}) is below the target of {t.green_m2_per_inhabitant:g} m²/inhabitant.",
    )


def _roads_rule(d: DistrictNumbers, t: UrbanTargets, period: str) -> Recommendation | None:
    rate, roads = d.builtup_growth_pct_per_year, d.road_growth_pct
    if rate is None or rate <= t.builtup_growth_pct_per_year or (roads is not None and roads >= t.road_growth_pct):
        return None
    road_text = "n/a (no road at the start)" if roads is None else f"{roads:.1f} %"
    return Recommendation(
        rule="access_roads",
        district=d.name,
        threshold=t.builtup_growth_pct_per_year,
        numbers={
            "builtup_growth_pct_per_year": rate,
            "builtup_growth_ha": d.builtup_growth_ha,
            "road_growth_pct": roads,
            "road_km_start": d.road_km_start,
            "road_km_end": d.road_km_end,
        },
        text=f"Plan access roads in district {d.name}: built-up area grew {rate:.1f} %/yr "
        f"(+{d.builtup_growth_ha:.2f} ha, {period}) above {t.builtup_growth_pct_per_year:g} %/yr, while "
        f"road length grew {road_text} ({d.road_km_start:.2f} -> {d.road_km_end:.2f} km), "
        f"below {t.road_growth_pct:g} %.",
    )


def _forest_rule(d: DistrictNumbers, t: UrbanTargets, period: str, start_month: str) -> Recommendation | None:
    forest = d.builtup_onto_forest_ha
    if not forest > t.forest_conversion_ha:
        return None
    return Recommendation(
        rule="forest_conversion",
        district=d.name,
        threshold=t.forest_conversion_ha,
        numbers={"builtup_onto_forest_ha": forest, "builtup_gained_ha": d.builtup_gained_ha},
        text=f"Built-up expansion onto forest in district {d.name}: {forest:.2f} ha of the "
        f"{d.builtup_gained_ha:.2f} ha of new built-up ({period}) was forest in "
        f"{start_month}, above {t.forest_conversion_ha:g} ha; check it against the zoning plan.",
    )
