"""GIS features within a radius of a point: the seed's ``GISProvider.get_features``.

``features_near`` reads each asked layer of a vector source (``vector.read_layer``,
only the features touching the circle's box), keeps those that intersect the
circle, measured in an azimuthal equidistant projection centred on the point (so
the radius is true in every direction, at any latitude), and returns them in one
GeoDataFrame in EPSG:4326 with their ``feature_type`` and ``distance_km`` (0 for a
feature that contains the point). Features are whole, not cut at the circle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from memories.earth.vector import read_layer, source_layers
from memories.errors import ConfigError, DataSourceError

FEATURE_TYPES: dict[str, str] = {
    "building": "buildings",
    "road": "roads",
    "landuse": "landuse",
    "water": "water",
    "place": "places",
}
"""Feature type (the seed's singular) -> our layer name; the plural layer names are accepted too."""
BASE_COLUMNS: tuple[str, ...] = ("feature_type", "osm_id", "name", "distance_km")
"""Columns kept with ``include_attributes=False`` (those the source has), besides the geometry."""
CIRCLE_SEGMENTS = 64
"""Segments of the circle polygon (a quarter circle has 16): its area is 0.1 % short of pi r^2."""


def feature_layer(feature_type: str) -> str:
    """Our layer name of a feature type: ``building`` and ``buildings`` both give ``buildings``.

    Raises:
        ConfigError: an unknown type (the message lists them).
    """
    key = str(feature_type).strip().lower()
    if key in FEATURE_TYPES:
        return FEATURE_TYPES[key]
    if key in FEATURE_TYPES.values():
        return key
    raise ConfigError(f"feature type {feature_type!r} is unknown; use some of {list(FEATURE_TYPES)}")


def features_near(
    source: str,
    location: Sequence[float],
    radius_km: float,
    feature_types: Sequence[str] = ("building", "road", "landuse"),
    *,
    include_attributes: bool = True,
    simplify_tolerance: float | None = None,
    source_crs: str | None = None,
    layer_map: Mapping[str, str] | None = None,
    as_of: datetime | None = None,
) -> Any:
    """The features of ``feature_types`` within ``radius_km`` of ``location``, one GeoDataFrame (EPSG:4326).

    Args:
        source: vector file (OSM PBF, GeoPackage, GeoJSON, Shapefile).
        location: (latitude, longitude), degrees.
        radius_km: kilometres.
        feature_types: ``building``, ``road``, ``landuse``, ``water``, ``place`` (or our layer names).
        include_attributes: keep every column of the source; False keeps ``BASE_COLUMNS``.
        simplify_tolerance: Douglas-Peucker tolerance in degrees of EPSG:4326 (topology preserving;
            1e-4 degrees is about 11 m of latitude); None or 0 keeps every vertex.
        source_crs, layer_map: as ``vector.read_layer``.
        as_of: leave out features whose ``start_date`` is after this instant (not built yet).

    Returns:
        Rows sorted by ``feature_type`` then ``distance_km``; ``attrs``: ``counts`` per type,
        ``source``, ``location``, ``radius_km``.

    Raises:
        ConfigError: a bad location, radius, tolerance or feature type.
        DataSourceError: the source does not offer a layer asked for.
    """
    lat, lon, layers = _checked(source, location, radius_km, feature_types, simplify_tolerance, layer_map)
    parts = [_layer_near(source, name, lat, lon, radius_km, source_crs, layer_map, as_of) for name in layers]
    return _select(parts, source, lat, lon, radius_km, include_attributes, simplify_tolerance)


async def afeatures_near(
    source: str,
    location: Sequence[float],
    radius_km: float,
    feature_types: Sequence[str] = ("building", "road", "landuse"),
    *,
    include_attributes: bool = True,
    simplify_tolerance: float | None = None,
    source_crs: str | None = None,
    layer_map: Mapping[str, str] | None = None,
    as_of: datetime | None = None,
) -> Any:
    """``features_near`` as a coroutine: the layers are read concurrently, each in a worker thread."""
    import asyncio

    lat, lon, layers = _checked(source, location, radius_km, feature_types, simplify_tolerance, layer_map)
    parts = await asyncio.gather(
        *(
            asyncio.to_thread(_layer_near, source, name, lat, lon, radius_km, source_crs, layer_map, as_of)
            for name in layers
        )
    )
    return _select(list(parts), source, lat, lon, radius_km, include_attributes, simplify_tolerance)


def _checked(
    source: str,
    location: Sequence[float],
    radius_km: float,
    feature_types: Sequence[str],
    simplify_tolerance: float | None,
    layer_map: Mapping[str, str] | None,
) -> tuple[float, float, list[str]]:
    """(lat, lon, our layer names) of a request, every argument checked (see ``features_near``)."""
    lat, lon = _lat_lon(location)
    if not radius_km > 0:
        raise ConfigError(f"radius_km={radius_km} must be a positive number of kilometres")
    if simplify_tolerance is not None and simplify_tolerance < 0:
        raise ConfigError(f"simplify_tolerance={simplify_tolerance} must be >= 0 degrees (0 or None: no simplifying)")
    if isinstance(feature_types, str):
        feature_types = [feature_types]
    layers = list(dict.fromkeys(feature_layer(t) for t in feature_types))
    if not layers:
        raise ConfigError(f"feature_types is empty; pass some of {list(FEATURE_TYPES)}")
    offered = source_layers(source, layer_map)
    absent = [name for name in layers if name not in offered]
    if absent:
        raise DataSourceError(
            f"{source} has no layer {absent}; it offers {sorted(offered)}. Ask for those, or map a layer of the file "
            "with layer_map={'buildings': '<layer of the file>'}"
        )
    return lat, lon, layers


def circle(lat: float, lon: float, radius_km: float) -> tuple[Any, Any]:
    """(circle polygon in its local azimuthal equidistant CRS, that CRS) of a radius around a point."""
    from pyproj import CRS
    from shapely.geometry import Point

    local = CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m +no_defs")
    return Point(0.0, 0.0).buffer(radius_km * 1000.0, quad_segs=CIRCLE_SEGMENTS // 4), local


def _layer_near(
    source: str,
    layer: str,
    lat: float,
    lon: float,
    radius_km: float,
    source_crs: str | None,
    layer_map: Mapping[str, str] | None,
    as_of: datetime | None = None,
) -> Any:
    """One layer's features intersecting the circle, in the local CRS, with ``feature_type`` and ``distance_km``."""
    import geopandas as gpd
    from shapely.geometry import Point

    disc, local = circle(lat, lon, radius_km)
    box = gpd.GeoSeries([disc], crs=local).to_crs("EPSG:4326").total_bounds
    gdf = read_layer(
        source,
        layer,
        None,
        as_of=as_of,
        source_crs=source_crs,
        layer_map=layer_map,
        bbox_wgs84=tuple(float(v) for v in box),  # type: ignore[arg-type]
    )
    gdf = gdf.to_crs(local)
    gdf = gdf[gdf.intersects(disc)].copy()
    gdf.insert(0, "feature_type", next(k for k, v in FEATURE_TYPES.items() if v == layer))
    gdf["distance_km"] = gdf.geometry.distance(Point(0.0, 0.0)).to_numpy() / 1000.0
    return gdf


def _select(
    parts: list[Any],
    source: str,
    lat: float,
    lon: float,
    radius_km: float,
    include_attributes: bool,
    simplify_tolerance: float | None,
) -> Any:
    """The layers' features as one EPSG:4326 frame, columns and geometries as asked."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    parts = [p.to_crs("EPSG:4326") for p in parts]
    frame = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry=parts[0].geometry.name, crs="EPSG:4326")
    if not include_attributes:
        keep = [c for c in BASE_COLUMNS if c in frame.columns]
        frame = frame[[*keep, frame.geometry.name]]
    if simplify_tolerance:
        geoms = shapely.simplify(frame.geometry.to_numpy(), simplify_tolerance, preserve_topology=True)
        frame = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index, crs="EPSG:4326"))
    frame = frame.sort_values(["feature_type", "distance_km"], kind="stable").reset_index(drop=True)
    frame.attrs.update(
        counts={str(k): int(v) for k, v in frame["feature_type"].value_counts().items()},
        source=source,
        location=[lat, lon],
        radius_km=float(radius_km),
    )
    return frame


def _lat_lon(location: Sequence[float]) -> tuple[float, float]:
    try:
        lat, lon = (float(v) for v in location)
    except (TypeError, ValueError):
        raise ConfigError(f"location={location!r} must be (latitude, longitude) in degrees") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ConfigError(f"location=({lat}, {lon}) is not (latitude, longitude) in degrees")
    return lat, lon
