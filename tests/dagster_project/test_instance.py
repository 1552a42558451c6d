"""The instance config the project writes: limits sized from the machine, overridable, read back by Dagster."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from dagster import DagsterInstance

from dagster_project.definitions import defs
from dagster_project.instance import FREE_SLOTS_AFTER_S, POOLS, machine_cores, machine_limits, prepare_home
from memories.errors import ConfigError


def test_limits_follow_the_machine_and_the_environment():
    cores = machine_cores()
    limits = machine_limits({})
    assert limits.cores == cores
    assert limits.pools == {
        "raster": max(1, cores // 2),
        "training": 1,
        "inference": max(1, cores // 4),
        "reports": max(1, cores // 2),
    }
    assert 1 <= limits.max_concurrent_runs <= cores
    custom = machine_limits({"MEMORIES_MAX_CONCURRENT_RUNS": "7", "MEMORIES_POOL_RASTER": "3"})
    assert custom.max_concurrent_runs == 7 and custom.pools["raster"] == 3
    with pytest.raises(ConfigError, match="MEMORIES_POOL_REPORTS='0'"):
        machine_limits({"MEMORIES_POOL_REPORTS": "0"})


def test_every_pool_an_asset_names_is_limited_in_the_instance(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMORIES_MAX_CONCURRENT_RUNS", "3")
    monkeypatch.setenv("MEMORIES_POOL_INFERENCE", "2")
    limits = prepare_home(tmp_path)
    graph = defs.resolve_asset_graph()
    named = {p for k in graph.get_all_asset_keys() for p in graph.get(k).pools}
    assert named == set(POOLS)
    pools = {k.to_user_string(): graph.get(k).pools for k in graph.get_all_asset_keys() if graph.get(k).pools}
    assert pools["surface_reflectance"] == pools["spectral_indices"] == {"raster"}
    assert pools["land_cover_model"] == pools["change_model"] == {"training"}
    assert pools["land_cover"] == pools["change_map"] == {"inference"}
    assert {a for a, p in pools.items() if p == {"reports"}} == {
        f"{k}_report" for k in ("environmental", "disaster", "urban", "historical", "real_estate")
    }
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        config = instance.get_concurrency_config()
        assert config.run_queue_config is not None and config.run_queue_config.max_concurrent_runs == 3
        assert config.pool_config.pool_granularity is not None
        assert config.pool_config.pool_granularity.value == "op"
        slots = {p: instance.event_log_storage.get_concurrency_info(p).slot_count for p in POOLS}
    assert slots == limits.pools and slots["inference"] == 2


def test_the_daemon_frees_the_slots_a_killed_run_still_holds(tmp_path, monkeypatch):
    """A run that ended holding a pool slot (its step process was killed) must not block the pool for good.

    The daemon's own run-monitoring pass (what ``dagster-daemon run`` calls each interval) frees the
    slot once the run has been over for ``free_slots_after_run_end_seconds``, and not before.
    """
    from dagster import DagsterRun, DagsterRunStatus
    from dagster._daemon.monitoring import concurrency as monitoring

    prepare_home(tmp_path)
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == FREE_SLOTS_AFTER_S
        run = instance.add_run(DagsterRun(job_name="train_job", run_id="killed-run", status=DagsterRunStatus.STARTED))
        instance.event_log_storage.claim_concurrency_slot("training", run.run_id, "land_cover_model")
        instance.report_run_failed(run)

        def held() -> int:
            return instance.event_log_storage.get_concurrency_info("training").active_slot_count

        context = SimpleNamespace(instance=instance)
        list(monitoring.execute_concurrency_slots_iteration(context, logging.getLogger(__name__)))
        assert held() == 1  # just ended: still held
        later = datetime.now(UTC) + timedelta(seconds=FREE_SLOTS_AFTER_S + 5)
        monkeypatch.setattr(monitoring, "get_current_datetime", lambda: later)
        list(monitoring.execute_concurrency_slots_iteration(context, logging.getLogger(__name__)))
        assert held() == 0
