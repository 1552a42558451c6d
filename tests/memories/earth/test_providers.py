"""The seed's ``DataProvider`` interface over the five sources, each result checked against its source file."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pandas as pd
import pytest

from memories.errors import ConfigError, DataSourceError

TILE = "33TVM"


@pytest.fixture(scope="module")
def sat():
    from memories.earth import SatelliteImagery

    with SatelliteImagery() as s:
        yield s


@pytest.fixture(scope="module")
def world(sat):
    from memories.earth.sources import sample_world

    return sample_world()


@pytest.fixture
def results(tmp_path):
    from memories.cache import Cache
    from memories.earth.providers import ResultCache

    return ResultCache(Cache(tmp_path / "cache"))


def _centre(sat) -> tuple[float, float]:
    w, s, e, n = sat.tile(TILE).bbox_wgs84
    return (s + n) / 2, (w + e) / 2


def test_the_base_is_abstract_and_unknown_options_are_refused(sat):
    from memories.earth.providers import DataProvider, EnvironmentalProvider

    with pytest.raises(TypeError):
        DataProvider()  # type: ignore[abstract]
    with pytest.raises(ConfigError, match=r"does not take \['cloud'\]"):
        asyncio.run(EnvironmentalProvider().get_data(_centre(sat), ("2023-05", "2023-06"), cloud=3))


def test_satellite_provider_returns_the_series_and_the_catalog_item(sat, world):
    from memories.earth.providers import SatelliteProvider

    p = SatelliteProvider(sat)
    assert p.capabilities.source == "satellite" and "bands" in p.capabilities.options
    got = asyncio.run(p.get_data(_centre(sat), ("2023-06", "2023-07"), bands=["B8"], radius_km=0.2))
    same = sat.historical_imagery(_centre(sat), ("2023-06", "2023-07"), bands=["B8"], radius_km=0.2)
    np.testing.assert_array_equal(got["reflectance"].values, same["reflectance"].values)
    scene = got.attrs["scenes"]["2023-06"][0]
    meta = asyncio.run(p.get_metadata(scene))
    truth = next(it for it in world.items(TILE) if it["id"] == scene)
    assert meta["id"] == scene and meta["properties"]["eo:cloud_cover"] == truth["properties"]["eo:cloud_cover"]
    with pytest.raises(DataSourceError, match="no scene 'S2X_nothing'"):
        asyncio.run(p.get_metadata("S2X_nothing"))


def test_a_stac_answer_cache_serves_the_second_series_without_asking_the_server(sat, tmp_path):
    from memories.cache import Cache
    from memories.earth import SatelliteImagery

    cached = SatelliteImagery(url=sat.api_url, cache=Cache(tmp_path / "stac"))
    first = cached.historical_imagery(_centre(sat), ("2023-06", "2023-07"), bands=["B4"], radius_km=0.1)
    io = cached._client._stac_io
    sent = io.requests_sent
    again = cached.historical_imagery(_centre(sat), ("2023-06", "2023-07"), bands=["B4"], radius_km=0.1)
    assert io.requests_sent == sent and io.search_cache_hits >= 2  # one search page per month, from the cache
    np.testing.assert_array_equal(first["reflectance"].values, again["reflectance"].values)


def test_gis_provider_caches_until_the_file_changes(sat, world, results, tmp_path):
    from memories.earth import GISProvider
    from memories.earth.features import features_near
    from memories.earth.providers import GISDataProvider

    source = tmp_path / "world.gpkg"
    shutil.copy(world.gis_path, source)
    p = GISDataProvider(GISProvider(str(source)), cache=results)
    kw = {"radius_km": 0.5, "feature_types": ["building", "water"]}
    first = asyncio.run(p.get_data(_centre(sat), None, **kw))
    again = asyncio.run(p.get_data(_centre(sat), None, **kw))
    assert results.hits == 1
    direct = features_near(str(source), _centre(sat), 0.5, ["building", "water"])
    pd.testing.assert_frame_equal(pd.DataFrame(first.drop(columns="geometry")), direct.drop(columns="geometry"))
    assert again.attrs["counts"] == first.attrs["counts"] == direct.attrs["counts"]
    assert again.geom_equals(first.geometry).all()
    source.touch()  # a changed file is read again
    asyncio.run(p.get_data(_centre(sat), None, **kw))
    assert results.hits == 1
    meta = asyncio.run(p.get_metadata("buildings"))
    import pyogrio

    assert meta["features"] == len(pyogrio.read_dataframe(source, layer="buildings"))


def test_environmental_provider_gives_the_nearest_station_months(sat, world, results):
    from memories.earth.providers import EnvironmentalProvider

    p = EnvironmentalProvider(cache=results)
    frame = asyncio.run(p.get_data(_centre(sat), ("2023-05-01", "2023-07-01")))
    assert list(frame["month"]) == ["2023-05", "2023-06"]
    raw = pd.read_csv(world.climate_path(TILE), skiprows=1)
    station = open(world.climate_path(TILE)).readline().split(",")[0]
    assert set(frame["station_id"]) == {station}
    may = raw[raw["Date (MM/DD/YYYY)"].str.startswith("05/")]
    assert frame["temperature_mean_c"].iloc[0] == pytest.approx(may["Dry-bulb (C)"].mean(), abs=1e-9)
    assert frame["precipitation_mm"].iloc[0] == pytest.approx(may["Lprecip depth (mm)"].sum(), abs=1e-9)
    meta = asyncio.run(p.get_metadata(station))
    assert meta["name"] == f"SAMPLE {TILE}" and meta["hours"] == 8760


def test_socioeconomic_provider_gives_the_rows_of_the_region_under_the_point(sat, world, results):
    import geopandas as gpd
    from shapely.geometry import Point

    from memories.earth.providers import SocioeconomicProvider

    lat, lon = _centre(sat)
    p = SocioeconomicProvider(cache=results)
    rows = asyncio.run(p.get_data((lat, lon), ("2020-01-01", "2023-01-01")))
    regions = gpd.read_file(world.census_regions_path)
    name = regions[regions.contains(Point(lon, lat))]["name"].iloc[0]
    table = pd.read_csv(world.census_table_path)
    truth = table[(table["name"] == name) & table["year"].between(2020, 2022)].sort_values("year")
    assert list(rows["year"]) == list(truth["year"])
    np.testing.assert_array_equal(rows["population"].to_numpy(), truth["population"].to_numpy(dtype=float))
    assert set(rows["region_id"]) == {name}
    meta = asyncio.run(p.get_metadata(name))
    assert meta["years"] == sorted(table[table["name"] == name]["year"])


def test_historical_provider_puts_the_scan_on_the_tile_and_agrees_with_the_truth(sat, world):
    from memories.earth.providers import HistoricalMapsProvider
    from memories.months import parse_month

    p = HistoricalMapsProvider()
    got = asyncio.run(p.get_data(_centre(sat), None))
    truth = world.landcover_truth(TILE, parse_month(world.months()[0]))
    mapped = got.values != 0
    agree = float((got.values[mapped] == truth[mapped]).mean())
    print(f"\nhistorical map: {got.attrs['method']} fit, RMSE {got.attrs['rmse_m']} m, agreement {agree:.3f}")
    assert mapped.mean() > 0.5 and agree > 0.95
    assert got.attrs["rmse_m"] < 3.0 and got.attrs["gcps"] == 16


def test_acquire_awaits_the_providers_together(sat, results):
    from memories.earth.providers import (
        EnvironmentalProvider,
        GISDataProvider,
        HistoricalMapsProvider,
        SatelliteProvider,
        SocioeconomicProvider,
        acquire,
    )

    providers = {
        "imagery": SatelliteProvider(sat),
        "features": GISDataProvider(cache=results),
        "weather": EnvironmentalProvider(cache=results),
        "census": SocioeconomicProvider(cache=results),
        "map": HistoricalMapsProvider(),
    }
    got = asyncio.run(
        acquire(
            providers,
            _centre(sat),
            ("2023-05", "2023-07"),
            options={"imagery": {"bands": ["B4"], "radius_km": 0.2}, "features": {"radius_km": 0.2}},
        )
    )
    assert list(got) == list(providers)
    # months as ends include their whole span: May, June, July
    assert got["imagery"].sizes["time"] == 3 and len(got["weather"]) == 3 and len(got["census"]) == 1
    assert got["features"].attrs["counts"] and got["map"].attrs["tile_id"] == TILE
