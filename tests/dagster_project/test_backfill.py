"""A backfill the way the UI launches it: real webserver and daemon, the instance config the project writes.

``dagster-webserver`` and ``dagster-daemon`` run in their own sessions over a temporary
``DAGSTER_HOME`` prepared by ``dagster_project.instance`` (queued run coordinator, pool slots);
the backfill of the three ingest assets over 2 tiles x 2 months of a 64 px world goes in through
GraphQL ``launchPartitionBackfill``. While it runs, the runs and pool slots in flight are sampled;
afterwards the step events give the exact overlap of the raster steps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.backfill_bench import (  # noqa: E402
    ASSETS,
    _partition_keys,
    deployment,
    launch_backfill,
    prepare,
    project_env,
    watch,
    world_config,
)

DAEMON_INTERVAL_S = 2.0
"""The backfill daemon's loop interval here (Dagster's is 30 s): the test waits on the runs, not the daemon."""


@pytest.mark.slow
def test_backfill_through_the_daemon_holds_the_limits_and_succeeds(tmp_path):
    from memories.memory.catalog import MemoryCatalog

    cfg = world_config(tmp_path / "run", tiles=2, months=2, size_px=64, world=tmp_path / "world")
    home = tmp_path / "run" / "dagster_home"
    # Explicit limits, so the test does not depend on the machine: two runs at once, one raster step at once.
    env = project_env(cfg, home, MEMORIES_MAX_CONCURRENT_RUNS="2", MEMORIES_POOL_RASTER="1")
    limits = prepare(env, home)
    assert limits["runs"] == 2 and limits["pools"]["raster"] == 1
    assert "QueuedRunCoordinator" in (home / "dagster.yaml").read_text()
    keys = _partition_keys(env, limits["tiles"])
    assert len(keys) == 4

    with deployment(env, home, tmp_path / "run", daemon_interval_s=DAEMON_INTERVAL_S) as url:
        t0 = time.perf_counter()
        observed = watch(home, launch_backfill(url, ASSETS, keys), list(limits["pools"]), t0, timeout_s=900)

    assert observed.status == "COMPLETED_SUCCESS" and observed.failed_runs == 0
    # The backfill policy groups a tile's months into one run: 2 runs, not one per tile-month (4).
    assert observed.runs == 2
    assert 1 <= observed.max_runs_in_flight <= 2
    assert observed.max_pool_slots_in_flight["raster"] <= 1
    assert observed.max_pool_steps_overlap["raster"] == 1  # surface_reflectance and spectral_indices of 2 runs
    # Exactly the requested partitions, each once in Dagster and once in the memory catalog.
    assert observed.partitions == {a: sorted(keys) for a in ASSETS}
    catalog = MemoryCatalog.open(str(tmp_path / "run" / "catalog.sqlite"))
    for asset in ASSETS:
        rows = sorted(f"{r.partition}|{r.tile}" for r in catalog.current(asset))
        assert rows == sorted(keys), asset
