"""Model assets: the land-cover model and its per-tile-month predictions.

``land_cover_model`` trains a small U-Net on the monthly composites in memory with
labels rasterized from the GIS layers of the same tile-month, on a seeded spatial
split, and registers the checkpoint with its metrics. ``land_cover`` predicts each
tile-month with the registered version and writes the class map to Zarr.
"""


from collections.abc import Mapping
from typing import Any

import numpy as np
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from assets._partition import record, tile_month
from dagster_project.partitions import FIRST_MONTH, month_tile_partitions
from memories.classes import LAND_COVER_CLASSES
from memories.earth.catalogs import COMMON_BANDS
from memories.earth.gis import GIS_LAYERS, rasterize_labels, read_geoparquet
from memories.store.raster import MonthlyRasterStore
from resources import MemoryCatalogResource, ModelRuntimeResource, StacCatalogResource, StorageResource

from .gis import gis_layers
from .imagery import surface_reflectance

MODEL_NAME = "land_cover"


@asset(
    deps=[surface_reflectance, gis_layers],
    group_name="models",
    kinds={"pytorch", "lightning"},
    description=(
        "Land-cover U-Net trained on the composites in memory, labels from the GIS layers; "
        "registered with validation accuracy and mean IoU on a seeded spatial split."
    ),
    tags={"dagster/concurrency_key": "training"},
)
def land_cover_model(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
    model_runtime: ModelRuntimeResource,
) -> MaterializeResult:
    from memories.ai.labels import clean_labels
    from memories.ai.land_cover import train_land_cover
    from memories.ai.registry import ModelRegistry

    root = storage.storage_root()
    catalog = memory.catalog()
    have_sr = {(m.tile, m.partition) for m in catalog.current("surface_reflectance")}
    have_gis = {(m.tile, m.partition) for m in catalog.current("gis_layers")}
    pairs = sorted((t, m) for t, m in have_sr & have_gis if t and m)
    if not pairs:
        raise Failure(
            description="no tile-month has both surface_reflectance and gis_layers; materialize them first"
        )
    chosen = _spread(pairs, model_runtime.max_training_months)
    samples = []
    stale = 0
    for tile, month in chosen:
        grid = stac.tile(tile)
        store = MonthlyRasterStore(root, "surface_reflectance", grid, FIRST_MONTH)
        refl = store.read_month(month)["reflectance"].sel(band=list(COMMON_BANDS)).values.astype(np.float32)
        layers = {layer: read_geoparquet(root, root.vector_uri(layer, tile, month)) for layer in GIS_LAYERS}
        labels, dropped = clean_labels(rasterize_labels(layers, grid), refl, COMMON_BANDS)
        stale += dropped
        samples.append((refl, labels))
    context.log.info(f"training on {len(samples)} tile-months {chosen}; {stale} stale GIS labels dropped")
    result = train_land_cover(
        samples,
        band_names=COMMON_BANDS,
        settings=model_runtime.model_settings(),
        accelerator=model_runtime.accelerator,
    )
    version = ModelRegistry(root).register(
        MODEL_NAME,
        result.model,
        result.metrics,
        training_data={"partitions": [f"{m}|{t}" for t, m in chosen], "label_source": "gis_layers"},
    )
    record(context, catalog, uri=version.uri, stats={"version": version.version, **_scalars(result.metrics)})
    return MaterializeResult(
        metadata={
            "version": version.version,
            "val_accuracy": MetadataValue.float(float(result.metrics["val_accuracy"])),
            "val_miou": MetadataValue.float(float(result.metrics["val_miou"])),
            "metrics": MetadataValue.json(result.metrics),
            "training_partitions": MetadataValue.json([f"{m}|{t}" for t, m in chosen]),
            "stale_labels_dropped": stale,
            "uri": version.uri,
        }
    )


@asset(
    partitions_def=month_tile_partitions,
    deps=[land_cover_model, surface_reflectance],
    group_name="models",
    kinds={"pytorch", "zarr"},
    description="Land-cover class per pixel (codes of memories.classes) and model confidence, per tile-month.",
)
def land_cover(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    import xarray as xr

    from memories.ai.land_cover import predict_land_cover
    from memories.ai.registry import ModelRegistry

    month, grid = tile_month(context, stac)
    root = storage.storage_root()
    registry = ModelRegistry(root)
    version = registry.latest(MODEL_NAME)
    if version is None:
        raise Failure(description="no land-cover model is registered; materialize land_cover_model first")
    model = registry.load(MODEL_NAME, version.version)
    refl = MonthlyRasterStore(root, "surface_reflectance", grid, FIRST_MONTH).read_month(month)
    classes, confidence = predict_land_cover(model, refl["reflectance"].sel(band=list(COMMON_BANDS)).values)
    out = MonthlyRasterStore(root, "land_cover", grid, FIRST_MONTH)
    out.write_month(
        month,
        xr.Dataset({"land_cover": (("y", "x"), classes), "confidence": (("y", "x"), confidence.astype(np.float32))}),
    )
    labelled = classes > 0
    shares = {c.name: float((classes == c.code).sum() / max(labelled.sum(), 1)) for c in LAND_COVER_CLASSES}
    stats: dict[str, Any] = {
        "model_version": version.version,
        "class_share": shares,
        "mean_confidence": float(np.nanmean(confidence)) if labelled.any() else None,
    }
    record(context, memory.catalog(), uri=out.uri, stats=stats, grid=grid, month=month)
    return MaterializeResult(
        metadata={
            "model_version": version.version,
            "class_share": MetadataValue.json(shares),
            "mean_confidence": stats["mean_confidence"],
            "uri": out.uri,
        }
    )


def _spread(pairs: list[tuple[str, str]], per_tile: int) -> list[tuple[str, str]]:
    """Up to ``per_tile`` months per tile, evenly spread over the months available."""
    out: list[tuple[str, str]] = []
    for tile in sorted({t for t, _ in pairs}):
        months = sorted(m for t, m in pairs if t == tile)
        idx = np.unique(np.linspace(0, len(months) - 1, min(per_tile, len(months))).round().astype(int))
        out += [(tile, months[i]) for i in idx]
    return out


def _scalars(d: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str))}
