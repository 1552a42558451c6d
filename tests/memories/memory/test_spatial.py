"""Spatial memory queries, checked against brute-force geodesic answers computed independently."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import Point, box

from memories.errors import ConfigError, StorageError
from memories.memory.spatial import SpatialMemory
from memories.store.paths import StorageRoot

GEOD = Geod(ellps="WGS84")
ZONE_EDGE_LON = 12.0
"""UTM zones 32 and 33 meet at 12° E: the test features straddle it."""


def _random_points(rng: np.random.Generator, n: int, lon0: float, lat0: float, span: float):
    lon = lon0 + rng.uniform(-span, span, n)
    lat = lat0 + rng.uniform(-span, span, n)
    return lon, lat


@pytest.fixture(scope="module")
def straddling():
    """2,000 points and 300 small squares around 12° E, 46° N, ingested in the two UTM CRSs they fall in."""
    rng = np.random.default_rng(1)
    lon, lat = _random_points(rng, 2000, ZONE_EDGE_LON, 46.0, 0.15)
    kind = rng.choice(["school", "shop", "house"], size=len(lon))
    pts = gpd.GeoDataFrame(
        {"amenity": kind, "n": np.arange(len(lon))}, geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326"
    )
    plon, plat = _random_points(rng, 300, ZONE_EDGE_LON, 46.0, 0.15)
    squares = gpd.GeoDataFrame(
        {"amenity": "park", "n": np.arange(300) + 10_000},
        geometry=[box(x - 0.001, y - 0.0007, x + 0.001, y + 0.0007) for x, y in zip(plon, plat)],
        crs="EPSG:4326",
    )
    mem = SpatialMemory(h3_resolution=7)
    for layer, frame in (("points", pts), ("parks", squares)):
        west = frame.geometry.bounds["minx"] < ZONE_EDGE_LON
        mem.add(frame[west].to_crs("EPSG:32632"), layer=layer, tile="32TQR")
        mem.add(frame[~west].to_crs("EPSG:32633"), layer=layer, tile="33TTL")
    return mem, pts, squares


def test_point_radius_matches_geodesic_brute_force_across_utm_zones(straddling):
    mem, pts, _ = straddling
    assert set(mem.frame["tile"]) == {"32TQR", "33TTL"} and mem.partitions > 10
    rng = np.random.default_rng(2)
    for _ in range(20):
        lat, lon = 46.0 + rng.uniform(-0.1, 0.1), ZONE_EDGE_LON + rng.uniform(-0.1, 0.1)
        radius_km = float(rng.uniform(0.5, 5.0))
        _, _, d = GEOD.inv(np.full(len(pts), lon), np.full(len(pts), lat), pts.geometry.x, pts.geometry.y)
        expected = set(pts["n"][d / 1000.0 <= radius_km])
        got = mem.query(location=(lat, lon), radius_km=radius_km, filter={"layer": "points"})
        assert set(got["n"]) == expected
        want_d = np.sort(d[d / 1000.0 <= radius_km]) / 1000.0
        np.testing.assert_allclose(got["distance_km"].to_numpy(), want_d, atol=1e-6)


def test_point_radius_includes_polygons_by_their_nearest_edge(straddling):
    mem, _, squares = straddling
    lat, lon, radius_km = 46.02, 12.01, 4.0
    # Independent answer: geodesic distance to the boundary densified to ~1 m, or 0 inside.
    expected, ambiguous = set(), set()
    for n, g in zip(squares["n"], squares.geometry):
        if g.contains(Point(lon, lat)):
            expected.add(n)
            continue
        xy = shapely.get_coordinates(shapely.segmentize(g.exterior, 0.00001))
        d = GEOD.inv(np.full(len(xy), lon), np.full(len(xy), lat), xy[:, 0], xy[:, 1])[2].min() / 1000.0
        if abs(d - radius_km) < 0.005:
            ambiguous.add(n)
        elif d <= radius_km:
            expected.add(n)
    got = set(mem.query(location=(lat, lon), radius_km=radius_km, filter={"layer": "parks"})["n"]) - ambiguous
    assert got == expected and len(expected) > 5


def test_bbox_and_polygon_queries_equal_a_full_scan(straddling):
    mem, pts, squares = straddling
    everything = gpd.GeoDataFrame(
        {"n": np.r_[pts["n"], squares["n"]]}, geometry=list(pts.geometry) + list(squares.geometry), crs="EPSG:4326"
    )
    bbox = (11.95, 45.93, 12.08, 46.02)
    scan = set(everything["n"][everything.intersects(box(*bbox))])
    assert set(mem.query(bbox=bbox)["n"]) == scan

    # A polygon given in a UTM CRS: densified before it is reprojected, compared with the same shape in degrees.
    centre = gpd.GeoSeries([Point(12.03, 46.0)], crs="EPSG:4326").to_crs("EPSG:32633").iloc[0]
    poly_utm = centre.buffer(3000.0, quad_segs=64)
    poly_deg = gpd.GeoSeries([shapely.segmentize(poly_utm, 100.0)], crs="EPSG:32633").to_crs("EPSG:4326").iloc[0]
    within = set(everything["n"][everything.within(poly_deg)])
    inter = set(everything["n"][everything.intersects(poly_deg)])
    got_within = set(mem.query(polygon=poly_utm, crs="EPSG:32633", predicate="within")["n"])
    got_inter = set(mem.query(polygon=poly_utm, crs="EPSG:32633")["n"])
    assert got_within == within and got_inter == inter and within < inter


def test_attribute_filters_dict_in_callable_and_query_string(straddling):
    mem, pts, _ = straddling
    bbox = (11.9, 45.9, 12.1, 46.1)
    inside = pts[pts.intersects(box(*bbox))]
    want = set(inside["n"][inside["amenity"].isin(["school", "shop"])])
    assert set(mem.query(bbox=bbox, filter={"amenity": ["school", "shop"]})["n"]) == want
    got = mem.query(bbox=bbox, filter=lambda f: (f["amenity"] != "house") & (f["layer"] == "points"))
    assert set(got["n"]) == want
    assert set(mem.query(bbox=bbox, filter="amenity in ['school', 'shop']")["n"]) == want
    with pytest.raises(ConfigError, match="filter column 'colour'"):
        mem.query(bbox=bbox, filter={"colour": "red"})


def test_bad_queries_name_the_input_and_the_fix(straddling):
    mem, _, _ = straddling
    with pytest.raises(ConfigError, match="exactly one of"):
        mem.query(location=(46.0, 12.0), radius_km=1, bbox=(0, 0, 1, 1))
    with pytest.raises(ConfigError, match="radius_km must be a positive"):
        mem.query(location=(46.0, 12.0))
    with pytest.raises(ConfigError, match="west > east"):
        mem.query(bbox=(12.1, 46.0, 12.0, 46.1))
    with pytest.raises(ConfigError, match="no CRS"):
        SpatialMemory().add(gpd.GeoDataFrame(geometry=[Point(0, 0)]), layer="x")


def test_saved_memory_reloads_with_the_same_answers(straddling, tmp_path):
    mem, _, _ = straddling
    root = StorageRoot(tmp_path.as_uri())
    uri = mem.save(root, "straddling")
    assert uri.endswith("/memory/spatial/straddling.parquet")
    back = SpatialMemory.load(root, "straddling")
    assert back.h3_resolution == 7 and len(back) == len(mem)
    q = {"location": (46.01, 11.99), "radius_km": 3.0}
    assert list(back.query(**q)["feature_id"]) == list(mem.query(**q)["feature_id"])
    with pytest.raises(StorageError, match="does not exist"):
        SpatialMemory.load(root, "missing")
