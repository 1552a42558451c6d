"""Maintenance of the stores: garbage collection of the versioned raster stores.

A write killed before its commit leaves chunks in its Icechunk store that no
snapshot references. ``raster_garbage_collection`` deletes them from every raster
store the memory catalog knows; it never expires snapshots, so every recorded
version stays loadable.
"""

from datetime import timedelta

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from memories.store.maintenance import collect_raster_garbage
from memories.store.migrate import current_raster_uri
from resources import MemoryCatalogResource, StorageResource


class GarbageCollectionConfig(Config):  # type: ignore[misc]
    """How old an unreferenced object must be before it is deleted."""

    older_than_hours: float = Field(
        default=24.0,
        ge=0.0,
        description="keep unreferenced objects younger than this (hours); longer than the longest raster write",
    )
    dry_run: bool = Field(default=False, description="count what would be deleted, delete nothing")


@asset(
    group_name="maintenance",
    kinds={"icechunk"},
    description="Deletes chunks no snapshot references (killed writes) from every raster store in the catalog.",
)
def raster_garbage_collection(
    context: AssetExecutionContext,
    config: GarbageCollectionConfig,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    root = storage.storage_root()
    # Records from before the rename name a store by its legacy ``.zarr`` URI: one store, collected once.
    uris = sorted({current_raster_uri(root, m.uri) for m in memory.catalog().query() if root.is_raster_uri(m.uri)})
    older_than = timedelta(hours=config.older_than_hours)
    freed: dict[str, int] = {}
    chunks: dict[str, int] = {}
    for uri in uris:
        summary = collect_raster_garbage(root, uri, older_than, dry_run=config.dry_run)
        freed[uri], chunks[uri] = summary["bytes_deleted"], summary["chunks_deleted"]
        context.log.info(f"{uri}: {summary['chunks_deleted']} chunks, {summary['bytes_deleted']} bytes freed")
    return MaterializeResult(
        metadata={
            "stores": len(uris),
            "bytes_freed": sum(freed.values()),
            "chunks_deleted": sum(chunks.values()),
            "bytes_freed_per_store": MetadataValue.json(freed),
            "chunks_deleted_per_store": MetadataValue.json(chunks),
            "older_than_hours": config.older_than_hours,
            "dry_run": config.dry_run,
        }
    )
