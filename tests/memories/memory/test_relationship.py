"""The event hypergraph, filled from GIS layers and events, checked against the sample world's truth."""

from __future__ import annotations

from datetime import UTC, datetime

import geopandas as gpd
import numpy as np
import pytest
import shapely

from memories.config import config
from memories.earth.gis import GIS_LAYERS, read_layer, write_geoparquet
from memories.errors import ConfigError, StorageError
from memories.memory.relationship import Hyperedge, Member, RelationshipMemory, detect_change_events
from memories.months import month_range
from memories.sample import SampleWorld, SampleWorldSpec
from memories.store.paths import StorageRoot

MONTHS = ["2023-07", "2023-08"]


@pytest.fixture(scope="module")
def pipeline_gis(tmp_path_factory):
    """The test config's sample world and the GIS layers that gis_layers writes for two months."""
    world = SampleWorld.ensure(SampleWorldSpec.from_settings(config.sample), config.sample.root)
    root = StorageRoot(tmp_path_factory.mktemp("rel_store").as_uri())
    for grid in world.tiles:
        for month in MONTHS:
            for layer in GIS_LAYERS:
                gdf = read_layer(str(world.gis_path), layer, grid, as_of=month_range(month)[1])
                write_geoparquet(root, root.vector_uri(layer, grid.tile_id, month), gdf)
    return world, root


def _truth_members(world, grid, month, layer, geometry):
    """Independent answer: features of the source GeoPackage that exist in the month and intersect the footprint."""
    src = gpd.read_file(world.gis_path, layer=layer).to_crs(grid.crs)
    src = src[(src["tile_id"] == grid.tile_id) & (src["start_date"].isna() | (src["start_date"] <= f"{month}-31"))]
    return {int(i) for i in src["osm_id"][src.intersects(geometry)]}


def test_flood_hyperedge_members_are_the_buildings_and_roads_under_the_flood(pipeline_gis):
    world, root = pipeline_gis
    rel = RelationshipMemory.from_pipeline(root, world.tiles, MONTHS, world=world)
    for grid in world.tiles:
        flood = world.event(grid.tile_id, "flood")
        edge = rel.event(f"event:flood/{grid.tile_id}/2023-08")
        assert (edge.start, edge.end) == (flood.start, flood.end)
        affected = set(edge.entities("affected"))
        want_b = _truth_members(world, grid, "2023-08", "buildings", flood.geometry)
        want_r = _truth_members(world, grid, "2023-08", "roads", flood.geometry)
        assert {e for e in affected if e.startswith("building:")} == {f"building:{i}" for i in want_b}
        assert {e for e in affected if e.startswith("road:")} == {f"road:{i}" for i in want_r}
        assert len(want_b) > 5 and len(want_r) > 0
        assert edge.entities("location") == [f"tile:{grid.tile_id}"] and edge.entities("source")


def test_queries_by_entity_member_time_and_area(pipeline_gis, tmp_path):
    world, root = pipeline_gis
    rel = RelationshipMemory.from_pipeline(root, world.tiles, MONTHS, world=world)
    flood_id = "event:flood/33TVM/2023-08"
    building = rel.members(flood_id, "affected")[0]
    assert [e.id for e in rel.events_touching(building)] == [flood_id]
    aug = rel.events_in(datetime(2023, 8, 5, tzinfo=UTC), datetime(2023, 8, 6, tzinfo=UTC))
    # The lasting new districts (since 7 July) overlap the window too.
    assert sorted(e.id for e in aug) == [
        "event:flood/31UDQ/2023-08",
        flood_id,
        "event:new_district/31UDQ/2023-07",
        "event:new_district/33TVM/2023-07",
    ]
    # After the flood has receded (22 August), the window finds no flood.
    assert not rel.events_in(datetime(2023, 8, 25, tzinfo=UTC), datetime(2023, 8, 30, tzinfo=UTC), kind="flood")
    bbox_33 = shapely.box(*world.tile("33TVM").bbox_wgs84)
    in_area = rel.events_in(datetime(2023, 7, 1, tzinfo=UTC), datetime(2023, 9, 1, tzinfo=UTC), area=bbox_33)
    assert {e.attrs["tile"] for e in in_area} == {"33TVM"} and {e.kind for e in in_area} == {"flood", "new_district"}
    rel.save(root, "test")
    back = RelationshipMemory.load(root, "test")
    assert back.members(flood_id) == rel.members(flood_id) and len(back) == len(rel)


def test_flood_and_clear_cut_are_detected_from_indices_of_two_months(pipeline_gis):
    world, root = pipeline_gis
    grid = world.tile("33TVM")
    ref_t, now_t = datetime(2023, 6, 10, tzinfo=UTC), datetime(2023, 8, 10, tzinfo=UTC)

    def indices(when):
        r, g, n = (world.clear_sky_reflectance("33TVM", when, b) for b in ("red", "green", "nir"))
        return (n - r) / (n + r), (g - n) / (g + n)

    (ndvi_ref, ndwi_ref), (ndvi_now, ndwi_now) = indices(ref_t), indices(now_t)
    landuse = gpd.read_parquet(root.path(root.vector_uri("landuse", "33TVM", "2023-07")))
    events = {
        e.kind: e
        for e in detect_change_events(
            grid, "2023-08", ndvi_ref=ndvi_ref, ndvi_now=ndvi_now, ndwi_ref=ndwi_ref, ndwi_now=ndwi_now, landuse=landuse
        )
    }
    for kind in ("flood", "clear_cut"):
        truth = world.event("33TVM", kind).geometry
        got = events[kind].geometry
        iou = got.intersection(truth).area / got.union(truth).area
        assert iou > 0.8, f"{kind}: IoU {iou:.2f}"
        assert events[kind].source in ("ndwi", "ndvi")
    assert np.isfinite(events["flood"].geometry.area)


def test_bad_members_and_missing_layers_are_clear_errors(pipeline_gis):
    _, root = pipeline_gis
    rel = RelationshipMemory()
    t = datetime(2023, 1, 1, tzinfo=UTC)
    with pytest.raises(ConfigError, match="roles \\['victim'\\] are unknown"):
        rel.add(Hyperedge("event:x", "flood", t, None, [Member("building:1", "victim")]))
    with pytest.raises(ConfigError, match="no event 'event:y'"):
        rel.members("event:y")
    grid = pipeline_gis[0].tile("31UDQ")
    with pytest.raises(StorageError, match="materialize gis_layers for partition 2023-05.31UDQ"):
        RelationshipMemory.from_pipeline(root, [grid], ["2023-05"], world=pipeline_gis[0])
