"""Imagery assets: the scenes of a tile-month, its cloud-free composite, its indices.

``stac_items`` searches the STAC API for the scenes of the partition;
``surface_reflectance`` is the cloud-masked monthly median composite on the tile's
grid in Zarr; ``spectral_indices`` derives NDVI, NDWI, EVI and NBR from it.
Blocking great-expectations checks gate the scene table and the composite.
"""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets._partition import largest_px, partition_metadata, range_check, record, tile_months
from assets.automation import REFRESH_WITH_INPUTS
from assets.partitions import FIRST_MONTH, MONTH_TILE_BACKFILL, month_tile_partitions
from memories.applications.index_series import INDEX_SUMMARY, index_summary
from memories.earth.composite_summary import summarize_composite
from memories.earth.expectations import COMPOSITE_SAMPLE_PX, SuiteResult, validate_composite, validate_stac_items
from memories.earth.gis import read_geoparquet, write_geoparquet
from memories.earth.imagery import load_scenes, monthly_composite
from memories.earth.indices import compute_indices, index_stats
from memories.earth.stac import items_from_table, items_table
from memories.earth.stac_profiles import COMMON_BANDS
from memories.grid import TileGrid
from memories.products import SPECTRAL_INDICES, STAC_ITEMS, SURFACE_REFLECTANCE
from memories.store.raster import MonthlyRasterStore, in_memory_if_small
from resources import DaskClusterResource, MemoryCatalogResource, StacCatalogResource, StorageResource

MIN_CLEAR_FRACTION = 0.05
"""A composite with fewer pixels seen clear than this is not usable downstream."""


@asset(
    partitions_def=month_tile_partitions,
    backfill_policy=MONTH_TILE_BACKFILL,
    group_name="acquisition",
    kinds={"stac", "geoparquet"},
    description="Sentinel-2 L2A scenes of the tile-month found on the STAC API, after the scene cloud filter.",
    check_specs=[
        AssetCheckSpec(
            "scene_table_quality",
            asset=STAC_ITEMS,
            blocking=True,
            description="great-expectations suite: ids unique, datetime set, cloud cover 0-100 %, MGRS tile ids",
        )
    ],
)
def stac_items(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    checks = []
    for key, month, grid in tile_months(context, stac):
        metadata, suite = _scene_table(context, stac, storage, memory, month, grid)
        partition_metadata(context, key, metadata)
        checks.append((key, _suite_check("scene_table_quality", suite)))
    yield MaterializeResult()
    yield range_check("scene_table_quality", checks)


def _scene_table(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
    month: str,
    grid: TileGrid,
) -> tuple[dict[str, Any], SuiteResult]:
    """Search, write and record the scene table of one tile-month: (metadata, its suite result)."""
    tile = grid.tile_id
    root = storage.storage_root()
    found = stac.search(grid, month, root=root)
    table = items_table(found.items)
    uri = root.table_uri(STAC_ITEMS, tile, month)
    size = write_geoparquet(root, uri, table)
    stats = {
        "scenes": len(table),
        "rejected": len(found.rejected),
        "mean_cloud_cover_pct": float(table["cloud_cover"].mean()) if len(table) else None,
    }
    record(context, memory.catalog(), uri=uri, stats=stats, grid=grid, month=month, version=root.current_version(uri))
    preview = table[["id", "datetime", "cloud_cover", "platform", "processing_baseline"]].copy()
    preview["datetime"] = preview["datetime"].astype(str)
    metadata = {
        "dagster/row_count": len(table),
        "scenes": MetadataValue.md(preview.to_markdown(index=False) if len(preview) else "_no scenes_"),
        "rejected": MetadataValue.json(found.rejected),
        "search_pages": found.pages,
        "search_cache_hits": found.cache_hits,
        "mean_cloud_cover_pct": stats["mean_cloud_cover_pct"],
        "catalog": stac.api_url,
        "uri": uri,
        "bytes": size,
    }
    return metadata, validate_stac_items(table)


@asset(
    partitions_def=month_tile_partitions,
    deps=[stac_items],
    backfill_policy=MONTH_TILE_BACKFILL,
    group_name="acquisition",
    kinds={"dask", "zarr"},
    description=(
        "Cloud-masked (SCL, QA_PIXEL or spectral test) monthly median surface reflectance per tile on its 10 m "
        "grid, bands blue green red nir swir16 swir22 (reflectance 0-1), with the interquartile range of the clear "
        "observations as per-pixel spread and clear and total observation counts."
    ),
    check_specs=[
        AssetCheckSpec(
            "clear_coverage",
            asset=SURFACE_REFLECTANCE,
            blocking=True,
            description=f"great-expectations suite: at least {MIN_CLEAR_FRACTION:.0%} of pixels seen clear, "
            "reflectance within -0.1..1.6, spread >= 0, 0 <= clear_count <= obs_count",
        )
    ],
    pool="raster",
)
def surface_reflectance(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    dask_cluster: DaskClusterResource,
    memory: MemoryCatalogResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    partitions = tile_months(context, stac)
    done = dask_cluster.each(
        lambda p: _composite(context, stac, storage, dask_cluster, memory, *p),
        partitions,
        pixels=largest_px(partitions),
    )
    checks = []
    for (key, _, _), (metadata, suite) in zip(partitions, done, strict=True):
        partition_metadata(context, key, metadata)
        checks.append((key, _suite_check("clear_coverage", suite)))
    yield MaterializeResult()
    yield range_check("clear_coverage", checks)


def _composite(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    dask_cluster: DaskClusterResource,
    memory: MemoryCatalogResource,
    key: str,
    month: str,
    grid: TileGrid,
) -> tuple[dict[str, Any], SuiteResult]:
    """Fetch, composite, write and record one tile-month: (metadata, the composite's suite result).

    Runs inside ``dask_cluster.each`` (the cluster is dask's scheduler); other tile-months may run meanwhile.
    """
    tile = grid.tile_id
    root = storage.storage_root()
    items = items_from_table(read_geoparquet(root, root.table_uri(STAC_ITEMS, tile, month)))
    if not items:
        raise Failure(
            description=f"no scenes for tile {tile} in {month} after the cloud filter; "
            f"raise max_cloud_cover (now {stac.max_cloud_cover}%) or check the catalog",
        )
    fetched = stac.fetch(items, root)
    partition_metadata(
        context,
        key,
        {
            "completeness": MetadataValue.float(fetched.completeness),
            "failed_assets": MetadataValue.json(fetched.failures_json()),
            "excluded_scenes": MetadataValue.json(fetched.excluded),
            "downloaded_bytes": fetched.downloaded_bytes,
            "asset_cache_hits": fetched.cache_hits,
            "download_retries": fetched.retries,
        },
    )
    if not fetched.items:
        raise Failure(
            description=f"none of the {len(items)} scenes of tile {tile} in {month} could be fetched "
            f"(completeness {fetched.completeness:.0%}); failed assets: {fetched.failures_json()[:5]}",
            metadata={"failed_assets": MetadataValue.json(fetched.failures_json())},
        )
    items = fetched.items
    store = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, FIRST_MONTH, chunk_px=dask_cluster.chunk_px)
    scenes = load_scenes(items, stac.catalog_profile(), grid, COMMON_BANDS, chunk_px=dask_cluster.chunk_px)
    store.write_month(month, monthly_composite(scenes), run_id=context.run.run_id)
    # Validate exactly the version this run committed, even if another run of the month commits meanwhile.
    # lazy when large: the statistics and the suite read it one block of chunk rows at a time (bounded memory)
    written = in_memory_if_small(store.read_month(month, snapshot=store.last_snapshot))
    # stats, band medians and the suite's sample in two reads of each variable, not five
    summary = summarize_composite(written, sample_px=COMPOSITE_SAMPLE_PX)
    quality = summary.stats
    clear = float(quality["valid_fraction"])
    stats: dict[str, Any] = {
        "scenes": len(items),
        "clear_fraction": clear,
        "valid_pixels": quality["valid_pixels"],
        "cloud_fraction": quality["cloud_fraction"],
        "mean_clear_obs": quality["mean_clear_obs"],
        "median_spread": quality["median_spread"],
        "median_reflectance": summary.medians,
    }
    record(context, memory.catalog(), uri=store.uri, stats=stats, grid=grid, month=month, version=store.last_snapshot)
    metadata = {
        "scenes": len(items),
        "clear_fraction": MetadataValue.float(clear),
        "mean_clear_observations": stats["mean_clear_obs"],
        "valid_pixels": quality["valid_pixels"],
        "cloud_fraction": MetadataValue.float(quality["cloud_fraction"] or 0.0),
        "median_spread": MetadataValue.json(quality["median_spread"]),
        "median_reflectance": MetadataValue.json(stats["median_reflectance"]),
        "grid": MetadataValue.json(grid.to_dict()),
        "uri": store.uri,
    }
    return metadata, validate_composite(written, min_valid_fraction=MIN_CLEAR_FRACTION, summary=summary)


@asset(
    partitions_def=month_tile_partitions,
    deps=[surface_reflectance],
    backfill_policy=MONTH_TILE_BACKFILL,
    automation_condition=REFRESH_WITH_INPUTS,
    pool="raster",
    group_name="acquisition",
    kinds={"dask", "zarr"},
    description="NDVI, NDWI (McFeeters), EVI and NBR of the monthly composite (dimensionless).",
)
def spectral_indices(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    dask_cluster: DaskClusterResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    root = storage.storage_root()

    def indices(partition: tuple[str, str, TileGrid]) -> None:
        key, month, grid = partition
        sr = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, FIRST_MONTH, chunk_px=dask_cluster.chunk_px)
        out = MonthlyRasterStore(root, SPECTRAL_INDICES, grid, FIRST_MONTH, chunk_px=dask_cluster.chunk_px)
        reflectance = in_memory_if_small(sr.read_month(month))["reflectance"]
        out.write_month(month, compute_indices(reflectance), run_id=context.run.run_id)
        written = out.read_month(month, snapshot=out.last_snapshot).compute()
        stats: dict[str, Any] = index_stats(written)
        stats[INDEX_SUMMARY] = index_summary(written)  # the month's row of the tile's series (flat in history)
        record(context, memory.catalog(), uri=out.uri, stats=stats, grid=grid, month=month, version=out.last_snapshot)
        partition_metadata(
            context,
            key,
            {
                "mean_ndvi": stats["ndvi"]["mean"],
                "mean_ndwi": stats["ndwi"]["mean"],
                "indices": MetadataValue.json(stats),
                "uri": out.uri,
            },
        )

    partitions = tile_months(context, stac)
    dask_cluster.each(indices, partitions, pixels=largest_px(partitions))
    return MaterializeResult()


def _suite_check(name: str, result: SuiteResult) -> AssetCheckResult:
    """A blocking asset check's result from a great-expectations suite result."""
    summary = result.summary()
    return AssetCheckResult(
        check_name=name,
        passed=result.success,
        severity=AssetCheckSeverity.ERROR,
        description=None if result.success else f"{len(result.failed)} of {len(result.outcomes)} expectations failed",
        metadata={
            "rows_validated": result.rows,
            "expectations": len(result.outcomes),
            "failed": MetadataValue.json(summary["failed"]),
        },
    )
