"""MemoryView: model metrics as the memory knew them, and record model ids."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from memories.memory.catalog import MemoryCatalog
from memories.memory.temporal import TemporalMemory
from memories.memory.view import MemoryView, model_id_of
from memories.store.paths import StorageRoot


def test_model_metrics_come_from_the_training_record_in_force_at_as_of(tmp_path):
    catalog = MemoryCatalog.open(tmp_path / "catalog.sqlite")
    root = StorageRoot((tmp_path / "store").as_uri())

    def train(accuracy: float) -> None:
        catalog.record(
            asset="land_cover_model",
            uri=root.model_uri("land_cover", 1),
            tile=None,
            partition=None,
            valid_from=None,
            valid_to=None,
            crs=None,
            bbox_wgs84=None,
            stats={"model_id": "land_cover:1", "val_accuracy": accuracy, "val_accuracy/water": accuracy - 0.1},
            run_id="test",
        )

    train(0.90)
    between = datetime.now(UTC)
    time.sleep(0.01)
    train(0.95)  # the same version re-recorded with new metrics
    memory = TemporalMemory(catalog, root)
    now_metrics, source = MemoryView(memory).model_metrics("land_cover:1")
    then_metrics, _ = MemoryView(memory, as_of=between).model_metrics("land_cover:1")
    assert now_metrics["val_accuracy"] == 0.95 and then_metrics["val_accuracy"] == 0.90
    assert then_metrics["val_accuracy/water"] == 0.80
    assert "land_cover_model" in source
    # Neither the catalog nor the (empty) registry knows version 2.
    assert MemoryView(memory).model_metrics("land_cover:2") is None


def test_model_id_of_reads_ids_and_the_version_numbers_of_older_records():
    assert model_id_of({"model_id": "land_cover:3"}) == "land_cover:3"
    assert model_id_of({"model_version": 2}) == "land_cover:2"
    assert model_id_of({}) is None
