"""The seed's chain of models per tile: land cover -> change -> trend, each step's uncertainty carried on.

Partitioned by **tile** (like ``ndvi_forecast``): it reads the tile's last ``months`` composites,
classifies the latest with the land-cover model, detects the change between each pair of
consecutive months with the change detector (``samples`` Monte-Carlo dropout passes), attributes
the last month's change to the land-cover classes, and fits the trend model to the changed area
with the change's uncertainty carried into the forecast intervals
(:mod:`memories.ai.pipeline`). The table is written under
``StorageRoot.table_uri("change_trend", tile, <last month>)``.
"""

from typing import Any

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset

from assets._partition import record
from assets.partitions import FIRST_MONTH, tiles_partitions
from memories.earth.stac_profiles import COMMON_BANDS
from memories.products import CHANGE_TREND, SURFACE_REFLECTANCE
from memories.store.raster import MonthlyRasterStore
from resources import MemoryCatalogResource, ModelRuntimeResource, StacCatalogResource, StorageResource

from .imagery import surface_reflectance
from .models import CHANGE_MODEL_NAME, change_model, land_cover_model

PRODUCT = CHANGE_TREND


class ChangeTrendConfig(Config):  # type: ignore[misc]
    """Run configuration of ``change_trend``."""

    months: int = 12
    """The tile's last months the chain reads (4 or more)."""
    samples: int = 4
    """Monte-Carlo dropout passes of the land-cover and change steps."""
    threshold: float = 0.5
    """Probability of change (0–1) at which a pixel has changed."""
    min_area_m2: float = 1000.0
    """Smallest changed patch kept, square metres."""
    trend_model: str = "time_series_trend_analyzer"
    """Registry id of the trend model (registered with its default settings if absent)."""


@asset(
    partitions_def=tiles_partitions,
    deps=[land_cover_model, change_model, surface_reflectance],
    pool="inference",
    group_name="models",
    kinds={"pytorch", "statsmodels", "parquet"},
    description=(
        "Land cover, change and trend of a tile's last months chained as the seed's model pipeline: changed area "
        "per month with its Monte-Carlo interval, the last change by land-cover class, and the area forecast with "
        "the change's uncertainty carried into its intervals."
    ),
)
def change_trend(
    context: AssetExecutionContext,
    config: ChangeTrendConfig,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
    model_runtime: ModelRuntimeResource,
) -> MaterializeResult:
    from memories.ai.change import load_change_detector
    from memories.ai.manager import ModelManager
    from memories.ai.pipeline import run_tile_chain, seed_chain
    from memories.ai.registry import ModelRegistry
    from memories.ai.trend import register_trend_model
    from memories.errors import ConfigError, ProcessingError, StorageError

    tile = context.partition_key
    grid = stac.tile(tile)
    root = storage.storage_root()
    store = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, FIRST_MONTH)
    months = store.months()[-config.months :]
    images = {m: store.read_month(m)["reflectance"].sel(band=list(COMMON_BANDS)) for m in months}
    register_trend_model(ModelRegistry(root))
    manager = ModelManager(root)
    manager.register_loader(CHANGE_MODEL_NAME, lambda registry, mv: load_change_detector(registry.root, mv.uri))
    try:
        pipeline = seed_chain(
            manager,
            model_runtime.land_cover_model,
            model_runtime.change_model,
            config.trend_model,
            threshold=config.threshold,
            min_area_m2=config.min_area_m2,
        )
        chain = run_tile_chain(pipeline, images, samples=config.samples)
    except (ConfigError, ProcessingError, StorageError) as e:
        raise Failure(description=f"tile {tile}: {e}") from e
    last = chain.months[-1]
    uri = root.table_uri(PRODUCT, tile, last)
    root.write_bytes(uri, chain.table.to_parquet(index=False))
    stats: dict[str, Any] = chain.summary()
    record(context, memory.catalog(), uri=uri, stats=stats, grid=grid, month=last)
    return MaterializeResult(
        metadata={
            "months": MetadataValue.text(f"{chain.months[0]} .. {last} ({len(chain.months)})"),
            "samples": chain.samples,
            "models": MetadataValue.json(chain.models),
            "interval_widening": MetadataValue.float(stats["interval_widening"]),
            "change_by_class": MetadataValue.md(chain.class_markdown()),
            "forecast": MetadataValue.md(chain.forecast_markdown()),
            "uri": uri,
        }
    )
