"""DEM sources: a GeoTIFF file and a Copernicus-DEM-like STAC collection served on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from memories.earth.dem import dem_hrefs, dem_items, dem_on_grid, find_dem, read_dem
from memories.earth.stac_profiles import get_profile
from memories.errors import ConfigError, DataSourceError
from memories.sample.spec import SampleWorldSpec
from memories.sample.terrain import SampleTerrain, sample_terrain, write_dem_cog

SPEC = SampleWorldSpec(n_tiles=1, n_months=3, size_px=96)


@pytest.fixture(scope="module")
def valley() -> SampleTerrain:
    return sample_terrain(SPEC, "33TVM")


def _glo30_like_cog(terrain: SampleTerrain, path: Path) -> tuple[float, float, float, float]:
    """The exact elevation sampled on a 1e-4 degree EPSG:4326 grid around the tile (as GLO-30 publishes),
    written as a float32 COG; returns its (west, south, east, north)."""
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin

    w, s, e, n = terrain.grid.bbox_wgs84
    step = 1e-4
    w, s, e, n = w - 3 * step, s - 3 * step, e + 3 * step, n + 3 * step
    width, height = int(np.ceil((e - w) / step)), int(np.ceil((n - s) / step))
    transform = from_origin(w, n, step, step)
    lon = w + (np.arange(width) + 0.5) * step
    lat = n - (np.arange(height) + 0.5) * step
    lon2, lat2 = np.meshgrid(lon, lat)
    x, y = Transformer.from_crs(4326, terrain.grid.epsg, always_xy=True).transform(lon2, lat2)
    z = terrain.elevation(x, y).astype(np.float32)
    profile = {"driver": "COG", "width": width, "height": height, "count": 1, "dtype": "float32"}
    with rasterio.open(path, "w", crs="EPSG:4326", transform=transform, nodata=-32767.0, **profile) as dst:
        dst.write(z, 1)
    return w, s, w + width * step, n


def test_a_geotiff_on_the_tile_grid_reads_back_exactly(valley: SampleTerrain, tmp_path: Path) -> None:
    path = write_dem_cog(valley, tmp_path / "dem.tif")
    np.testing.assert_array_equal(dem_on_grid([str(path)], valley.grid), valley.dem())
    native = read_dem(str(path))
    assert native.cell_size_m() == (10.0, 10.0) and native.elevation.shape == valley.grid.shape


def test_a_dem_that_misses_the_tile_is_refused_naming_it(valley: SampleTerrain, tmp_path: Path) -> None:
    other = sample_terrain(SampleWorldSpec(n_tiles=2, n_months=3, size_px=96), "31UDQ")
    path = write_dem_cog(other, tmp_path / "elsewhere.tif")
    with pytest.raises(DataSourceError, match="do not cover tile 33TVM"):
        dem_on_grid([str(path)], valley.grid)


def test_a_stac_dem_collection_is_searched_and_resampled_onto_the_tile(valley: SampleTerrain, tmp_path: Path) -> None:
    """A cop-dem-glo-30 collection (asset ``data``, EPSG:4326 COG) behind rustac serve, read through the
    earth-search-dem profile: the tile's elevation comes back within centimetres of the exact surface."""
    import dask.array as da

    from memories.earth import terrain as T
    from memories.earth.stac import open_client
    from memories.sample import StacServer

    cog = tmp_path / "Copernicus_DSM_COG_10_N45_00_E014_00_DEM.tif"
    w, s, e, n = _glo30_like_cog(valley, cog)
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
        "id": "Copernicus_DSM_COG_10_N45_00_E014_00_DEM",
        "collection": "cop-dem-glo-30",
        "bbox": [w, s, e, n],
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"datetime": "2021-04-22T00:00:00Z", "proj:epsg": 4326, "gsd": 30},
        "assets": {"data": {"href": str(cog), "type": "image/tiff; application=geotiff; profile=cloud-optimized"}},
        "links": [],
    }
    collection = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": "cop-dem-glo-30",
        "description": "Copernicus DEM GLO-30 (test copy)",
        "license": "proprietary",
        "extent": {"spatial": {"bbox": [[w, s, e, n]]}, "temporal": {"interval": [["2021-04-22T00:00:00Z", None]]}},
        "links": [],
    }
    (tmp_path / "collection.json").write_text(json.dumps(collection))
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    with StacServer([tmp_path / "collection.json", tmp_path / "items.json"]) as server:
        profile = get_profile("earth-search", url=server.url, collection="cop-dem-glo-30")
        assert profile.name == "earth-search-dem"
        items = dem_items(open_client(server.url), profile, valley.grid)
        found = find_dem("stac", valley.grid, profile="earth-search-dem", url=server.url)  # what the asset calls
    assert [it.id for it in items] == [item["id"]]
    assert found == (dem_hrefs(items, profile), [item["id"]])
    dem = dem_on_grid(dem_hrefs(items, profile), valley.grid)
    err = np.abs(dem - valley.dem())
    off_axis = np.abs(np.arange(96) - valley.axis_col)[None, :].repeat(96, 0) >= 2
    assert np.isfinite(dem).all()
    # Bilinear from ~8 x 11 m cells: centimetres on the flanks, more on the curved floor.
    assert err[off_axis].max() < 0.1 and np.median(err) < 0.03 and err.max() < 0.5
    fdir = T.flow_direction(da.from_array(dem, chunks=48), 10.0, 10.0).compute()
    assert (fdir == valley.flow_direction()).mean() > 0.99


def test_the_dem_of_each_source_is_found_or_refused_naming_what_is_missing(valley: SampleTerrain) -> None:
    assert find_dem("sample", valley.grid, sample_path="/w/dem.tif") == (["/w/dem.tif"], [])
    assert find_dem("files", valley.grid, paths=["a.tif", "b.tif"]) == (["a.tif", "b.tif"], [])
    with pytest.raises(ConfigError, match="source='sample' needs the sample world's DEM"):
        find_dem("sample", valley.grid)
    with pytest.raises(ConfigError, match=r"source='files' needs paths=\[\.\.\.\]"):
        find_dem("files", valley.grid)
    with pytest.raises(ConfigError, match="DEM source 'srtm' is unknown; use 'sample', 'files' or 'stac'"):
        find_dem("srtm", valley.grid)
