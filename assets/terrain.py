"""Terrain of a tile: elevation, slope, aspect, hillshade, D8 flow direction, flow accumulation and HAND.

Partitioned by **tile** only (the ``tiles`` dynamic partitions): a DEM has no month. The DEM comes from
the configured source, resampled onto the tile's grid (``memories.earth.dem``): the sample world's
analytic DEM in the embedded setup, GeoTIFF files, or a STAC collection such as Copernicus DEM GLO-30
(profiles ``earth-search-dem``, ``planetary-computer-dem``). The math runs chunk-wise on the run's Dask
cluster (``memories.earth.terrain``); the product is one versioned raster store per tile (Icechunk: a
re-materialization is a new commit, the previous version stays readable).
"""

from typing import Literal

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from assets._partition import record
from assets.partitions import tiles_partitions
from resources import DaskClusterResource, MemoryCatalogResource, StacCatalogResource, StorageResource


class TerrainConfig(Config):  # type: ignore[misc]
    """Run configuration of ``terrain``."""

    source: Literal["auto", "sample", "files", "stac"] = "auto"
    """Where the DEM comes from; ``auto``: the catalog resource's choice (``stac.default_dem_source``: the sample
    world when it serves the embedded world itself, else ``stac``)."""
    paths: list[str] = []
    """GeoTIFF paths or URLs of ``source="files"`` (mosaicked, the first covering a cell wins)."""
    profile: str = "planetary-computer-dem"
    """Catalog profile of ``source="stac"`` (``earth-search-dem``, ``planetary-computer-dem``)."""
    url: str | None = None
    """STAC API root of ``source="stac"``; empty: the profile's own."""
    condition: Literal["fill", "none"] = "fill"
    """``fill``: Priority-Flood+epsilon before routing (every cell drains); ``none``: pits and flats stop flow."""
    stream_area_m2: float = 1e6
    """Upstream area (m2) from which a cell counts as a stream for HAND."""


@asset(
    partitions_def=tiles_partitions,
    group_name="acquisition",
    kinds={"dask", "icechunk"},
    pool="raster",
    description="Elevation, slope, aspect, hillshade, D8 flow direction, flow accumulation and HAND of the tile.",
)
def terrain(
    context: AssetExecutionContext,
    config: TerrainConfig,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
    dask_cluster: DaskClusterResource,
) -> MaterializeResult:
    from memories.ai.registry import ModelRegistry
    from memories.ai.terrain_model import TERRAIN_MODEL, TerrainAnalyzer, register_terrain_model, score_against_truth
    from memories.earth.dem import dem_on_grid, find_dem
    from memories.earth.terrain import TERRAIN_EPOCH, terrain_dataset, terrain_store, terrain_summary

    grid = stac.tile(context.partition_key)
    root = storage.storage_root()
    source = config.source
    if source == "auto":
        source = stac.default_dem_source()
    world = stac.served_world() if source == "sample" else None
    hrefs, items = find_dem(
        source,
        grid,
        sample_path=str(world.dem_path(grid.tile_id)) if world is not None else None,
        paths=config.paths,
        profile=config.profile,
        url=config.url,
    )
    dem = dem_on_grid(hrefs, grid)
    with dask_cluster.compute():
        ds = terrain_dataset(
            dem, grid, chunk_px=dask_cluster.chunk_px, condition=config.condition, stream_area_m2=config.stream_area_m2
        )
        store = terrain_store(root, grid, dask_cluster.chunk_px)
        snapshot = store.write_month(TERRAIN_EPOCH, ds, run_id=context.run.run_id)
    # The settings are a version of the terrain model; on the sample world it is scored against the truth.
    scores = score_against_truth(ds, world.terrain(grid.tile_id)) if world is not None else {}
    settings = TerrainAnalyzer(config.condition, config.stream_area_m2)
    model = register_terrain_model(ModelRegistry(root), settings, scores)
    model_id = f"{TERRAIN_MODEL}:{model.version}"
    stats = {**terrain_summary(ds), "source": source, "dem": hrefs, "items": items, "model_id": model_id, **scores}
    record(context, memory.catalog(), uri=store.uri, stats=stats, grid=grid, version=snapshot)
    return MaterializeResult(
        metadata={
            "source": source,
            "dem": MetadataValue.json(hrefs),
            "items": MetadataValue.json(items),
            "elevation_range_m": MetadataValue.text(f"{stats['elevation_min_m']:.1f}-{stats['elevation_max_m']:.1f}"),
            "slope_p50_deg": stats["slope_p50_deg"],
            "slope_p90_deg": stats["slope_p90_deg"],
            "no_flow_cells": stats["no_flow_cells"],
            "max_accumulation_cells": stats["max_accumulation_cells"],
            "condition": config.condition,
            "model_id": model_id,
            "scores_against_truth": MetadataValue.json(scores),
            "snapshot": snapshot,
            "uri": store.uri,
        }
    )
