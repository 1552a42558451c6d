"""Census districts of the sample world: polygons and a yearly table with known flaws.

Each tile is cut into four districts (its quadrants). The table gives, per
district and year, ``population`` (persons) and ``income_per_capita`` (EUR a
year), derived from the houses standing in the district without random numbers.
Two flaws are planted on purpose, so the socioeconomic join has something to
find, and recorded in ``census/truth.json``:

- a **gap**: the second district of each tile has no row for ``GAP_YEAR``;
- an **inconsistency**: the fourth district's income of the last year was
  entered in cents instead of euros (x 100), a year-on-year jump.

On disk: ``census/districts.gpkg`` (layer ``districts``: ``district_id``,
``name``, ``tile_id``; EPSG:4326) and ``census/districts.csv`` (long format:
``district_id, name, year, population, income_per_capita``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import shapely

from memories.grid import TileGrid
from memories.sample.landscape import Landscape

YEARS: tuple[int, ...] = (2018, 2019, 2020, 2021, 2022, 2023)
GAP_YEAR = 2020
UNIT_ERROR_FACTOR = 100
DISTRICT_NAMES: tuple[tuple[str, str, str, str], ...] = (
    ("Vrhovci", "Rakova Jelsa", "Murgle", "Trnovo"),
    ("Les Tilleuls", "Bellevue", "Le Moulin", "Saint-Martin"),
    ("Oberfeld", "Mühlbach", "Lindenau", "Steinach"),
    ("Kertváros", "Újtelep", "Malomszer", "Szőlőhegy"),
)
"""Names of the four districts (NW, NE, SW, SE) of each catalogue tile, by tile index."""

PERSONS_PER_HOUSE = 3.1
BASE_POPULATION = 400
POPULATION_GROWTH = 0.01
BASE_INCOME_EUR = 18000.0
INCOME_GROWTH = 0.03


def district_polygons(tile: TileGrid, tile_index: int) -> list[dict[str, Any]]:
    """The four quadrant districts of a tile in its CRS: ``district_id``, ``name``, ``geometry``."""
    x0, y0, x1, y1 = tile.bounds
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    boxes = [(x0, ym, xm, y1), (xm, ym, x1, y1), (x0, y0, xm, ym), (xm, y0, x1, ym)]
    return [
        {"district_id": f"{tile.tile_id}-D{q + 1}", "name": DISTRICT_NAMES[tile_index][q], "geometry": shapely.box(*b)}
        for q, b in enumerate(boxes)
    ]


def district_table(landscape: Landscape, tile_index: int) -> list[dict[str, Any]]:
    """Rows ``district_id, name, year, population, income_per_capita`` with the two planted flaws."""
    houses = [b["geometry"].centroid for b in landscape.features["buildings"] if b["start_date"] is None]
    rows = []
    for q, district in enumerate(district_polygons(landscape.tile, tile_index)):
        n_houses = sum(district["geometry"].contains(h) for h in houses)
        for k, year in enumerate(YEARS):
            if q == 1 and year == GAP_YEAR:
                continue
            population = round((BASE_POPULATION + PERSONS_PER_HOUSE * n_houses) * (1 + POPULATION_GROWTH) ** k)
            income = round((BASE_INCOME_EUR + 900 * tile_index + 1500 * q) * (1 + INCOME_GROWTH) ** k)
            if q == 3 and year == YEARS[-1]:
                income *= UNIT_ERROR_FACTOR
            rows.append(
                {
                    "district_id": district["district_id"],
                    "name": district["name"],
                    "year": year,
                    "population": population,
                    "income_per_capita": income,
                }
            )
    return rows


def write_census(folder: Path, landscapes: list[Landscape], tile_indices: list[int]) -> dict[str, Any]:
    """Write ``districts.gpkg``, ``districts.csv`` and ``truth.json`` under ``folder``; returns the truth."""
    import geopandas as gpd
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    polygons, rows = [], []
    truth: dict[str, Any] = {"gaps": [], "jumps": []}
    for landscape, tile_index in zip(landscapes, tile_indices):
        tile = landscape.tile
        frame = gpd.GeoDataFrame(district_polygons(tile, tile_index), geometry="geometry", crs=tile.crs)
        frame["tile_id"] = tile.tile_id
        polygons.append(frame.to_crs("EPSG:4326"))
        rows += district_table(landscape, tile_index)
        truth["gaps"].append([f"{tile.tile_id}-D2", GAP_YEAR])
        truth["jumps"].append([f"{tile.tile_id}-D4", YEARS[-1]])
    gdf = gpd.GeoDataFrame(pd.concat(polygons, ignore_index=True), geometry="geometry", crs="EPSG:4326")
    path = folder / "districts.gpkg"
    path.unlink(missing_ok=True)
    gdf.to_file(path, layer="districts", driver="GPKG", engine="pyogrio")
    pd.DataFrame(rows).to_csv(folder / "districts.csv", index=False)
    (folder / "truth.json").write_text(json.dumps(truth))
    return truth
