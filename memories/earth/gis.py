"""GIS layers of a tile: read from a file, reprojected to the tile CRS, clipped, written.

Sources are anything GDAL's vector drivers read (GeoPackage, GeoJSON, Shapefile,
OSM PBF) with OpenStreetMap-style tags. A feature with a ``start_date`` later than
the month asked for does not exist yet in that month.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import numpy as np

from memories.classes import NO_LABEL, OSM_LANDUSE_TO_CLASS
from memories.errors import DataSourceError
from memories.grid import TileGrid
from memories.store.paths import StorageRoot

GIS_LAYERS: tuple[str, ...] = ("buildings", "roads", "landuse", "water")
WATER_CLASS = 1
BUILT_CLASS = 5


def read_layer(source: str, layer: str, grid: TileGrid, *, as_of: datetime | None = None) -> Any:
    """One layer of a vector source, on the tile grid's CRS and clipped to its bounds.

    Invalid geometries are repaired (``make_valid``); the count of repairs is kept in
    ``gdf.attrs["repaired"]``.

    Args:
        source: path of a vector file GDAL reads.
        layer: layer name in that file.
        grid: the tile.
        as_of: keep only features whose ``start_date`` is on or before this instant.
    """
    import geopandas as gpd
    import pyogrio
    from shapely.geometry import box

    try:
        src_crs = pyogrio.read_info(source, layer=layer)["crs"]
    except Exception as e:
        raise DataSourceError(f"cannot read layer {layer!r} of {source}: {e}") from e
    # Pre-filter by the tile's footprint in the source CRS, then clip exactly.
    footprint = gpd.GeoSeries([box(*grid.bounds)], crs=grid.crs).to_crs(src_crs)
    gdf = gpd.read_file(source, layer=layer, bbox=tuple(footprint.total_bounds), engine="pyogrio")
    if as_of is not None and "start_date" in gdf.columns:
        start = gdf["start_date"].astype("string")
        keep = start.isna() | (start <= as_of.strftime("%Y-%m-%d"))
        gdf = gdf[keep.to_numpy(dtype=bool)]
    gdf = gdf.to_crs(grid.crs)
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        gdf.loc[invalid, "geometry"] = gdf.geometry[invalid].make_valid()
    gdf = gdf.clip(box(*grid.bounds))
    gdf = gdf[~gdf.geometry.is_empty].reset_index(drop=True)
    gdf.attrs["repaired"] = int(invalid.sum())
    return gdf


def rasterize_labels(layers: dict[str, Any], grid: TileGrid) -> np.ndarray:
    """Land-cover labels (uint8 class codes, 0 = unknown) burned from GIS layers.

    Land-use polygons first, then water, then buildings on top, so the most
    specific layer wins.
    """
    from rasterio.features import rasterize

    shapes: list[tuple[Any, int]] = []
    landuse = layers.get("landuse")
    if landuse is not None and len(landuse):
        codes = landuse["landuse"].map(OSM_LANDUSE_TO_CLASS)
        shapes += [(g, int(c)) for g, c in zip(landuse.geometry, codes) if c == c and c]
    water = layers.get("water")
    if water is not None and len(water):
        shapes += [(g, WATER_CLASS) for g in water.geometry]
    buildings = layers.get("buildings")
    if buildings is not None and len(buildings):
        shapes += [(g, BUILT_CLASS) for g in buildings.geometry]
    if not shapes:
        return np.full(grid.shape, NO_LABEL, dtype=np.uint8)
    return rasterize(
        shapes, out_shape=grid.shape, transform=grid.transform, fill=NO_LABEL, dtype="uint8"
    )


def write_geoparquet(root: StorageRoot, uri: str, gdf: Any) -> int:
    """Write a GeoDataFrame as GeoParquet 1.1 with a bbox covering column; returns bytes written.

    The file appears whole or not at all (``StorageRoot.write_bytes``).
    """
    buf = io.BytesIO()
    gdf.to_parquet(buf, index=False, schema_version="1.1.0", write_covering_bbox=True)
    data = buf.getvalue()
    root.write_bytes(uri, data)
    return len(data)


def read_geoparquet(root: StorageRoot, uri: str) -> Any:
    """Read a GeoParquet file written by ``write_geoparquet``."""
    import geopandas as gpd

    return gpd.read_parquet(io.BytesIO(root.read_bytes(uri)))
