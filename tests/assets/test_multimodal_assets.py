"""The multi-modal assets over the embedded world: train on composites + GIS layers, then map one tile-month.

``surface_reflectance`` is seeded directly (clear-sky reflectance at mid-month plus
seeded noise, as in ``test_models_assets``); ``gis_layers`` runs for real from the
sample world's GeoPackage; then ``multimodal_model`` and ``multimodal_land_use`` run
through ``materialize`` with the real resources.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from dagster import DagsterInstance, materialize

from assets.gis import gis_layers
from assets.multimodal import multimodal_land_use, multimodal_model
from assets.partitions import FIRST_MONTH, TILES, partition_key
from dagster_project.definitions import defs
from memories.earth.stac_profiles import COMMON_BANDS
from memories.months import month_mid, month_range
from memories.sample.landscape import build_landscape
from memories.sample.scenes import clear_sky, repeat_to_10m
from memories.sample.spectra import BAND_INFO
from memories.store.raster import MonthlyRasterStore
from resources import MemoryCatalogResource, ModelRuntimeResource, StorageResource

pytestmark = pytest.mark.slow
TILE = "33TVM"


def test_multimodal_model_then_map_with_attention_per_pixel(tmp_path) -> None:
    stac = defs.resources["stac"]
    world = stac.sample_world.ensure()
    grid = world.tile(TILE)
    month = world.months()[0]
    storage = StorageResource(root=(tmp_path / "store").as_uri())
    memory = MemoryCatalogResource(path=str(tmp_path / "catalog.sqlite"))
    root, catalog = storage.storage_root(), memory.catalog()
    landscape = build_landscape(world.spec, TILE)
    bands = [clear_sky(landscape, month_mid(month), b) for b in COMMON_BANDS]
    bands = [repeat_to_10m(r) if BAND_INFO[b].resolution == 20 else r for b, r in zip(COMMON_BANDS, bands)]
    refl = (np.stack(bands) + np.random.default_rng(0).normal(0, 0.01, (6, *grid.shape))).astype(np.float32)
    store = MonthlyRasterStore(root, "surface_reflectance", grid, FIRST_MONTH)
    store.write_month(
        month, xr.Dataset({"reflectance": (("band", "y", "x"), refl)}, coords={"band": list(COMMON_BANDS)})
    )
    valid_from, valid_to = month_range(month)
    catalog.record(
        asset="surface_reflectance",
        uri=store.uri,
        tile=TILE,
        partition=month,
        valid_from=valid_from,
        valid_to=valid_to,
        crs=grid.crs,
        stats={},
    )
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES, [TILE])
    runtime = ModelRuntimeResource(accelerator="cpu", width=8, max_epochs=2, patch_px=32, patches_per_scene=16)
    resources = {"stac": stac, "gis": defs.resources["gis"], "storage": storage, "memory": memory}
    key = partition_key(month, TILE)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert materialize([gis_layers], partition_key=key, resources=resources, instance=instance).success
        trained = materialize([multimodal_model], resources={**resources, "model_runtime": runtime}, instance=instance)
        assert trained.success
        result = materialize([multimodal_land_use], partition_key=key, resources=resources, instance=instance)
    finally:
        torch.set_num_threads(before)
    assert result.success
    meta = trained.asset_materializations_for_node("multimodal_model")[0].metadata
    assert meta["model_id"].value == "multimodal_land_use:1"
    assert meta["modalities"].value == ["image", "context", "text:roads", "text:buildings", "text:water", "text:places"]
    assert 0.0 < meta["val_accuracy"].value <= 1.0
    m = result.asset_materializations_for_node("multimodal_land_use")[0].metadata
    assert m["model_id"].value == "multimodal_land_use:1"
    assert m["attention_preview"].value.startswith("![attention](data:image/png;base64,")
    assert m["modality_share_preview"].value.startswith("![modality share](data:image/png;base64,")
    assert set(m["modality_share"].value) == {"imagery", "vector", "text"}
    assert sum(m["modality_share"].value.values()) == pytest.approx(1.0, abs=1e-3)
    ds = MonthlyRasterStore(root, "multimodal_land_use", grid, FIRST_MONTH).read_month(month)
    names = [f"attention_{n.replace(':', '_')}" for n in meta["modalities"].value]
    assert {"land_use", "confidence", *names} <= set(ds.data_vars)
    total = sum(ds[n].values for n in names)
    np.testing.assert_allclose(total, 1.0, atol=1e-4)
    stored = {n: float(ds[f"attention_{n.replace(':', '_')}"].mean()) for n in meta["modalities"].value}
    assert stored == pytest.approx(m["mean_attention"].value, abs=1e-3)
    # The metadata's modality shares are the per-pixel shares of the stored attention (imagery, vector, text).
    planes = {n: ds[f"attention_{n.replace(':', '_')}"].values for n in meta["modalities"].value}
    text = sum(v for n, v in planes.items() if n.startswith("text:"))
    for group, plane in (("imagery", planes["image"]), ("vector", planes["context"]), ("text", text)):
        assert float(np.nanmean(plane / total)) == pytest.approx(m["modality_share"].value[group], abs=1e-3)
    classes = ds["land_use"].values
    assert set(np.unique(classes)) <= set(range(1, 7))
