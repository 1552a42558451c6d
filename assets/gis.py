"""GIS layers of a tile-month: buildings, roads, land use and water.

Read from the configured vector source, reprojected to the tile's CRS, clipped to
its grid, and written as GeoParquet 1.1 hive-partitioned by tile and month. A
feature whose ``start_date`` is after the month does not exist yet in it.
"""


from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets._partition import record, tile_month
from dagster_project.partitions import month_tile_partitions
from memories.earth.gis import GIS_LAYERS, read_layer, write_geoparquet
from memories.months import month_range
from resources import GisSourceResource, MemoryCatalogResource, StacCatalogResource, StorageResource


@asset(
    partitions_def=month_tile_partitions,
    group_name="acquisition",
    kinds={"geopandas", "geoparquet"},
    description="Buildings, roads, land use and water of the tile as they stood at the end of the month.",
)
def gis_layers(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    gis: GisSourceResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    month, grid = tile_month(context, stac)
    tile = grid.tile_id
    root = storage.storage_root()
    source = gis.source_path()
    _, month_end = month_range(month)
    counts: dict[str, int] = {}
    repaired: dict[str, int] = {}
    for layer in GIS_LAYERS:
        gdf = read_layer(source, layer, grid, as_of=month_end)
        write_geoparquet(root, root.vector_uri(layer, tile, month), gdf)
        counts[layer] = len(gdf)
        repaired[layer] = int(gdf.attrs.get("repaired", 0))
    stats = {"features": counts, "repaired": repaired, "source": source}
    uri = root.vectors_uri(tile, month)
    record(context, memory.catalog(), uri=uri, stats=stats, grid=grid, month=month)
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(counts.values()),
            "features": MetadataValue.json(counts),
            "repaired_geometries": MetadataValue.json(repaired),
            "crs": grid.crs,
            "source": source,
            "uri": uri,
        }
    )
