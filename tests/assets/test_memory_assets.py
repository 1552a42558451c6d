"""The memory assets over a small pipeline output: gis_layers of two tile-months, then the memories."""

from __future__ import annotations

import geopandas as gpd
import shapely
from dagster import DagsterInstance, materialize

from assets.gis import gis_layers
from assets.memory import event_hypergraph, knowledge_graph, spatial_index, storage_tiering
from dagster_project.partitions import TILES, partition_key
from memories.memory.context import ContextMemory
from memories.memory.relationship import RelationshipMemory
from memories.memory.spatial import SpatialMemory
from memories.store.paths import StorageRoot
from resources import (
    GisSourceResource,
    MemoryCatalogResource,
    SampleWorldResource,
    StacCatalogResource,
    StorageResource,
    TieredStorageResource,
)

MONTH = "2023-08"


def test_memory_assets_answer_the_seed_queries_from_pipeline_output(tmp_path):
    sample = SampleWorldResource()
    resources = {
        "stac": StacCatalogResource(sample_world=sample),
        "gis": GisSourceResource(sample_world=sample),
        "storage": StorageResource(root=(tmp_path / "store").as_uri()),
        "memory": MemoryCatalogResource(path=str(tmp_path / "catalog.sqlite")),
        "tiers": TieredStorageResource(warm_root=(tmp_path / "warm").as_uri(), cold_root=(tmp_path / "cold").as_uri()),
    }
    instance = DagsterInstance.ephemeral()
    world = sample.ensure()
    tiles = [g.tile_id for g in world.tiles]
    instance.add_dynamic_partitions(TILES, tiles)
    for tile in tiles:
        r = materialize([gis_layers], partition_key=partition_key(MONTH, tile), resources=resources, instance=instance)
        assert r.success
    result = materialize(
        [spatial_index, event_hypergraph, knowledge_graph, storage_tiering], resources=resources, instance=instance
    )
    assert result.success
    root = StorageRoot((tmp_path / "store").as_uri())

    # Spatial: buildings within 300 m of the 33TVM flood's centre, as the seed asks it.
    flood = world.event("33TVM", "flood")
    spatial = SpatialMemory.load(root)
    centre = shapely.centroid(flood.geometry)
    lonlat = gpd.GeoSeries([centre], crs=world.tile("33TVM").crs).to_crs("EPSG:4326").iloc[0]
    near = spatial.query(location=(lonlat.y, lonlat.x), radius_km=0.3, filter={"layer": "buildings"})
    src = gpd.read_file(world.gis_path, layer="buildings").to_crs(world.tile("33TVM").crs)
    src = src[(src["tile_id"] == "33TVM") & (src["start_date"].isna() | (src["start_date"] <= f"{MONTH}-31"))]
    # Independent answer in the tile's UTM metres (scale error < 0.1 %, far below a building's size).
    want = {f"buildings:{i}" for i in src["osm_id"][src.distance(centre) <= 300.0 * 0.999]}
    assert want <= set(near["feature_id"]) and len(near) >= len(want) > 0

    # Relationship: the flood hyperedge of each tile; context: its affected buildings point at it.
    rel = RelationshipMemory.load(root)
    assert {e.id for e in rel.events("flood")} == {f"event:flood/{t}/{MONTH}" for t in tiles}
    ctx = ContextMemory.load(root)
    fid = f"event:flood/33TVM/{MONTH}"
    assert set(ctx.relations(fid, "affected_by", direction="in")) == set(rel.members(fid, "affected"))
    assert ctx.relations(fid, "located_in") == ["tile:33TVM"]

    tiering = result.asset_materializations_for_node("storage_tiering")[0].metadata
    assert sum(tiering["objects_per_tier"].data.values()) == 3
    hyper = result.asset_materializations_for_node("event_hypergraph")[0].metadata
    assert hyper["events"].data["flood"] == 2 and hyper["sources"].data == ["reported"]
