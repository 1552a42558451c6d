"""Multi-modal land use: the model (imagery + rasterized roads/buildings/water + OSM text) and its per-tile-month maps.

``multimodal_model`` trains :class:`memories.ai.multimodal.MultiModalLandUse` on the
composites in memory, the GIS layers of the same tile-months as its other modalities
(``memories.ai.multimodal_data``: never the ``landuse`` layer, which the labels are
burned from) and the same cleaned GIS labels as ``land_cover_model``, on the same
seeded spatial split, and registers it as ``multimodal_land_use``.
``multimodal_land_use`` predicts each tile-month with the latest version and writes
the class map, the confidence and the attention of every pixel over the modalities.
"""

import base64
from typing import Any

import numpy as np
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from assets._partition import partition_metadata, record, tile_months
from assets.automation import REFRESH_WITH_INPUTS, RETRAIN_MONTHLY
from assets.partitions import FIRST_MONTH, MONTH_TILE_BACKFILL, month_tile_partitions
from memories import products
from memories.ai.registry import scalar_metrics
from memories.ai.training_sets import training_tile_months
from memories.classes import LAND_COVER_CLASSES
from memories.earth.stac_profiles import COMMON_BANDS
from memories.grid import TileGrid
from memories.products import MULTIMODAL_MODEL, SURFACE_REFLECTANCE
from memories.store.paths import StorageRoot
from memories.store.raster import MonthlyRasterStore
from resources import MemoryCatalogResource, ModelRuntimeResource, StacCatalogResource, StorageResource

from .gis import gis_layers
from .imagery import surface_reflectance
from .models import load_model

MODEL_NAME = "multimodal_land_use"
MODEL_ID = f"{MODEL_NAME}@latest"


@asset(
    deps=[surface_reflectance, gis_layers],
    group_name="models",
    kinds={"pytorch", "lightning"},
    description=(
        "Multi-modal land-use model (imagery, roads/buildings/water rasters, OSM text; cross-modal attention) "
        "trained on the composites and GIS layers in memory; registered with held-out accuracy and mean IoU."
    ),
    pool="training",
    automation_condition=RETRAIN_MONTHLY,
)
def multimodal_model(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
    model_runtime: ModelRuntimeResource,
) -> MaterializeResult:
    from memories.ai.labels import clean_labels
    from memories.ai.multimodal import MultiModalSample, train_multimodal
    from memories.ai.registry import ModelRegistry
    from memories.earth.gis import rasterize_labels

    root = storage.storage_root()
    catalog = memory.catalog()
    training = training_tile_months(catalog, model_runtime.max_training_months)
    chosen, data_version = training.pairs, training.data_version
    samples = []
    for tile, month in chosen:
        grid = stac.tile(tile)
        refl, layers, modalities = _inputs(root, grid, month)
        labels, _ = clean_labels(rasterize_labels(layers, grid), refl, COMMON_BANDS)
        samples.append(MultiModalSample(refl, modalities, labels))
    result = train_multimodal(
        samples, band_names=COMMON_BANDS, settings=model_runtime.model_settings(), accelerator=model_runtime.accelerator
    )
    version = ModelRegistry(root).register(
        MODEL_NAME,
        result.model,
        result.metrics,
        training_data={"partitions": [f"{m}|{t}" for t, m in chosen], "label_source": products.GIS_LAYERS},
        training_data_version=data_version,
    )
    model_id = f"{MODEL_NAME}:{version.version}"
    record(context, catalog, uri=version.uri, stats={"model_id": model_id, **scalar_metrics(result.metrics)})
    return MaterializeResult(
        metadata={
            "model_id": model_id,
            "val_accuracy": MetadataValue.float(float(result.metrics["val_accuracy"])),
            "val_miou": MetadataValue.float(float(result.metrics["val_miou"])),
            "metrics": MetadataValue.json(result.metrics),
            "modalities": MetadataValue.json(result.model.modality_names),
            "training_partitions": MetadataValue.json([f"{m}|{t}" for t, m in chosen]),
            "uri": version.uri,
        }
    )


@asset(
    partitions_def=month_tile_partitions,
    deps=[multimodal_model, surface_reflectance, gis_layers],
    backfill_policy=MONTH_TILE_BACKFILL,
    automation_condition=REFRESH_WITH_INPUTS,
    pool="inference",
    group_name="models",
    kinds={"pytorch", "zarr"},
    description="Land use per pixel from the multi-modal model, its confidence and its attention over modalities.",
)
def multimodal_land_use(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    from memories.ai.manager import ModelManager
    from memories.ai.multimodal import MultiModalLandUse, land_use_dataset, predict_multimodal
    from memories.ai.saliency import (
        MODALITY_GROUPS,
        figure_png,
        modality_shares,
        plot_modality_attention,
        plot_modality_shares,
    )

    root = storage.storage_root()
    loaded = load_model(ModelManager(root), MODEL_ID, "multimodal_model", MULTIMODAL_MODEL)
    if not isinstance(loaded.model, MultiModalLandUse):
        raise Failure(description=f"{loaded.id} is a {type(loaded.model).__name__}, not a MultiModalLandUse")
    names = loaded.model.modality_names
    for key, month, grid in tile_months(context, stac):
        refl, _, modalities = _inputs(root, grid, month)
        classes, confidence, attention = predict_multimodal(loaded.model, refl, modalities)
        out = MonthlyRasterStore(root, MODEL_NAME, grid, FIRST_MONTH)
        out.write_month(month, land_use_dataset(classes, confidence, attention, names), run_id=context.run.run_id)
        labelled = classes > 0
        shares = {c.name: float((classes == c.code).sum() / max(labelled.sum(), 1)) for c in LAND_COVER_CLASSES}
        mean_attention = {n: round(float(np.nanmean(a)), 4) for n, a in zip(names, attention, strict=True)}
        shares_map = modality_shares(attention, names)  # imagery / vector / text per pixel, each pixel sums to 1
        modality_share = {g: round(float(np.nanmean(s)), 4) for g, s in zip(MODALITY_GROUPS, shares_map, strict=True)}
        stats = {
            "model_id": loaded.id,
            "class_share": shares,
            "mean_attention": mean_attention,
            "modality_share": modality_share,
        }
        record(context, memory.catalog(), uri=out.uri, stats=stats, grid=grid, month=month, version=out.last_snapshot)
        title = f"{loaded.id} {month}|{grid.tile_id}"
        png = figure_png(plot_modality_attention(attention, names, title=title))
        share_png = figure_png(plot_modality_shares(shares_map, title=f"Share of attention per modality, {title}"))
        partition_metadata(
            context,
            key,
            {
                "model_id": loaded.id,
                "class_share": MetadataValue.json(shares),
                "mean_attention": MetadataValue.json(mean_attention),
                "attention_preview": MetadataValue.md(
                    f"![attention](data:image/png;base64,{base64.b64encode(png).decode()})"
                ),
                "modality_share": MetadataValue.json(modality_share),
                "modality_share_preview": MetadataValue.md(
                    f"![modality share](data:image/png;base64,{base64.b64encode(share_png).decode()})"
                ),
                "uri": out.uri,
            },
        )
    return MaterializeResult()


def _inputs(root: StorageRoot, grid: TileGrid, month: str) -> tuple[np.ndarray, dict[str, Any], Any]:
    """Reflectance, GIS layers and the model's other modalities of one stored tile-month."""
    from memories.ai.multimodal_data import modality_inputs
    from memories.earth.gis import GIS_LAYERS, read_tile_layers

    store = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, FIRST_MONTH)
    refl = store.read_month(month)["reflectance"].sel(band=list(COMMON_BANDS)).values.astype(np.float32)
    layers = read_tile_layers(root, grid.tile_id, month, (*GIS_LAYERS, "places"), optional=("places",))
    return refl, layers, modality_inputs(layers, grid)
