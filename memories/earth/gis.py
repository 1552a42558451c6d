"""GIS layers of a tile: read from a file, repaired, reprojected, clipped, written.

Reading one layer of a vector file (OSM PBF, GeoPackage, GeoJSON, Shapefile;
``read_layer``, ``source_layers``, ``source_format``) lives in
``memories.earth.vector``, beneath this module and ``memories.earth.features``;
this module adds the per-tile facade (``GISProvider``), the labels burned from
the layers and their GeoParquet 1.1 output with a bbox covering column.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from memories.classes import NO_LABEL, OSM_LANDUSE_TO_CLASS
from memories.earth.features import afeatures_near, features_near
from memories.earth.vector import read_layer, source_format, source_layers
from memories.errors import DataSourceError, StorageError
from memories.grid import TileGrid
from memories.store.paths import StorageRoot, new_version_id

GIS_LAYERS: tuple[str, ...] = ("buildings", "roads", "landuse", "water")
"""The layers land-cover labels are burned from (``rasterize_labels``)."""
EXTRA_LAYERS: tuple[str, ...] = ("places",)
"""Layers written beside ``GIS_LAYERS`` when a source has them: named places (points)."""
WATER_CLASS = 1
BUILT_CLASS = 5


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


def _absent_layer(grid: TileGrid, fmt: str) -> Any:
    """An empty layer in the tile CRS, for a GIS layer the source does not offer (``tile_layers``).

    It carries the ``osm_id`` column of OSM-style layers, which the context memory keys entities by.
    """
    import geopandas as gpd
    import pandas as pd

    gdf = gpd.GeoDataFrame({"osm_id": pd.Series([], dtype="int64")}, geometry=gpd.GeoSeries([], crs=grid.crs))
    gdf.attrs.update(read=0, repaired=0, dropped=0, outside=0, source_format=fmt, in_source=False)
    return gdf
