"""OSM PBF through GDAL's OSM driver: counts against what GDAL reads directly, hstore tags."""

from __future__ import annotations

import pyogrio
import pytest
import shapely

from memories.earth.gis import GISProvider, read_layer
from memories.earth.osm import parse_hstore
from memories.grid import TileGrid
from tests.real_data import SHARED_DATA, needs_data

HELSINKI = SHARED_DATA / "osm" / "Helsinki.osm.pbf"
needs_helsinki = needs_data(HELSINKI)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # GDAL's warnings about broken relations


def _gdal(layer: str, where: str) -> object:
    return pyogrio.read_dataframe(HELSINKI, layer=layer, where=where, on_invalid="ignore")


@needs_helsinki
def test_helsinki_buildings_match_gdal_osm_driver_count() -> None:
    direct = _gdal("multipolygons", "building IS NOT NULL")
    ours = read_layer(str(HELSINKI), "buildings")
    assert len(direct) == 494  # the extract's buildings as GDAL assembles them
    # Every feature GDAL matched is either kept or dropped and counted.
    assert len(ours) + ours.attrs["dropped"] == len(direct)
    # Independently: dropped = no geometry, or no polygonal part after make_valid.
    geoms = direct.geometry.to_numpy()
    usable = [
        g is not None
        and any(p.geom_type in ("Polygon", "MultiPolygon") for p in shapely.get_parts(shapely.make_valid(g)))
        for g in geoms
    ]
    assert len(ours) == sum(usable) == 482
    assert ours.attrs["repaired"] == int(sum(g is not None and not g.is_valid for g in geoms)) == 18
    assert ours.geometry.is_valid.all()
    assert set(ours.geom_type) <= {"Polygon", "MultiPolygon"}
    assert len(set(_keys(ours))) == len(ours)  # every kept feature is one OSM way or relation


@needs_helsinki
def test_helsinki_roads_match_gdal_osm_driver_count() -> None:
    direct = _gdal("lines", "highway IS NOT NULL")
    ours = read_layer(str(HELSINKI), "roads")
    assert len(ours) == len(direct) == 2504
    assert ours.attrs["dropped"] == 0
    assert ours["highway"].value_counts().to_dict() == direct["highway"].value_counts().to_dict()


@needs_helsinki
def test_hstore_tags_become_columns() -> None:
    buildings = read_layer(str(HELSINKI), "buildings")
    ateneum = buildings[buildings["name"] == "Ateneum"]
    assert ateneum[["addr:street", "addr:housenumber"]].values.tolist() == [["Kaivokatu", "2"]]
    direct = _gdal("multipolygons", "building IS NOT NULL AND other_tags LIKE '%\"addr:street\"=>%'")
    kept = set(_keys(buildings))
    assert int(buildings["addr:street"].notna().sum()) == sum(k in kept for k in _keys(direct)) == 89


def test_parse_hstore_unescapes_quotes() -> None:
    text = r'"name"=>"Caf\"e \\ bar","addr:housenumber"=>"22-24","empty"=>""'
    assert parse_hstore(text) == {"name": 'Caf"e \\ bar', "addr:housenumber": "22-24", "empty": ""}
    assert parse_hstore(None) == {}


@needs_helsinki
def test_tile_clip_reprojects_and_simplifies() -> None:
    grid = TileGrid("35VLG", 32635, 384000.0, 6675000.0, 300, 300)  # 3 km over central Helsinki
    gis = GISProvider(str(HELSINKI), simplify_m=2.0)
    layers = gis.tile_layers(grid)
    assert set(layers) == {"buildings", "roads", "landuse", "water", "places"}
    box = shapely.box(*grid.bounds)
    for name, gdf in layers.items():
        assert gdf.crs.to_epsg() == 32635, name
        assert gdf.geometry.within(box.buffer(1e-6)).all(), name
    full = read_layer(str(HELSINKI), "buildings", grid)
    simple = layers["buildings"]
    assert len(simple) == len(full)
    n_full = shapely.get_num_coordinates(full.geometry.to_numpy()).sum()
    n_simple = shapely.get_num_coordinates(simple.geometry.to_numpy()).sum()
    assert n_simple < 0.9 * n_full
    # Simplifying at 2 m moves the outline by at most 2 m: areas agree closely.
    assert abs(simple.area.sum() / full.area.sum() - 1) < 0.02
    assert "Kluuvi" in set(layers["places"]["name"])


def _keys(frame: object) -> list[str]:
    """OSM identity of multipolygons: a relation's ``osm_id`` or a closed way's ``osm_way_id``."""
    return [f"{a}/{b}" for a, b in zip(frame["osm_id"], frame["osm_way_id"])]  # type: ignore[index]
