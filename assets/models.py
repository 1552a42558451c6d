"""Model assets: the land-cover model and its per-tile-month predictions.

``land_cover_model`` trains a small U-Net on the monthly composites in memory with
labels rasterized from the GIS layers of the same tile-month, on a seeded spatial
split, and registers the checkpoint with its metrics, the fingerprint of the catalog
rows it trained on and the permutation importance of each band on held-out pixels.
``land_cover`` predicts each tile-month with the version that
``model_runtime.land_cover_model`` names (``land_cover@latest`` by default;
``land_cover:3``, ``land_cover@best``) and writes the class map to Zarr;
``change_map`` picks the change detector by ``model_runtime.change_model``. Both
record the exact ``model_id`` (``land_cover:3``) in metadata and in the catalog.

The training sets and the products are the library's (``memories.ai.training_sets``,
``memories.ai.land_cover_maps``, ``memories.ai.change_maps``); the sample world's truth,
which the change detector trains on and its maps are scored against, comes from the
catalog resource (``stac.served_world()``, None for a real catalog).
"""

import base64
from typing import TYPE_CHECKING, Any

from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from assets._partition import partition_metadata, record, tile_months
from assets.automation import REFRESH_WITH_INPUTS, RETRAIN_MONTHLY
from assets.partitions import FIRST_MONTH, MONTH_TILE_BACKFILL, PREVIOUS_MONTH, month_tile_partitions
from memories import products
from memories.ai.registry import scalar_metrics
from memories.applications.index_series import class_ndvi_summary
from memories.earth.stac_profiles import COMMON_BANDS
from memories.grid import TileGrid
from memories.products import CHANGE_MAP, CHANGE_MODEL, LAND_COVER, LAND_COVER_MODEL, SURFACE_REFLECTANCE
from memories.store.paths import StorageRoot
from memories.store.raster import MonthlyRasterStore
from resources import MemoryCatalogResource, ModelRuntimeResource, StacCatalogResource, StorageResource

from .gis import gis_layers
from .imagery import surface_reflectance

if TYPE_CHECKING:
    from memories.ai.manager import LoadedModel, ModelManager

MODEL_NAME = "land_cover"
CHANGE_MODEL_NAME = "change"


@asset(
    deps=[surface_reflectance, gis_layers],
    group_name="models",
    kinds={"pytorch", "lightning"},
    description=(
        "Land-cover U-Net trained on the composites in memory, labels from the GIS layers; "
        "registered with validation accuracy and mean IoU on a seeded spatial split."
    ),
    pool="training",
    automation_condition=RETRAIN_MONTHLY,
)
def land_cover_model(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
    model_runtime: ModelRuntimeResource,
) -> MaterializeResult:
    from memories.ai.explain import band_importance_sidecar, plot_band_importance
    from memories.ai.land_cover import train_land_cover
    from memories.ai.registry import ModelRegistry
    from memories.ai.saliency import saliency_preview
    from memories.ai.training_sets import land_cover_samples, training_tile_months

    root = storage.storage_root()
    catalog = memory.catalog()
    training = training_tile_months(catalog, model_runtime.max_training_months)
    chosen, data_version = training.pairs, training.data_version
    data = land_cover_samples(root, chosen, stac.tile, FIRST_MONTH)
    samples, stale = data.samples, data.stale_labels
    context.log.info(f"training on {len(samples)} tile-months {chosen}; {stale} stale GIS labels dropped")
    settings = model_runtime.model_settings()
    result = train_land_cover(
        samples, band_names=COMMON_BANDS, settings=settings, accelerator=model_runtime.accelerator
    )
    tile, month = chosen[0]
    extra, why_not = band_importance_sidecar(
        result.model,
        samples,
        patch_px=settings.patch_px,
        seed=settings.seed,
        n_repeats=model_runtime.importance_repeats,
        scored_on=f"validation blocks of {month}|{tile}",
    )
    if why_not:
        context.log.warning(f"band importance not computed on {month}|{tile}: {why_not}")
    version = ModelRegistry(root).register(
        MODEL_NAME,
        result.model,
        result.metrics,
        training_data={"partitions": training.partitions, "label_source": products.GIS_LAYERS},
        training_data_version=data_version,
        extra=extra,
    )
    model_id = f"{MODEL_NAME}:{version.version}"
    record(
        context,
        catalog,
        uri=version.uri,
        stats={
            "version": version.version,
            "model_id": model_id,
            "training_data_version": data_version,
            **scalar_metrics(result.metrics),
            **({"band_importance": extra["band_importance"]} if extra else {}),
        },
        version=str(version.version),
    )
    metadata: dict[str, Any] = {
        "version": version.version,
        "model_id": model_id,
        "training_data_version": data_version,
        "val_accuracy": MetadataValue.float(float(result.metrics["val_accuracy"])),
        "val_miou": MetadataValue.float(float(result.metrics["val_miou"])),
        "metrics": MetadataValue.json(result.metrics),
        "training_partitions": MetadataValue.json(training.partitions),
        "stale_labels_dropped": stale,
        "uri": version.uri,
    }
    if extra:
        chart = base64.b64encode(plot_band_importance(extra["band_importance"], title=model_id)).decode()
        metadata["band_importance"] = MetadataValue.json(extra["band_importance"])
        metadata["band_importance_info"] = MetadataValue.json(extra["band_importance_info"])
        metadata["band_importance_chart"] = MetadataValue.md(
            f"Permutation importance (drop in pixel accuracy, 0-1) on {extra['band_importance_info']['scored_on']}"
            f"\n\n![band importance](data:image/png;base64,{chart})\n"
        )
    metadata["saliency_preview"] = MetadataValue.md(saliency_preview(result.model, samples[0][0], title=model_id))
    return MaterializeResult(metadata=metadata)


@asset(
    partitions_def=month_tile_partitions,
    deps=[land_cover_model, surface_reflectance],
    backfill_policy=MONTH_TILE_BACKFILL,
    automation_condition=REFRESH_WITH_INPUTS,
    pool="inference",
    group_name="models",
    kinds={"pytorch", "zarr"},
    description="Land-cover class per pixel (codes of memories.classes) and model confidence, per tile-month.",
)
def land_cover(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
    model_runtime: ModelRuntimeResource,
) -> MaterializeResult:
    from memories.ai.land_cover import LandCoverUNet
    from memories.ai.manager import ModelManager

    root = storage.storage_root()
    loaded = load_model(ModelManager(root), model_runtime.land_cover_model, "land_cover_model", LAND_COVER_MODEL)
    if not isinstance(loaded.model, LandCoverUNet):
        raise Failure(
            description=f"model_runtime.land_cover_model={model_runtime.land_cover_model!r} is {loaded.id}, "
            f"a {type(loaded.model).__name__}, not a land-cover model; name a version of {MODEL_NAME!r}"
        )
    for key, month, grid in tile_months(context, stac):
        partition_metadata(context, key, _classify(context, root, memory, model_runtime, loaded, month, grid))
    return MaterializeResult()


def _classify(
    context: AssetExecutionContext,
    root: StorageRoot,
    memory: MemoryCatalogResource,
    model_runtime: ModelRuntimeResource,
    loaded: "LoadedModel",
    month: str,
    grid: TileGrid,
) -> dict[str, Any]:
    """Predict, write and record the land cover of one tile-month with the loaded model: its metadata.

    The composite is read and the maps written strip by strip (full-size tiles in bounded memory).
    """
    from memories.ai.land_cover_maps import write_land_cover_month

    composite = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, FIRST_MONTH).read_month(month)["reflectance"]
    out = MonthlyRasterStore(root, LAND_COVER, grid, FIRST_MONTH)
    product = write_land_cover_month(
        loaded.model,
        composite.sel(band=list(COMMON_BANDS)),
        out,
        month,
        passes=model_runtime.mc_passes,
        seed=model_runtime.seed,
        run_id=context.run.run_id,
    )
    stats: dict[str, Any] = {
        "model_id": loaded.id,
        "model_version": loaded.version.version,
        "class_share": product.class_share,
        "mean_confidence": product.mean_confidence,
        "mean_variance": product.mean_variance,
        "mc_passes": product.passes,
        # the month's NDVI per class (flat in history), read back strip by strip
        **class_ndvi_summary(composite, out.read_month(month, snapshot=out.last_snapshot)["land_cover"]),
    }
    record(context, memory.catalog(), uri=out.uri, stats=stats, grid=grid, month=month, version=out.last_snapshot)
    return {
        "model_id": loaded.id,
        "model_version": loaded.version.version,
        "model_requested": model_runtime.land_cover_model,
        "class_share": MetadataValue.json(product.class_share),
        "mean_confidence": product.mean_confidence,
        "mean_variance": product.mean_variance,
        "mc_passes": product.passes,
        "uri": out.uri,
    }


@asset(
    deps=[surface_reflectance],
    group_name="models",
    kinds={"pytorch", "lightning"},
    description=(
        "Siamese U-Net change detector trained on pairs of monthly composites, labels from the sample "
        "world's event truth on all tiles but the first (sorted ids); scored (IoU) on that tile, never trained on."
    ),
    pool="training",
    automation_condition=RETRAIN_MONTHLY,
)
def change_model(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
    model_runtime: ModelRuntimeResource,
) -> MaterializeResult:
    from memories.ai.change import train_change_detector
    from memories.ai.registry import ModelRegistry
    from memories.ai.training_sets import change_training_set

    truth = stac.served_world()
    if truth is None:
        raise Failure(description="change_model trains on the sample world's event truth; use the embedded profile")
    root = storage.storage_root()
    catalog = memory.catalog()
    pairs = change_training_set(root, catalog, stac.tile, truth, FIRST_MONTH)
    result = train_change_detector(
        pairs.training,
        validation=pairs.validation,
        band_names=COMMON_BANDS,
        width=model_runtime.change_width,
        steps=model_runtime.change_steps,
        seed=model_runtime.seed,
        accelerator=model_runtime.accelerator,
    )
    context.log.info(
        f"change detector: {len(pairs.training)} training pairs, {len(pairs.validation)} held-out, {result.metrics}"
    )
    version = ModelRegistry(root).register(
        CHANGE_MODEL_NAME,
        result.model,
        result.metrics,
        training_data={
            "tiles": pairs.tiles,
            "label_source": "sample world event truth",
            "held_out_tile": pairs.held_out_tile,
        },
    )
    record(context, catalog, uri=version.uri, stats={"version": version.version, **scalar_metrics(result.metrics)})
    return MaterializeResult(
        metadata={
            "version": version.version,
            "val_iou": MetadataValue.float(float(result.metrics["val_iou"])),
            "held_out_tile": pairs.held_out_tile or "none",
            "training_pairs": len(pairs.training),
            "metrics": MetadataValue.json(scalar_metrics(result.metrics)),
            "uri": version.uri,
        }
    )


@asset(
    partitions_def=month_tile_partitions,
    # The month and the month before it (the first month has none: it is recorded as "no reference").
    deps=[change_model, AssetDep(surface_reflectance, partition_mapping=PREVIOUS_MONTH)],
    backfill_policy=MONTH_TILE_BACKFILL,
    automation_condition=REFRESH_WITH_INPUTS,
    pool="inference",
    group_name="models",
    kinds={"pytorch", "zarr", "geoparquet"},
    description=(
        "Change since the previous month in memory, by the difference rule and the learned siamese U-Net: "
        "Zarr change map and GeoParquet change polygons (column method), per tile-month."
    ),
)
def change_map(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
    model_runtime: ModelRuntimeResource,
) -> MaterializeResult:
    from memories.ai.change import ChangeDetector, load_change_detector
    from memories.ai.manager import ModelManager

    root = storage.storage_root()
    manager = ModelManager(root)
    manager.register_loader(CHANGE_MODEL_NAME, lambda registry, mv: load_change_detector(registry.root, mv.uri))
    loaded = load_model(manager, model_runtime.change_model, "change_model", CHANGE_MODEL)
    if not isinstance(loaded.model, ChangeDetector):
        raise Failure(
            description=f"model_runtime.change_model={model_runtime.change_model!r} is {loaded.id}, "
            f"a {type(loaded.model).__name__}, not a change detector; name a version of {CHANGE_MODEL_NAME!r}"
        )
    truth = stac.served_world()
    for key, month, grid in tile_months(context, stac):
        partition_metadata(context, key, _change(context, root, memory, loaded, truth, month, grid))
    return MaterializeResult()


def _change(
    context: AssetExecutionContext,
    root: StorageRoot,
    memory: MemoryCatalogResource,
    loaded: "LoadedModel",
    truth: Any,
    month: str,
    grid: TileGrid,
) -> dict[str, Any]:
    """Change of one tile-month since the month before it in memory, with the loaded detector, scored against
    ``truth`` when the world's is known: its metadata."""
    from memories.ai.change_maps import change_map as change_product
    from memories.earth.gis import write_geoparquet

    store = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, FIRST_MONTH)
    product = change_product(store, month, loaded.model, truth)
    ids = {"model_id": loaded.id, "model_version": loaded.version.version}
    if product is None:
        # The first month in memory has nothing to compare with: materialize it as "no reference" rather than
        # fail, so a backfill over all months does not report the first as broken.
        context.log.info(f"no surface_reflectance before {month} on tile {grid.tile_id}: no change computed")
        return {"reference_month": "none (first month in memory)", **ids}
    out = MonthlyRasterStore(root, CHANGE_MAP, grid, FIRST_MONTH)
    out.write_month(month, product.dataset, run_id=context.run.run_id)
    polygons_uri = root.vector_uri("change_polygons", grid.tile_id, month)
    write_geoparquet(root, polygons_uri, product.polygons)
    stats: dict[str, Any] = {**ids, **product.stats, "polygons_uri": polygons_uri, **product.scores}
    record(context, memory.catalog(), uri=out.uri, stats=stats, grid=grid, month=month, version=out.last_snapshot)
    return {
        **{k: v for k, v in stats.items() if not isinstance(v, dict)},
        **{k: MetadataValue.json(v) for k, v in stats.items() if isinstance(v, dict)},
        "uri": out.uri,
    }


def load_model(manager: "ModelManager", model_id: str, setting: str, trainer: str) -> "LoadedModel":
    """The model an id names, or a Failure that names the id, the registered versions and the fix.

    Args:
        manager: The model manager of the storage root.
        model_id: ``name:version``, ``name@latest`` or ``name@best``.
        setting: The ``model_runtime`` field that chose the id (named in the fix).
        trainer: The asset that registers versions of the model (named in the fix).
    """
    from memories.errors import ConfigError, StorageError

    try:
        return manager.load_model(model_id)
    except (ConfigError, StorageError) as e:
        raise Failure(
            description=(
                f"{e}. Set model_runtime.{setting} (config key model.{setting}) to a registered id, "
                f"or materialize {trainer} first"
            ),
            metadata={"model_id": model_id, "setting": f"model_runtime.{setting}"},
        ) from e
