"""Transfer learning: fine-tuning keeps the frozen encoder fixed, and the registry keeps the parent version."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memories.ai.registry import ModelNotFoundError, ModelRegistry
from memories.ai.transfer import ENCODER_PARTS, fine_tune_land_cover
from memories.config import ModelSettings
from memories.errors import ConfigError
from memories.store.paths import StorageRoot

FINE_TUNE = ModelSettings(width=8, max_epochs=1, patch_px=32, patches_per_scene=32, seed=7)


@pytest.fixture(scope="module", autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _shifted(scene):  # type: ignore[no-untyped-def]
    """The scene as another sensor sees it: every band 30 % brighter plus 0.02 (think TOA against surface)."""
    return (scene.reflectance * 1.3 + 0.02).astype(np.float32), scene.labels


def test_registry_records_the_parent_of_a_fine_tuned_model(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    registry = ModelRegistry(StorageRoot(tmp_path.as_uri()))
    parent = registry.register("land_cover_sample", trained.model, trained.metrics, training_data={"world": "sample"})
    assert parent.parent is None
    child = registry.register(
        "land_cover_slovenia", trained.model, {"val_miou": 0.5}, training_data={"patch": "slovenia"}, parent=parent
    )
    assert child.parent == "land_cover_sample:1"
    grandchild = registry.register(
        "land_cover_slovenia", trained.model, {"val_miou": 0.6}, training_data={}, parent="land_cover_slovenia:1"
    )
    # Read back from the sidecars on disk, not from the returned objects.
    again = ModelRegistry(StorageRoot(tmp_path.as_uri()))
    assert again.get("land_cover_slovenia", 2).parent == "land_cover_slovenia:1"
    assert [(v.name, v.version) for v in again.lineage("land_cover_slovenia", grandchild.version)] == [
        ("land_cover_slovenia", 2),
        ("land_cover_slovenia", 1),
        ("land_cover_sample", 1),
    ]
    assert "parent" not in again.get("land_cover_slovenia", 1).extra
    with pytest.raises(ModelNotFoundError, match="no version 9"):
        registry.register("x", trained.model, {}, training_data={}, parent="land_cover_sample:9")
    with pytest.raises(ModelNotFoundError, match="name:version"):
        registry.register("x", trained.model, {}, training_data={}, parent="land_cover_sample")
    assert registry.versions("x") == []


def test_frozen_stage_keeps_the_encoder_and_the_full_stage_trains_it(trained, training_scenes) -> None:  # type: ignore[no-untyped-def]
    samples = [_shifted(s) for s in training_scenes]
    result = fine_tune_land_cover(
        trained.model, samples, band_names=trained.band_names, settings=FINE_TUNE, frozen_epochs=1, full_epochs=1
    )
    parent_state = trained.model.state_dict()
    frozen_state = result.frozen.model.state_dict()
    full_state = result.final.model.state_dict()
    for key, value in parent_state.items():
        if key.split(".")[0] in ENCODER_PARTS:
            # weights and batch-norm running statistics alike
            assert torch.equal(frozen_state[key], value), key
    assert not torch.equal(frozen_state["head.weight"], parent_state["head.weight"])
    assert not torch.equal(full_state["enc1.0.weight"], parent_state["enc1.0.weight"])
    # The input normalization is this data's, not the parent's.
    assert result.frozen.model.hparams["band_mean"][3] == pytest.approx(
        1.3 * trained.model.hparams["band_mean"][3] + 0.02, rel=0.05
    )
    assert result.full is not None and result.full.model.hparams["lr"] == 1e-3
    # Starting from the parent, 8 steps already classify the new sensor's held-out blocks well.
    assert result.frozen.metrics["val_accuracy"] > 0.85, result.frozen.metrics


def test_freezing_needs_a_parent(training_scenes) -> None:  # type: ignore[no-untyped-def]
    from memories.ai.land_cover import train_land_cover

    with pytest.raises(ConfigError, match="init_from"):
        train_land_cover(
            [_shifted(training_scenes[0])], band_names=list("abcdef"), settings=FINE_TUNE, freeze="encoder"
        )
