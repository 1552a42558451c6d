"""Spatial, context and relationship memory over every tile, and the storage tiers.

``spatial_index`` indexes the newest GIS layers of every tile; ``knowledge_graph``
and ``event_hypergraph`` turn the GIS layers and the events of every tile-month
(detected from the indices where the pipeline has them, else reported by the data
source) into the context and relationship memories; ``storage_tiering`` keeps the
memory files in the tiered store and moves objects between tiers by their score.
"""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from assets.partitions import FIRST_MONTH
from memories.errors import ProcessingError
from memories.memory.context import ContextMemory
from memories.memory.relationship import RelationshipMemory
from memories.memory.spatial import SpatialMemory
from memories.products import ENVIRONMENTAL_REPORT, GIS_LAYERS
from resources import MemoryCatalogResource, StacCatalogResource, StorageResource, TieredStorageResource

MEMORY_NAME = "default"
GIS_ASSET = GIS_LAYERS


@asset(
    deps=[AssetKey(GIS_ASSET)],
    group_name="memory",
    kinds={"shapely", "h3", "geoparquet"},
    description="Every tile's newest GIS features in one H3-partitioned STRtree index (EPSG:4326).",
)
def spatial_index(
    context: AssetExecutionContext, stac: StacCatalogResource, storage: StorageResource, memory: MemoryCatalogResource
) -> MaterializeResult:
    root = storage.storage_root()
    latest = {tile: months[-1] for tile, months in _gis_months(memory).items()}
    mem = SpatialMemory()
    for tile, month in sorted(latest.items()):
        part = SpatialMemory.from_pipeline(root, [tile], month, h3_resolution=mem.h3_resolution)
        mem.add(part.frame)
    uri = mem.save(root, MEMORY_NAME)
    counts = mem.frame.groupby("layer").size().to_dict()
    context.log.info(f"spatial index: {len(mem)} features in {mem.partitions} H3 partitions")
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(mem),
            "features": MetadataValue.json({k: int(v) for k, v in counts.items()}),
            "h3_partitions": mem.partitions,
            "h3_resolution": mem.h3_resolution,
            "months": MetadataValue.json(latest),
            "uri": uri,
        }
    )


@asset(
    deps=[AssetKey(GIS_ASSET), AssetKey(ENVIRONMENTAL_REPORT)],
    group_name="memory",
    kinds={"networkx", "json"},
    description="Events of every tile-month as hyperedges over the buildings, roads and parcels they touch.",
)
def event_hypergraph(
    context: AssetExecutionContext, stac: StacCatalogResource, storage: StorageResource, memory: MemoryCatalogResource
) -> MaterializeResult:
    root = storage.storage_root()
    months_by_tile = _gis_months(memory)
    world = stac.served_world()  # the sample world reports its events; None for a real catalog
    rel = RelationshipMemory()
    for tile, months in sorted(months_by_tile.items()):
        part = RelationshipMemory.from_pipeline(root, [stac.tile(tile)], months, world=world, origin_month=FIRST_MONTH)
        for e in part.events():
            rel.add(e)
    uri = rel.save(root, MEMORY_NAME)
    kinds: dict[str, int] = {}
    for e in rel.events():
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rel),
            "events": MetadataValue.json(kinds),
            "members": sum(len(e.members) for e in rel.events()),
            "sources": MetadataValue.json(sorted({e.attrs.get("source", "") for e in rel.events()})),
            "uri": uri,
        }
    )


@asset(
    deps=[AssetKey(GIS_ASSET), event_hypergraph],
    group_name="memory",
    kinds={"networkx", "json"},
    description="Knowledge graph of tiles, buildings, roads, parcels, water, events and reports.",
)
def knowledge_graph(
    context: AssetExecutionContext, stac: StacCatalogResource, storage: StorageResource, memory: MemoryCatalogResource
) -> MaterializeResult:
    root = storage.storage_root()
    latest = {tile: months[-1] for tile, months in _gis_months(memory).items()}
    from memories.earth.gis import read_tile_layers

    rel = RelationshipMemory.load(root, MEMORY_NAME)
    ctx = ContextMemory()
    for tile, month in sorted(latest.items()):
        ctx.add_tile_layers(stac.tile(tile), read_tile_layers(root, tile, month), month=month)
    ctx.add_events(rel)
    uri = ctx.save(root, MEMORY_NAME)
    counts = ctx.counts()
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(ctx),
            "entities": MetadataValue.json(counts["entities"]),
            "relations": MetadataValue.json(counts["relations"]),
            "uri": uri,
        }
    )


@asset(
    deps=[spatial_index, knowledge_graph, event_hypergraph],
    group_name="memory",
    kinds={"s3"},
    description="The memory files in the tiered store (hot / warm / cold / glacier), rebalanced by score.",
)
def storage_tiering(
    context: AssetExecutionContext, storage: StorageResource, tiers: TieredStorageResource
) -> MaterializeResult:
    root = storage.storage_root()
    files = {
        "spatial": root.memory_uri("spatial", f"{MEMORY_NAME}.parquet"),
        "context": root.memory_uri("context", f"{MEMORY_NAME}.json"),
        "relationship": root.memory_uri("relationship", f"{MEMORY_NAME}.json"),
    }
    with tiers.store() as store:
        added = 0
        for kind, uri in files.items():
            if not root.exists(uri):
                raise ProcessingError(f"{uri} is missing; materialize the {kind} memory asset first")
            key = f"memory/{kind}/{MEMORY_NAME}"
            data = root.read_bytes(uri)
            stats = store.stats(key)
            if stats is None or stats.size_bytes != len(data):
                store.put(key, data, relevance=0.5)
                added += 1
        moves = store.rebalance()
        counts = store.counts()
    by_move: dict[str, int] = {}
    for m in moves:
        by_move[f"{m.source}->{m.target}"] = by_move.get(f"{m.source}->{m.target}", 0) + 1
    return MaterializeResult(
        metadata={
            "objects_per_tier": MetadataValue.json(counts),
            "moves": MetadataValue.json(by_move),
            "added": added,
        }
    )


def _gis_months(memory: MemoryCatalogResource) -> dict[str, list[str]]:
    """Tile -> sorted months with current gis_layers materializations in the memory catalog."""
    out: dict[str, list[str]] = {}
    for m in memory.catalog().current(GIS_ASSET):
        if m.tile and m.partition:
            out.setdefault(m.tile, []).append(m.partition)
    if not out:
        raise ProcessingError("the memory catalog has no gis_layers materialization; materialize gis_layers first")
    return {t: sorted(set(ms)) for t, ms in out.items()}
