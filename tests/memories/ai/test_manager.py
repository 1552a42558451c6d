"""ModelManager ids and loaders, and a pipeline chaining real model outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memories.ai.land_cover import LandCoverUNet, TrainingResult, predict_land_cover
from memories.ai.manager import ModelManager, class_area_summary, parse_model_id
from memories.ai.pipeline import ModelPipeline
from memories.ai.registry import ModelNotFoundError
from memories.classes import CLASS_BY_CODE
from memories.errors import ConfigError
from memories.store.paths import StorageRoot


@pytest.fixture
def manager(tmp_path: Path, trained: TrainingResult) -> ModelManager:
    """A registry with three land_cover versions; version 2 has the best val_miou."""
    m = ModelManager(StorageRoot((tmp_path / "store").as_uri()))
    for miou in (0.5, 0.9, 0.7):
        m.registry.register(
            "land_cover", trained.model, {**trained.metrics, "val_miou": miou}, training_data={}, code_version="x"
        )
    return m


def test_model_ids_pick_latest_number_and_best(manager: ModelManager) -> None:
    assert manager.resolve("land_cover").version == 3
    assert manager.resolve("land_cover@latest").version == 3
    assert manager.resolve("land_cover:1").version == 1
    assert manager.resolve("land_cover@best").version == 2
    loaded = manager.load_model("land_cover@best")
    assert isinstance(loaded.model, LandCoverUNet) and not loaded.model.training
    assert loaded.id == "land_cover:2"
    assert [(v.name, v.version) for v in manager.list_models()] == [("land_cover", n) for n in (1, 2, 3)]


def test_bad_ids_and_missing_models_say_what_to_do(manager: ModelManager) -> None:
    assert parse_model_id("land_cover@best:val_accuracy") == ("land_cover", "best", "val_accuracy")
    with pytest.raises(ConfigError, match="land_cover:3"):
        manager.resolve("land cover!")
    with pytest.raises(ModelNotFoundError, match="registered versions are"):
        manager.load_model("land_cover:9")
    with pytest.raises(ModelNotFoundError, match="materialize"):
        manager.load_model("change_detection")


def test_registered_loader_is_used_for_its_model(manager: ModelManager, trained: TrainingResult) -> None:
    manager.registry.register("ndvi_threshold", trained.model, {}, training_data={}, code_version="x")
    manager.register_loader("ndvi_threshold", lambda registry, mv: ("threshold", mv.version))
    assert manager.load_model("ndvi_threshold").model == ("threshold", 1)


def test_pipeline_chains_land_cover_into_class_areas(
    manager: ModelManager, trained: TrainingResult, scene_factory
) -> None:
    scene = scene_factory(64, 80, seed=33)
    pipeline = ModelPipeline().add_step(manager.load_model("land_cover@best"), output_mapping={"classes": "lc"})
    pipeline.add_step(fn=lambda classes: {"areas_ha": class_area_summary(classes)}, input_mapping={"classes": "lc"})
    run = pipeline.run({"reflectance": scene.reflectance})
    assert run.models == {"lc": "land_cover:2"}
    want, _ = predict_land_cover(trained.model, scene.reflectance)
    assert np.array_equal(run["lc"], want)
    # Areas from the model agree with the ground truth's areas (10 m pixels: 0.01 ha each).
    data = ~scene.nodata
    truth = {CLASS_BY_CODE[int(c)].name: float((scene.truth[data] == c).sum()) / 100 for c in np.unique(scene.truth)}
    areas = run["areas_ha"]
    assert sum(areas.values()) == pytest.approx(data.sum() / 100)
    for name, ha in truth.items():
        assert areas.get(name, 0.0) == pytest.approx(ha, abs=0.1 * data.sum() / 100)
    # One deterministic pass has no spread; the uncertainty maps travel with the classes.
    assert float(np.nanmax(run.uncertainty["lc"].variance)) == 0.0


def test_pipeline_steps_are_a_model_or_a_function_and_read_names_that_exist(manager: ModelManager) -> None:
    with pytest.raises(ConfigError, match="not neither"):
        ModelPipeline().add_step()
    with pytest.raises(ConfigError, match="names its inputs"):
        ModelPipeline().add_step(fn=lambda x: {"y": x})
    double = ModelPipeline().add_step(fn=lambda x: {"y": 2 * x}, input_mapping={"x": "x"})
    run = double.add_step(fn=lambda y: {"z": y + 1}, input_mapping={"y": "y"}).run(x=3)
    assert dict(run) == {"x": 3, "y": 6, "z": 7} and run.models == {}
    with pytest.raises(ConfigError, match="reads \\['x'\\]"):
        double.run(w=1)


def test_unresolved_ids_name_the_id_and_what_is_registered(manager: ModelManager) -> None:
    with pytest.raises(ModelNotFoundError, match=r"'land_cover:9'.*registered versions of 'land_cover': \[1, 2, 3\]"):
        manager.resolve("land_cover:9")
    with pytest.raises(ModelNotFoundError, match=r"'land_cover@best:val_f1'.*\[1, 2, 3\]"):
        manager.resolve("land_cover@best:val_f1")
    with pytest.raises(ModelNotFoundError, match=r"'forest@latest'.*registered models and versions: .*\[1, 2, 3\]"):
        manager.resolve("forest@latest")


def test_extra_sidecar_keys_travel_with_the_version(manager: ModelManager, trained: TrainingResult) -> None:
    from memories.errors import StorageError

    importance = {"nir": 0.2, "red": 0.05}
    mv = manager.registry.register(
        "land_cover", trained.model, trained.metrics, training_data={}, code_version="x",
        extra={"band_importance": importance},
    )  # fmt: skip
    assert mv.extra == {"band_importance": importance}
    assert manager.resolve(f"land_cover:{mv.version}").extra["band_importance"] == importance
    with pytest.raises(StorageError, match="written by the registry"):
        manager.registry.register("land_cover", trained.model, {}, training_data={}, extra={"metrics": {}})


def test_change_detector_loads_by_id(tmp_path: Path) -> None:
    from memories.ai.change import ChangeDetector

    m = ModelManager(StorageRoot((tmp_path / "store").as_uri()))
    detector = ChangeDetector(6, width=4)
    m.registry.register("change", detector, {"val_iou": 0.5}, training_data={}, code_version="x")
    loaded = m.load_model("change@latest")
    assert isinstance(loaded.model, ChangeDetector) and loaded.id == "change:1"
    for name, value in detector.state_dict().items():
        assert np.array_equal(loaded.model.state_dict()[name].numpy(), value.numpy())
