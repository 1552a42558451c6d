"""The GIS layers of the sample world as OpenStreetMap would hand them over.

One GeoPackage, ``gis/world.gpkg``, with the layers ``landuse``, ``water``,
``roads``, ``buildings`` and ``places`` of all tiles together, in EPSG:4326,
OSM-like tag columns, a ``start_date`` (ISO date or null) and a stable integer
``osm_id``. Streets carry a ``name``; about one house in three an address
(``addr:street`` = the nearest named street, ``addr:housenumber`` counting along
it) and a few a ``name`` (town hall, school, ...). ``places`` holds named points:
the town (``place=town``), the census districts (``place=suburb``, the
``memories.sample.census`` names) and one ``place=neighbourhood`` per built-up
land-use cell and for the new district (with its ``start_date``).
Names are assigned without drawing random numbers, so the landscape and the
scenes of a world are the same with or without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import shapely

from memories.sample.features import LAYERS
from memories.sample.landscape import Landscape

if TYPE_CHECKING:
    import geopandas as gpd

GIS_CRS = "EPSG:4326"

LAYER_COLUMNS: dict[str, tuple[str, ...]] = {
    "landuse": ("landuse", "class_code"),
    "water": ("natural", "water", "waterway", "class_code", "name"),
    "roads": ("highway", "name"),
    "buildings": ("building", "name", "addr:street", "addr:housenumber"),
    "places": ("place", "name"),
}
"""Tag columns of each layer, besides ``osm_id``, ``tile_id`` and ``start_date``."""

GIS_LAYERS: tuple[str, ...] = (*LAYERS, "places")
"""The layers of ``gis/world.gpkg``."""

_LAYER_CODE = {name: i + 1 for i, name in enumerate(GIS_LAYERS)}

TOWN_NAMES: tuple[str, ...] = ("Brezovica", "Saint-Rémy", "Kirchdorf", "Nagyvár")
"""The town of each catalogue tile, by tile index."""
STREET_STEMS: tuple[str, ...] = (
    "Linden", "Mill", "Church", "Station", "Orchard", "Meadow", "Castle", "Bridge", "Garden", "School",
    "Market", "Willow", "Chestnut", "Brook", "Vineyard", "Forge", "Poplar", "Harbour", "Hill", "Oak",
)  # fmt: skip
STREET_KINDS: tuple[str, ...] = ("Street", "Lane", "Road", "Way")
LANDMARKS: tuple[str, ...] = (
    "Town Hall", "Primary School", "Health Centre", "Public Library", "Fire Station",
    "Post Office", "Parish Church", "Sports Hall", "Market Hall", "Railway Station",
)  # fmt: skip
NEIGHBOURHOODS: tuple[str, ...] = (
    "Old Town", "Riverside", "Upper Fields", "Green Hill", "Lakeview", "Mill Quarter", "Stone Gate", "Sunny Slope",
)  # fmt: skip
ADDRESS_EVERY = 3
"""One house in ``ADDRESS_EVERY`` carries an address."""
LANDMARK_EVERY = 25
"""One house in ``LANDMARK_EVERY`` carries a landmark ``name``."""


def layer_frames(landscapes: list[Landscape], tile_indices: list[int]) -> dict[str, gpd.GeoDataFrame]:
    """The four layers of the given tiles as GeoDataFrames in EPSG:4326.

    ``osm_id`` is ``tile_index * 10**8 + layer_code * 10**7 + n``, stable for a
    given seed and tile size.
    """
    import geopandas as gpd
    import pandas as pd

    frames: dict[str, gpd.GeoDataFrame] = {}
    named = [named_features(landscape, tile_index) for landscape, tile_index in zip(landscapes, tile_indices)]
    for layer in GIS_LAYERS:
        columns = ["osm_id", "tile_id", *LAYER_COLUMNS[layer], "start_date"]
        parts = []
        for landscape, tile_index, layers in zip(landscapes, tile_indices, named):
            feats = layers[layer]
            base = tile_index * 10**8 + _LAYER_CODE[layer] * 10**7
            frame = gpd.GeoDataFrame(
                {
                    "osm_id": [base + n for n in range(len(feats))],
                    "tile_id": landscape.tile.tile_id,
                    **{c: [f.get(c) for f in feats] for c in columns[2:]},
                },
                geometry=[f["geometry"] for f in feats],
                crs=landscape.tile.crs,
            )
            parts.append(frame.to_crs(GIS_CRS))
        merged = pd.concat(parts, ignore_index=True)
        merged["osm_id"] = merged["osm_id"].astype("int64")
        merged["start_date"] = merged["start_date"].astype(object)
        frames[layer] = gpd.GeoDataFrame(merged, geometry="geometry", crs=GIS_CRS)
    return frames


def named_features(landscape: Landscape, tile_index: int) -> dict[str, list[dict[str, Any]]]:
    """The tile's features with names and addresses added, plus its ``places``.

    Deterministic without random numbers: streets are named in feature order,
    houses get the nearest named street (within 80 m) and a number counting along
    it, every ``ADDRESS_EVERY``-th house keeps its address and every
    ``LANDMARK_EVERY``-th (from the 3rd) a landmark name.
    """
    from memories.sample.census import district_polygons

    tile = landscape.tile
    feats = landscape.features
    roads = []
    for n, road in enumerate(feats["roads"]):
        stem = STREET_STEMS[(n + 7 * tile_index) % len(STREET_STEMS)]
        kind = STREET_KINDS[(n // len(STREET_STEMS)) % len(STREET_KINDS)]
        roads.append({**road, "name": f"{stem} {kind}" if road["highway"] == "residential" else f"{stem} Avenue"})
    streets = [r for r in roads if r["highway"] == "residential"] or roads
    tree = shapely.STRtree([r["geometry"] for r in streets])
    numbers: dict[str, int] = {}
    buildings = []
    for n, house in enumerate(feats["buildings"]):
        extra: dict[str, Any] = {"name": None, "addr:street": None, "addr:housenumber": None}
        centre = house["geometry"].centroid
        nearest = (
            int(tree.query_nearest(centre, max_distance=80.0, all_matches=False)[0]) if n % ADDRESS_EVERY == 0 else -1
        )
        if nearest >= 0:
            street = streets[nearest]["name"]
            numbers[street] = numbers.get(street, 0) + 1
            extra.update({"addr:street": street, "addr:housenumber": str(numbers[street])})
        if n % LANDMARK_EVERY == 2:
            extra["name"] = LANDMARKS[(n // LANDMARK_EVERY) % len(LANDMARKS)]
        buildings.append({**house, **extra})
    water = [
        {**w, "name": "Lake " + TOWN_NAMES[tile_index] if w["water"] == "lake" else "Town River"}
        for w in feats["water"]
    ]
    return {
        "landuse": feats["landuse"],
        "water": water,
        "roads": roads,
        "buildings": buildings,
        "places": _places(landscape, tile_index, district_polygons(tile, tile_index)),
    }


def _places(landscape: Landscape, tile_index: int, districts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Named points: the town, the census districts, the built-up neighbourhoods."""
    built = [f for f in landscape.features["landuse"] if f["class_code"] == 5]
    old = [f for f in built if f["start_date"] is None]
    town_cell = max(old or built, key=lambda f: f["geometry"].area)
    places = [
        {
            "geometry": town_cell["geometry"].point_on_surface(),
            "place": "town",
            "name": TOWN_NAMES[tile_index],
            "start_date": None,
        }
    ]
    places += [
        {"geometry": d["geometry"].point_on_surface(), "place": "suburb", "name": d["name"], "start_date": None}
        for d in districts
    ]
    for n, cell in enumerate(built):
        name = "New " + TOWN_NAMES[tile_index] if cell["start_date"] else NEIGHBOURHOODS[n % len(NEIGHBOURHOODS)]
        places.append(
            {
                "geometry": cell["geometry"].point_on_surface(),
                "place": "neighbourhood",
                "name": name,
                "start_date": cell["start_date"],
            }
        )
    return places


def write_gis(path: Path, frames: dict[str, gpd.GeoDataFrame]) -> None:
    """Write the layers into one GeoPackage, replacing any file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    for layer, frame in frames.items():
        frame.to_file(path, layer=layer, driver="GPKG", engine="pyogrio")
