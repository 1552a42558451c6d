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
from dataclasses import fields
from typing import Any

import numpy as np
from shapely.geometry import box

from memories.applications.awaitable import AwaitableReport
from memories.applications.common import pixel_ha
from memories.applications.maps import basemap
from memories.applications.report import Report
from memories.applications.terrain_exposure import built_up_slope, read_terrain
from memories.applications.urban_land_use import read_land_use, read_saliency
from memories.applications.urban_metrics import (
    BUILT_UP,
    GREEN_SPACE_CLASSES,
    REPORT_KIND,
    WHO_GREEN_M2_PER_INHABITANT,
    Census,
    LandCoverModel,
    Layers,
    NewPatch,
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
from memories.applications.urban_report import build_report
from memories.classes import CLASS_BY_NAME
from memories.errors import ConfigError, MissingDataError
from memories.grid import TileGrid
from memories.memory.view import MemoryView, describe
from memories.months import add_months, month_key, months_between, parse_month
from memories.products import GIS_LAYERS, LAND_COVER, MULTIMODAL_LAND_USE, SOCIOECONOMIC_REGIONS

__all__ = [
    "BUILT_UP",
    "GREEN_SPACE_CLASSES",
    "REPORT_KIND",
    "WHO_GREEN_M2_PER_INHABITANT",
    "UrbanAnalysis",
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
        held = self.view.months(LAND_COVER, tile, until=month)
        if not held:
            self.view.record(LAND_COVER, tile, month)  # raises with the fix
        year_before = month_key(add_months(parse_month(month), -12))
        return year_before if year_before in held else held[0]

    def analyze(self, tile: str, start_month: str, end_month: str) -> UrbanAnalysis:
        """The numbers of ``tile`` between two months (``YYYY-MM``): every read of the report happens here.

        Returns:
            An :class:`~memories.applications.urban_metrics.UrbanAnalysis` (its fields document the units;
            ``to_json()`` is the report's ``urban`` summary). Areas in ha, lengths in km, densities per km²,
            populations in inhabitants; every area has its ``*_uncertainty_ha`` (± ha).

        Raises:
            ConfigError: ``start_month`` after ``end_month``.
            MissingDataError: a month, the GIS layers or the census regions the memory lacks.
        """
        if start_month > end_month:
            raise ConfigError(f"start_month {start_month} is after end_month {end_month}; pass the earlier month first")
        return self._analysis(tile, start_month, end_month)

    async def aanalyze(self, tile: str, start_month: str, end_month: str) -> UrbanAnalysis:
        """:meth:`analyze`, awaitable (run in a worker thread)."""
        return await asyncio.to_thread(self.analyze, tile, start_month, end_month)

    def report(self, tile: str, month: str) -> Report:
        """The urban report of one tile-month, comparing it with :meth:`reference_month`."""
        start = self.reference_month(tile, month)
        return build_report(self.analyze(tile, start, month), self.targets)

    # -- the analysis ---------------------------------------------------------------------------
    def _analysis(self, tile: str, start: str, end: str) -> UrbanAnalysis:
        view = self.view
        rec_start, rec_end = view.record(LAND_COVER, tile, start), view.record(LAND_COVER, tile, end)
        ds_end = view.raster(LAND_COVER, tile, end)
        grid = TileGrid.from_dict(ds_end.attrs["grid"])
        lc0 = np.asarray(view.raster(LAND_COVER, tile, start)["land_cover"].values)
        lc1 = np.asarray(ds_end["land_cover"].values)
        districts = self._districts(tile, grid)
        census = self._census(tile, districts, end)
        roads0 = view.layers(tile, start, ["roads"])["roads"]
        roads1 = view.layers(tile, end, ["roads"])["roads"]
        accuracy = class_accuracy(view, [rec_start, rec_end])
        lay = _layers(lc0, lc1, grid, accuracy, roads0, roads1, len(months_between(start, end)) - 1)
        label = district_raster(districts, grid)
        rows = [
            district_numbers(
                str(getattr(d, self.district_name)),
                str(getattr(d, "district_id", "") or ""),
                d.geometry,
                label == i,
                census.get(str(getattr(d, self.district_name))),
                lay,
            )
            for i, d in enumerate(districts.itertuples(index=False), start=1)
        ]
        total = district_numbers(
            "tile",
            tile,
            box(*grid.bounds),
            np.ones(grid.shape, dtype=bool),
            sum_census([census.get(r.name) for r in rows]),
            lay,
        )
        patches = new_built_up_patches(
            lay.gain, lay.was_forest, grid, districts, self.district_name, self.targets.min_patch_ha
        )
        terrain, terrain_source = read_terrain(view, tile)
        land_use = read_land_use(view, tile, end, grid, lc1, label > 0)
        sources = _sources(view, tile, start, end, [rec_start, rec_end])
        if terrain is not None:
            sources["terrain"] = str(terrain_source)
        if land_use.source is not None:
            sources[f"{MULTIMODAL_LAND_USE} {end}"] = land_use.source
        return UrbanAnalysis(
            tile=tile,
            start_month=start,
            end_month=end,
            months=lay.n_months,
            crs=grid.crs,
            pixel_area_m2=grid.pixel_area_m2,
            definitions=DEFINITIONS,
            targets=self.targets,
            land_cover_model=LandCoverModel(rec_start.stats.get("model_id"), rec_end.stats.get("model_id"), accuracy),
            tile_total=total,
            districts=rows,
            new_patches=patches,
            recommendations=recommendations(rows, start, end, self.targets),
            terrain={**built_up_slope(terrain, lay.gain), "source": terrain_source}
            if terrain is not None
            else {"missing": terrain_source},
            land_use=land_use,
            saliency=read_saliency(view, tile, end, _patch_pixel(patches, grid)),
            grid=grid,
            lc_start=lc0,
            lc_end=lc1,
            gain=lay.gain,
            loss=lay.loss,
            district_frame=districts,
            roads_start=roads0,
            new_roads=lay.new_roads,
            base=basemap(view, tile, end, grid),
            sources=sources,
            name_col=self.district_name,
            as_of=view.as_of.isoformat() if view.as_of else None,
        )

    def _districts(self, tile: str, grid: TileGrid) -> Any:
        regions = self.view.table(SOCIOECONOMIC_REGIONS, tile)
        if self.district_name not in regions.columns:
            raise ConfigError(
                f"socioeconomic_regions of {tile} has no column {self.district_name!r} (it has "
                f"{sorted(c for c in regions.columns if c != 'geometry')}); pass district_name= to UrbanPlanner"
            )
        regions = regions.to_crs(grid.crs) if regions.crs is not None else regions.set_crs(grid.crs)
        footprint = box(*grid.bounds)
        regions = regions[regions.intersects(footprint)].copy()
        if regions.empty:
            raise MissingDataError(
                f"no census district of socioeconomic_regions covers tile {tile}; materialize "
                f"socioeconomic_regions for {tile} with a district layer that covers it"
            )
        regions["geometry"] = regions.geometry.intersection(footprint)
        return regions.sort_values(self.district_name).reset_index(drop=True)

    def _census(self, tile: str, districts: Any, month: str) -> dict[str, Census]:
        """District name -> population of the latest census year <= the month's year, with its flags."""
        import pandas as pd

        year = int(month[:4])
        root = self.view.root
        uri = root.tile_file_uri(SOCIOECONOMIC_REGIONS, tile, "table.parquet")
        try:
            table = pd.read_parquet(io.BytesIO(root.read_bytes(uri)))
        except (FileNotFoundError, OSError):
            table = None
        out: dict[str, Census] = {}
        for d in districts.itertuples(index=False):
            name = str(getattr(d, self.district_name))
            if table is None or "region_id" not in table.columns:
                pop = getattr(d, "latest_population", None)
                out[name] = Census(
                    None if pop is None or pop != pop else float(pop),
                    None,
                    ["no census table: latest population of the regions"],
                )
            else:
                out[name] = _district_census(table[table["region_id"] == name], year)
        return out


DEFINITIONS: dict[str, str] = {
    "built_up": f"land-cover class '{BUILT_UP}'",
    "green_space": "land-cover classes " + " + ".join(GREEN_SPACE_CLASSES),
    "new_road": "a road of the end month's GIS layers whose osm_id the start month lacks",
    "intersection": "a node of the noded road network where three or more road ends meet",
    "uncertainty": "area x (1 - class validation accuracy) + 1/2 x edge pixels x pixel area",
    "population": "the district's census population of the latest year <= the end month's year",
}
"""The terms of the urban report, as its summary states them."""


def _sources(view: MemoryView, tile: str, start: str, end: str, land_cover: list[Any]) -> dict[str, str]:
    """Input -> its record as the report names it: land cover and GIS layers of both months, the census."""
    return {
        f"land_cover {start}": describe(land_cover[0]),
        f"land_cover {end}": describe(land_cover[1]),
        f"gis_layers {start}": describe(view.record(GIS_LAYERS, tile, start)),
        f"gis_layers {end}": describe(view.record(GIS_LAYERS, tile, end)),
        "socioeconomic_regions": describe(view.record(SOCIOECONOMIC_REGIONS, tile)),
    }


def _district_census(rows: Any, year: int) -> Census:
    """The census of one district (its rows of the census table) for ``year``: the latest year up to it."""
    rows = rows[rows["year"] <= year].sort_values("year")
    if rows.empty:
        return Census(None, None, [f"no census row up to {year}"])
    latest_year = int(rows["year"].iloc[-1])
    valid = rows[rows["population"].notna()]
    if valid.empty:
        return Census(None, latest_year, ["population missing"])
    row = valid.iloc[-1]
    flags: list[str] = []
    if int(row["year"]) != latest_year:
        flags.append(f"{latest_year} population missing: {int(row['year'])} used")
    flags += [f for f in str(row.get("flags", "") or "").split(",") if f]
    return Census(float(row["population"]), int(row["year"]), flags)


def _layers(
    lc0: np.ndarray,
    lc1: np.ndarray,
    grid: TileGrid,
    accuracy: dict[str, float] | None,
    roads0: Any,
    roads1: Any,
    n_months: int,
) -> Layers:
    """The masks and roads every district is measured on."""
    built = CLASS_BY_NAME[BUILT_UP].code
    b0, b1 = lc0 == built, lc1 == built
    return Layers(
        b0=b0,
        b1=b1,
        gain=b1 & ~b0,
        loss=b0 & ~b1,
        green=np.isin(lc1, [CLASS_BY_NAME[n].code for n in GREEN_SPACE_CLASSES]),
        was_forest=lc0 == CLASS_BY_NAME["forest"].code,
        px_ha=pixel_ha(grid),
        acc_b=accuracy.get(BUILT_UP) if accuracy is not None else None,
        acc_g=mean_accuracy(accuracy, GREEN_SPACE_CLASSES),
        roads0=roads0,
        roads1=roads1,
        new_roads=new_roads(roads0, roads1)[1],
        n_months=n_months,
    )


def _patch_pixel(patches: list[NewPatch], grid: TileGrid) -> tuple[int, int] | None:
    """(row, col) of the largest new patch's centroid: where the saliency window is centred (None: no patch)."""
    if not patches:
        return None
    x, y = patches[0].centroid
    col, row = ~grid.transform @ (x, y)
    return int(row), int(col)
