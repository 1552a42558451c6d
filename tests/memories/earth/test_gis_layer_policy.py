"""Which layers a vector file offers: a one-layer file is the layer of its own name, never every layer.

A counties GeoJSON used to come back as buildings, roads, land use and water alike.
Now a file is one layer unless it has several (GeoPackage layers, an OSM PBF extract)
or ``layer_map`` says which of our layers it holds.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from memories.earth.gis import GIS_LAYERS, GISProvider, read_layer, source_layers
from memories.errors import DataSourceError
from memories.grid import TileGrid

GRID = TileGrid("33TVM", 32633, 460000.0, 5100000.0, 100, 100)  # 1 km x 1 km at 10 m, in Ljubljana
COUNTRIES = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "vector" / "naturalearth_lowres"


def _counties(folder: Path) -> Path:
    """Two 'counties' splitting the tile in a west (400 m wide) and an east (600 m) part, as GeoJSON in WGS84."""
    x0, y0, x1, y1 = GRID.bounds
    west, east = (
        shapely.box(x0 - 500, y0 - 500, x0 + 400, y1 + 500),
        shapely.box(x0 + 400, y0 - 500, x1 + 500, y1 + 500),
    )
    frame = gpd.GeoDataFrame({"NAME": ["West", "East"]}, geometry=[west, east], crs=GRID.crs).to_crs("EPSG:4326")
    path = folder / "counties.geojson"
    frame.to_file(path, driver="GeoJSON", engine="pyogrio")
    return path


def test_a_one_layer_geojson_is_not_every_layer(tmp_path: Path) -> None:
    path = str(_counties(tmp_path))
    assert source_layers(path) == {"counties": "counties"}
    with pytest.raises(DataSourceError, match=r"none of \['buildings', 'roads', 'landuse', 'water'\].*layer_map"):
        GISProvider(path).tile_layers(GRID)
    with pytest.raises(DataSourceError, match=r"has no layer 'buildings'; its layers are \['counties'\]"):
        read_layer(path, "buildings", GRID)
    assert sorted(read_layer(path, "counties", GRID)["NAME"]) == ["East", "West"]


def test_a_mapped_one_layer_file_is_that_layer_and_the_others_are_empty(tmp_path: Path) -> None:
    provider = GISProvider(str(_counties(tmp_path)), layer_map={"landuse": "counties"})
    assert provider.layers() == ["landuse"]
    layers = provider.tile_layers(GRID)
    assert list(layers) == list(GIS_LAYERS)
    landuse = layers["landuse"].sort_values("NAME")
    assert list(landuse["NAME"]) == ["East", "West"]
    assert landuse.area.tolist() == pytest.approx([600 * 1000, 400 * 1000], rel=1e-6)  # clipped to the tile
    for name in ("buildings", "roads", "water"):
        assert len(layers[name]) == 0 and layers[name].crs == GRID.crs
        assert layers[name].attrs["in_source"] is False
    assert layers["landuse"].attrs["in_source"] is True
    with pytest.raises(DataSourceError, match="layer_map"):
        provider.tile_layers(GRID, layers=("water",))  # asked for by name: absent is an error


def test_a_geopackage_offers_its_own_layers_and_only_those(tmp_path: Path) -> None:
    x, y = GRID.x_min + 100, GRID.y_max - 100
    path = tmp_path / "town.gpkg"
    house = gpd.GeoDataFrame({"building": ["yes"]}, geometry=[shapely.box(x, y - 20, x + 20, y)], crs=GRID.crs)
    road = gpd.GeoDataFrame({"highway": ["residential"]}, geometry=[shapely.LineString([(x, y), (x + 300, y)])])
    house.to_file(path, layer="buildings", driver="GPKG", engine="pyogrio")
    road.set_crs(GRID.crs).to_file(path, layer="roads", driver="GPKG", engine="pyogrio")
    layers = GISProvider(str(path)).tile_layers(GRID)
    assert {name: len(gdf) for name, gdf in layers.items()} == {"buildings": 1, "roads": 1, "landuse": 0, "water": 0}
    assert layers["buildings"].area.iloc[0] == pytest.approx(400.0, rel=1e-6)
    assert layers["roads"].length.iloc[0] == pytest.approx(300.0, rel=1e-6)


def test_the_real_countries_shapefile_is_one_layer_until_mapped() -> None:
    path = str(COUNTRIES / "naturalearth_lowres.shp")
    with pytest.raises(DataSourceError, match="naturalearth_lowres"):
        GISProvider(path).tile_layers(GRID)
    landuse = GISProvider(path, layer_map={"landuse": "naturalearth_lowres"}).tile_layers(GRID)["landuse"]
    assert list(landuse["name"]) == ["Slovenia"]
    assert landuse.area.iloc[0] == pytest.approx(1e6, rel=1e-9)  # the tile lies wholly inside the country


def test_a_layer_map_to_a_layer_the_file_lacks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"layer_map.*'parcels'.*its layers are \['counties'\]"):
        GISProvider(str(_counties(tmp_path)), layer_map={"landuse": "parcels"}).layers()


def test_absent_layers_flow_through_labels_and_the_context_memory(tmp_path: Path) -> None:
    from memories.earth.gis import rasterize_labels
    from memories.memory.context import ContextMemoryManager

    x, y = GRID.x_min + 100, GRID.y_max - 100
    path = tmp_path / "houses.gpkg"
    house = gpd.GeoDataFrame({"osm_id": [7], "building": ["yes"]}, geometry=[shapely.box(x, y - 20, x + 20, y)])
    house.set_crs(GRID.crs).to_file(path, layer="buildings", driver="GPKG", engine="pyogrio")
    layers = GISProvider(str(path)).tile_layers(GRID)
    assert int((rasterize_labels(layers, GRID) > 0).sum()) == 4  # the 20 m house: 2 x 2 pixels, nothing else
    memory = ContextMemoryManager()
    memory.add_tile_layers(GRID, layers, month="2023-05")
    assert memory.entity("building:7")["building"] == "yes"
