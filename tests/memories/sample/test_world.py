"""Ground truth: the landscape, the events, the land cover through time, the GIS layers."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import rasterio
import shapely

from memories.classes import OSM_LANDUSE_TO_CLASS
from memories.errors import ConfigError, DataSourceError
from memories.sample import SampleWorld, SampleWorldSpec
from memories.sample.spec import EventKind

FOREST, BUILT_UP, WATER, BARE_SOIL = 2, 5, 1, 6


def test_open_reads_the_manifest(tiny_world: SampleWorld, tiny_spec: SampleWorldSpec) -> None:
    world = SampleWorld.open(tiny_world.root)
    assert world.spec == tiny_spec
    assert [t.tile_id for t in world.tiles] == ["33TVM", "31UDQ"]
    assert world.tile("31UDQ").epsg == 32631
    assert world.months() == ["2023-05", "2023-06", "2023-07"]
    assert world.manifest["items"] == sum(len(world.scene_datetimes(t.tile_id)) for t in world.tiles)


def test_open_without_a_world_says_how_to_generate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataSourceError, match="python -m memories.sample generate"):
        SampleWorld.open(tmp_path)


def test_ensure_reuses_a_world_of_the_same_spec(tiny_world: SampleWorld, tiny_spec: SampleWorldSpec) -> None:
    before = tiny_world.items_path.stat().st_mtime_ns
    again = SampleWorld.ensure(tiny_spec, tiny_world.root)
    assert again.items_path.stat().st_mtime_ns == before


def test_every_tile_has_the_three_events_inside_it(tiny_world: SampleWorld) -> None:
    for tile in tiny_world.tiles:
        events = tiny_world.events(tile.tile_id)
        assert [e.kind for e in events] == ["clear_cut", "new_district", "flood"]
        box = shapely.box(*tile.bounds)
        tile_area = tile.width * tile.height * tile.pixel_area_m2
        for e in events:
            assert box.contains(e.geometry), (tile.tile_id, e.kind)
            assert 0.02 <= e.area_m2 / tile_area <= 0.06, (tile.tile_id, e.kind, e.area_m2 / tile_area)
            start, end = tiny_world.spec.time_range
            assert start < e.start < end
        flood = tiny_world.event(tile.tile_id, "flood")
        assert flood.end == flood.start + timedelta(days=21)


def test_clear_cut_is_inside_forest(tiny_world: SampleWorld) -> None:
    for tile in tiny_world.tiles:
        event = tiny_world.event(tile.tile_id, "clear_cut")
        base = tiny_world.landcover_truth(tile.tile_id, event.start - timedelta(days=1))
        mask = tiny_world.event_mask(tile.tile_id, "clear_cut")
        assert mask.sum() > 0.02 * mask.size
        assert (base[mask] == FOREST).all()


def test_new_district_is_on_cropland_or_grassland(tiny_world: SampleWorld) -> None:
    for tile in tiny_world.tiles:
        event = tiny_world.event(tile.tile_id, "new_district")
        base = tiny_world.landcover_truth(tile.tile_id, event.start - timedelta(seconds=1))
        assert np.isin(base[tiny_world.event_mask(tile.tile_id, "new_district")], [3, 4]).all()


def test_flood_touches_the_water_and_is_land_before(tiny_world: SampleWorld) -> None:
    for tile in tiny_world.tiles:
        flood = tiny_world.event(tile.tile_id, "flood")
        base = tiny_world.landcover_truth(tile.tile_id, flood.start - timedelta(seconds=1))
        water = _water_geometry(tiny_world, tile.tile_id)
        assert flood.geometry.distance(water) < tile.resolution
        assert (base[tiny_world.event_mask(tile.tile_id, "flood")] != WATER).mean() > 0.95


def test_flood_reaches_houses_and_roads(tiny_world: SampleWorld) -> None:
    import geopandas as gpd

    for layer in ("buildings", "roads"):
        frame = gpd.read_file(tiny_world.gis_path, layer=layer)
        for tile in tiny_world.tiles:
            flood = tiny_world.event(tile.tile_id, "flood")
            mine = frame[frame.tile_id == tile.tile_id].to_crs(tile.crs)
            assert mine.geometry.intersects(flood.geometry).sum() >= 1, (tile.tile_id, layer)


def test_landcover_truth_changes_exactly_at_event_dates(tiny_world: SampleWorld) -> None:
    tile_id = "33TVM"
    second = timedelta(seconds=1)
    changes: list[tuple[EventKind, int]] = [("clear_cut", BARE_SOIL), ("new_district", BUILT_UP), ("flood", WATER)]
    for kind, new_class in changes:
        event = tiny_world.event(tile_id, kind)
        mask = tiny_world.event_mask(tile_id, kind)
        before = tiny_world.landcover_truth(tile_id, event.start - second)
        after = tiny_world.landcover_truth(tile_id, event.start)
        assert (after[mask] == new_class).all(), kind
        assert (before[mask] != new_class).mean() > 0.95, kind
    flood = tiny_world.event(tile_id, "flood")
    assert flood.end is not None
    during = tiny_world.landcover_truth(tile_id, flood.end - second)
    over = tiny_world.landcover_truth(tile_id, flood.end)
    mask = tiny_world.event_mask(tile_id, "flood")
    assert (during[mask] == WATER).all()
    assert (over[mask] != WATER).mean() > 0.95  # back to its land class


def test_landcover_base_file_is_the_truth_before_any_event(tiny_world: SampleWorld) -> None:
    for tile in tiny_world.tiles:
        with rasterio.open(tiny_world.landcover_base_path(tile.tile_id)) as ds:
            assert ds.crs.to_epsg() == tile.epsg and ds.transform == tile.transform
            stored = ds.read(1)
        first = tiny_world.scene_datetimes(tile.tile_id)[0]
        np.testing.assert_array_equal(stored, tiny_world.landcover_truth(tile.tile_id, first))
        assert set(np.unique(stored)) <= {1, 2, 3, 4, 5}
        assert (stored == WATER).any() and (stored == FOREST).any()


def test_gis_layers_read_back_in_wgs84_with_osm_tags(tiny_world: SampleWorld) -> None:
    import geopandas as gpd
    import pyogrio

    layers = {name for name, _ in pyogrio.list_layers(tiny_world.gis_path)}
    assert layers == {"landuse", "water", "roads", "buildings", "places"}
    landuse = gpd.read_file(tiny_world.gis_path, layer="landuse")
    assert landuse.crs.to_epsg() == 4326
    assert set(landuse["landuse"]) <= set(OSM_LANDUSE_TO_CLASS)
    assert (landuse["landuse"].map(OSM_LANDUSE_TO_CLASS) == landuse["class_code"]).all()
    roads = gpd.read_file(tiny_world.gis_path, layer="roads")
    assert set(roads["highway"]) >= {"primary", "secondary", "residential"}
    water = gpd.read_file(tiny_world.gis_path, layer="water")
    assert set(water["natural"]) == {"water"} and "river" in set(water["waterway"].dropna())
    for frame in (landuse, roads, water):
        assert frame["osm_id"].is_unique and set(frame["tile_id"]) == {"33TVM", "31UDQ"}
        w, s, e, n = frame.total_bounds
        assert -180 <= w < e <= 180 and -90 <= s < n <= 90


def test_gis_landuse_rasterizes_to_the_truth(tiny_world: SampleWorld) -> None:
    import geopandas as gpd
    from rasterio.features import rasterize

    tile = tiny_world.tile("31UDQ")
    landuse = gpd.read_file(tiny_world.gis_path, layer="landuse").to_crs(tile.crs)
    landuse = landuse[(landuse.tile_id == tile.tile_id) & landuse.start_date.isna()]
    water = gpd.read_file(tiny_world.gis_path, layer="water").to_crs(tile.crs)
    water = water[water.tile_id == tile.tile_id]
    shapes = [*zip(landuse.geometry, landuse.class_code), *zip(water.geometry, water.class_code)]
    labels = rasterize(shapes, out_shape=tile.shape, transform=tile.transform, dtype="uint8")
    truth = tiny_world.landcover_truth(tile.tile_id, tiny_world.scene_datetimes(tile.tile_id)[0])
    # Reprojection round trips move vertices by micrometres: at most a few edge pixels differ.
    assert (labels == truth).mean() > 0.995


def test_new_district_buildings_carry_its_start_date(tiny_world: SampleWorld) -> None:
    import geopandas as gpd

    buildings = gpd.read_file(tiny_world.gis_path, layer="buildings")
    assert set(buildings["building"]) == {"yes"}
    for tile in tiny_world.tiles:
        district = tiny_world.event(tile.tile_id, "new_district")
        mine = buildings[buildings.tile_id == tile.tile_id].to_crs(tile.crs)
        new = mine[mine.start_date == district.start.date().isoformat()]
        old = mine[mine.start_date.isna()]
        assert len(new) >= 5 and len(old) >= 5  # a 96 px district is about one 150 m block
        assert new.geometry.within(district.geometry.buffer(0.01)).all()
        assert not old.geometry.intersects(district.geometry).any()
        sides = np.sqrt(new.geometry.area)
        assert sides.between(10, 30).all()


def test_event_lookup_of_unknown_kind_is_refused(tiny_world: SampleWorld) -> None:
    with pytest.raises(ConfigError, match="clear_cut"):
        tiny_world.event("33TVM", "earthquake")  # type: ignore[arg-type]


def _water_geometry(world: SampleWorld, tile_id: str) -> shapely.Geometry:
    import geopandas as gpd

    water = gpd.read_file(world.gis_path, layer="water")
    return shapely.union_all(water[water.tile_id == tile_id].to_crs(world.tile(tile_id).crs).geometry.values)


def test_buildings_carry_addresses_on_named_streets_and_places_are_named(tiny_world: SampleWorld) -> None:
    import geopandas as gpd

    roads = gpd.read_file(tiny_world.gis_path, layer="roads")
    buildings = gpd.read_file(tiny_world.gis_path, layer="buildings")
    places = gpd.read_file(tiny_world.gis_path, layer="places")
    assert roads["name"].notna().all()
    addressed = buildings[buildings["addr:street"].notna()]
    # Every third house of a tile (the 1st, 4th, ...) gets an address when a street is within 80 m.
    every_third = sum(-(-n // 3) for n in buildings.groupby("tile_id").size())
    assert 0.8 * every_third <= len(addressed) <= every_third
    for tile in tiny_world.tiles:
        mine = addressed[addressed.tile_id == tile.tile_id].to_crs(tile.crs)
        streets = roads[roads.tile_id == tile.tile_id].to_crs(tile.crs)
        for _, house in mine.head(10).iterrows():
            street = streets[streets["name"] == house["addr:street"]]
            assert street.distance(house.geometry.centroid).min() <= 80.0
        numbers = mine.groupby("addr:street")["addr:housenumber"].apply(lambda s: sorted(int(n) for n in s))
        assert all(n == list(range(1, len(n) + 1)) for n in numbers)
    assert buildings["name"].notna().sum() >= 1
    assert set(places["place"]) == {"town", "suburb", "neighbourhood"}
    suburbs = places[places["place"] == "suburb"]
    regions = gpd.read_file(tiny_world.census_regions_path)
    assert sorted(suburbs["name"]) == sorted(regions["name"])
    assert places["name"].notna().all() and places["osm_id"].is_unique


def test_climate_census_and_historical_files_are_written(tiny_world: SampleWorld) -> None:
    import pandas as pd

    from memories.sample.census import GAP_YEAR, UNIT_ERROR_FACTOR, YEARS

    for tile in tiny_world.tiles:
        path = tiny_world.climate_path(tile.tile_id)
        assert path.read_text().splitlines()[0].startswith("99")
        assert len(pd.read_csv(path, skiprows=1)) == 8760
        assert tiny_world.historical_scan_path(tile.tile_id).exists()
        assert len(tiny_world.historical_truth(tile.tile_id)["check_points"]) == 25
    table = pd.read_csv(tiny_world.census_table_path)
    truth = tiny_world.census_truth()
    for district, year in truth["gaps"]:
        assert year == GAP_YEAR and not ((table.district_id == district) & (table.year == year)).any()
    for district, year in truth["jumps"]:
        income = table[table.district_id == district].set_index("year")["income_per_capita"]
        assert year == YEARS[-1] and income[year] / income[year - 1] == pytest.approx(
            UNIT_ERROR_FACTOR * 1.03, rel=1e-3
        )
