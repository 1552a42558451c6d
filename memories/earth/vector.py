"""One layer of a vector file, read, repaired and reprojected: the reader beneath ``gis`` and ``features``.

Sources are OSM PBF extracts (GDAL's OSM driver, ``memories.earth.osm``),
GeoPackage, GeoJSON and Shapefile, with OpenStreetMap-style tags; the reader is
chosen from the file name (``source_format``), and the layers a file offers by
``source_layers`` (a one-layer file is one layer, never all of them). A feature
with a ``start_date`` later than ``as_of`` does not exist yet. Invalid geometries
are repaired and counted, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from memories.earth.osm import OSM_EXTENSIONS, OSM_LAYERS, read_osm_layer
from memories.errors import ConfigError, DataSourceError
from memories.grid import TileGrid

__all__ = ["VECTOR_FORMATS", "read_layer", "source_format", "source_layers"]


VECTOR_FORMATS: dict[str, str] = {
    ".gpkg": "gpkg",
    ".geojson": "geojson",
    ".json": "geojson",
    ".shp": "shapefile",
    **{ext: "osm" for ext in OSM_EXTENSIONS},
}
"""File name endings we read, and the format each one means."""

_FAMILIES = {"Polygon": "polygon", "MultiPolygon": "polygon", "LineString": "line", "MultiLineString": "line"}
_FAMILIES.update({"LinearRing": "line", "Point": "point", "MultiPoint": "point"})


def source_format(source: str) -> str:
    """The format of a vector file from its name: ``osm``, ``gpkg``, ``geojson`` or ``shapefile``."""
    lower = source.lower()
    for ext in sorted(VECTOR_FORMATS, key=len, reverse=True):
        if lower.endswith(ext):
            return VECTOR_FORMATS[ext]
    raise ConfigError(
        f"vector source {source!r} has an ending we do not read; use one of {sorted(VECTOR_FORMATS)} "
        "(OSM PBF, GeoPackage, GeoJSON, Shapefile)"
    )


def source_layers(source: str, layer_map: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our layer name -> the layer of the file that holds it: the one policy of which layers a vector file offers.

    - An OSM PBF extract offers every layer of ``OSM_LAYERS`` (queries over GDAL's
      OSM layers, ``memories.earth.osm``).
    - Any other file offers its own layers under their own names: each layer of a
      GeoPackage; the one layer of a GeoJSON or Shapefile (GDAL names it after the
      file, or after the GeoJSON's ``name``). A one-layer file is that layer alone:
      ``counties.geojson`` is the layer ``counties``, never buildings or roads.
    - ``layer_map`` (our layer -> a layer of the file) says which of our layers a
      layer of the file holds: ``{"landuse": "counties"}`` offers ``counties`` as
      ``landuse`` (and no longer under its own name).

    Raises:
        ConfigError: the file name has an ending we do not read.
        DataSourceError: the file cannot be opened, or ``layer_map`` names a layer it lacks.
    """
    fmt = source_format(source)
    names = list(OSM_LAYERS) if fmt == "osm" else _gdal_layers(source)
    mapping = dict(layer_map or {})
    wrong = {ours: theirs for ours, theirs in mapping.items() if theirs not in names}
    if wrong:
        raise DataSourceError(
            f"layer_map maps {wrong} but {source} has no layer {sorted(set(wrong.values()))}; its layers are "
            f"{names}. Map our layers to those"
        )
    return {**{name: name for name in names if name not in mapping.values()}, **mapping}


def read_layer(
    source: str,
    layer: str,
    grid: TileGrid | None = None,
    *,
    as_of: datetime | None = None,
    simplify_m: float | None = None,
    source_crs: str | None = None,
    layer_map: Mapping[str, str] | None = None,
    bbox_wgs84: tuple[float, float, float, float] | None = None,
) -> Any:
    """One layer of a vector source, on the tile grid's CRS and clipped to its bounds.

    The reader follows the file name (``source_format``): OSM PBF through GDAL's OSM
    driver (``memories.earth.osm``), other files by layer, as ``source_layers``
    offers them (a one-layer GeoJSON or Shapefile is the layer of its own name,
    or the one ``layer_map`` maps it to). Then, in this order: features whose
    ``start_date`` is after ``as_of`` are left out; the rest is reprojected to the
    tile CRS; invalid geometries are repaired with ``make_valid``, keeping only
    parts of the feature's own kind (polygonal parts of a polygon); an optional
    simplification; a clip to the tile.

    Counts travel in ``gdf.attrs``: ``read`` (features matched in the tile's
    footprint), ``repaired`` (invalid geometries made valid), ``dropped`` (features
    without a usable geometry: unreadable, or empty after repair), ``outside``
    (features with nothing left after the clip); ``in_source`` is True.

    Args:
        source: path of a vector file (``.osm.pbf``, ``.gpkg``, ``.geojson``, ``.shp``).
        layer: a layer name ``source_layers`` offers: a GeoPackage layer, one of
            ``OSM_LAYERS`` for OSM, the layer of a one-layer file, a key of ``layer_map``.
        grid: the tile; None keeps the source's extent and reprojects nothing.
        as_of: keep only features whose ``start_date`` is on or before this instant.
        simplify_m: Douglas-Peucker tolerance in metres of the tile CRS (topology
            preserving); None or 0 keeps every vertex. Needs ``grid``.
        source_crs: CRS of a source that declares none (a Shapefile without .prj).
        layer_map: our layer -> the layer of the file that holds it (``source_layers``).
        bbox_wgs84: without ``grid``, read only features touching this (west, south, east, north) box,
            degrees; nothing is clipped or reprojected.

    Raises:
        DataSourceError: the source does not offer ``layer`` (the message lists what it offers and the fix).
    """
    import geopandas as gpd
    import shapely
    from shapely.geometry import box

    if simplify_m and grid is None:
        raise ConfigError(f"simplify_m={simplify_m} needs a tile grid: the tolerance is in metres of the tile CRS")
    fmt = source_format(source)
    gdf, unreadable = _read_source(source, fmt, _file_layer(source, layer, layer_map), grid, source_crs, bbox_wgs84)
    n_read = len(gdf) + unreadable
    if as_of is not None and "start_date" in gdf.columns:
        start = gdf["start_date"].astype("string")
        gdf = gdf[(start.isna() | (start <= as_of.strftime("%Y-%m-%d"))).to_numpy(dtype=bool)]
    if grid is not None:
        gdf = gdf.to_crs(grid.crs)
    geoms, invalid = _repaired(gdf.geometry.to_numpy())
    if simplify_m:
        geoms = shapely.simplify(geoms, simplify_m, preserve_topology=True)
    gdf = gpd.GeoDataFrame(gdf.drop(columns=gdf.geometry.name), geometry=list(geoms), crs=gdf.crs)
    empty = shapely.is_empty(geoms) | shapely.is_missing(geoms)
    gdf = gdf[~empty]
    n_before_clip = len(gdf)
    if grid is not None:
        gdf = gdf.clip(box(*grid.bounds), keep_geom_type=True)
        gdf = gdf[~gdf.geometry.is_empty]
    gdf = gdf.reset_index(drop=True)
    gdf.attrs.update(
        read=n_read,
        repaired=int(invalid.sum()),
        dropped=int(unreadable + empty.sum()),
        outside=int(n_before_clip - len(gdf)),
        source_format=fmt,
        in_source=True,
    )
    return gdf


def _file_layer(source: str, layer: str, layer_map: Mapping[str, str] | None) -> str:
    """What of ``source`` holds our ``layer`` (``source_layers``); ``DataSourceError`` naming the layers offered."""
    offered = source_layers(source, layer_map)
    if layer not in offered:
        raise DataSourceError(
            f"{source} has no layer {layer!r}; its layers are {sorted(offered)}. Read one of those, or say which "
            f"layer of the file holds {layer!r} with layer_map={{{layer!r}: '<layer of the file>'}}"
        )
    return offered[layer]


def _repaired(geoms: Any) -> tuple[Any, Any]:
    """The geometries with each invalid one made valid (keeping the parts of its own kind), and the invalid mask."""
    import shapely

    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        families = [_FAMILIES.get(g.geom_type) for g in geoms[invalid]]
        repaired = shapely.make_valid(geoms[invalid])
        geoms = geoms.copy()
        geoms[invalid] = [_keep_family(g, f) for g, f in zip(repaired, families)]
    return geoms, invalid


def _gdal_layers(source: str) -> list[str]:
    """The layer names GDAL sees in a (non-OSM) vector file."""
    import pyogrio

    try:
        return [str(name) for name, _ in pyogrio.list_layers(source)]
    except Exception as e:
        raise DataSourceError(f"cannot open vector source {source}: {e}") from e


def _read_source(
    source: str,
    fmt: str,
    gdal_layer: str,
    grid: TileGrid | None,
    source_crs: str | None,
    bbox_wgs84: tuple[float, float, float, float] | None = None,
) -> tuple[Any, int]:
    """(features with a geometry in the source CRS, count of those without one) of one layer of the file
    (for OSM, one of ``OSM_LAYERS``)."""
    import geopandas as gpd
    import pyogrio
    from shapely.geometry import box

    if fmt == "osm":
        bbox = grid.bbox_wgs84 if grid is not None else bbox_wgs84
        return read_osm_layer(source, gdal_layer, bbox=bbox)
    info = pyogrio.read_info(source, layer=gdal_layer)
    crs = info["crs"] or source_crs
    if crs is None:
        raise DataSourceError(
            f"{source} declares no CRS (a Shapefile without .prj?); pass source_crs='EPSG:4326' or the CRS it is in"
        )
    bbox = None
    if grid is not None or bbox_wgs84 is not None:
        area = (box(*grid.bounds), grid.crs) if grid is not None else (box(*bbox_wgs84), "EPSG:4326")  # type: ignore[misc]
        footprint = gpd.GeoSeries([area[0]], crs=area[1]).to_crs(crs)
        west, south, east, north = (float(v) for v in footprint.total_bounds)
        bbox = (west, south, east, north)
    try:
        frame = pyogrio.read_dataframe(source, layer=gdal_layer, bbox=bbox, on_invalid="ignore")
    except Exception as e:
        raise DataSourceError(f"cannot read layer {gdal_layer!r} of {source}: {e}") from e
    if frame.crs is None:
        frame = frame.set_crs(crs)
    missing = (frame.geometry.isna() | frame.geometry.is_empty).to_numpy(dtype=bool)
    kept = gpd.GeoDataFrame(frame[~missing].reset_index(drop=True), geometry=frame.geometry.name, crs=frame.crs)
    return kept, int(missing.sum())


def _keep_family(geom: Any, family: str | None) -> Any:
    """The parts of a repaired geometry of the original's kind (polygonal parts of a
    polygon, linear of a line); an empty geometry when none is left."""
    import shapely

    if family is None or geom is None or geom.geom_type in _FAMILY_TYPES.get(family, ()):
        return geom
    parts = [p for p in shapely.get_parts(geom) if _FAMILIES.get(p.geom_type) == family]
    if not parts:
        return shapely.Polygon() if family == "polygon" else shapely.LineString()
    merged = shapely.union_all(parts)
    return merged


_FAMILY_TYPES = {
    "polygon": ("Polygon", "MultiPolygon"),
    "line": ("LineString", "MultiLineString"),
    "point": ("Point", "MultiPoint"),
}
