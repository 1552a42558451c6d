"""The same graph as a production deployment: every part a real server in a process of its own.

A backfill of the ingest assets (``stac_items``, ``surface_reflectance``,
``spectral_indices``) over 2 tiles x 2 months of a tiny sample world (64 px) runs on

- the Dagster instance of ``deploy/dagster.yaml``: run, event-log and schedule storage on
  PostgreSQL (``dagster-postgres``; the throwaway ``initdb`` cluster of ``tests/conftest.py``),
  the QueuedRunCoordinator, its pool limits set by ``deploy/set-pool-limits.sh``;
- the code location served by ``dagster api grpc`` in its own process, loaded through a
  workspace of ``grpc_server`` entries (``deploy/workspace.yaml`` with this host and port);
- ``dagster-daemon run`` in its own process (backfill daemon, run queue);
- the memory catalog in a database of the same PostgreSQL (``MEMORIES_CATALOG_URL``);
- storage on moto's S3 server (``storage.root: s3://...`` with ``s3_endpoint_url``);
- Dask as ``dask scheduler`` and two ``dask worker`` processes (``compute.dask_scheduler``).

The backfill is launched with the UI's GraphQL mutation (``launchPartitionBackfill``) against
the gRPC-served workspace; each run is a process of its own, started by the code-location
server, and executes its steps in that process (the code location's in-process executor). The
daemon looks for backfill work every 2 s (Dagster's fixed 30 s otherwise; ``daemon_command``).
The test checks every partition succeeded, both Dask workers executed tasks, and the stored
composites, indices, scene tables and catalog statistics equal those of a local run of the same
partitions (``file://`` storage, SQLite catalog, in-process Dask), read back through the library.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from bench.backfill_bench import daemon_command
from memories.earth.gis import read_geoparquet
from memories.memory.catalog import MemoryCatalog
from memories.sample.spec import SampleWorldSpec
from memories.store import StorageRoot
from memories.store.raster import MonthlyRasterStore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SPEC = SampleWorldSpec(seed=42, n_tiles=2, start_month="2023-05", n_months=2, size_px=64, revisit_days=5)
ASSETS = ["stac_items", "surface_reflectance", "spectral_indices"]
RASTERS = ["surface_reflectance", "spectral_indices"]
BUCKET = "earth-deploy"
POOL_LIMITS = {"MEMORIES_POOL_RASTER": "2", "MEMORIES_POOL_TRAINING": "1", "MEMORIES_POOL_INFERENCE": "1"}
POOL_LIMITS |= {"MEMORIES_POOL_REPORTS": "2"}
POOLS = ("raster", "training", "inference", "reports")
START_TIMEOUT_S = 120.0
"""Seconds the servers may take to answer (the machine is shared)."""
BACKFILL_TIMEOUT_S = 900.0
DAEMON_INTERVAL_S = 2.0
"""The backfill daemon's loop interval here (Dagster's is 30 s): the test waits on the runs, not the daemon."""

LOCAL_RUN = textwrap.dedent(
    """
    import json, sys
    from dagster import AssetKey, DagsterInstance
    from dagster_project.definitions import defs
    from assets.partitions import TILES, partition_key

    assets, keys = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(TILES, sorted({t for _, t in keys}))
        job = defs.resolve_job_def("ingest_job")
        for month, tile in keys:
            job.execute_in_process(
                instance=instance,
                partition_key=partition_key(month, tile),
                asset_selection=[AssetKey(a) for a in assets],
            )
    """
)

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Server processes, each in a session of its own (so a signal to its group stops its children too)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.one_shot: list[subprocess.Popen[bytes]] = []
        """Commands that exit when done (not servers): only stopped if still running at teardown."""

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((name, proc))
        return proc

    def log(self, name: str, n: int = 4000) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-n:]

    def check_alive(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{self.log(name)}")

    def stop(self) -> None:
        """SIGTERM to every group, then SIGKILL to those still there."""
        for proc in self.one_shot:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for _, proc in reversed(self.started):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self.started):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop()


def _database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


def _config(folder: Path, name: str, storage: dict[str, Any], compute: dict[str, Any]) -> Path:
    """A MEMORIES_CONFIG of the tiny world (shared by both runs) with its own storage and compute."""
    sample = {k: v for k, v in SPEC.to_dict().items() if k in ("seed", "n_tiles", "start_month", "n_months")}
    settings = {
        "storage": storage,
        "sample": {**sample, "size_px": SPEC.size_px, "revisit_days": SPEC.revisit_days, "root": str(folder / "world")},
        "compute": {"chunk_px": 64, "dask_threads": 2, **compute},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def _wait(what: str, ready: Any, procs: Processes, timeout_s: float = START_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            return ready()
        except Exception as e:  # noqa: BLE001 - any failure to answer means: not ready yet
            last = e
            time.sleep(0.5)
    pytest.fail(f"{what} not ready after {timeout_s} s: {last!r}")


def test_backfill_on_postgres_grpc_daemon_s3_and_dask_workers_matches_a_local_run(
    tmp_path: Path, postgres_url: str, s3_bucket: Any, s3_endpoint: str, processes: Processes, monkeypatch: Any
) -> None:
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus, RunsFilter
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._grpc.client import DagsterGrpcClient
    from dagster_graphql.test.utils import execute_dagster_graphql
    from distributed import Client

    t0 = time.monotonic()
    tiles, months = SPEC.tile_ids(), SPEC.months()
    keys = [[m, t] for t in tiles for m in months]
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MEMORIES_"))}
    base_env.update({"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})

    # PostgreSQL: one database for Dagster's instance, one for the memory catalog.
    suffix = os.urandom(4).hex()
    dagster_db, catalog_url = f"dagster_{suffix}", _database(postgres_url, f"catalog_{suffix}")
    _database(postgres_url, dagster_db)
    pg = conninfo_to_dict(postgres_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text())
    dagster_env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": str(pg["host"]),
        "DAGSTER_PG_PORT": str(pg["port"]),
        "DAGSTER_PG_USER": str(pg["user"]),
        "DAGSTER_PG_PASSWORD": "unused-trust-auth",
        "DAGSTER_PG_DB": dagster_db,
    }
    for k, v in dagster_env.items():
        monkeypatch.setenv(k, v)

    s3_bucket(BUCKET)
    scheduler_port, grpc_port = _free_port(), _free_port()
    scheduler = f"tcp://127.0.0.1:{scheduler_port}"
    deploy_cfg = _config(
        tmp_path,
        "deploy",
        {"root": f"s3://{BUCKET}/memory", "s3_endpoint_url": s3_endpoint, "catalog_path": str(tmp_path / "unused")},
        {"dask_scheduler": scheduler},
    )
    env = {**base_env, **dagster_env, "MEMORIES_CONFIG": str(deploy_cfg), "MEMORIES_CATALOG_URL": catalog_url}

    # The instance's schema is created once here, before the servers race to create it.
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("tiles", tiles)
    processes.start(
        "scheduler", [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(scheduler_port)], env
    )
    for i in range(2):
        worker = [str(BIN / "dask"), "worker", scheduler, "--nthreads", "1", "--name", f"w{i}", "--no-dashboard"]
        processes.start(f"worker{i}", [*worker, "--memory-limit", "2GiB"], env)
    processes.start(
        "grpc",
        [str(BIN / "dagster"), "api", "grpc", "-m", "dagster_project.definitions", "-h", "127.0.0.1"]
        + ["-p", str(grpc_port), "--location-name", "earth_memory"],
        env,
    )
    pools = subprocess.Popen(
        ["sh", str(REPO / "deploy" / "set-pool-limits.sh")],
        env={**env, "PATH": f"{BIN}:{env.get('PATH', '')}", **POOL_LIMITS},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    processes.one_shot.append(pools)
    # The local reference run, while the servers start: it also generates the sample world both runs
    # read, before the daemon (started below) can launch a run.
    local_cfg = _config(
        tmp_path,
        "local",
        {"root": (tmp_path / "local-store").as_uri(), "catalog_path": str(tmp_path / "local.sqlite")},
        {},
    )
    local = subprocess.run(
        [sys.executable, "-c", LOCAL_RUN, json.dumps(ASSETS), json.dumps(keys)],
        cwd=REPO,
        env={**base_env, "MEMORIES_CONFIG": str(local_cfg)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert local.returncode == 0, local.stderr[-6000:]
    t_local = time.monotonic()
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update({"host": "127.0.0.1", "port": grpc_port})
    workspace_path = tmp_path / "workspace.yaml"
    workspace_path.write_text(yaml.safe_dump(workspace))
    _wait("the gRPC code server", lambda: DagsterGrpcClient(port=grpc_port, host="127.0.0.1").ping("x"), processes)
    pools_out = pools.communicate(timeout=START_TIMEOUT_S)[0].decode()
    assert pools.returncode == 0, pools_out[-4000:]
    processes.start("daemon", daemon_command(["run", "-w", str(workspace_path)], DAEMON_INTERVAL_S), env)

    client = _wait("the Dask scheduler", lambda: Client(scheduler, timeout=5, set_as_default=False), processes)
    try:
        client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        t_up = time.monotonic()
        with (
            DagsterInstance.get() as instance,
            WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace_path)])) as workspace_context,
        ):
            slots = {p: instance.event_log_storage.get_concurrency_info(p).slot_count for p in POOLS}
            assert slots == {"raster": 2, "training": 1, "inference": 1, "reports": 2}, slots
            answer = execute_dagster_graphql(
                workspace_context.create_request_context(),
                LAUNCH_BACKFILL,
                variables={
                    "params": {
                        "partitionNames": [f"{m}|{t}" for m, t in keys],
                        "assetSelection": [{"path": [a]} for a in ASSETS],
                        "title": "multiprocess deployment test",
                    }
                },
            ).data["launchPartitionBackfill"]
            assert answer["__typename"] == "LaunchBackfillSuccess", answer
            backfill_id = answer["backfillId"]
            deadline = time.monotonic() + BACKFILL_TIMEOUT_S
            running = (BulkActionStatus.REQUESTED, BulkActionStatus.FAILING, BulkActionStatus.CANCELING)
            while (status := instance.get_backfill(backfill_id).status) in running:
                processes.check_alive()
                assert time.monotonic() < deadline, f"backfill still {status} after {BACKFILL_TIMEOUT_S} s:\n" + (
                    processes.log("daemon")
                )
                time.sleep(1.0)
            t_done = time.monotonic()
            runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
            if status != BulkActionStatus.COMPLETED_SUCCESS:
                # pytest.fail, not assert: an assertion's message is cut short, and the step errors come first
                pytest.fail(
                    f"backfill {status}; runs {[(r.run_id, r.status.value) for r in runs]}\n"
                    + "\n".join(_step_errors(instance, runs))
                    + "\n--- daemon log ---\n"
                    + processes.log("daemon"),
                    pytrace=False,
                )
            assert runs and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
            for asset in ASSETS:
                records = instance.fetch_materializations(
                    AssetRecordsFilter(asset_key=AssetKey(asset)), limit=100
                ).records
                assert sorted(str(r.partition_key) for r in records) == sorted(f"{m}|{t}" for m, t in keys), asset
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    finally:
        client.close()
    assert len(executed) == 2 and all(n > 0 for n in executed.values()), executed

    # What the deployment stored (S3 + PostgreSQL catalog) equals what the local run stored.
    deployed = StorageRoot(f"s3://{BUCKET}/memory", s3_endpoint_url=s3_endpoint)
    localroot = StorageRoot((tmp_path / "local-store").as_uri())
    catalogs = {"deploy": MemoryCatalog.open(catalog_url), "local": MemoryCatalog.open(tmp_path / "local.sqlite")}
    for month, tile in keys:
        grid = SPEC.tile(tile)
        a, b = (read_geoparquet(r, r.table_uri("stac_items", tile, month)) for r in (deployed, localroot))
        assert list(a["id"]) == list(b["id"]) and len(a) > 0, (tile, month)
        for product in RASTERS:
            got, want = (
                MonthlyRasterStore(r, product, grid, SPEC.start_month, chunk_px=64).read_month(month).compute()
                for r in (deployed, localroot)
            )
            assert sorted(map(str, got.data_vars)) == sorted(map(str, want.data_vars)), product
            for name in want.data_vars:
                assert np.isfinite(want[name].values).any(), (product, name, tile, month)
                np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=f"{product} {name}")
        for asset in ASSETS:
            (d,), (w,) = (c.query(asset, tile=tile, partition=month) for c in catalogs.values())
            assert d.uri.startswith(f"s3://{BUCKET}/memory/") and w.uri.startswith("file://"), (d.uri, w.uri)
            assert d.stats == w.stats, asset
    print(
        f"local run (servers starting meanwhile) {t_local - t0:.0f} s, servers up {t_up - t0:.0f} s, "
        f"backfill {t_done - t_up:.0f} s "
        f"({len(runs)} runs), dask tasks per worker {sorted(executed.values())}"
    )


def _step_errors(instance: Any, runs: list[Any]) -> list[str]:
    """The step failures and run failures of runs that did not succeed, with their errors."""
    from dagster import DagsterEventType, DagsterRunStatus

    out = []
    for run in runs:
        if run.status == DagsterRunStatus.SUCCESS:
            continue
        for kind in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
            for record in instance.all_logs(run.run_id, of_type=kind):
                event = record.dagster_event
                error = getattr(event.event_specific_data, "error", None) if event else None
                text = error.to_string() if error else record.message
                out.append(f"{run.run_id} {kind.value} {event.step_key if event else ''}: {text}")
    return out
