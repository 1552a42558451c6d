"""GeoJSON, Shapefile and GeoPackage sources: repair counted, reprojection, clip, GeoParquet 1.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import pyarrow.parquet as pq
import pytest
import shapely

from memories.earth.gis import (
    GISProvider,
    geometry_report,
    read_geoparquet,
    read_layer,
    source_format,
    write_geoparquet,
)
from memories.errors import ConfigError, DataSourceError
from memories.grid import TileGrid
from memories.store.paths import StorageRoot

GRID = TileGrid("33TVM", 32633, 460000.0, 5100000.0, 100, 100)  # 1 km x 1 km at 10 m


def _frame() -> gpd.GeoDataFrame:
    """Four features in the tile CRS: a valid house, a bowtie, a sliver that collapses, one outside."""
    x, y = 460100.0, 5099100.0
    house = shapely.box(x, y, x + 20, y + 20)
    bowtie = shapely.Polygon([(x + 100, y), (x + 140, y + 40), (x + 140, y), (x + 100, y + 40), (x + 100, y)])
    sliver = shapely.Polygon([(x + 200, y), (x + 250, y), (x + 200, y), (x + 200, y)])  # zero area
    outside = shapely.box(x + 5000, y, x + 5020, y + 20)
    frame = gpd.GeoDataFrame(
        {
            "building": ["yes"] * 4,
            "name": ["house", "bowtie", "sliver", "far"],
            "start_date": [None, "2023-06-10", None, None],
        },
        geometry=[house, bowtie, sliver, outside],
        crs=GRID.crs,
    )
    return frame.to_crs("EPSG:4326")


@pytest.mark.parametrize(("suffix", "driver"), [(".geojson", "GeoJSON"), (".shp", "ESRI Shapefile"), (".gpkg", "GPKG")])
def test_bowtie_is_repaired_and_counted_in_every_format(tmp_path: Path, suffix: str, driver: str) -> None:
    path = tmp_path / f"buildings{suffix}"
    _frame().to_file(path, layer="buildings", driver=driver, engine="pyogrio")
    gdf = read_layer(str(path), "buildings", GRID)
    assert sorted(gdf["name"]) == ["bowtie", "house"]
    assert gdf.attrs["read"] == 3  # the bbox pre-filter leaves out the far house
    assert gdf.attrs["repaired"] == 2  # bowtie and sliver
    assert gdf.attrs["dropped"] == 1  # the sliver has no area left
    assert gdf.crs.to_epsg() == 32633 and gdf.geometry.is_valid.all()
    bowtie = gdf[gdf["name"] == "bowtie"].geometry.iloc[0]
    assert bowtie.geom_type == "MultiPolygon" and len(bowtie.geoms) == 2
    assert bowtie.area == pytest.approx(2 * 0.5 * 40 * 20, rel=1e-6)  # two triangles of 40 m x 20 m
    assert gdf[gdf["name"] == "house"].area.iloc[0] == pytest.approx(400.0, rel=1e-6)


def test_start_date_hides_features_of_later_months(tmp_path: Path) -> None:
    path = tmp_path / "b.gpkg"
    _frame().to_file(path, layer="buildings", driver="GPKG", engine="pyogrio")
    before = read_layer(str(path), "buildings", GRID, as_of=datetime(2023, 5, 31, tzinfo=UTC))
    after = read_layer(str(path), "buildings", GRID, as_of=datetime(2023, 6, 30, tzinfo=UTC))
    assert list(before["name"]) == ["house"]
    assert sorted(after["name"]) == ["bowtie", "house"]


def test_clip_keeps_only_the_part_inside_the_tile(tmp_path: Path) -> None:
    x0, y0, x1, _ = GRID.bounds
    half_in = shapely.box(x1 - 50, y0 + 10, x1 + 50, y0 + 60)  # half in, half out, 100 m x 50 m
    frame = gpd.GeoDataFrame({"landuse": ["forest"]}, geometry=[half_in], crs=GRID.crs).to_crs("EPSG:4326")
    path = tmp_path / "landuse.geojson"
    frame.to_file(path, driver="GeoJSON", engine="pyogrio")
    gdf = read_layer(str(path), "landuse", GRID)
    assert gdf.area.iloc[0] == pytest.approx(50 * 50, rel=1e-3)
    assert gdf.total_bounds[2] <= x1 + 1e-6


def test_geoparquet_has_bbox_covering_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "b.gpkg"
    _frame().to_file(path, layer="buildings", driver="GPKG", engine="pyogrio")
    gdf = read_layer(str(path), "buildings", GRID)
    root = StorageRoot(tmp_path.as_uri())
    uri = root.vector_uri("buildings", GRID.tile_id, "2023-06")
    assert write_geoparquet(root, uri, gdf) > 0
    meta = json.loads(pq.read_schema(root.local_path(uri)).metadata[b"geo"])
    assert meta["version"] == "1.1.0"
    assert meta["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    back = read_geoparquet(root, uri)
    assert back.crs.to_epsg() == 32633 and back.geometry.geom_equals(gdf.geometry).all()


def test_provider_reports_counts_per_layer(tmp_path: Path) -> None:
    path = tmp_path / "world.gpkg"
    _frame().to_file(path, layer="buildings", driver="GPKG", engine="pyogrio")
    provider = GISProvider(str(path))
    assert provider.layers() == ["buildings"]
    report = geometry_report({"buildings": provider.get_layer("buildings", GRID)})
    assert report == {"buildings": {"features": 2, "read": 3, "repaired": 2, "dropped": 1, "outside": 0}}


def test_bad_sources_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GeoPackage"):
        source_format("roads.csv")
    path = tmp_path / "b.gpkg"
    _frame().to_file(path, layer="buildings", driver="GPKG", engine="pyogrio")
    with pytest.raises(DataSourceError, match="its layers are \\['buildings'\\]"):
        read_layer(str(path), "roads", GRID)
    nocrs = tmp_path / "nocrs.shp"
    _frame().set_crs(None, allow_override=True).to_file(nocrs, engine="pyogrio")
    with pytest.raises(DataSourceError, match="source_crs"):
        read_layer(str(nocrs), "nocrs", GRID)
    assert len(read_layer(str(nocrs), "nocrs", GRID, source_crs="EPSG:4326")) == 2
    with pytest.raises(ConfigError, match="simplify_m"):
        read_layer(str(path), "buildings", simplify_m=1.0)
