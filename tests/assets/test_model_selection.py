"""Inference assets predict with the model version the config names, and the report shows what it looks at.

Upstream ``surface_reflectance`` of one tile is seeded directly from the sample
world's clear-sky truth (plus seeded noise), as in ``test_models_assets``; the
assets under test run for real through ``materialize``. Model selection uses two
hand-built versions whose outputs cannot be confused (one says forest
everywhere, the other water); the explainability test trains a small model with
the real ``land_cover_model`` asset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr
from dagster import DagsterInstance, Failure, materialize

from assets.gis import gis_layers
from assets.imagery import spectral_indices
from assets.models import change_map, land_cover, land_cover_model
from assets.partitions import FIRST_MONTH, TILES, partition_key
from assets.report_environmental import environmental_report
from dagster_project.definitions import defs
from memories.ai.land_cover import LandCoverUNet
from memories.ai.registry import ModelRegistry, training_data_version
from memories.classes import CLASS_BY_NAME
from memories.earth.stac_profiles import COMMON_BANDS
from memories.months import month_mid, month_range
from memories.sample.landscape import build_landscape
from memories.sample.scenes import clear_sky, repeat_to_10m
from memories.sample.spectra import BAND_INFO
from memories.store.paths import StorageRoot
from memories.store.raster import MonthlyRasterStore
from resources import DaskClusterResource, MemoryCatalogResource, ModelRuntimeResource, StorageResource

pytestmark = pytest.mark.slow

TILE = "33TVM"


def _world_env(tmp: Path, n_months: int) -> dict[str, Any]:
    """A storage root and catalog holding ``n_months`` of surface_reflectance of TILE, and an instance."""
    stac = defs.resources["stac"]
    world = stac.sample_world.ensure()
    storage = StorageResource(root=(tmp / "store").as_uri())
    memory = MemoryCatalogResource(path=str(tmp / "catalog.sqlite"))
    root, catalog = storage.storage_root(), memory.catalog()
    grid = world.tile(TILE)
    landscape = build_landscape(world.spec, TILE)
    store = MonthlyRasterStore(root, "surface_reflectance", grid, FIRST_MONTH)
    months = world.months()[:n_months]
    for i, month in enumerate(months):
        rng = np.random.default_rng(i)
        bands = []
        for b in COMMON_BANDS:
            r = clear_sky(landscape, month_mid(month), b)
            bands.append(repeat_to_10m(r) if BAND_INFO[b].resolution == 20 else r)
        refl = (np.stack(bands) + rng.normal(0, 0.01, (6, *grid.shape))).astype(np.float32)
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
    instance.add_dynamic_partitions(TILES, [g.tile_id for g in world.tiles])
    resources = {"stac": stac, "storage": storage, "memory": memory}
    return {"world": world, "grid": grid, "root": root, "catalog": catalog, "instance": instance,
            "resources": resources, "months": months}  # fmt: skip


def _always(code: int) -> LandCoverUNet:
    """A land-cover model that answers ``code`` for every pixel (its head's bias dwarfs everything else)."""
    torch.manual_seed(code)
    model = LandCoverUNet(len(COMMON_BANDS), width=8, band_names=list(COMMON_BANDS))
    with torch.no_grad():
        model.head.bias.zero_()
        model.head.bias[code] = 1e4
    return model.eval()


FOREST, WATER = CLASS_BY_NAME["forest"].code, CLASS_BY_NAME["water"].code


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One month of reflectance, land_cover v1 (all forest) and v2 (all water), change v1 (untrained)."""
    from memories.ai.change import ChangeDetector

    env = _world_env(tmp_path_factory.mktemp("model_selection"), n_months=1)
    registry = ModelRegistry(env["root"])
    registry.register("land_cover", _always(FOREST), {"val_miou": 0.9}, training_data={"built": "forest"})
    registry.register("land_cover", _always(WATER), {"val_miou": 0.5}, training_data={"built": "water"})
    torch.manual_seed(0)
    registry.register("change", ChangeDetector(len(COMMON_BANDS), width=4), {}, training_data={"built": "random"})
    return env


def _land_cover(env: dict[str, Any], **runtime: Any):  # type: ignore[no-untyped-def]
    return materialize(
        [land_cover],
        partition_key=partition_key(env["months"][0], TILE),
        resources={
            **env["resources"],
            "model_runtime": ModelRuntimeResource(accelerator="cpu", mc_passes=2, **runtime),
        },
        instance=env["instance"],
    )


def test_land_cover_predicts_with_the_configured_version_and_records_its_id(two_versions) -> None:
    env = two_versions
    grid, month = env["grid"], env["months"][0]
    for model_id, want_id, want_class in (
        ("land_cover:1", "land_cover:1", FOREST),
        ("land_cover@latest", "land_cover:2", WATER),
        ("land_cover@best", "land_cover:1", FOREST),
    ):
        result = _land_cover(env, land_cover_model=model_id)
        assert result.success
        meta = result.asset_materializations_for_node("land_cover")[0].metadata
        assert meta["model_id"].value == want_id
        assert meta["model_version"].value == int(want_id.split(":")[1])
        assert meta["model_requested"].value == model_id
        classes = MonthlyRasterStore(env["root"], "land_cover", grid, FIRST_MONTH).read_month(month)["land_cover"]
        assert np.unique(classes.values).tolist() == [want_class], model_id
        row = [m for m in env["catalog"].current("land_cover", tile=TILE) if m.partition == month][0]
        assert row.stats["model_id"] == want_id


def test_unknown_model_id_fails_naming_the_id_and_the_registered_versions(two_versions) -> None:
    with pytest.raises(Failure, match=r"'land_cover:7'.*registered versions of 'land_cover': \[1, 2\]") as e:
        _land_cover(two_versions, land_cover_model="land_cover:7")
    assert "model_runtime.land_cover_model" in str(e.value)
    with pytest.raises(Failure, match=r"'forest_model'.*registered models and versions: .*'land_cover': \[1, 2\]"):
        _land_cover(two_versions, land_cover_model="forest_model")
    with pytest.raises(Failure, match="not a land-cover model"):
        _land_cover(two_versions, land_cover_model="change:1")


def test_change_map_resolves_the_change_model_id(two_versions) -> None:
    env = two_versions
    key = partition_key(env["months"][0], TILE)
    runtime = {**env["resources"], "model_runtime": ModelRuntimeResource(change_model="change:1")}
    result = materialize([change_map], partition_key=key, resources=runtime, instance=env["instance"])
    meta = result.asset_materializations_for_node("change_map")[0].metadata
    assert meta["model_id"].value == "change:1"
    with pytest.raises(Failure, match=r"'change:2'.*registered versions of 'change': \[1\]"):
        bad = {**env["resources"], "model_runtime": ModelRuntimeResource(change_model="change:2")}
        materialize([change_map], partition_key=key, resources=bad, instance=env["instance"])


@pytest.fixture(scope="module")
def trained_and_reported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """land_cover_model trained on one tile-month, then indices, land cover and report of the next month."""
    env = _world_env(tmp_path_factory.mktemp("explained"), n_months=2)
    first, second = env["months"]
    runtime = ModelRuntimeResource(
        accelerator="cpu",
        width=8,
        max_epochs=2,
        patch_px=64,
        patches_per_scene=8,
        max_training_months=1,
        mc_passes=2,
        importance_repeats=1,
    )
    resources = {
        **env["resources"],
        "gis": defs.resources["gis"],
        "dask_cluster": DaskClusterResource(n_threads=1),
        "model_runtime": runtime,
    }
    run = {"resources": resources, "instance": env["instance"]}
    assert materialize([gis_layers], partition_key=partition_key(first, TILE), **run).success
    trained = materialize([land_cover_model], **run)
    assert materialize([spectral_indices], partition_key=partition_key(first, TILE), **run).success
    reported = materialize(
        [spectral_indices, land_cover, environmental_report], partition_key=partition_key(second, TILE), **run
    )
    assert reported.success
    return {**env, "trained": trained, "reported": reported}


def test_land_cover_model_registers_data_version_and_held_out_band_importance(trained_and_reported) -> None:
    env = trained_and_reported
    meta = env["trained"].asset_materializations_for_node("land_cover_model")[0].metadata
    first = env["months"][0]
    # The fingerprint of exactly the catalog rows trained on: reflectance and GIS layers of the first month.
    rows = [m for a in ("surface_reflectance", "gis_layers") for m in env["catalog"].current(a) if m.partition == first]
    assert len(rows) == 2
    assert meta["training_data_version"].value == training_data_version(rows)
    version = ModelRegistry(env["root"]).get("land_cover", 1)
    assert meta["model_id"].value == "land_cover:1"
    assert version.training_data_version == training_data_version(rows)
    importance = version.extra["band_importance"]
    assert list(importance) == list(meta["band_importance"].value)
    assert set(importance) == set(COMMON_BANDS)
    assert importance == pytest.approx(meta["band_importance"].value)
    info = version.extra["band_importance_info"]
    assert info["method"] == "permutation" and info["n_repeats"] == 1
    assert info["scored_on"] == f"validation blocks of {first}|{TILE}"
    # One 128 px block of the four of a 256 px tile is held out: at most a quarter of the pixels are scored.
    assert 0 < info["n_pixels"] <= 128 * 128
    # A model that learned anything loses accuracy when some band is shuffled.
    assert max(importance.values()) > 0.01
    assert "data:image/png;base64," in meta["band_importance_chart"].value
    assert "Integrated gradients" in meta["saliency_preview"].value  # the land-cover saliency, previewed
    assert "data:image/png;base64," in meta["saliency_preview"].value


def test_report_shows_the_band_importance_of_the_model_version_used(trained_and_reported) -> None:
    env = trained_and_reported
    root: StorageRoot = env["root"]
    second = env["months"][1]
    importance = ModelRegistry(root).get("land_cover", 1).extra["band_importance"]
    summary = json.loads(root.read_bytes(root.report_uri("environmental", TILE, second, "summary.json")))
    assert summary["model_id"] == "land_cover:1"
    assert summary["band_importance"] == pytest.approx(importance)
    assert list(summary["band_importance"]) == list(importance)
    html = root.read_bytes(root.report_uri("environmental", TILE, second, "report.html")).decode()
    assert "What the land-cover model looks at" in html
    assert 'src="band_importance.png"' in html
    for band, value in importance.items():
        assert f'<td>{band}</td><td class="num">{value:.4f}</td>' in html
    png = root.read_bytes(root.report_uri("environmental", TILE, second, "band_importance.png"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    meta = env["reported"].asset_materializations_for_node("environmental_report")[0].metadata
    assert meta["model_id"].value == "land_cover:1"
    assert meta["band_importance"].value == pytest.approx(importance)
