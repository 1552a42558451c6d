"""The seed's Data Acquisition Layer examples, run as the page writes them.

Only the place and the dates are moved onto the embedded sample world (the test
configuration: tile 33TVM south-west of Ljubljana, May-August 2023): San
Francisco's (37.7749, -122.4194) becomes the tile's centre, and 2000-2023 becomes
2023. Every value is checked against the world's ground truth or its source files.
"""

from __future__ import annotations

import asyncio
import inspect

import numpy as np
import pytest

TILE = "33TVM"


def _location() -> tuple[float, float]:
    from memories.earth.satellite import SatelliteImagery

    w, s, e, n = SatelliteImagery().tile(TILE).bbox_wgs84
    return (s + n) / 2, (w + e) / 2


@pytest.fixture(scope="module")
def acquired():
    location = _location()
    # -- the seed's example, as written but for the place and the dates -----------------
    from memories.earth import GISProvider, SatelliteImagery

    # Initialize components
    satellite = SatelliteImagery()
    gis = GISProvider()

    async def acquire_data():
        # Retrieve satellite imagery
        imagery = await satellite.get_historical_imagery(
            location=location,
            time_range=("2023-01-01", "2024-01-01"),
            interval="yearly",
            max_cloud_cover=10,
            bands=["B2", "B3", "B4", "B8"],  # RGB + NIR
            apply_atmospheric_correction=True,
        )

        # Calculate vegetation index
        ndvi_timeseries = satellite.calculate_index(
            imagery=imagery,
            index="NDVI",  # Normalized Difference Vegetation Index
            aggregate="mean",  # Calculate mean NDVI for each image
        )

        # Retrieve GIS data
        buildings = await gis.get_features(
            location=location,
            radius_km=5,
            feature_types=["building", "road", "landuse"],
            include_attributes=True,
            simplify_tolerance=0.0001,  # Simplify geometries for performance
        )

        return imagery, ndvi_timeseries, buildings

    # -------------------------------------------------------------------------------------
    try:
        yield asyncio.run(acquire_data()), satellite, gis
    finally:
        satellite.close()


def test_imagery_is_the_clear_sky_truth_of_the_year_s_clear_scenes(acquired):
    from memories.earth.sources import sample_world

    (imagery, _, _), satellite, _ = acquired
    world = sample_world()
    kept = [it for it in world.items(TILE) if it["properties"]["eo:cloud_cover"] <= 10]
    assert imagery.attrs["scenes"] == {"2023": [it["id"] for it in kept]}
    assert imagery.attrs["processing_level"] == "L2A"
    assert "surface reflectance already" in imagery.attrs["atmospheric_correction"]
    assert imagery.attrs["band_names"] == ["B2", "B3", "B4", "B8"]
    dates = [d for d in world.scene_datetimes(TILE) if any(d.strftime("%Y%m%d") in it["id"] for it in kept)]
    errors = {}
    for band in ("blue", "green", "red", "nir"):
        truth = np.median([world.clear_sky_reflectance(TILE, d, band) for d in dates], axis=0)
        got = imagery["reflectance"].isel(time=0).sel(band=band).values
        ok = np.isfinite(got)
        errors[band] = float(np.abs(got[ok] - truth[ok]).mean())
    print(f"\nseed example: yearly composite of {len(kept)} scenes (<= 10 % cloud), MAE vs truth {errors}")
    assert max(errors.values()) < 0.01
    assert np.isfinite(imagery["reflectance"].values).mean() > 0.99


def test_mean_ndvi_per_image_matches_the_truth(acquired):
    from memories.earth.sources import sample_world

    (imagery, ndvi, _), _, _ = acquired
    world = sample_world()
    kept = [it["id"] for it in world.items(TILE) if it["properties"]["eo:cloud_cover"] <= 10]
    dates = [d for d in world.scene_datetimes(TILE) if any(d.strftime("%Y%m%d") in i for i in kept)]
    red = np.median([world.clear_sky_reflectance(TILE, d, "red") for d in dates], axis=0)
    nir = np.median([world.clear_sky_reflectance(TILE, d, "nir") for d in dates], axis=0)
    truth = float(np.nanmean((nir - red) / (nir + red)))
    print(f"\nseed example: mean NDVI per image {ndvi.values.tolist()} (truth {truth:.4f})")
    assert ndvi.dims == ("time",) and ndvi.sizes["time"] == 1
    assert abs(float(ndvi.values[0]) - truth) < 0.01


def test_features_are_those_of_the_configured_source_around_the_point(acquired):
    import geopandas as gpd

    (_, _, buildings), _, gis = acquired
    # the tile is 2.56 km wide: a 5 km radius around its centre holds every feature of the tile
    truth = {
        ftype: int((gpd.read_file(gis.source, layer=layer)["tile_id"] == TILE).sum())
        for ftype, layer in (("building", "buildings"), ("road", "roads"), ("landuse", "landuse"))
    }
    print(f"\nseed example: features within 5 km {buildings.attrs['counts']} (source: {truth})")
    assert buildings.attrs["counts"] == truth
    assert buildings.crs.to_epsg() == 4326 and buildings["distance_km"].max() <= 5
    assert {"building", "highway", "landuse", "name"} <= set(buildings.columns)  # include_attributes=True


def test_the_provider_pattern_is_the_seed_s_interface():
    from memories.earth.providers import (
        DataProvider,
        EnvironmentalProvider,
        GISDataProvider,
        HistoricalMapsProvider,
        SatelliteProvider,
        SocioeconomicProvider,
    )

    assert DataProvider.__abstractmethods__ == {"get_data", "get_metadata", "capabilities"}
    for cls in (
        SatelliteProvider,
        HistoricalMapsProvider,
        GISDataProvider,
        EnvironmentalProvider,
        SocioeconomicProvider,
    ):
        assert issubclass(cls, DataProvider)
        assert inspect.iscoroutinefunction(cls.get_data) and inspect.iscoroutinefunction(cls.get_metadata)
    sources = {c().capabilities.source for c in (HistoricalMapsProvider, EnvironmentalProvider, SocioeconomicProvider)}
    assert sources == {"historical_maps", "environmental", "socioeconomic"}
