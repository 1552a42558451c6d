"""The knowledge graph filled from GIS layers and events, checked against independent spatial answers."""

from __future__ import annotations

import geopandas as gpd
import pytest

from memories.config import config
from memories.earth.gis import GIS_LAYERS, read_layer, write_geoparquet
from memories.errors import ConfigError
from memories.memory.context import ADJACENT_M, ContextMemory
from memories.memory.relationship import RelationshipMemory
from memories.months import month_range
from memories.sample import SampleWorld, SampleWorldSpec
from memories.store.paths import StorageRoot

MONTH = "2023-08"
ENTITY_OF_LAYER = {"buildings": "building", "roads": "road", "landuse": "parcel", "water": "water"}
"""Entity type of the features of each GIS layer, as the knowledge graph names them (``building:40000001``)."""


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    world = SampleWorld.ensure(SampleWorldSpec.from_settings(config.sample), config.sample.root)
    root = StorageRoot(tmp_path_factory.mktemp("ctx_store").as_uri())
    for grid in world.tiles:
        for layer in GIS_LAYERS:
            gdf = read_layer(str(world.gis_path), layer, grid, as_of=month_range(MONTH)[1])
            write_geoparquet(root, root.vector_uri(layer, grid.tile_id, MONTH), gdf)
    rel = RelationshipMemory.from_pipeline(root, world.tiles, [MONTH], world=world)
    ctx = ContextMemory.from_pipeline(root, world.tiles, MONTH, relationships=rel)
    return world, root, rel, ctx


def test_every_feature_is_located_in_its_tile(filled):
    world, root, _, ctx = filled
    assert set(ENTITY_OF_LAYER) == set(GIS_LAYERS)
    for grid in world.tiles:
        want = set()
        for layer in GIS_LAYERS:
            frame = gpd.read_parquet(root.path(root.vector_uri(layer, grid.tile_id, MONTH)))
            want |= {f"{ENTITY_OF_LAYER[layer]}:{int(i)}" for i in frame["osm_id"]}
        inside = ctx.relations(f"tile:{grid.tile_id}", "located_in", direction="in")
        got = {e for e in inside if not e.startswith("event:")}
        assert want and got == want, grid.tile_id
        # ... and in no other tile: each feature points at exactly its own tile.
        assert all(ctx.relations(e, "located_in") == [f"tile:{grid.tile_id}"] for e in want), grid.tile_id


def test_neighbourhood_of_a_building_is_its_parcel_tile_and_roads(filled):
    world, root, _, ctx = filled
    grid = world.tile("33TVM")
    b = gpd.read_parquet(root.path(root.vector_uri("buildings", "33TVM", MONTH)))
    roads = gpd.read_parquet(root.path(root.vector_uri("roads", "33TVM", MONTH)))
    landuse = gpd.read_parquet(root.path(root.vector_uri("landuse", "33TVM", MONTH)))
    one = b.iloc[0]
    bid = f"building:{int(one.osm_id)}"
    pt = one.geometry.representative_point()
    want_parcels = {f"parcel:{int(i)}" for i in landuse["osm_id"][landuse.contains(pt)]}
    want_roads = {f"road:{int(i)}" for i in roads["osm_id"][roads.distance(one.geometry) <= ADJACENT_M]}
    assert set(ctx.relations(bid, "part_of")) == want_parcels and want_parcels
    assert set(ctx.relations(bid, "adjacent_to")) == want_roads
    assert ctx.relations(bid, "located_in") == [f"tile:{grid.tile_id}"]
    assert ctx.neighbourhood(bid, 1, ["part_of", "located_in", "adjacent_to"], "out") == (
        {bid, f"tile:{grid.tile_id}"} | want_parcels | want_roads
    )


def test_flooded_buildings_reach_the_flood_and_paths_run_through_it(filled):
    _, _, rel, ctx = filled
    flood = "event:flood/33TVM/2023-08"
    assert set(ctx.relations(flood, "affected_by", direction="in")) == set(rel.members(flood, "affected"))
    a, b = sorted(m for m in rel.members(flood, "affected") if m.startswith("building:"))[::5][:2]
    path = ctx.path(a, b, relations=["affected_by"])
    assert path == [a, flood, b] and ctx.path_relations(path) == ["affected_by", "affected_by"]
    # Two depths out from a flooded building: the flood, then everything else it affected.
    assert ctx.neighbourhood(a, 2, ["affected_by"]) == {a, flood} | set(rel.members(flood, "affected"))
    # Tiles are not linked to each other: no path across them over located_in.
    assert ctx.path("tile:33TVM", "tile:31UDQ", relations=["located_in"]) == []


def test_graph_round_trips_and_rejects_unknown_types(filled, tmp_path):
    _, _, _, ctx = filled
    root = StorageRoot(tmp_path.as_uri())
    uri = ctx.save(root)
    assert uri.endswith("/memory/context/default.json")
    back = ContextMemory.load(root)
    assert back.counts() == ctx.counts()
    assert back.entities("event", kind="flood") == ["event:flood/31UDQ/2023-08", "event:flood/33TVM/2023-08"]
    with pytest.raises(ConfigError, match="type 'castle' is unknown"):
        ctx.add_entity("castle:1", "castle")
    with pytest.raises(ConfigError, match="relations \\['owns'\\] are unknown"):
        ctx.neighbourhood("tile:33TVM", 1, ["owns"])
    with pytest.raises(ConfigError, match="'building:0' is not in the context memory"):
        ctx.path("building:0", "tile:33TVM")
