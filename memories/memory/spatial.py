"""Spatial memory: features of every tile in one index, queried by place.

Features come in any CRS (each tile's UTM zone, a GeoPackage in EPSG:4326, ...)
and are kept in EPSG:4326 with an H3 cell key per feature (the cell of its
representative point). The index has two levels: an STRtree over the extents of
the H3 partitions prunes whole partitions, then one STRtree per partition finds
the candidates. Point-radius queries are geodesic: candidates are measured in an
azimuthal equidistant projection centred on the query point, where the distance
from the centre is the geodesic distance on the WGS84 ellipsoid.

Queries do not cross the antimeridian (a bbox with west > east is refused).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pyproj import Geod

from memories.errors import ConfigError
from memories.store.paths import StorageRoot

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

WGS84 = "EPSG:4326"
FEATURE_ID = "feature_id"
CELL = "h3_cell"
DISTANCE_KM = "distance_km"
MEMORY_KIND = "spatial"
DEFAULT_RESOLUTION = 6
"""H3 resolution of the partition keys: cells of about 36 km², a few km across."""
_GEOD = Geod(ellps="WGS84")
_KM_PER_DEG_LAT_MIN = 110.5
"""Fewest kilometres in one degree of latitude on WGS84 (at the equator); a safe bound for bbox expansion."""

Filter = Mapping[str, Any] | Callable[["pd.DataFrame"], Any] | str | None
"""An attribute filter: ``{"column": value}`` / ``{"column": [v1, v2]}`` (equality / ``in``), a callable
taking the candidate frame and returning a boolean mask, or a pandas ``DataFrame.query`` string."""

Predicate = Literal["intersects", "within", "contains"]


class SpatialMemory:
    """Features of many tiles and layers under one spatial index.

    Args:
        h3_resolution: H3 resolution (0-15) of the partition keys.

    Example:
        >>> mem = SpatialMemory.from_pipeline(root, ["33TVM", "31UDQ"], "2023-08")  # doctest: +SKIP
        >>> mem.query(location=(46.04, 14.50), radius_km=2, filter={"layer": "buildings"})  # doctest: +SKIP
    """

    def __init__(self, h3_resolution: int = DEFAULT_RESOLUTION) -> None:
        if not 0 <= h3_resolution <= 15:
            raise ConfigError(f"h3_resolution {h3_resolution} is out of range; choose 0 to 15 (6 = cells of ~36 km²)")
        self.h3_resolution = h3_resolution
        self._parts: list[gpd.GeoDataFrame] = []
        self._frame: gpd.GeoDataFrame | None = None
        self._index: PartitionedIndex | None = None

    # -- filling ------------------------------------------------------------
    def add(self, gdf: gpd.GeoDataFrame, *, layer: str | None = None, tile: str | None = None) -> int:
        """Add features in any CRS; returns how many were added.

        Each feature gets ``feature_id`` (``<layer>:<osm_id>`` when the frame has an
        ``osm_id`` column, else ``<layer>:<tile>:<n>``), ``layer`` and ``tile`` columns
        and its H3 cell key. Empty geometries are dropped.

        Raises:
            ConfigError: the frame has no CRS.
        """
        import geopandas as gpd

        if gdf.crs is None:
            raise ConfigError(
                f"features of layer {layer!r} (tile {tile!r}) have no CRS; set one with gdf.set_crs('EPSG:xxxx')"
            )
        g = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)].to_crs(WGS84).reset_index(drop=True)
        g = gpd.GeoDataFrame(g, geometry=g.geometry.name, crs=WGS84)
        if g.geometry.name != "geometry":
            g = g.rename_geometry("geometry")
        if layer is not None or "layer" not in g.columns:
            g["layer"] = layer or "features"
        if tile is not None or "tile" not in g.columns:
            g["tile"] = tile if tile is not None else g.get("tile_id", None)
        if FEATURE_ID not in g.columns:
            if "osm_id" in g.columns:
                g[FEATURE_ID] = g["layer"].astype(str) + ":" + g["osm_id"].astype("int64").astype(str)
            else:
                base = sum(len(p) for p in self._parts)
                g[FEATURE_ID] = [f"{lay}:{t}:{base + i}" for i, (lay, t) in enumerate(zip(g["layer"], g["tile"]))]
        g[CELL] = h3_cells(g.geometry, self.h3_resolution)
        self._parts.append(g)
        self._frame = None
        self._index = None
        return len(g)

    @classmethod
    def from_pipeline(
        cls,
        root: StorageRoot,
        tiles: Iterable[str],
        month: str,
        *,
        layers: Iterable[str] | None = None,
        h3_resolution: int = DEFAULT_RESOLUTION,
    ) -> SpatialMemory:
        """The GIS layers the ``gis_layers`` asset wrote for ``month`` (``YYYY-MM``), of all ``tiles``.

        Raises:
            StorageError: a tile-month was not materialized (the message names it).
        """
        from memories.earth.gis import read_tile_layers

        mem = cls(h3_resolution)
        for tile in tiles:
            for layer, frame in read_tile_layers(root, tile, month, layers).items():
                mem.add(frame, layer=layer, tile=tile)
        return mem

    # -- what is there ------------------------------------------------------
    @property
    def frame(self) -> gpd.GeoDataFrame:
        """Every feature, in EPSG:4326."""
        import geopandas as gpd
        import pandas as pd

        if self._frame is None:
            if not self._parts:
                self._frame = gpd.GeoDataFrame({FEATURE_ID: [], CELL: []}, geometry=[], crs=WGS84)
            else:
                merged = pd.concat(self._parts, ignore_index=True)
                self._frame = gpd.GeoDataFrame(merged, geometry="geometry", crs=WGS84)
            self._parts = [self._frame]
        return self._frame

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def partitions(self) -> int:
        """Number of H3 partitions holding features."""
        return self.index().n_partitions

    # -- queries ------------------------------------------------------------
    def query(
        self,
        location: tuple[float, float] | None = None,
        radius_km: float | None = None,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        polygon: Any = None,
        predicate: Predicate = "intersects",
        crs: str = WGS84,
        filter: Filter = None,  # noqa: A002 - the seed's keyword
    ) -> gpd.GeoDataFrame:
        """Features near a point, in a bbox or in a polygon, that pass an attribute filter.

        Exactly one of ``location`` (with ``radius_km``), ``bbox`` or ``polygon`` is given.

        Args:
            location: (latitude, longitude) in degrees, WGS84.
            radius_km: radius in kilometres; a feature matches when its geodesic
                distance to the point (0 inside a polygon) is at most this. The
                result is sorted by distance and has a ``distance_km`` column.
            bbox: (west, south, east, north) in ``crs`` (degrees for EPSG:4326).
            polygon: a shapely geometry in ``crs``.
            predicate: for ``polygon``: ``intersects``, ``within`` (feature inside the
                polygon) or ``contains`` (feature contains the polygon).
            crs: CRS of ``bbox`` / ``polygon`` (e.g. a tile's ``EPSG:32633``).
            filter: attribute filter, see ``Filter``.

        Raises:
            ConfigError: none or several query shapes, a bad radius, bbox or filter.
        """
        given = sum(x is not None for x in (location, bbox, polygon))
        if given != 1:
            raise ConfigError(
                "give exactly one of location=(lat, lon) with radius_km=..., bbox=(w, s, e, n) or polygon=geometry"
            )
        if location is not None:
            rows, dist = self.radius_rows(location, radius_km)
            out = self.frame.iloc[rows].copy()
            out[DISTANCE_KM] = dist
            out = _apply_filter(out, filter)
            return out.sort_values(DISTANCE_KM, kind="stable")
        if bbox is not None:
            geom = _bbox_geometry(bbox, crs)
            rows = self.index().query(geom, "intersects")
        else:
            geom = _to_wgs84(polygon, crs)
            if predicate not in ("intersects", "within", "contains"):
                raise ConfigError(f"predicate {predicate!r} is not supported; use intersects, within or contains")
            # STRtree's predicate reads "tree geometry <pred> query" reversed: within == query contains feature
            tree_pred = {"intersects": "intersects", "within": "contains", "contains": "within"}[predicate]
            rows = self.index().query(geom, tree_pred)
        return _apply_filter(self.frame.iloc[np.sort(rows)].copy(), filter)

    def radius_rows(self, location: tuple[float, float], radius_km: float | None) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``frame`` within ``radius_km`` (geodesic) of ``location`` (lat, lon) and their distances in km.

        The ids-only core of ``query(location=..., radius_km=...)``: unsorted, unfiltered, no frame copy.

        Raises:
            ConfigError: a radius that is not a positive number or a location off the globe.
        """
        import shapely
        from shapely.geometry import box

        if radius_km is None or not np.isfinite(radius_km) or radius_km <= 0:
            raise ConfigError(f"radius_km must be a positive number of kilometres, got {radius_km!r}")
        lat, lon = float(location[0]), float(location[1])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ConfigError(f"location {location!r} is not (latitude, longitude) in degrees; e.g. (46.04, 14.50)")
        dlat = radius_km / _KM_PER_DEG_LAT_MIN
        lat_far = min(89.999, abs(lat) + dlat)
        dlon = min(180.0, dlat / max(np.cos(np.radians(lat_far)), 1e-6))
        window = box(lon - dlon, max(-90.0, lat - dlat), lon + dlon, min(90.0, lat + dlat))
        rows = self.index().query(window, "intersects")
        if len(rows) == 0:
            return rows, np.zeros(0)
        geoms = self.index().geometries[rows]
        local = shapely.transform(geoms, lambda xy: aeqd(lon, lat, xy))
        dist_km = shapely.distance(shapely.Point(0.0, 0.0), local) / 1000.0
        keep = dist_km <= radius_km
        return rows[keep], dist_km[keep]

    # -- persistence --------------------------------------------------------
    def save(self, root: StorageRoot, name: str = "default") -> str:
        """Write the features as GeoParquet 1.1 (bbox covering) under the storage root; returns its URI.

        The index is not stored: ``load`` rebuilds it (about 1 s per million features).
        """
        uri = root.memory_uri(MEMORY_KIND, f"{name}.parquet")
        buf = io.BytesIO()
        frame = self.frame.copy()
        frame.attrs = {}
        frame.to_parquet(buf, index=False, schema_version="1.1.0", write_covering_bbox=True)
        root.write_bytes(uri, buf.getvalue())
        return uri

    @classmethod
    def load(cls, root: StorageRoot, name: str = "default") -> SpatialMemory:
        """Read a memory written by ``save`` and rebuild its index.

        Raises:
            StorageError: nothing was saved under that name.
        """
        import geopandas as gpd

        uri = root.memory_uri(MEMORY_KIND, f"{name}.parquet")
        gdf = gpd.read_parquet(io.BytesIO(root.read_bytes(uri)))
        cells = gdf[CELL].dropna()
        mem = cls(int(_h3_resolution(cells.iloc[0])) if len(cells) else DEFAULT_RESOLUTION)
        mem._parts = [gdf.drop(columns=[c for c in ("bbox",) if c in gdf.columns])]
        mem.index()
        return mem

    def index(self) -> PartitionedIndex:
        """The H3-partitioned STRtree over ``frame``'s geometries, built on first use (and after ``add``)."""
        if self._index is None:
            self._index = PartitionedIndex(self.frame.geometry.values, self.frame[CELL].to_numpy())
        return self._index


def h3_cells(geometry: Any, resolution: int) -> np.ndarray:
    """H3 cell ids (hex strings) of the representative points of EPSG:4326 geometries."""
    import h3
    import shapely

    pts = shapely.point_on_surface(np.asarray(geometry, dtype=object))
    xs, ys = shapely.get_x(pts), shapely.get_y(pts)
    to_cell = h3.latlng_to_cell
    return np.array([to_cell(y, x, resolution) for x, y in zip(xs.tolist(), ys.tolist())], dtype=object)


@dataclass
class _Partition:
    rows: np.ndarray
    tree: Any


class PartitionedIndex:
    """An STRtree of partition extents over one STRtree per H3 partition."""

    def __init__(self, geometries: Any, cells: np.ndarray) -> None:
        import shapely

        self.geometries = np.asarray(geometries, dtype=object)
        bounds = shapely.bounds(self.geometries)
        order = np.argsort(cells, kind="stable")
        sorted_cells = cells[order]
        starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]]) if len(cells) else np.zeros(0, int)
        stops = np.r_[starts[1:], len(cells)].astype(int)
        self.partitions: list[_Partition] = []
        extents = []
        for a, b in zip(starts.tolist(), stops.tolist()):
            rows = order[a:b]
            self.partitions.append(_Partition(rows, shapely.STRtree(self.geometries[rows])))
            bb = bounds[rows]
            extents.append(shapely.box(bb[:, 0].min(), bb[:, 1].min(), bb[:, 2].max(), bb[:, 3].max()))
        self.top = shapely.STRtree(np.array(extents, dtype=object))

    @property
    def n_partitions(self) -> int:
        return len(self.partitions)

    def query(self, geom: Any, predicate: str) -> np.ndarray:
        """Rows of the features for which ``feature <predicate> geom`` holds (shapely's reversed reading)."""
        hits = []
        for p in self.top.query(geom).tolist():
            part = self.partitions[p]
            local = part.tree.query(geom, predicate=predicate)
            if len(local):
                hits.append(part.rows[local])
        return np.concatenate(hits) if hits else np.zeros(0, dtype=np.int64)


def aeqd(lon0: float, lat0: float, xy: np.ndarray) -> np.ndarray:
    """Azimuthal equidistant coordinates (metres) of lon/lat points around (lon0, lat0) on WGS84.

    From the geodesic azimuth and distance of each point, which is how the ellipsoidal
    AEQD projection is defined: the distance from the centre is exact.
    """
    az, _, dist = _GEOD.inv(np.full(len(xy), lon0), np.full(len(xy), lat0), xy[:, 0], xy[:, 1])
    a = np.radians(az)
    return np.column_stack([dist * np.sin(a), dist * np.cos(a)])


def _bbox_geometry(bbox: tuple[float, float, float, float], crs: str) -> Any:
    from shapely.geometry import box

    if len(bbox) != 4:
        raise ConfigError(f"bbox {bbox!r} must be (west, south, east, north)")
    w, s, e, n = (float(v) for v in bbox)
    if not (w <= e and s <= n):
        raise ConfigError(
            f"bbox {bbox!r} has west > east or south > north; give (west, south, east, north) "
            "(boxes across the antimeridian: query two boxes)"
        )
    return _to_wgs84(box(w, s, e, n), crs)


def _to_wgs84(geom: Any, crs: str) -> Any:
    import shapely

    if not isinstance(geom, shapely.Geometry):
        raise ConfigError(f"polygon must be a shapely geometry, got {type(geom).__name__}")
    if crs in (WGS84, "epsg:4326", "OGC:CRS84"):
        return geom
    from pyproj import CRS, Transformer

    src = CRS.from_user_input(crs)
    # Straight edges in a projected CRS bend in degrees: densify to 100 m (or 1/1000 of the extent) first.
    step = 100.0 if src.is_projected else 0.001
    t = Transformer.from_crs(src, WGS84, always_xy=True)
    dense = shapely.segmentize(geom, step)
    return shapely.transform(dense, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def _apply_filter(frame: gpd.GeoDataFrame, flt: Filter) -> gpd.GeoDataFrame:
    if flt is None or len(frame) == 0:
        return frame
    if isinstance(flt, str):
        try:
            return frame.query(flt)
        except Exception as e:
            raise ConfigError(
                f"filter {flt!r} is not a valid pandas query over columns {list(frame.columns)}: {e}"
            ) from None
    if callable(flt):
        mask = np.asarray(flt(frame), dtype=bool)
        if mask.shape != (len(frame),):
            raise ConfigError(f"filter callable returned shape {mask.shape}; return one boolean per row ({len(frame)})")
        return frame[mask]
    if isinstance(flt, Mapping):
        mask = np.ones(len(frame), dtype=bool)
        for col, want in flt.items():
            if col not in frame.columns:
                raise ConfigError(f"filter column {col!r} is not in the memory; columns are {list(frame.columns)}")
            if isinstance(want, (list, tuple, set, frozenset)):
                mask &= frame[col].isin(list(want)).to_numpy()
            else:
                mask &= (frame[col] == want).fillna(False).to_numpy(dtype=bool)
        return frame[mask]
    raise ConfigError(f"filter must be a dict, a callable or a query string, got {type(flt).__name__}")


def _h3_resolution(cell: str) -> int:
    import h3

    return int(h3.get_resolution(cell))
