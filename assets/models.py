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
"""

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from assets._partition import partition_metadata, record, tile_months
from assets.automation import REFRESH_WITH_INPUTS, RETRAIN_MONTHLY
from assets.partitions import FIRST_MONTH, MONTH_TILE_BACKFILL, PREVIOUS_MONTH, month_tile_partitions
from memories import products
from memories.applications.index_series import class_ndvi_summary
from memories.classes import LAND_COVER_CLASSES
from memories.earth.catalogs import COMMON_BANDS
from memories.earth.gis import GIS_LAYERS, rasterize_labels, read_geoparquet
from memories.products import CHANGE_MAP, CHANGE_MODEL, LAND_COVER, LAND_COVER_MODEL, SURFACE_REFLECTANCE
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
    from memories.ai.explain import held_out_band_importance, plot_band_importance
    from memories.ai.labels import clean_labels
    from memories.ai.land_cover import train_land_cover
    from memories.ai.registry import ModelRegistry
    from memories.ai.saliency import saliency_preview
    from memories.errors import ProcessingError

    root = storage.storage_root()
    catalog = memory.catalog()
    chosen, data_version = training_tile_months(catalog, model_runtime.max_training_months)
    samples = []
    stale = 0
    for tile, month in chosen:
        grid = stac.tile(tile)
        store = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, FIRST_MONTH)
        refl = store.read_month(month)["reflectance"].sel(band=list(COMMON_BANDS)).values.astype(np.float32)
        layers = {layer: read_geoparquet(root, root.vector_uri(layer, tile, month)) for layer in GIS_LAYERS}
        labels, dropped = clean_labels(rasterize_labels(layers, grid), refl, COMMON_BANDS)
        stale += dropped
        samples.append((refl, labels))
    context.log.info(f"training on {len(samples)} tile-months {chosen}; {stale} stale GIS labels dropped")
    settings = model_runtime.model_settings()
    result = train_land_cover(
        samples, band_names=COMMON_BANDS, settings=settings, accelerator=model_runtime.accelerator
    )
    extra: dict[str, Any] = {}
    if model_runtime.importance_repeats > 0:
        # Once per version, on the held-out blocks of the first tile-month: the numbers travel with the
        # checkpoint, so every report made with this version shows what it looks at.
        tile, month = chosen[0]
        try:
            importance = held_out_band_importance(
                result.model,
                samples,
                patch_px=settings.patch_px,
                seed=settings.seed,
                n_repeats=model_runtime.importance_repeats,
            )
        except ProcessingError as e:
            # Sparse GIS labels can leave the held-out blocks of that month unlabelled: register without.
            context.log.warning(f"band importance not computed on {month}|{tile}: {e}")
        else:
            extra = importance.sidecar(scored_on=f"validation blocks of {month}|{tile}")
    version = ModelRegistry(root).register(
        MODEL_NAME,
        result.model,
        result.metrics,
        training_data={"partitions": [f"{m}|{t}" for t, m in chosen], "label_source": products.GIS_LAYERS},
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
        "training_partitions": MetadataValue.json([f"{m}|{t}" for t, m in chosen]),
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
    loaded = load_registered_model(
        ModelManager(root), model_runtime.land_cover_model, "land_cover_model", LAND_COVER_MODEL
    )
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
    root: Any,
    memory: MemoryCatalogResource,
    model_runtime: ModelRuntimeResource,
    loaded: "LoadedModel",
    month: str,
    grid: Any,
) -> dict[str, Any]:
    """Predict, write and record the land cover of one tile-month with the loaded model: its metadata."""
    import xarray as xr

    from memories.ai.uncertainty import UncertaintyEstimator

    model, version = loaded.model, loaded.version
    refl = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, FIRST_MONTH).read_month(month)
    estimator = UncertaintyEstimator(model, passes=model_runtime.mc_passes, seed=model_runtime.seed)
    maps = estimator.predict(refl["reflectance"].sel(band=list(COMMON_BANDS)).values)
    classes, confidence = maps.classes, maps.confidence
    out = MonthlyRasterStore(root, LAND_COVER, grid, FIRST_MONTH)
    out.write_month(
        month,
        xr.Dataset(
            {
                "land_cover": (("y", "x"), classes),
                "confidence": (("y", "x"), confidence.astype(np.float32)),
                "variance": (("y", "x"), maps.variance.astype(np.float32)),
                "entropy": (("y", "x"), maps.entropy.astype(np.float32)),
            }
        ),
        run_id=context.run.run_id,
    )
    labelled = classes > 0
    shares = {c.name: float((classes == c.code).sum() / max(labelled.sum(), 1)) for c in LAND_COVER_CLASSES}
    stats: dict[str, Any] = {
        "model_id": loaded.id,
        "model_version": version.version,
        "class_share": shares,
        "mean_confidence": float(np.nanmean(confidence)) if labelled.any() else None,
        "mean_variance": float(np.nanmean(maps.variance)) if labelled.any() else None,
        "mc_passes": maps.passes,
        **class_ndvi_summary(refl["reflectance"], classes),  # the month's NDVI per class (flat in history)
    }
    record(context, memory.catalog(), uri=out.uri, stats=stats, grid=grid, month=month, version=out.last_snapshot)
    return {
        "model_id": loaded.id,
        "model_version": version.version,
        "model_requested": model_runtime.land_cover_model,
        "class_share": MetadataValue.json(shares),
        "mean_confidence": stats["mean_confidence"],
        "mean_variance": stats["mean_variance"],
        "mc_passes": maps.passes,
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

    if stac.profile != "embedded":
        raise Failure(description="change_model trains on the sample world's event truth; use the embedded profile")
    root = storage.storage_root()
    catalog = memory.catalog()
    have = sorted({(m.tile, m.partition) for m in catalog.current(SURFACE_REFLECTANCE) if m.tile and m.partition})
    tiles = sorted({t for t, _ in have})
    if not tiles or max(sum(1 for t, _ in have if t == tile) for tile in tiles) < 2:
        raise Failure(description="change_model needs two months of surface_reflectance on a tile; materialize them")
    world = stac.sample_world.ensure()
    held_out = tiles[0] if len(tiles) > 1 else None
    train_pairs: list[Any] = []
    val_pairs: list[Any] = []
    used: list[dict[str, Any]] = []
    for tile in tiles:
        months = [m for t, m in have if t == tile]
        for pair in _labelled_pairs(root, stac.tile(tile), world, months):
            (val_pairs if tile == held_out else train_pairs).append(pair)
        used.append({"tile": tile, "months": months, "role": "validation" if tile == held_out else "training"})
    if not train_pairs:
        raise Failure(description="no training tile has two months; materialize surface_reflectance of another tile")
    result = train_change_detector(
        train_pairs,
        validation=val_pairs,
        band_names=COMMON_BANDS,
        width=model_runtime.change_width,
        steps=model_runtime.change_steps,
        seed=model_runtime.seed,
        accelerator=model_runtime.accelerator,
    )
    context.log.info(f"change detector: {len(train_pairs)} training pairs, {len(val_pairs)} held-out, {result.metrics}")
    version = ModelRegistry(root).register(
        CHANGE_MODEL_NAME,
        result.model,
        result.metrics,
        training_data={"tiles": used, "label_source": "sample world event truth", "held_out_tile": held_out},
    )
    record(context, catalog, uri=version.uri, stats={"version": version.version, **scalar_metrics(result.metrics)})
    return MaterializeResult(
        metadata={
            "version": version.version,
            "val_iou": MetadataValue.float(float(result.metrics["val_iou"])),
            "held_out_tile": held_out or "none",
            "training_pairs": len(train_pairs),
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
    loaded = load_registered_model(manager, model_runtime.change_model, "change_model", CHANGE_MODEL)
    if not isinstance(loaded.model, ChangeDetector):
        raise Failure(
            description=f"model_runtime.change_model={model_runtime.change_model!r} is {loaded.id}, "
            f"a {type(loaded.model).__name__}, not a change detector; name a version of {CHANGE_MODEL_NAME!r}"
        )
    for key, month, grid in tile_months(context, stac):
        partition_metadata(context, key, _change(context, stac, root, memory, loaded, month, grid))
    return MaterializeResult()


def _change(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    root: Any,
    memory: MemoryCatalogResource,
    loaded: "LoadedModel",
    month: str,
    grid: Any,
) -> dict[str, Any]:
    """Change of one tile-month since the month before it in memory, with the loaded detector: its metadata."""
    import pandas as pd
    import xarray as xr

    from memories.ai.change import difference_change, predict_change
    from memories.ai.change_maps import change_iou, change_polygons, event_truth
    from memories.earth.gis import write_geoparquet
    from memories.months import month_mid

    model, version = loaded.model, loaded.version
    store = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, FIRST_MONTH)
    earlier = [m for m in store.months() if m < month]
    if not earlier:
        # The first month in memory has nothing to compare with: materialize it as "no reference" rather than
        # fail, so a backfill over all months does not report the first as broken.
        context.log.info(f"no surface_reflectance before {month} on tile {grid.tile_id}: no change computed")
        return {
            "reference_month": "none (first month in memory)",
            "model_id": loaded.id,
            "model_version": version.version,
        }
    before_month = earlier[-1]
    before = _reflectance(store, before_month)
    after = _reflectance(store, month)
    baseline, score = difference_change(before, after)
    probability = predict_change(model, before, after)
    learned = np.nan_to_num(probability, nan=0.0) >= 0.5
    out = MonthlyRasterStore(root, CHANGE_MAP, grid, FIRST_MONTH)
    out.write_month(
        month,
        xr.Dataset(
            {
                "change_baseline": (("y", "x"), baseline.astype(np.uint8)),
                "change_learned": (("y", "x"), learned.astype(np.uint8)),
                "change_probability": (("y", "x"), probability.astype(np.float32)),
                "difference_score": (("y", "x"), score.astype(np.float32)),
            }
        ),
        run_id=context.run.run_id,
    )
    polygons = pd.concat(
        [
            change_polygons(baseline, grid, method="difference", month=month, reference_month=before_month),
            change_polygons(learned, grid, method="learned", month=month, reference_month=before_month),
        ],
        ignore_index=True,
    )
    polygons_uri = root.vector_uri("change_polygons", grid.tile_id, month)
    write_geoparquet(root, polygons_uri, polygons)
    pixel_ha = grid.pixel_area_ha
    stats: dict[str, Any] = {
        "model_id": loaded.id,
        "model_version": version.version,
        "reference_month": before_month,
        "changed_ha_difference": round(float(baseline.sum() * pixel_ha), 2),
        "changed_ha_learned": round(float(learned.sum() * pixel_ha), 2),
        "polygons_difference": int((polygons["method"] == "difference").sum()),
        "polygons_learned": int((polygons["method"] == "learned").sum()),
        "polygons_uri": polygons_uri,
    }
    if stac.profile == "embedded":
        world = stac.sample_world.ensure()
        truth = event_truth(
            world.events(grid.tile_id),
            {e.kind: world.event_mask(grid.tile_id, e.kind) for e in world.events(grid.tile_id)},
            month_mid(before_month),
            month_mid(month),
        )
        if truth:
            stats["iou_difference"] = _rounded(change_iou(baseline, truth))
            stats["iou_learned"] = _rounded(change_iou(learned, truth))
    record(context, memory.catalog(), uri=out.uri, stats=stats, grid=grid, month=month, version=out.last_snapshot)
    return {
        **{k: v for k, v in stats.items() if not isinstance(v, dict)},
        **{k: MetadataValue.json(v) for k, v in stats.items() if isinstance(v, dict)},
        "uri": out.uri,
    }


def load_registered_model(manager: "ModelManager", model_id: str, setting: str, trainer: str) -> "LoadedModel":
    """The model an id names, or a Failure that names the id, the registered versions and the fix."""
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


def _reflectance(store: MonthlyRasterStore, month: str) -> np.ndarray:
    return np.asarray(store.read_month(month)["reflectance"].sel(band=list(COMMON_BANDS)).values, dtype=np.float32)


def _labelled_pairs(root: Any, grid: Any, world: Any, months: list[str]) -> list[Any]:
    """Every (earlier, later) pair of months of one tile with its event-truth change label."""
    from memories.ai.change import IGNORE, ChangePair
    from memories.ai.change_maps import event_truth
    from memories.months import month_mid

    store = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, FIRST_MONTH)
    refl = {m: _reflectance(store, m) for m in months}
    events = world.events(grid.tile_id)
    masks = {e.kind: world.event_mask(grid.tile_id, e.kind) for e in events}
    pairs = []
    for i, a in enumerate(months):
        for b in months[i + 1 :]:
            label = np.zeros(grid.shape, dtype=np.uint8)
            for m in event_truth(events, masks, month_mid(a), month_mid(b)).values():
                label[m] = 1
            label[np.isnan(refl[a]).all(axis=0) | np.isnan(refl[b]).all(axis=0)] = IGNORE
            pairs.append(ChangePair(refl[a], refl[b], label))
    return pairs


def _rounded(d: Mapping[str, float]) -> dict[str, float | None]:
    return {k: (round(v, 4) if v == v else None) for k, v in d.items()}


def training_tile_months(catalog: Any, per_tile: int) -> tuple[list[tuple[str, str]], str]:
    """The (tile, month) pairs a model trains on and the data version of their catalog rows.

    Pairs are the tile-months with both a composite and GIS layers in memory, at most ``per_tile``
    per tile spread over the year; the version fingerprints exactly those catalog rows.

    Raises:
        Failure: no tile-month has both (the fix: materialize them first).
    """
    from memories.ai.registry import training_data_version

    sr_rows = {(m.tile, m.partition): m for m in catalog.current(SURFACE_REFLECTANCE)}
    gis_rows = {(m.tile, m.partition): m for m in catalog.current(products.GIS_LAYERS)}
    pairs = sorted((t, m) for t, m in sr_rows.keys() & gis_rows.keys() if t and m)
    if not pairs:
        raise Failure(description="no tile-month has both surface_reflectance and gis_layers; materialize them first")
    chosen = _spread(pairs, per_tile)
    return chosen, training_data_version([r for key in chosen for r in (sr_rows[key], gis_rows[key])])


def _spread(pairs: list[tuple[str, str]], per_tile: int) -> list[tuple[str, str]]:
    """Up to ``per_tile`` months per tile, evenly spread over the months available."""
    out: list[tuple[str, str]] = []
    for tile in sorted({t for t, _ in pairs}):
        months = sorted(m for t, m in pairs if t == tile)
        idx = np.unique(np.linspace(0, len(months) - 1, min(per_tile, len(months))).round().astype(int))
        out += [(tile, months[i]) for i in idx]
    return out


def scalar_metrics(d: Mapping[str, object]) -> dict[str, object]:
    """The entries of a metrics mapping that are plain numbers or strings (what a catalog row and the UI show)."""
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str))}
