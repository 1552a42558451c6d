"""GIS layers of a tile: read from a file, repaired, reprojected, clipped, written.

Sources are OSM PBF extracts (GDAL's OSM driver, ``memories.earth.osm``),
GeoPackage, GeoJSON and Shapefile, with OpenStreetMap-style tags; the reader is
chosen from the file name, and the layers a file offers by ``source_layers`` (a
one-layer file is one layer, never all of them). A feature with a ``start_date``
later than the month asked for does not exist yet in that month. Invalid
geometries are repaired and counted, never silently dropped. Output is
GeoParquet 1.1 with a bbox covering column.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from memories.classes import NO_LABEL, OSM_LANDUSE_TO_CLASS
from memories.earth.osm import OSM_EXTENSIONS, OSM_LAYERS, read_osm_layer
from memories.errors import ConfigError, DataSourceError, StorageError
from memories.grid import TileGrid
from memories.store.paths import StorageRoot, new_version_id

GIS_LAYERS: tuple[str, ...] = ("buildings", "roads", "landuse", "water")
"""The layers land-cover labels are burned from (``rasterize_labels``)."""
EXTRA_LAYERS: tuple[str, ...] = ("places",)
"""Layers written beside ``GIS_LAYERS`` when a source has them: named places (points)."""
WATER_CLASS = 1
BUILT_CLASS = 5

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
    offered = source_layers(source, layer_map)
    if layer not in offered:
        raise DataSourceError(
            f"{source} has no layer {layer!r}; its layers are {sorted(offered)}. Read one of those, or say which "
            f"layer of the file holds {layer!r} with layer_map={{{layer!r}: '<layer of the file>'}}"
        )
    gdf, unreadable = _read_source(source, fmt, offered[layer], grid, source_crs, bbox_wgs84)
    n_read = len(gdf) + unreadable
    if as_of is not None and "start_date" in gdf.columns:
        start = gdf["start_date"].astype("string")
        keep = start.isna() | (start <= as_of.strftime("%Y-%m-%d"))
        gdf = gdf[keep.to_numpy(dtype=bool)]
    if grid is not None:
        gdf = gdf.to_crs(grid.crs)
    geoms = gdf.geometry.to_numpy()
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        families = [_FAMILIES.get(g.geom_type) for g in geoms[invalid]]
        repaired = shapely.make_valid(geoms[invalid])
        geoms = geoms.copy()
        geoms[invalid] = [_keep_family(g, f) for g, f in zip(repaired, families)]
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


class GISProvider:
    """GIS layers of one vector source, per tile: the seed's facade over ``read_layer``.

    Example::

        gis = GISProvider()                              # the configured source: the sample world's GeoPackage
        near = await gis.get_features(location=(46.03, 14.52), radius_km=1, feature_types=["building", "road"])
        gis = GISProvider("../shared/data/osm/Helsinki.osm.pbf")
        buildings = gis.get_layer("buildings")          # EPSG:4326, whole extract
        layers = gis.tile_layers(grid, as_of=month_end)  # tile CRS, clipped

    Attributes:
        source: the vector file (None at construction: ``memories.earth.sources.default_gis_source``).
        simplify_m: simplification tolerance in metres (tile CRS), None for none.
        source_crs: CRS of a source that declares none.
        layer_map: our layer -> the layer of the file that holds it (``source_layers``), e.g.
            ``{"landuse": "counties"}`` for a one-layer ``counties.geojson``.
    """

    def __init__(
        self,
        source: str | None = None,
        *,
        simplify_m: float | None = None,
        source_crs: str | None = None,
        layer_map: Mapping[str, str] | None = None,
    ) -> None:
        if source is None:
            from memories.earth.sources import default_gis_source

            source = default_gis_source()
        self.source = str(source)
        self.format = source_format(self.source)
        self.simplify_m = simplify_m
        self.source_crs = source_crs
        self.layer_map = dict(layer_map or {})

    def features(
        self,
        location: Any,
        radius_km: float,
        feature_types: Any = ("building", "road", "landuse"),
        include_attributes: bool = True,
        simplify_tolerance: float | None = None,
    ) -> Any:
        """The features within ``radius_km`` of (lat, lon), one EPSG:4326 GeoDataFrame (the sync twin of
        ``get_features``; see ``memories.earth.features.features_near``; tolerance in degrees)."""
        from memories.earth.features import features_near

        return features_near(
            self.source,
            location,
            radius_km,
            feature_types,
            include_attributes=include_attributes,
            simplify_tolerance=simplify_tolerance,
            source_crs=self.source_crs,
            layer_map=self.layer_map,
        )

    async def get_features(
        self,
        location: Any,
        radius_km: float,
        feature_types: Any = ("building", "road", "landuse"),
        include_attributes: bool = True,
        simplify_tolerance: float | None = None,
    ) -> Any:
        """``features`` as a coroutine, the layers read concurrently (``features.afeatures_near``)."""
        from memories.earth.features import afeatures_near

        return await afeatures_near(
            self.source,
            location,
            radius_km,
            feature_types,
            include_attributes=include_attributes,
            simplify_tolerance=simplify_tolerance,
            source_crs=self.source_crs,
            layer_map=self.layer_map,
        )

    def layers(self) -> list[str]:
        """The layer names this source offers (``source_layers``)."""
        return list(source_layers(self.source, self.layer_map))

    def get_layer(self, layer: str, grid: TileGrid | None = None, *, as_of: datetime | None = None) -> Any:
        """One layer (see ``read_layer``; counts in ``attrs``)."""
        return read_layer(
            self.source,
            layer,
            grid,
            as_of=as_of,
            simplify_m=self.simplify_m if grid is not None else None,
            source_crs=self.source_crs,
            layer_map=self.layer_map,
        )

    def tile_layers(
        self, grid: TileGrid, *, as_of: datetime | None = None, layers: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """The layers of one tile, in its CRS and clipped.

        By default ``GIS_LAYERS`` plus those of ``EXTRA_LAYERS`` the source offers: a
        GIS layer the source does not offer comes back empty (in the tile CRS,
        ``attrs["in_source"]`` False), as a tile without water reads; a source that
        offers none of ``GIS_LAYERS`` is an error. Layers named in ``layers`` must
        all be offered.

        Raises:
            DataSourceError: the source offers none of ``GIS_LAYERS`` (the default), or
                not one of ``layers``; the message names what it offers and ``layer_map``.
        """
        if layers is not None:
            return {name: self.get_layer(name, grid, as_of=as_of) for name in layers}
        offered = source_layers(self.source, self.layer_map)
        if not set(GIS_LAYERS) & set(offered):
            example = next(iter(offered), "<layer of the file>")
            raise DataSourceError(
                f"{self.source} offers the layers {sorted(offered)}, none of {list(GIS_LAYERS)}: a file with one "
                f"layer is that layer alone. Say which of ours it holds with layer_map (e.g. layer_map="
                f"{{'landuse': {example!r}}}), or use a GeoPackage with those layers or an OSM PBF extract"
            )
        names = GIS_LAYERS + tuple(name for name in EXTRA_LAYERS if name in offered)
        return {
            name: self.get_layer(name, grid, as_of=as_of) if name in offered else _absent_layer(grid, self.format)
            for name in names
        }


def geometry_report(layers: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per layer: features kept, read, repaired, dropped and outside the tile (from ``read_layer``)."""
    return {
        name: {
            "features": len(gdf),
            **{k: int(gdf.attrs.get(k, 0)) for k in ("read", "repaired", "dropped", "outside")},
        }
        for name, gdf in layers.items()
    }


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
    return np.asarray(rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=NO_LABEL, dtype="uint8"))


def write_geoparquet(root: StorageRoot, uri: str, gdf: Any) -> int:
    """Write a GeoDataFrame as GeoParquet 1.1 with a bbox covering column, as a new version; returns bytes written.

    Every write is a new immutable version (``StorageRoot.version_uri``, id sortable
    by write time, see ``StorageRoot.current_version``) and then the pointer to it is
    replaced atomically: the pointer is the commit point, so a killed write leaves
    the previous version current and every earlier version readable through
    ``read_geoparquet(..., version=...)``. The plain file at ``uri`` is refreshed
    last, for hive-partitioned readers (pyarrow, DuckDB). Each file appears whole or
    not at all (``StorageRoot.write_bytes``), and no temporary is ever visible to a
    hive reader, not even one a killed write left (``memories.store.atomic``).
    """
    import json
    from datetime import UTC
    from datetime import datetime as _dt

    buf = io.BytesIO()
    gdf.to_parquet(buf, index=False, schema_version="1.1.0", write_covering_bbox=True)
    data = buf.getvalue()
    now = _dt.now(UTC)
    version = new_version_id(now)
    root.write_bytes(root.version_uri(uri, version), data)
    pointer = {"version": version, "written_at": now.isoformat(), "rows": len(gdf), "bytes": len(data)}
    root.write_bytes(root.version_pointer_uri(uri), json.dumps(pointer).encode())
    root.write_bytes(uri, data)
    return len(data)


def read_geoparquet(root: StorageRoot, uri: str, version: str | None = None) -> Any:
    """Read a GeoParquet file written by ``write_geoparquet``: its current version, or ``version``.

    A file written before versioning (no pointer) is read as it is.
    """
    import geopandas as gpd

    from memories.errors import StorageError

    version = version or root.current_version(uri)
    if version is None:
        return gpd.read_parquet(io.BytesIO(root.read_bytes(uri)))
    target = root.version_uri(uri, version)
    if not root.exists(target):
        raise StorageError(
            f"{uri} has no version {version!r}; stored versions: {root.versions(uri)[-5:]} (latest last)"
        )
    return gpd.read_parquet(io.BytesIO(root.read_bytes(target)))


def read_tile_layers(
    root: StorageRoot, tile: str, month: str, layers: Any = None, *, optional: Any = ()
) -> dict[str, Any]:
    """The GeoDataFrames the ``gis_layers`` asset wrote for one tile-month (``YYYY-MM``), by layer name.

    Args:
        layers: layer names to read (default :data:`GIS_LAYERS`).
        optional: names among ``layers`` that may be missing (left out of the result).

    Raises:
        StorageError: a required layer was not written (the message names the partition to materialize).
    """
    out: dict[str, Any] = {}
    for layer in GIS_LAYERS if layers is None else layers:
        uri = root.vector_uri(layer, tile, month)
        if not root.exists(uri):
            if layer in optional:
                continue
            raise StorageError(f"{uri} does not exist; materialize gis_layers for partition {month}|{tile} first")
        out[layer] = read_geoparquet(root, uri)
    return out


def _gdal_layers(source: str) -> list[str]:
    """The layer names GDAL sees in a (non-OSM) vector file."""
    import pyogrio

    try:
        return [str(name) for name, _ in pyogrio.list_layers(source)]
    except Exception as e:
        raise DataSourceError(f"cannot open vector source {source}: {e}") from e


def _absent_layer(grid: TileGrid, fmt: str) -> Any:
    """An empty layer in the tile CRS, for a GIS layer the source does not offer (``tile_layers``).

    It carries the ``osm_id`` column of OSM-style layers, which the context memory keys entities by.
    """
    import geopandas as gpd
    import pandas as pd

    gdf = gpd.GeoDataFrame({"osm_id": pd.Series([], dtype="int64")}, geometry=gpd.GeoSeries([], crs=grid.crs))
    gdf.attrs.update(read=0, repaired=0, dropped=0, outside=0, source_format=fmt, in_source=False)
    return gdf


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
