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

import asyncio
import io
from dataclasses import asdict, fields
from typing import Any

import numpy as np

from memories.applications.awaitable import AwaitableReport
from memories.applications.common import pixel_ha
from memories.applications.report import Report
from memories.applications.terrain_exposure import built_up_slope, read_terrain
from memories.applications.urban_figures import build_report
from memories.applications.urban_metrics import (
    BUILT_UP,
    GREEN_SPACE_CLASSES,
    REPORT_KIND,
    WHO_GREEN_M2_PER_INHABITANT,
    UrbanAnalysis,
    UrbanTargets,
    class_accuracy,
    district_numbers,
    district_raster,
    mean_accuracy,
    new_built_up_patches,
    new_roads,
    recommendations,
    sum_census,
)
from memories.classes import CLASS_BY_NAME
from memories.errors import ConfigError, MissingDataError
from memories.grid import TileGrid
from memories.memory.view import MemoryView, describe
from memories.months import add_months, month_key, months_between, parse_month

__all__ = [
    "BUILT_UP",
    "GREEN_SPACE_CLASSES",
    "REPORT_KIND",
    "WHO_GREEN_M2_PER_INHABITANT",
    "UrbanPlanner",
    "UrbanTargets",
]


class UrbanPlanner(AwaitableReport):
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

    async def aanalyze(self, tile: str, start_month: str, end_month: str) -> dict[str, Any]:
        """:meth:`analyze`, awaitable (run in a worker thread)."""
        return await asyncio.to_thread(self.analyze, tile, start_month, end_month)

    def report(self, tile: str, month: str) -> Report:
        """The urban report of one tile-month, comparing it with :meth:`reference_month`."""
        start = self.reference_month(tile, month)
        a = self._analysis(tile, start, month)
        return build_report(self.view, a, self.targets)

    # -- the analysis ---------------------------------------------------------------------------
    def _analysis(self, tile: str, start: str, end: str) -> UrbanAnalysis:
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
        accuracy = class_accuracy(view, [rec_start, rec_end])
        px_ha = pixel_ha(grid)
        n_months = len(months_between(start, end)) - 1
        built = CLASS_BY_NAME[BUILT_UP].code
        forest = CLASS_BY_NAME["forest"].code
        green_codes = [CLASS_BY_NAME[n].code for n in GREEN_SPACE_CLASSES]
        b0, b1 = lc0 == built, lc1 == built
        gain, loss = b1 & ~b0, b0 & ~b1
        green1 = np.isin(lc1, green_codes)
        label = district_raster(districts, grid)
        acc_b = accuracy.get(BUILT_UP) if accuracy is not None else None
        acc_g = mean_accuracy(accuracy, GREEN_SPACE_CLASSES)
        new1 = new_roads(roads0, roads1)[1]

        # The layers every district is measured on (the tile total too).
        shared: dict[str, Any] = {
            "b0": b0,
            "b1": b1,
            "gain": gain,
            "loss": loss,
            "green": green1,
            "was_forest": lc0 == forest,
            "px_ha": px_ha,
            "acc_b": acc_b,
            "acc_g": acc_g,
            "roads0": roads0,
            "roads1": roads1,
            "new_roads": new1,
            "n_months": n_months,
        }
        rows: list[dict[str, Any]] = []
        for i, d in enumerate(districts.itertuples(index=False), start=1):
            name = str(getattr(d, self.district_name))
            rows.append(
                district_numbers(
                    name=name,
                    district_id=str(getattr(d, "district_id", "") or ""),
                    polygon=d.geometry,
                    inside=label == i,
                    census=census.get(name),
                    **shared,
                )
            )
        from shapely.geometry import box

        total = district_numbers(
            name="tile",
            district_id=tile,
            polygon=box(*grid.bounds),
            inside=np.ones(grid.shape, dtype=bool),
            census=sum_census([census.get(r["name"]) for r in rows]),
            **shared,
        )
        patches = new_built_up_patches(
            gain, lc0 == forest, grid, districts, self.district_name, self.targets.min_patch_ha
        )
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
        result["recommendations"] = recommendations(result, self.targets)
        terrain, terrain_source = read_terrain(view, tile)
        result["terrain"] = (
            {**built_up_slope(terrain, gain), "source": terrain_source}
            if terrain is not None
            else {"missing": terrain_source}
        )
        sources = {
            f"land_cover {start}": describe(rec_start),
            f"land_cover {end}": describe(rec_end),
            f"gis_layers {start}": describe(view.record("gis_layers", tile, start)),
            f"gis_layers {end}": describe(view.record("gis_layers", tile, end)),
            "socioeconomic_regions": describe(view.record("socioeconomic_regions", tile)),
        }
        if terrain is not None:
            sources["terrain"] = str(terrain_source)
        return UrbanAnalysis(result, grid, lc0, lc1, gain, loss, districts, roads0, new1, sources, self.district_name)

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
