"""Urban planning of a tile: built-up expansion, green space per inhabitant, road network growth.

``UrbanPlanner(view).analyze(tile, start_month, end_month)`` compares two months of
the memory per census district (the ``socioeconomic_regions`` polygons of the tile):

- **built-up expansion**: built-up area (ha) from ``land_cover`` at both months, its
  growth in ha, % and %/yr, and the new built-up patches as polygons (area each, and
  how much of each was forest before);
- **green space**: forest + grassland (``GREEN_SPACE_CLASSES``: land covered by trees
  or grass; cropland is farmed, not green space) in ha and % of each district, and
  m² per inhabitant with the district's population of the latest census year up to
  the month (districts whose census row is flagged are flagged);
- **road network**: road length (km) per district from the ``gis_layers`` of each
  month (the roads as they stood then), new road km, intersections (noded road
  network, degree >= 3) per km².

Uncertainty of a class area ``A`` (ha): ``A x (1 - a) + 1/2 x edge pixels x pixel
area``, where ``a`` is the land-cover model's validation accuracy of the class
(registry metrics ``val_accuracy/<class>`` of the record's ``model_id``; 1 for land
cover that is the rasterized ground truth, ``model_id = "truth"``) and the edge
pixels are the class pixels touching another class (a boundary pixel is half in, half
out). The growth's uncertainty applies the same rule to the changed pixels.

Recommendations are rules over these numbers, with thresholds from
:class:`UrbanTargets` stated in the report, each citing the numbers that fired it.
``report(tile, month)`` compares ``month`` with 12 months earlier when the memory
holds it, else with the earliest month it holds.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np

from memories.applications.memory_view import MemoryView, describe
from memories.applications.report import Report, km_extent, png, pyplot, quantity
from memories.classes import CLASS_BY_NAME
from memories.errors import ConfigError, MissingDataError
from memories.grid import TileGrid
from memories.months import add_months, month_key, months_between, parse_month

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


class UrbanPlanner:
    """Built-up expansion, green space and road growth per census district, read from the memory.

    Args:
        view: the memory as of a transaction time.
        district_name: name column of the ``socioeconomic_regions`` polygons (and of the census table).
        **targets: thresholds of the recommendation rules, fields of :class:`UrbanTargets`
            (``green_m2_per_inhabitant=9.0``, ``builtup_growth_pct_per_year=5.0``, ...).

    Raises:
        ConfigError: a target that is not a field of :class:`UrbanTargets`, or not a number >= 0.
    """

    def __init__(self, view: MemoryView | None = None, *, district_name: str = "name", **targets: float) -> None:
        known = {f.name for f in fields(UrbanTargets)}
        unknown = sorted(set(targets) - known)
        if unknown:
            raise ConfigError(f"unknown urban targets {unknown}; the targets are {sorted(known)}")
        self.view = view or MemoryView()
        self.district_name = district_name
        self.targets = UrbanTargets(**targets)

    # -- public API -----------------------------------------------------------------------------
    def reference_month(self, tile: str, month: str) -> str:
        """The month a report of ``month`` compares with: 12 months earlier if held, else the earliest held.

        Raises:
            MissingDataError: the memory holds no ``land_cover`` up to ``month`` for ``tile``.
        """
        held = self.view.months("land_cover", tile, until=month)
        if not held:
            self.view.record("land_cover", tile, month)  # raises with the fix
        year_before = month_key(add_months(parse_month(month), -12))
        return year_before if year_before in held else held[0]

    def analyze(self, tile: str, start_month: str, end_month: str) -> dict[str, Any]:
        """The numbers of ``tile`` between two months (``YYYY-MM``), JSON-serializable.

        Returns:
            ``{"tile", "start_month", "end_month", "months", "crs", "pixel_area_m2", "definitions",
            "targets", "land_cover_model", "tile_total", "districts": [...], "new_patches": [...],
            "recommendations": [...]}``. Areas in ha, lengths in km, densities per km², populations in
            inhabitants; every area has its ``*_uncertainty_ha`` (± ha).

        Raises:
            ConfigError: ``start_month`` after ``end_month``.
            MissingDataError: a month, the GIS layers or the census regions the memory lacks.
        """
        return self._analysis(tile, start_month, end_month).result

    def report(self, tile: str, month: str) -> Report:
        """The urban report of one tile-month, comparing it with :meth:`reference_month`."""
        start = self.reference_month(tile, month)
        a = self._analysis(tile, start, month)
        return _build_report(self.view, a, self.targets)

    # -- the analysis ---------------------------------------------------------------------------
    def _analysis(self, tile: str, start: str, end: str) -> _Analysis:
        if start > end:
            raise ConfigError(f"start_month {start} is after end_month {end}; pass the earlier month first")
        view = self.view
        rec_start, rec_end = view.record("land_cover", tile, start), view.record("land_cover", tile, end)
        ds_start, ds_end = view.raster("land_cover", tile, start), view.raster("land_cover", tile, end)
        grid = TileGrid.from_dict(ds_end.attrs["grid"])
        lc0 = np.asarray(ds_start["land_cover"].values)
        lc1 = np.asarray(ds_end["land_cover"].values)
        districts = self._districts(tile, grid)
        census = self._census(tile, districts, end)
        roads0 = view.layers(tile, start, ["roads"])["roads"]
        roads1 = view.layers(tile, end, ["roads"])["roads"]
        accuracy = _class_accuracy(view, [rec_start, rec_end])
        px_ha = grid.pixel_area_m2 / 10_000.0
        n_months = len(months_between(start, end)) - 1
        built = CLASS_BY_NAME[BUILT_UP].code
        forest = CLASS_BY_NAME["forest"].code
        green_codes = [CLASS_BY_NAME[n].code for n in GREEN_SPACE_CLASSES]
        b0, b1 = lc0 == built, lc1 == built
        gain, loss = b1 & ~b0, b0 & ~b1
        green1 = np.isin(lc1, green_codes)
        label = _rasterize_districts(districts, grid)
        acc_b = accuracy.get(BUILT_UP) if accuracy is not None else None
        acc_g = _mean_accuracy(accuracy, GREEN_SPACE_CLASSES)
        new1 = _new_roads(roads0, roads1)[1]

        rows: list[dict[str, Any]] = []
        for i, d in enumerate(districts.itertuples(index=False), start=1):
            inside = label == i
            rows.append(
                _district_numbers(
                    name=str(getattr(d, self.district_name)),
                    district_id=str(getattr(d, "district_id", "") or ""),
                    polygon=d.geometry,
                    inside=inside,
                    b0=b0,
                    b1=b1,
                    gain=gain,
                    loss=loss,
                    green=green1,
                    was_forest=lc0 == forest,
                    px_ha=px_ha,
                    acc_b=acc_b,
                    acc_g=acc_g,
                    roads0=roads0,
                    roads1=roads1,
                    new_roads=new1,
                    census=census.get(str(getattr(d, self.district_name))),
                    n_months=n_months,
                )
            )
        everywhere = np.ones(grid.shape, dtype=bool)
        from shapely.geometry import box

        total = _district_numbers(
            name="tile",
            district_id=tile,
            polygon=box(*grid.bounds),
            inside=everywhere,
            b0=b0,
            b1=b1,
            gain=gain,
            loss=loss,
            green=green1,
            was_forest=lc0 == forest,
            px_ha=px_ha,
            acc_b=acc_b,
            acc_g=acc_g,
            roads0=roads0,
            roads1=roads1,
            new_roads=new1,
            census=_sum_census([census.get(r["name"]) for r in rows]),
            n_months=n_months,
        )
        patches = _patches(gain, lc0 == forest, grid, districts, self.district_name, self.targets.min_patch_ha)
        result: dict[str, Any] = {
            "tile": tile,
            "start_month": start,
            "end_month": end,
            "months": n_months,
            "crs": grid.crs,
            "pixel_area_m2": grid.pixel_area_m2,
            "definitions": {
                "built_up": f"land-cover class '{BUILT_UP}'",
                "green_space": "land-cover classes " + " + ".join(GREEN_SPACE_CLASSES),
                "new_road": "a road of the end month's GIS layers whose osm_id the start month lacks",
                "intersection": "a node of the noded road network where three or more road ends meet",
                "uncertainty": "area x (1 - class validation accuracy) + 1/2 x edge pixels x pixel area",
                "population": "the district's census population of the latest year <= the end month's year",
            },
            "targets": asdict(self.targets),
            "land_cover_model": {
                "start": rec_start.stats.get("model_id"),
                "end": rec_end.stats.get("model_id"),
                "accuracy": accuracy,
            },
            "tile_total": total,
            "districts": rows,
            "new_patches": patches,
        }
        result["recommendations"] = _recommendations(result, self.targets)
        sources = {
            f"land_cover {start}": describe(rec_start),
            f"land_cover {end}": describe(rec_end),
            f"gis_layers {start}": describe(view.record("gis_layers", tile, start)),
            f"gis_layers {end}": describe(view.record("gis_layers", tile, end)),
            "socioeconomic_regions": describe(view.record("socioeconomic_regions", tile)),
        }
        return _Analysis(result, grid, lc0, lc1, gain, loss, districts, roads0, new1, sources, self.district_name)

    def _districts(self, tile: str, grid: TileGrid) -> Any:
        regions = self.view.table("socioeconomic_regions", tile)
        if self.district_name not in regions.columns:
            raise ConfigError(
                f"socioeconomic_regions of {tile} has no column {self.district_name!r} (it has "
                f"{sorted(c for c in regions.columns if c != 'geometry')}); pass district_name= to UrbanPlanner"
            )
        regions = regions.to_crs(grid.crs) if regions.crs is not None else regions.set_crs(grid.crs)
        from shapely.geometry import box

        footprint = box(*grid.bounds)
        regions = regions[regions.intersects(footprint)].copy()
        if regions.empty:
            raise MissingDataError(
                f"no census district of socioeconomic_regions covers tile {tile}; materialize "
                f"socioeconomic_regions for {tile} with a district layer that covers it"
            )
        regions["geometry"] = regions.geometry.intersection(footprint)
        return regions.sort_values(self.district_name).reset_index(drop=True)

    def _census(self, tile: str, districts: Any, month: str) -> dict[str, dict[str, Any]]:
        """District name -> population of the latest census year <= the month's year, with its flags."""
        import pandas as pd

        year = int(month[:4])
        root = self.view.root
        uri = root.tile_file_uri("socioeconomic_regions", tile, "table.parquet")
        out: dict[str, dict[str, Any]] = {}
        try:
            table = pd.read_parquet(io.BytesIO(root.read_bytes(uri)))
        except (FileNotFoundError, OSError):
            table = None
        for d in districts.itertuples(index=False):
            name = str(getattr(d, self.district_name))
            if table is None or "region_id" not in table.columns:
                pop = getattr(d, "latest_population", None)
                out[name] = {
                    "population": None if pop is None or pop != pop else float(pop),
                    "year": None,
                    "flags": ["no census table: latest population of the regions"],
                }
                continue
            rows = table[(table["region_id"] == name) & (table["year"] <= year)].sort_values("year")
            flags: list[str] = []
            if rows.empty:
                out[name] = {"population": None, "year": None, "flags": [f"no census row up to {year}"]}
                continue
            latest_year = int(rows["year"].iloc[-1])
            valid = rows[rows["population"].notna()]
            if valid.empty:
                out[name] = {"population": None, "year": latest_year, "flags": ["population missing"]}
                continue
            row = valid.iloc[-1]
            if int(row["year"]) != latest_year:
                flags.append(f"{latest_year} population missing: {int(row['year'])} used")
            flags += [f for f in str(row.get("flags", "") or "").split(",") if f]
            out[name] = {"population": float(row["population"]), "year": int(row["year"]), "flags": flags}
        return out


@dataclass
class _Analysis:
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


# -- numbers ------------------------------------------------------------------------------------
def _district_numbers(
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


def _sum_census(rows: list[dict[str, Any] | None]) -> dict[str, Any]:
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


def _class_accuracy(view: MemoryView, records: list[Any]) -> dict[str, float] | None:
    """Class -> validation accuracy (0-1) of the land-cover model(s) of the records; the lower of two.

    Land cover recorded as ground truth (``model_id = "truth"``) is exact (1.0). ``None``
    when no record names a model the registry knows (then only edge pixels count).
    """
    out: dict[str, float] = {}
    for rec in records:
        model_id = rec.stats.get("model_id")
        if model_id is None and rec.stats.get("model_version") is not None:
            model_id = f"land_cover:{rec.stats['model_version']}"
        if model_id == "truth":
            acc = {name: 1.0 for name in CLASS_BY_NAME}
        elif model_id:
            from memories.ai.manager import ModelManager

            try:
                metrics = ModelManager(view.root).resolve(str(model_id)).metrics
            except Exception:  # noqa: BLE001 - an unknown model leaves the edge term only
                return None
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


def _mean_accuracy(accuracy: dict[str, float] | None, names: tuple[str, ...]) -> float | None:
    if accuracy is None or not all(n in accuracy for n in names):
        return None
    return float(np.mean([accuracy[n] for n in names]))


def _rasterize_districts(districts: Any, grid: TileGrid) -> np.ndarray:
    """District number (1..n, order of ``districts``; 0 outside) of each pixel (pixel centres)."""
    from rasterio.features import rasterize

    shapes = [(geom, i) for i, geom in enumerate(districts.geometry, start=1) if geom is not None and not geom.is_empty]
    return rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=0, dtype="int32")


def _new_roads(roads0: Any, roads1: Any) -> tuple[Any, Any]:
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


def _patches(
    gain: np.ndarray, was_forest: np.ndarray, grid: TileGrid, districts: Any, name_col: str, min_ha: float
) -> list[dict[str, Any]]:
    """New built-up patches (4-connected) as polygons, largest first, with area and former forest."""
    import shapely
    from rasterio.features import shapes
    from scipy import ndimage

    labels, n = ndimage.label(gain)
    if n == 0:
        return []
    px_ha = grid.pixel_area_m2 / 10_000.0
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


def _recommendations(result: dict[str, Any], t: UrbanTargets) -> list[dict[str, Any]]:
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


# -- the report ---------------------------------------------------------------------------------
def _build_report(view: MemoryView, a: _Analysis, targets: UrbanTargets) -> Report:
    r = a.result
    start, end, tile = r["start_month"], r["end_month"], r["tile"]
    period = f"{start}..{end}"
    t = r["tile_total"]
    recs = r["recommendations"]
    acc = r["land_cover_model"]["accuracy"]
    acc_text = (
        "ground truth (exact classes)"
        if r["land_cover_model"]["end"] == "truth"
        else (f"validation accuracy of built-up {acc[BUILT_UP]:.3f}" if acc and BUILT_UP in acc else "unknown")
    )
    districts = r["districts"]
    figure_data = {
        "builtup_change": {
            "extent_km": list(km_extent(a.grid)),
            "builtup_start_ha": t["builtup_start_ha"],
            "builtup_gained_ha": t["builtup_gained_ha"],
            "builtup_lost_ha": t["builtup_lost_ha"],
            "new_road_km": t["new_road_km"],
            "districts": [d["name"] for d in districts],
        },
        "districts": {
            "district": [d["name"] for d in districts],
            "builtup_start_ha": [d["builtup_start_ha"] for d in districts],
            "builtup_end_ha": [d["builtup_end_ha"] for d in districts],
            "builtup_end_uncertainty_ha": [d["builtup_end_uncertainty_ha"] for d in districts],
            "green_m2_per_inhabitant": [d["green_m2_per_inhabitant"] for d in districts],
            "green_target_m2_per_inhabitant": targets.green_m2_per_inhabitant,
            "road_km_start": [d["road_km_start"] for d in districts],
            "road_km_end": [d["road_km_end"] for d in districts],
        },
    }
    figures = {"builtup_change": _plot_change(a), "districts": _plot_districts(figure_data["districts"], period)}
    captions = {
        "builtup_change": f"Built-up land of tile {tile}: kept (grey), new since {start} (red), lost (blue), "
        f"roads at the start (light grey), new roads (black), census districts outlined; "
        f"km from the tile's south-west corner ({r['crs']}).",
        "districts": f"Per census district: built-up area (ha) in {start} and {end} (± uncertainty), green space "
        f"per inhabitant (m², log scale; dashed: target {targets.green_m2_per_inhabitant:g} m²), road length (km) "
        f"in {start} and {end}.",
    }

    def q_area(value: float, unc: float | None, when: str, note: str | None = None) -> dict[str, Any]:
        return quantity(value, "ha", period=when, uncertainty=unc, note=note, digits=2)

    sections = [
        {
            "title": "Built-up expansion",
            "text": f"Built-up land (land-cover class '{BUILT_UP}') in {start} and {end} ({r['months']} months), "
            f"per census district. Land cover: {acc_text}; uncertainty = area x (1 - class accuracy) + half the "
            "edge pixels.",
            "quantities": {
                f"built-up {start}": q_area(t["builtup_start_ha"], t["builtup_start_uncertainty_ha"], start),
                f"built-up {end}": q_area(t["builtup_end_ha"], t["builtup_end_uncertainty_ha"], end),
                "built-up growth": q_area(t["builtup_growth_ha"], t["builtup_growth_uncertainty_ha"], period),
                "built-up growth (relative)": quantity(t["builtup_growth_pct"], "%", period=period, digits=1),
                "built-up growth rate": quantity(t["builtup_growth_pct_per_year"], "%/yr", period=period, digits=1),
                "new built-up on former forest": q_area(t["builtup_onto_forest_ha"], None, period),
                "new built-up patches": quantity(
                    len(r["new_patches"]), "patches", period=period, note=f">= {targets.min_patch_ha:g} ha each"
                ),
            },
            "table": {
                "columns": [
                    "district",
                    f"built-up {start} (ha)",
                    f"built-up {end} (ha)",
                    "growth (ha)",
                    "± (ha)",
                    "growth (%)",
                    "growth (%/yr)",
                    "onto forest (ha)",
                ],
                "rows": [
                    [
                        d["name"],
                        d["builtup_start_ha"],
                        d["builtup_end_ha"],
                        d["builtup_growth_ha"],
                        d["builtup_growth_uncertainty_ha"],
                        d["builtup_growth_pct"],
                        d["builtup_growth_pct_per_year"],
                        d["builtup_onto_forest_ha"],
                    ]
                    for d in districts
                ],
            },
            "figures": ["builtup_change"],
        },
        {
            "title": "New built-up patches",
            "text": f"Connected areas (4-neighbour) that became built-up between {start} and {end}, largest first "
            f"(at most 15 shown; all are in summary.json under urban.new_patches with their polygons).",
            "table": {
                "columns": ["patch", "district", "area (ha)", "of which former forest (ha)", "centroid x, y (m)"],
                "rows": [
                    [
                        p["id"],
                        p["district"],
                        p["area_ha"],
                        p["from_forest_ha"],
                        f"{p['centroid'][0]:.0f}, {p['centroid'][1]:.0f}",
                    ]
                    for p in r["new_patches"][:15]
                ],
            },
        },
        {
            "title": "Green space",
            "text": "Green space = land-cover classes " + " + ".join(GREEN_SPACE_CLASSES) + f" in {end}; per "
            "inhabitant with the district's census population of the latest year up to the month. Flagged census "
            "rows are listed: per-inhabitant figures of those districts are as good as the census.",
            "quantities": {
                "green space": q_area(t["green_ha"], t["green_uncertainty_ha"], end),
                "green share": quantity(t["green_pct"], "%", period=end, digits=1),
                "green space per inhabitant": quantity(
                    t["green_m2_per_inhabitant"], "m²/inhabitant", period=end, digits=1
                ),
                "population": quantity(t["population"], "inhabitants", period=f"census {t['census_year']}", digits=0),
            },
            "table": {
                "columns": [
                    "district",
                    "green (ha)",
                    "± (ha)",
                    "green (%)",
                    "population",
                    "census year",
                    "green per inhabitant (m²)",
                    "census flags",
                ],
                "rows": [
                    [
                        d["name"],
                        d["green_ha"],
                        d["green_uncertainty_ha"],
                        d["green_pct"],
                        d["population"],
                        d["census_year"],
                        d["green_m2_per_inhabitant"],
                        ", ".join(d["census_flags"]) or "none",
                    ]
                    for d in districts
                ],
            },
        },
        {
            "title": "Road network",
            "text": f"Road length from the GIS layers as they stood in {start} and in {end} (roads filtered by "
            "start_date), clipped to each district; intersections are nodes of the noded network where three or "
            "more road ends meet.",
            "quantities": {
                f"road length {start}": quantity(t["road_km_start"], "km", period=start, digits=2),
                f"road length {end}": quantity(t["road_km_end"], "km", period=end, digits=2),
                "new roads": quantity(t["new_road_km"], "km", period=period, digits=2),
                "intersection density": quantity(t["intersections_per_km2"], "per km²", period=end, digits=1),
            },
            "table": {
                "columns": [
                    "district",
                    f"roads {start} (km)",
                    f"roads {end} (km)",
                    "new (km)",
                    "growth (%)",
                    "intersections",
                    "per km²",
                ],
                "rows": [
                    [
                        d["name"],
                        d["road_km_start"],
                        d["road_km_end"],
                        d["new_road_km"],
                        d["road_growth_pct"],
                        d["intersections"],
                        d["intersections_per_km2"],
                    ]
                    for d in districts
                ],
            },
            "figures": ["districts"],
        },
        {
            "title": "Recommendations",
            "text": "Rules over the numbers above, with their thresholds: "
            f"green space below {targets.green_m2_per_inhabitant:g} m²/inhabitant (the WHO-cited minimum) -> add "
            f"green space; built-up growth above {targets.builtup_growth_pct_per_year:g} %/yr with road length "
            f"growth below {targets.road_growth_pct:g} % -> plan access roads; more than "
            f"{targets.forest_conversion_ha:g} ha of new built-up on former forest -> flag."
            + ("" if recs else " No rule fired."),
            "bullets": [rec["text"] for rec in recs],
        },
    ]
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": view.as_of.isoformat() if view.as_of else None,
        "crs": r["crs"],
        "alerts": [rec["text"] for rec in recs],
        "sections": sections,
        "figure_data": figure_data,
        "sources": a.sources,
        "urban": r,
    }
    return Report(
        kind=REPORT_KIND,
        tile=tile,
        month=end,
        title=f"Urban planning, tile {tile}: {start} to {end}",
        summary=summary,
        figures=figures,
        captions=captions,
        headline=["builtup_change", "districts"],
    )


def _plot_change(a: _Analysis) -> bytes:
    plt = pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    grid = a.grid
    x0, y0, _, _ = grid.bounds
    built = CLASS_BY_NAME[BUILT_UP].code
    kept = (a.lc_start == built) & (a.lc_end == built)
    img = np.zeros(grid.shape, dtype=np.uint8)
    img[kept], img[a.gain], img[a.loss] = 1, 2, 3
    fig, ax = plt.subplots(figsize=(7.5, 7), dpi=100)
    ax.imshow(
        np.ma.masked_equal(img, 0),
        cmap=ListedColormap(["#9e9e9e", "#d62728", "#1f77b4"]),
        vmin=1,
        vmax=3,
        extent=km_extent(grid),
        interpolation="nearest",
    )
    for geom, label in zip(a.districts.geometry, a.districts[a.name_col], strict=True):
        for part in getattr(geom, "geoms", [geom]):
            xs, ys = part.exterior.xy
            ax.plot((np.asarray(xs) - x0) / 1000, (np.asarray(ys) - y0) / 1000, color="#333", lw=1.2)
        c = geom.representative_point()
        ax.text(
            (c.x - x0) / 1000,
            (c.y - y0) / 1000,
            str(label),
            ha="center",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.6, "lw": 0},
        )
    for roads, color, lw in ((a.roads_start, "#b0b0b0", 0.5), (a.new_roads, "black", 0.8)):
        for line in roads.geometry:
            for part in getattr(line, "geoms", [line]):
                xs, ys = part.xy
                ax.plot((np.asarray(xs) - x0) / 1000, (np.asarray(ys) - y0) / 1000, color=color, lw=lw)
    ax.set_xlim(*km_extent(grid)[:2])
    ax.set_ylim(*km_extent(grid)[2:])
    ax.legend(
        handles=[
            Patch(color="#9e9e9e", label="built-up, kept"),
            Patch(color="#d62728", label="new built-up"),
            Patch(color="#1f77b4", label="built-up lost"),
            Patch(color="black", label="new roads"),
            Patch(color="#b0b0b0", label="roads at the start"),
        ],
        loc="lower right",
        fontsize=8,
    )
    ax.set_xlabel("km east of tile origin")
    ax.set_ylabel("km north")
    ax.set_title(f"Built-up change {a.result['start_month']} to {a.result['end_month']}, tile {grid.tile_id}")
    return png(fig)


def _plot_districts(data: dict[str, Any], period: str) -> bytes:
    plt = pyplot()
    names = data["district"]
    x = np.arange(len(names))
    w = 0.38
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), dpi=100)
    ax = axes[0]
    ax.bar(x - w / 2, data["builtup_start_ha"], w, label="start", color="#bdbdbd")
    ax.bar(
        x + w / 2,
        data["builtup_end_ha"],
        w,
        yerr=data["builtup_end_uncertainty_ha"],
        label="end",
        color="#c0392b",
        capsize=3,
    )
    ax.set_ylabel("built-up (ha)")
    ax.set_title("Built-up area")
    ax.legend(fontsize=8)
    ax = axes[1]
    vals = [np.nan if v is None else v for v in data["green_m2_per_inhabitant"]]
    ax.bar(x, vals, 0.6, color="#2e7d32")
    ax.axhline(data["green_target_m2_per_inhabitant"], ls="--", color="k", lw=1, label="target")
    ax.set_yscale("log")
    for xi, v in zip(x, vals, strict=True):
        ax.annotate(
            "n/a" if v != v else f"{v:.0f}", (xi, v if v == v and v > 0 else 1.0), ha="center", va="bottom", fontsize=8
        )
    ax.set_ylabel("green space per inhabitant (m²)")
    ax.set_title("Green space per inhabitant")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.bar(x - w / 2, data["road_km_start"], w, label="start", color="#bdbdbd")
    ax.bar(x + w / 2, data["road_km_end"], w, label="end", color="#555")
    ax.set_ylabel("road length (km)")
    ax.set_title("Road network")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(x, names, rotation=20, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Census districts, {period}")
    return png(fig)
