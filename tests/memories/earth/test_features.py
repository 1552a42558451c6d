"""``GISProvider().get_features``: the configured source's features within a radius, checked against the file."""

from __future__ import annotations

import asyncio

import geopandas as gpd
import numpy as np
import pytest
import shapely

from memories.errors import ConfigError, DataSourceError
from tests.real_data import SHARED_DATA, needs_data


@pytest.fixture(scope="module")
def gis():
    from memories.earth import GISProvider

    return GISProvider()  # no argument: the configured sample world's GeoPackage


def _centre(tile: str = "33TVM") -> tuple[float, float]:
    from memories.earth.satellite import SatelliteImagery

    w, s, e, n = SatelliteImagery().tile(tile).bbox_wgs84
    return (s + n) / 2, (w + e) / 2


def _truth(source: str, layer: str, lat: float, lon: float, radius_km: float) -> gpd.GeoDataFrame:
    """The layer's features intersecting the circle, found without the library: a geodesic buffer test."""
    from pyproj import Geod

    gdf = gpd.read_file(source, layer=layer, engine="pyogrio").to_crs("EPSG:4326")
    geod = Geod(ellps="WGS84")
    lons, lats, _ = geod.fwd(np.full(360, lon), np.full(360, lat), np.arange(360), np.full(360, radius_km * 1000))
    disc = shapely.Polygon(zip(lons, lats))
    return gdf[gdf.intersects(disc)]


def test_features_near_the_point_are_those_of_the_source(gis):
    lat, lon = _centre()
    got = asyncio.run(
        gis.get_features(
            location=(lat, lon),
            radius_km=0.6,
            feature_types=["building", "road", "landuse"],
            include_attributes=True,
            simplify_tolerance=None,
        )
    )
    assert got.crs.to_epsg() == 4326
    for ftype, layer in (("building", "buildings"), ("road", "roads"), ("landuse", "landuse")):
        truth = _truth(gis.source, layer, lat, lon, 0.6)
        mine = got[got["feature_type"] == ftype]
        # the 360-gon and the 64-gon circle differ by < 1 m at 600 m: compare ids away from the rim
        assert abs(len(mine) - len(truth)) <= 2, (ftype, len(mine), len(truth))
        assert len(set(mine["osm_id"]) ^ set(truth["osm_id"])) <= 2
        assert len(mine) > 0
        assert got.attrs["counts"][ftype] == len(mine)
        # attributes as in the file
        row = truth.set_index("osm_id").loc[mine["osm_id"].iloc[0]]
        src_col = {"building": "building", "road": "highway", "landuse": "landuse"}[ftype]
        assert mine[src_col].iloc[0] == row[src_col]
    # distances: 0 for what contains the point, and never beyond the radius
    assert got["distance_km"].between(0, 0.6 + 1e-9).all()
    d = got.to_crs(gis_local := f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84").distance(
        gpd.GeoSeries.from_xy([0], [0], crs=gis_local).iloc[0]
    )
    np.testing.assert_allclose(got["distance_km"], d / 1000, atol=1e-6)


def test_simplify_and_attribute_options_do_what_they_say(gis):
    lat, lon = _centre()
    full = gis.features((lat, lon), 0.6, ["road"], include_attributes=True)
    slim = gis.features((lat, lon), 0.6, ["road"], include_attributes=False, simplify_tolerance=0.0001)
    assert list(slim.columns) == ["feature_type", "osm_id", "name", "distance_km", "geometry"]
    assert list(slim["osm_id"]) == list(full["osm_id"])
    n_full = shapely.get_num_coordinates(full.geometry.to_numpy()).sum()
    n_slim = shapely.get_num_coordinates(slim.geometry.to_numpy()).sum()
    assert n_slim <= n_full
    hd = shapely.hausdorff_distance(full.geometry.to_numpy(), slim.geometry.to_numpy())
    assert float(np.max(hd)) <= 0.0001 + 1e-12  # degrees


def test_bad_requests_name_the_fix(gis):
    with pytest.raises(ConfigError, match="feature type 'tree'"):
        gis.features(_centre(), 1, ["tree"])
    with pytest.raises(ConfigError, match="radius_km=0"):
        gis.features(_centre(), 0, ["building"])
    with pytest.raises(ConfigError, match="latitude, longitude"):
        gis.features((200, 0), 1, ["building"])


@needs_data(SHARED_DATA / "osm" / "Helsinki.osm.pbf")
def test_features_of_a_real_osm_extract():
    from memories.earth import GISProvider

    gis = GISProvider(str(SHARED_DATA / "osm" / "Helsinki.osm.pbf"))
    got = gis.features((60.170, 24.944), 0.3, ["building", "road"], include_attributes=False)
    counts = got.attrs["counts"]
    assert counts["building"] > 10 and counts["road"] > 20
    assert got["distance_km"].max() <= 0.3
    # the same selection made independently over the whole extract (GDAL's OSM driver, a geodesic circle)
    from pyproj import Geod

    from memories.earth.gis import read_layer

    lons, lats, _ = Geod(ellps="WGS84").fwd(
        np.full(360, 24.944), np.full(360, 60.170), np.arange(360), np.full(360, 300)
    )
    disc = shapely.Polygon(zip(lons, lats))
    whole = read_layer(gis.source, "buildings")
    assert abs(counts["building"] - int(whole.intersects(disc).sum())) <= 1


def test_a_layer_the_source_lacks_is_refused(tmp_path):
    from memories.earth import GISProvider

    path = tmp_path / "roads.geojson"
    gpd.GeoDataFrame({"highway": ["primary"]}, geometry=[shapely.LineString([(0, 0), (0.01, 0.01)])], crs=4326).to_file(
        path
    )
    with pytest.raises(DataSourceError, match="has no layer \\['buildings'\\]"):
        GISProvider(str(path)).features((0.005, 0.005), 1, ["building"])
    got = GISProvider(str(path), layer_map={"roads": "roads"}).features((0.005, 0.005), 1, ["road"])
    assert list(got["highway"]) == ["primary"] and got["distance_km"].iloc[0] < 1e-6  # the line passes the point
