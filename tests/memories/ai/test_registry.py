"""What the registry records beyond the checkpoint: training-data fingerprint, code version, best version."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from memories.ai.land_cover import LandCoverUNet, TrainingResult
from memories.ai.registry import ModelNotFoundError, ModelRegistry, training_data_version
from memories.memory.catalog import MemoryCatalog
from memories.store.paths import StorageRoot


def _catalog_with_inputs(path: Path) -> MemoryCatalog:
    catalog = MemoryCatalog(path)
    for month in ("2023-05", "2023-06"):
        catalog.record(
            asset="surface_reflectance",
            uri=f"file:///x/{month}",
            tile="33TVM",
            partition=month,
            transaction_time=datetime(2024, 1, 1, tzinfo=UTC),
        )
    return catalog


def test_training_data_version_changes_when_an_input_is_rematerialized(tmp_path: Path) -> None:
    catalog = _catalog_with_inputs(tmp_path / "catalog.sqlite")
    before = training_data_version(catalog.current("surface_reflectance"))
    assert before == training_data_version(reversed(catalog.current("surface_reflectance")))
    assert before.startswith("sha256:") and len(before) == len("sha256:") + 16
    catalog.record(asset="surface_reflectance", uri="file:///x/2023-06b", tile="33TVM", partition="2023-06")
    after = training_data_version(catalog.current("surface_reflectance"))
    assert after != before
    # As the memory stood before the re-run, the fingerprint is the old one again.
    old = catalog.current("surface_reflectance", as_of=datetime(2024, 1, 2, tzinfo=UTC))
    assert training_data_version(old) == before


def test_sidecar_records_data_version_code_version_and_class(tmp_path: Path, trained: TrainingResult) -> None:
    root = StorageRoot((tmp_path / "store").as_uri())
    catalog = _catalog_with_inputs(tmp_path / "catalog.sqlite")
    fingerprint = training_data_version(catalog.current("surface_reflectance"))
    registry = ModelRegistry(root)
    mv = registry.register(
        "land_cover",
        trained.model,
        trained.metrics,
        training_data={"partitions": ["2023-05|33TVM", "2023-06|33TVM"]},
        training_data_version=fingerprint,
    )
    again = registry.get("land_cover", 1)
    assert again.training_data_version == fingerprint == mv.training_data_version
    assert again.model_class == "memories.ai.land_cover.LandCoverUNet"
    assert again.code_version is None or len(again.code_version) >= 7  # git describe of this checkout
    assert isinstance(registry.load("land_cover", 1), LandCoverUNet)
    # Without a fingerprint, the training_data description is hashed: same description, same version.
    a = registry.register("land_cover", trained.model, {}, training_data={"b": 1, "a": [1, 2]}, code_version="x")
    b = registry.register("land_cover", trained.model, {}, training_data={"a": [1, 2], "b": 1}, code_version="x")
    assert a.training_data_version == b.training_data_version != fingerprint


def test_best_version_by_metric(tmp_path: Path, trained: TrainingResult) -> None:
    registry = ModelRegistry(StorageRoot((tmp_path / "store").as_uri()))
    for acc, loss in ((0.7, 0.3), (0.9, 0.5), (0.8, 0.1)):
        registry.register(
            "land_cover", trained.model, {"val_accuracy": acc, "val_loss": loss}, training_data={}, code_version="x"
        )
    assert registry.best("land_cover", "val_accuracy").version == 2
    assert registry.best("land_cover", "val_loss", higher_is_better=False).version == 3
    with pytest.raises(ModelNotFoundError, match="known metrics"):
        registry.best("land_cover", "val_miou")
