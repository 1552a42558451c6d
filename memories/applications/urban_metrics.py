"""The numbers of the urban application per census district, and the recommendation rules over them.

Built-up area and its growth with their uncertainty (class validation accuracy and half
the edge pixels), green space, census population, road length, new roads, intersections,
new built-up patches, and :func:`recommendations` with the thresholds of
:class:`UrbanTargets`. :class:`~memories.applications.urban.UrbanPlanner` reads the memory
and calls these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from memories.applications.common import pixel_ha
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


@dataclass
class UrbanAnalysis:
    """One comparison of two months: the JSON result and the arrays and frames its figures draw."""

    result: dict[str, Any]
    grid: TileGrid
    lc_start: np.ndarray
    lc_end: np.ndarray
    gain: np.ndarray
    loss: np.ndarray
    districts: Any
    roads_start: Any
    new_roads: Any
    sources: dict[str, str]
    name_col: str


def district_numbers(
    *,
    name: str,
    district_id: str,
    polygon: Any,
    inside: np.ndarray,
    b0: np.ndarray,
    b1: np.ndarray,
    gain: np.ndarray,
    loss: np.ndarray,
    green: np.ndarray,
    was_forest: np.ndarray,
    px_ha: float,
    acc_b: float | None,
    acc_g: float | None,
    roads0: Any,
    roads1: Any,
    new_roads: Any,
    census: dict[str, Any] | None,
    n_months: int,
) -> dict[str, Any]:
    area_ha = float(inside.sum() * px_ha)
    area_km2 = polygon.area / 1e6
    built0, built1 = float((b0 & inside).sum() * px_ha), float((b1 & inside).sum() * px_ha)
    gained, lost = float((gain & inside).sum() * px_ha), float((loss & inside).sum() * px_ha)
    growth = built1 - built0
    growth_pct = 100.0 * growth / built0 if built0 > 0 else None
    green_ha = float((green & inside).sum() * px_ha)
    km0 = _length_km(roads0, polygon)
    km1 = _length_km(roads1, polygon)
    new_km = _length_km(new_roads, polygon)
    nodes = _intersections(roads1, polygon)
    pop = census.get("population") if census else None
    return {
        "name": name,
        "district_id": district_id,
        "area_ha": area_ha,
        "builtup_start_ha": built0,
        "builtup_start_uncertainty_ha": _area_uncertainty(b0 & inside, inside, px_ha, acc_b),
        "builtup_end_ha": built1,
        "builtup_end_uncertainty_ha": _area_uncertainty(b1 & inside, inside, px_ha, acc_b),
        "builtup_gained_ha": gained,
        "builtup_lost_ha": lost,
        "builtup_growth_ha": growth,
        "builtup_growth_uncertainty_ha": _change_uncertainty(gain & inside, loss & inside, inside, px_ha, acc_b),
        "builtup_growth_pct": growth_pct,
        "builtup_growth_pct_per_year": growth_pct * 12.0 / n_months if growth_pct is not None and n_months else None,
        "builtup_onto_forest_ha": float((gain & inside & was_forest).sum() * px_ha),
        "green_ha": green_ha,
        "green_uncertainty_ha": _area_uncertainty(green & inside, inside, px_ha, acc_g),
        "green_pct": 100.0 * green_ha / area_ha if area_ha else None,
        "population": pop,
        "census_year": census.get("year") if census else None,
        "census_flags": list(census.get("flags", [])) if census else ["no census row"],
        "green_m2_per_inhabitant": green_ha * 10_000.0 / pop if pop else None,
        "road_km_start": km0,
        "road_km_end": km1,
        "new_road_km": new_km,
        "road_growth_pct": 100.0 * (km1 - km0) / km0 if km0 > 0 else None,
        "intersections": nodes,
        "intersections_per_km2": nodes / area_km2 if area_km2 else None,
    }


def sum_census(rows: list[dict[str, Any] | None]) -> dict[str, Any]:
    pops = [r.get("population") for r in rows if r]
    if not pops or any(p is None for p in pops):
        return {"population": None, "year": None, "flags": ["a district lacks its population"]}
    years = sorted({r["year"] for r in rows if r and r.get("year") is not None})
    flags = sorted({f for r in rows if r for f in r.get("flags", [])})
    return {
        "population": float(sum(p for p in pops if p is not None)),
        "year": years[-1] if years else None,
        "flags": flags,
    }


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
    return rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=0, dtype="int32")


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
) -> list[dict[str, Any]]:
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
    out = []
    for i, parts in geoms.items():
        poly = shapely.union_all(parts)
        c = poly.centroid
        where = districts[districts.geometry.covers(c)]
        out.append(
            {
                "area_ha": float(sizes[i]),
                "polygon_area_ha": float(poly.area / 10_000.0),
                "from_forest_ha": float(forest[i]),
                "district": str(where.iloc[0][name_col]) if len(where) else None,
                "centroid": [float(c.x), float(c.y)],
                "wkt": shapely.to_wkt(poly, rounding_precision=1),
            }
        )
    out.sort(key=lambda p: -p["area_ha"])
    for k, p in enumerate(out, start=1):
        p["id"] = k
    return out


def recommendations(result: dict[str, Any], t: UrbanTargets) -> list[dict[str, Any]]:
    """Rules over the district numbers; each names its rule, threshold, district and the numbers that fired it."""
    period = f"{result['start_month']}..{result['end_month']}"
    out: list[dict[str, Any]] = []
    for d in result["districts"]:
        name = d["name"]
        per_inh = d["green_m2_per_inhabitant"]
        if per_inh is not None and per_inh < t.green_m2_per_inhabitant:
            flags = f"; census flags: {', '.join(d['census_flags'])}" if d["census_flags"] else ""
            out.append(
                {
                    "rule": "green_space",
                    "district": name,
                    "threshold": t.green_m2_per_inhabitant,
                    "numbers": {
                        "green_m2_per_inhabitant": per_inh,
                        "green_ha": d["green_ha"],
                        "population": d["population"],
                    },
                    "text": f"Add green space in district {name}: {per_inh:.1f} m²/inhabitant "
                    f"({d['green_ha']:.2f} ha of forest + grassland for {d['population']:.0f} inhabitants, census "
                    f"{d['census_year']}{flags}) is below the target of {t.green_m2_per_inhabitant:g} m²/inhabitant.",
                }
            )
        rate, roads = d["builtup_growth_pct_per_year"], d["road_growth_pct"]
        if rate is not None and rate > t.builtup_growth_pct_per_year and (roads is None or roads < t.road_growth_pct):
            road_text = "n/a (no road at the start)" if roads is None else f"{roads:.1f} %"
            out.append(
                {
                    "rule": "access_roads",
                    "district": name,
                    "threshold": t.builtup_growth_pct_per_year,
                    "numbers": {
                        "builtup_growth_pct_per_year": rate,
                        "builtup_growth_ha": d["builtup_growth_ha"],
                        "road_growth_pct": roads,
                        "road_km_start": d["road_km_start"],
                        "road_km_end": d["road_km_end"],
                    },
                    "text": f"Plan access roads in district {name}: built-up area grew {rate:.1f} %/yr "
                    f"(+{d['builtup_growth_ha']:.2f} ha, {period}) above {t.builtup_growth_pct_per_year:g} %/yr, while "
                    f"road length grew {road_text} ({d['road_km_start']:.2f} -> {d['road_km_end']:.2f} km), "
                    f"below {t.road_growth_pct:g} %.",
                }
            )
        forest = d["builtup_onto_forest_ha"]
        if forest > t.forest_conversion_ha:
            out.append(
                {
                    "rule": "forest_conversion",
                    "district": name,
                    "threshold": t.forest_conversion_ha,
                    "numbers": {"builtup_onto_forest_ha": forest, "builtup_gained_ha": d["builtup_gained_ha"]},
                    "text": f"Built-up expansion onto forest in district {name}: {forest:.2f} ha of the "
                    f"{d['builtup_gained_ha']:.2f} ha of new built-up ({period}) was forest in "
                    f"{result['start_month']}, above {t.forest_conversion_ha:g} ha; check it against the zoning plan.",
                }
            )
    return out
