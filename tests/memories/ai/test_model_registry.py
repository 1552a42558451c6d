"""The model registry: versions, sidecars and loading, on file:// and s3:// roots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from memories.ai.land_cover import LandCoverUNet, TrainingResult, predict_land_cover
from memories.ai.registry import ModelNotFoundError, ModelRegistry
from memories.errors import StorageError
from memories.store.paths import StorageRoot

TRAINING_DATA = {"tiles": ["33TVM"], "months": ["2023-05", "2023-06"], "labels": "osm landuse"}


@pytest.fixture
def file_root(tmp_path) -> StorageRoot:  # type: ignore[no-untyped-def]
    return StorageRoot(uri=(tmp_path / "store").as_uri())


def test_register_twice_gives_versions_one_and_two(file_root: StorageRoot, trained: TrainingResult) -> None:
    registry = ModelRegistry(file_root)
    first = registry.register(
        "land_cover", trained.model, trained.metrics, training_data=TRAINING_DATA, code_version="v0-test"
    )
    second = registry.register(
        "land_cover",
        trained.model,
        {"val_accuracy": 0.5, "val_miou": math.nan},
        training_data=TRAINING_DATA,
        code_version="v1-test",
    )
    assert (first.version, second.version) == (1, 2)
    assert first.uri == file_root.model_uri("land_cover", 1)
    assert [v.version for v in registry.versions("land_cover")] == [1, 2]
    latest = registry.latest("land_cover")
    assert latest is not None and latest.version == 2 and latest.code_version == "v1-test"
    assert math.isnan(latest.metrics["val_miou"])
    assert registry.get("land_cover", 1).metrics == pytest.approx(trained.metrics)
    assert first.band_names == trained.band_names
    assert first.training_data == TRAINING_DATA


def test_sidecar_json_carries_metrics(file_root: StorageRoot, trained: TrainingResult) -> None:
    ModelRegistry(file_root).register(
        "land_cover", trained.model, trained.metrics, training_data=TRAINING_DATA, code_version="abc123"
    )
    ckpt = file_root.model_uri("land_cover", 1)
    assert ckpt.endswith("/models/land_cover/v0001.ckpt")
    sidecar = json.loads(file_root.read_bytes(ckpt.removesuffix(".ckpt") + ".json"))
    assert sidecar["version"] == 1
    assert sidecar["metrics"]["val_accuracy"] == pytest.approx(trained.metrics["val_accuracy"])
    assert sidecar["metrics"]["val_accuracy/water"] == pytest.approx(trained.metrics["val_accuracy/water"])
    assert sidecar["training_data"] == TRAINING_DATA
    assert sidecar["code_version"] == "abc123"
    assert sidecar["band_names"] == trained.band_names
    assert sidecar["created"].endswith("+00:00")


def test_loaded_latest_predicts_identically(file_root: StorageRoot, trained: TrainingResult, scene_factory) -> None:
    registry = ModelRegistry(file_root)
    registry.register("land_cover", trained.model, trained.metrics, training_data=TRAINING_DATA, code_version="x")
    registry.register("land_cover", trained.model, trained.metrics, training_data=TRAINING_DATA, code_version="x")
    loaded = registry.load("land_cover")
    assert isinstance(loaded, LandCoverUNet) and not loaded.training
    assert loaded.hparams["band_mean"] == trained.model.hparams["band_mean"]
    scene = scene_factory(101, 77, seed=21)
    want_cls, want_conf = predict_land_cover(trained.model, scene.reflectance)
    got_cls, got_conf = predict_land_cover(loaded, scene.reflectance)
    assert np.array_equal(want_cls, got_cls)
    assert np.array_equal(want_conf, got_conf, equal_nan=True)


def test_checkpoint_loads_with_lightning_too(file_root: StorageRoot, trained: TrainingResult) -> None:
    mv = ModelRegistry(file_root).register("land_cover", trained.model, {}, training_data={}, code_version="x")
    model = LandCoverUNet.load_from_checkpoint(file_root.local_path(mv.uri), map_location="cpu")
    assert model.hparams["band_names"] == trained.band_names


def test_missing_model_says_to_materialize_it(file_root: StorageRoot) -> None:
    registry = ModelRegistry(file_root)
    assert registry.latest("land_cover") is None
    assert registry.versions("land_cover") == []
    with pytest.raises(ModelNotFoundError, match="materialize land_cover_model first"):
        registry.load("land_cover")


def test_missing_version_lists_the_registered_ones(file_root: StorageRoot, trained: TrainingResult) -> None:
    registry = ModelRegistry(file_root)
    registry.register("land_cover", trained.model, {}, training_data={}, code_version="x")
    with pytest.raises(ModelNotFoundError, match=r"registered versions are \[1\]"):
        registry.load("land_cover", 7)


def test_checkpoint_without_sidecar_is_not_a_version(file_root: StorageRoot, trained: TrainingResult) -> None:
    # A registration killed between the checkpoint and its sidecar leaves a stray checkpoint.
    file_root.write_bytes(file_root.model_uri("land_cover", 1), b"half written")
    registry = ModelRegistry(file_root)
    assert registry.latest("land_cover") is None
    mv = registry.register("land_cover", trained.model, {}, training_data={}, code_version="x")
    assert mv.version == 1
    registry.load("land_cover")


def test_registry_round_trips_on_s3(s3_endpoint, s3_bucket, trained: TrainingResult, scene_factory) -> None:
    s3_bucket("earth-models")
    root = StorageRoot(uri="s3://earth-models/prod", s3_endpoint_url=s3_endpoint)
    registry = ModelRegistry(root)
    assert registry.latest("land_cover") is None
    one = registry.register("land_cover", trained.model, trained.metrics, training_data=TRAINING_DATA, code_version="x")
    two = registry.register("land_cover", trained.model, trained.metrics, training_data=TRAINING_DATA, code_version="x")
    assert (one.version, two.version) == (1, 2)
    assert two.uri == "s3://earth-models/prod/models/land_cover/v0002.ckpt"
    assert [v.version for v in registry.versions("land_cover")] == [1, 2]
    scene = scene_factory(48, 40, seed=5)
    want, _ = predict_land_cover(trained.model, scene.reflectance)
    got, _ = predict_land_cover(registry.load("land_cover"), scene.reflectance)
    assert np.array_equal(want, got)


def test_unwritable_training_data_registers_nothing(file_root: StorageRoot, trained: TrainingResult) -> None:
    registry = ModelRegistry(file_root)
    with pytest.raises(StorageError, match="cannot be written as JSON"):
        registry.register("land_cover", trained.model, {}, training_data={"cloud": math.nan}, code_version="x")
    assert registry.versions("land_cover") == []
