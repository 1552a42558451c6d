"""GIS layers of a tile-month: buildings, roads, land use, water (and named places).

Read from the configured vector source, reprojected to the tile's CRS, clipped to
its grid, and written as GeoParquet 1.1 hive-partitioned by tile and month. A
feature whose ``start_date`` is after the month does not exist yet in it. Invalid
geometries are repaired and counted; features without a usable geometry are
dropped and counted, both in the metadata.
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets._partition import partition_metadata, range_check, record, tile_months
from assets.partitions import MONTH_TILE_BACKFILL, month_tile_partitions
from memories.earth.expectations import validate_vector_layers
from memories.earth.gis import GISProvider, geometry_report, write_geoparquet
from memories.months import month_range
from memories.products import GIS_LAYERS
from resources import GisSourceResource, MemoryCatalogResource, StacCatalogResource, StorageResource


@asset(
    partitions_def=month_tile_partitions,
    backfill_policy=MONTH_TILE_BACKFILL,
    group_name="acquisition",
    kinds={"geopandas", "geoparquet"},
    description="Buildings, roads, land use and water of the tile as they stood at the end of the month.",
    check_specs=[
        AssetCheckSpec(
            "vector_quality",
            asset=GIS_LAYERS,
            blocking=True,
            description="great-expectations suite: CRS is the tile's, geometries valid and not empty, "
            "geometry types expected per layer, at least one feature",
        )
    ],
)
def gis_layers(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    gis: GisSourceResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    root = storage.storage_root()
    source = gis.source_path()
    provider = GISProvider(source, simplify_m=gis.simplify_m, layer_map=gis.layer_map or None)
    checks = []
    for key, month, grid in tile_months(context, stac):
        tile = grid.tile_id
        _, month_end = month_range(month)
        layers = provider.tile_layers(grid, as_of=month_end)
        for layer, gdf in layers.items():
            write_geoparquet(root, root.vector_uri(layer, tile, month), gdf)
        report = geometry_report(layers)
        counts = {layer: r["features"] for layer, r in report.items()}
        repaired = {layer: r["repaired"] for layer, r in report.items()}
        dropped = {layer: r["dropped"] for layer, r in report.items()}
        stats = {"features": counts, "repaired": repaired, "dropped": dropped, "source": source}
        uri = root.vectors_uri(tile, month)
        versions = {layer: root.current_version(root.vector_uri(layer, tile, month)) for layer in layers}
        record(context, memory.catalog(), uri=uri, stats=stats, grid=grid, month=month, version=versions)
        partition_metadata(
            context,
            key,
            {
                "dagster/row_count": sum(counts.values()),
                "features": MetadataValue.json(counts),
                "repaired_geometries": MetadataValue.json(repaired),
                "dropped_geometries": MetadataValue.json(dropped),
                "crs": grid.crs,
                "source": source,
                "uri": uri,
            },
        )
        quality = validate_vector_layers(layers, crs=grid.crs)
        result = AssetCheckResult(
            check_name="vector_quality",
            passed=quality.success,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "features_validated": quality.rows,
                "expectations": len(quality.outcomes),
                "failed": MetadataValue.json(quality.summary()["failed"]),
            },
        )
        checks.append((key, result))
    yield MaterializeResult()
    yield range_check("vector_quality", checks)
