"""The GIS layers of the sample world as OpenStreetMap would hand them over.

One GeoPackage, ``gis/world.gpkg``, with the layers ``landuse``, ``water``,
``roads`` and ``buildings`` of all tiles together, in EPSG:4326, OSM-like tag
columns, a ``start_date`` (ISO date or null) and a stable integer ``osm_id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from memories.sample.features import LAYERS
from memories.sample.landscape import Landscape

if TYPE_CHECKING:
    import geopandas as gpd

GIS_CRS = "EPSG:4326"

LAYER_COLUMNS: dict[str, tuple[str, ...]] = {
    "landuse": ("landuse", "class_code"),
    "water": ("natural", "water", "waterway", "class_code"),
    "roads": ("highway",),
    "buildings": ("building",),
}
"""Tag columns of each layer, besides ``osm_id``, ``tile_id`` and ``start_date``."""

_LAYER_CODE = {name: i + 1 for i, name in enumerate(LAYERS)}


def layer_frames(landscapes: list[Landscape], tile_indices: list[int]) -> dict[str, gpd.GeoDataFrame]:
    """The four layers of the given tiles as GeoDataFrames in EPSG:4326.

    ``osm_id`` is ``tile_index * 10**8 + layer_code * 10**7 + n``, stable for a
    given seed and tile size.
    """
    import geopandas as gpd
    import pandas as pd

    frames: dict[str, gpd.GeoDataFrame] = {}
    for layer in LAYERS:
        columns = ["osm_id", "tile_id", *LAYER_COLUMNS[layer], "start_date"]
        parts = []
        for landscape, tile_index in zip(landscapes, tile_indices):
            feats = landscape.features[layer]
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


def write_gis(path: Path, frames: dict[str, gpd.GeoDataFrame]) -> None:
    """Write the layers into one GeoPackage, replacing any file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    for layer, frame in frames.items():
        frame.to_file(path, layer=layer, driver="GPKG", engine="pyogrio")
