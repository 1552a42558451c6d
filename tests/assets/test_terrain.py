"""The terrain asset over the embedded world: the sample DEM in, the analytic truth out, versioned."""

from __future__ import annotations

import numpy as np
from dagster import DagsterInstance, materialize

from assets.partitions import TILES
from assets.terrain import terrain
from memories.earth.terrain import TERRAIN_EPOCH, terrain_store
from memories.memory.temporal import TemporalMemory
from memories.memory.view import MemoryView
from resources import (
    DaskClusterResource,
    MemoryCatalogResource,
    SampleWorldResource,
    StacCatalogResource,
    StorageResource,
)

TILE = "33TVM"


def test_terrain_of_the_sample_tile_is_the_analytic_truth_and_each_run_a_version() -> None:
    sample = SampleWorldResource()
    resources = {
        "stac": StacCatalogResource(sample_world=sample),
        "storage": StorageResource(),
        "memory": MemoryCatalogResource(),
        "dask_cluster": DaskClusterResource(n_threads=2),
    }
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES, [TILE])
    world = sample.ensure()
    truth = world.terrain(TILE)
    grid = truth.grid
    stream_cells = max(truth.axis_col, grid.width - truth.axis_col - 1) + grid.width * 3
    run_config = {"ops": {"terrain": {"config": {"stream_area_m2": stream_cells * grid.pixel_area_m2}}}}
    for _ in range(2):
        result = materialize(
            [terrain], partition_key=TILE, resources=resources, instance=instance, run_config=run_config
        )
        assert result.success
    meta = result.asset_materializations_for_node("terrain")[0].metadata
    assert meta["source"].value == "sample" and meta["max_accumulation_cells"].value == grid.width * grid.height
    # A registered version of the terrain model, scored against the analytic truth (the second run reuses it).
    scores = meta["scores_against_truth"].value
    assert scores["d8_agreement"] == 1.0 and scores["accumulation_exact_share"] == 1.0
    assert scores["slope_max_error_flank_deg"] < 0.05
    from memories.ai.registry import ModelRegistry

    [version] = [v for v in ModelRegistry(StorageResource().storage_root()).versions("terrain")]
    assert meta["model_id"].value == f"terrain:{version.version}" and version.metrics == scores

    root = StorageResource().storage_root()
    store = terrain_store(root, grid)
    assert len([v for v in store.versions() if v.month == TERRAIN_EPOCH]) >= 2
    ds = store.read_month(TERRAIN_EPOCH).load()
    np.testing.assert_array_equal(ds["flow_direction"].values, truth.flow_direction())
    np.testing.assert_array_equal(ds["flow_accumulation"].values, truth.flow_accumulation())
    np.testing.assert_allclose(ds["elevation"].values, truth.dem())
    np.testing.assert_allclose(ds["hand"].values, truth.hand(stream_cells), atol=1e-3)
    assert ds["slope"].attrs["units"] == "degree"
    # The memory view finds the tile's latest terrain record (no month) and loads exactly its snapshot.
    view = MemoryView(TemporalMemory(MemoryCatalogResource().catalog(), root))
    record = view.record("terrain", TILE)
    assert record.version_id == meta["snapshot"].value
