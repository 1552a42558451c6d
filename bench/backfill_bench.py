"""A backfill through Dagster itself against the same partitions run one at a time in one process.

Starts ``dagster-webserver`` and ``dagster-daemon`` for real on 127.0.0.1 over a fresh
``DAGSTER_HOME`` written by ``dagster_project.instance`` (queued runs, pools), launches the
backfill of ``stac_items``, ``surface_reflectance`` and ``spectral_indices`` over tiles x months
through GraphQL ``launchPartitionBackfill`` (what the UI's Materialize menu sends), samples the
runs and pool slots in flight every half second until it ends, and then runs the same
partitions sequentially in one process (one ``execute_in_process`` per tile-month, as the demo
does) on a second storage root, and compares the composites and indices both stored. Both read
one pre-generated sample world.

    .venv/bin/python bench/backfill_bench.py --tiles 2 --months 12 --size 128 --json

``--json`` prints one JSON object (``backfill_s`` from the launch, ``backfill_runs_s`` from the
first run's start to the last run's end, ``sequential_s``, ``ratio``, ``runs``, ``max_runs_in_flight``,
``max_pool_slots_in_flight``, ``max_pool_steps_overlap``, ``limits``,
``max_abs_difference_vs_sequential``) as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._sizes import add_size_flags, apply_size_flags  # noqa: E402
from memories.products import SPECTRAL_INDICES, STAC_ITEMS, SURFACE_REFLECTANCE  # noqa: E402

QUICK = {"tiles": 1, "months": 2, "size": 64}
FULL = {"tiles": 2, "months": 12, "size": 128}
ASSETS = (STAC_ITEMS, SURFACE_REFLECTANCE, SPECTRAL_INDICES)
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""


@dataclass
class Observed:
    """What a backfill did: its runs, how long, and the most runs and pool slots seen in flight at once."""

    backfill_id: str
    status: str
    wall_s: float
    """From the launch to the last run's end, seconds."""
    runs_s: float
    """From the first run's start to the last run's end, seconds."""
    runs: int
    failed_runs: int
    max_runs_in_flight: int
    max_pool_slots_in_flight: dict[str, int] = field(default_factory=dict)
    """Most slots claimed at once per pool, sampled."""
    max_pool_steps_overlap: dict[str, int] = field(default_factory=dict)
    """Most steps of a pool running at once, from the runs' step start/end events (exact)."""
    partitions: dict[str, list[str]] = field(default_factory=dict)
    """Asset -> partitions materialized, sorted."""


def world_config(root: Path, *, tiles: int, months: int, size_px: int, world: Path, start: str = "2023-01") -> Path:
    """A MEMORIES_CONFIG of a small sample world (``world`` is shared) with its storage under ``root``."""
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    settings = {
        "storage": {"root": (root / "store").as_uri(), "catalog_path": str(root / "catalog.sqlite")},
        "sample": {
            "seed": 42,
            "n_tiles": tiles,
            "start_month": start,
            "n_months": months,
            "size_px": size_px,
            "revisit_days": 5,
            "root": str(world),
        },
        "compute": {"dask_threads": 2, "chunk_px": min(128, size_px)},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def project_env(config_path: Path, home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a process of this project: the worktree first on the path, its config, home."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["MEMORIES_CONFIG"] = str(config_path)
    env.setdefault("MPLBACKEND", "Agg")
    if home is not None:
        env["DAGSTER_HOME"] = str(home)
    env.update(extra)
    return env


def run_python(code: str, env: dict[str, str], timeout_s: float = 900) -> str:
    """Run ``code`` in a fresh interpreter with ``env``; its stdout (raises with its stderr on failure)."""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout_s
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return out.stdout


def prepare(env: dict[str, str], home: Path) -> dict[str, Any]:
    """Generate the sample world, write the instance config and pools, add the tiles; returns the limits."""
    code = f"""
import json, os
from dagster import DagsterInstance
from dagster_project.instance import prepare_home
limits = prepare_home({str(home)!r})
from dagster_project.definitions import defs
from assets.partitions import TILES
world = defs.resources["stac"].sample_world.ensure()
with DagsterInstance.from_config({str(home)!r}) as instance:
    instance.add_dynamic_partitions(TILES, [t.tile_id for t in world.tiles])
print(json.dumps({{"runs": limits.max_concurrent_runs, "pools": limits.pools, "cores": limits.cores,
                  "tiles": [t.tile_id for t in world.tiles]}}))
"""
    return dict(json.loads(run_python(code, env).strip().splitlines()[-1]))


DAEMON_WITH_INTERVAL = (
    "import sys; import dagster._daemon.controller as c; c.DEFAULT_DAEMON_INTERVAL_SECONDS = float(sys.argv[1]); "
    "from dagster._daemon.cli import main; sys.argv = ['dagster-daemon', *sys.argv[2:]]; sys.exit(main())"
)
"""``python -c`` source of ``dagster-daemon`` with its loop interval (seconds, ``argv[1]``) in place of 30 s."""


def daemon_command(args: Sequence[str], interval_s: float | None = None) -> list[str]:
    """``dagster-daemon ARGS``; with ``interval_s``, the backfill daemon looks for work that often.

    Dagster's backfill daemon sleeps a fixed 30 s between iterations (not configurable in
    ``dagster.yaml``), so a backfill waits up to 30 s to start and up to 30 s more to be marked
    done. Tests pass a short interval to spend their time on the runs instead; it changes
    when the daemon looks, not what it does.
    """
    if interval_s is None:
        return [str(Path(sys.executable).parent / "dagster-daemon"), *args]
    return [sys.executable, "-c", DAEMON_WITH_INTERVAL, str(interval_s), *args]


@contextmanager
def deployment(env: dict[str, str], home: Path, log_dir: Path, daemon_interval_s: float | None = None) -> Iterator[str]:
    """Webserver and daemon on 127.0.0.1 over ``home`` (each in its own session); yields the GraphQL URL.

    ``daemon_interval_s``: the backfill daemon's loop interval (see :func:`daemon_command`); None: Dagster's 30 s.
    """
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    target = ["-m", "dagster_project.definitions", "-d", str(REPO)]
    procs = []
    try:
        for name, cmd in (
            ("webserver", [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *target]),
            ("daemon", daemon_command(["run", *target], daemon_interval_s)),
        ):
            log = open(log_dir / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
            procs.append(
                (
                    subprocess.Popen(
                        cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    ),
                    log,
                )
            )
        url = f"http://127.0.0.1:{port}/graphql"
        _wait_for(lambda: _answers(f"http://127.0.0.1:{port}/server_info"), 240, "the webserver", procs)
        _wait_for(lambda: _daemon_ready(home), 240, "the daemon's backfill heartbeat", procs)
        yield url
    finally:
        for p, _ in procs:
            _stop(p)
        for _, log in procs:
            log.close()


def launch_backfill(url: str, assets: Sequence[str], partitions: Sequence[str]) -> str:
    """Launch an asset backfill through GraphQL, as the UI does; returns its id."""
    params = {
        "assetSelection": [{"path": [a]} for a in assets],
        "partitionNames": list(partitions),
        "fromFailure": False,
    }
    body = json.dumps({"query": LAUNCH, "variables": {"params": params}}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        answer = json.loads(r.read())
    result = (answer.get("data") or {}).get("launchPartitionBackfill") or {}
    if result.get("__typename") != "LaunchBackfillSuccess":
        raise RuntimeError(f"launchPartitionBackfill failed: {answer}")
    return str(result["backfillId"])


def watch(home: Path, backfill_id: str, pools: Sequence[str], t0: float, timeout_s: float) -> Observed:
    """Sample runs and pool slots in flight every 0.5 s until the backfill ends; then read its runs."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
    from dagster._core.execution.backfill import BulkActionStatus

    in_flight = {DagsterRunStatus.STARTING, DagsterRunStatus.STARTED}
    max_runs = 0
    max_slots = dict.fromkeys(pools, 0)
    with DagsterInstance.from_config(str(home)) as instance:
        flt = RunsFilter.for_backfill(backfill_id)
        while True:
            runs = instance.get_runs(filters=flt)
            max_runs = max(max_runs, sum(r.status in in_flight for r in runs))
            for pool in pools:
                info = instance.event_log_storage.get_concurrency_info(pool)
                max_slots[pool] = max(max_slots[pool], info.active_slot_count)
            backfill = instance.get_backfill(backfill_id)
            done = backfill is not None and backfill.status != BulkActionStatus.REQUESTED
            if done and all(r.is_finished for r in runs):
                break
            if time.perf_counter() - t0 > timeout_s:
                raise TimeoutError(f"backfill {backfill_id} still {backfill and backfill.status} after {timeout_s} s")
            time.sleep(0.5)
        end = time.perf_counter()
        runs = instance.get_runs(filters=flt)
        stats = [instance.get_run_stats(r.run_id) for r in runs]
        starts = [s.start_time for s in stats if s.start_time]
        ends = [s.end_time for s in stats if s.end_time]
        return Observed(
            backfill_id=backfill_id,
            status=str(backfill.status.value if backfill else "missing"),
            wall_s=round(end - t0, 1),
            runs_s=round(max(ends) - min(starts), 1) if starts and ends else 0.0,
            runs=len(runs),
            failed_runs=sum(r.status != DagsterRunStatus.SUCCESS for r in runs),
            max_runs_in_flight=max_runs,
            max_pool_slots_in_flight=max_slots,
            max_pool_steps_overlap=pool_step_overlap(instance, [r.run_id for r in runs]),
            partitions=materialized_partitions(instance, ASSETS),
        )


def pool_step_overlap(instance: Any, run_ids: Sequence[str]) -> dict[str, int]:
    """Most steps of each pool running at once across ``run_ids``, from their step start/end events."""
    from dagster import DagsterEventType

    from dagster_project.definitions import defs

    graph = defs.resolve_asset_graph()
    pool_of = {k.to_python_identifier(): next(iter(graph.get(k).pools), None) for k in graph.get_all_asset_keys()}
    edges: dict[str, list[tuple[float, int]]] = {}
    for run_id in run_ids:
        for e in instance.all_logs(run_id):
            if not e.is_dagster_event or not e.step_key:
                continue
            kind = e.dagster_event.event_type
            pool = pool_of.get(e.step_key)
            if pool is None:
                continue
            if kind == DagsterEventType.STEP_START:
                edges.setdefault(pool, []).append((e.timestamp, 1))
            elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                edges.setdefault(pool, []).append((e.timestamp, -1))
    out = {}
    for pool, points in edges.items():
        level = peak = 0
        for _, d in sorted(points, key=lambda x: (x[0], x[1])):
            level += d
            peak = max(peak, level)
        out[pool] = peak
    return out


def timeline(home: Path, backfill_id: str) -> list[str]:
    """One line per run: when it started, and each step's start and duration, seconds from the first run."""
    from dagster import DagsterEventType, DagsterInstance, RunsFilter

    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(filters=RunsFilter.for_backfill(backfill_id))
        logs = {r.run_id: instance.all_logs(r.run_id) for r in runs}
    t0 = min(e.timestamp for events in logs.values() for e in events)
    lines = []
    for run in runs:
        events = logs[run.run_id]
        parts = [
            f"run {run.run_id[:8]} {run.tags.get('dagster/asset_partition_range_start', '')}.."
            f"{run.tags.get('dagster/asset_partition_range_end', '')}: queued {events[0].timestamp - t0:.0f}"
        ]
        starts: dict[str, float] = {}
        for e in events:
            kind = e.dagster_event.event_type if e.is_dagster_event else None
            if kind == DagsterEventType.RUN_START:
                parts.append(f"start {e.timestamp - t0:.0f}")
            elif kind == DagsterEventType.STEP_START and e.step_key:
                starts[e.step_key] = e.timestamp
            elif kind == DagsterEventType.STEP_SUCCESS and e.step_key in starts:
                parts.append(f"{e.step_key} {starts[e.step_key] - t0:.0f}+{e.timestamp - starts[e.step_key]:.0f}")
            elif kind == DagsterEventType.RUN_SUCCESS:
                parts.append(f"end {e.timestamp - t0:.0f}")
        lines.append(", ".join(parts))
    return lines


def materialized_partitions(instance: Any, assets: Sequence[str]) -> dict[str, list[str]]:
    """Asset -> the partitions it has materializations of, sorted."""
    from dagster import AssetKey

    return {a: sorted(instance.get_materialized_partitions(AssetKey(a))) for a in assets}


def sequential(env: dict[str, str], home: Path, partitions: Sequence[str], compare_root: str) -> tuple[float, float]:
    """Seconds to run ``partitions`` of the three assets one at a time in one process (the demo's way), and
    the largest difference of their composites and indices from those stored under ``compare_root``."""
    code = f"""
import logging, time
from dagster import AssetSelection, DagsterInstance, Definitions, define_asset_job
from dagster_project.definitions import defs
from assets.partitions import month_tile_partitions
logging.getLogger("distributed").setLevel(logging.WARNING)
quiet = {{"loggers": {{"console": {{"config": {{"log_level": "WARNING"}}}}}}}}
job_def = define_asset_job(
    "bench_sequential", selection=AssetSelection.assets(*{list(ASSETS)!r}), partitions_def=month_tile_partitions
)
job = Definitions.merge(defs, Definitions(jobs=[job_def])).resolve_job_def("bench_sequential")
with DagsterInstance.from_config({str(home)!r}) as instance:
    t = time.perf_counter()
    for key in {list(partitions)!r}:
        job.execute_in_process(instance=instance, partition_key=key, run_config=quiet)
    seconds = time.perf_counter() - t
import numpy as np
from assets.partitions import FIRST_MONTH, split_key
from memories.store.paths import StorageRoot
from memories.store.raster import MonthlyRasterStore
stac, here = defs.resources["stac"], defs.resources["storage"].storage_root()
other = StorageRoot({compare_root!r})
diff = 0.0
for key in {list(partitions)!r}:
    month, tile = split_key(key)
    grid = stac.tile(tile)
    for product in ("surface_reflectance", "spectral_indices"):
        a = MonthlyRasterStore(here, product, grid, FIRST_MONTH).read_month(month).compute()
        b = MonthlyRasterStore(other, product, grid, FIRST_MONTH).read_month(month).compute()
        for name in a.data_vars:
            x, y = np.asarray(a[name].values, float), np.asarray(b[name].values, float)
            assert (np.isnan(x) == np.isnan(y)).all(), (key, product, name)
            if np.isfinite(x).any():
                diff = max(diff, float(np.nanmax(np.abs(x - y))))
print(seconds, diff)
"""
    seconds, diff = run_python(code, env).strip().splitlines()[-1].split()
    return float(seconds), float(diff)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; returns a process exit code (1 when the backfill fails)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiles", type=int, default=2)
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--size", type=int, default=128, help="sample world tile side, pixels")
    p.add_argument("--timeout", type=float, default=1800, help="seconds the backfill may take")
    p.add_argument("--skip-sequential", action="store_true", help="only the backfill")
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    p.add_argument("--workdir", default=None, help="keep homes, stores and logs here (default: a temporary folder)")
    add_size_flags(p)
    args = apply_size_flags(p.parse_args(argv), QUICK, FULL)

    with tempfile.TemporaryDirectory(prefix="backfill-bench-") as tmp:
        base = Path(args.workdir or tmp)
        world = base / "world"
        cfg = world_config(base / "ui", tiles=args.tiles, months=args.months, size_px=args.size, world=world)
        home = base / "ui" / "dagster_home"
        env = project_env(cfg, home)
        limits = prepare(env, home)
        keys = _partition_keys(env, limits["tiles"])
        with deployment(env, home, base / "ui") as url:
            t0 = time.perf_counter()
            backfill_id = launch_backfill(url, ASSETS, keys)
            observed = watch(home, backfill_id, list(limits["pools"]), t0, args.timeout)
        for line in timeline(home, backfill_id):
            print(line, file=sys.stderr)
        seq_s = max_diff = None
        if not args.skip_sequential:
            cfg2 = world_config(base / "seq", tiles=args.tiles, months=args.months, size_px=args.size, world=world)
            home2 = base / "seq" / "dagster_home"
            env2 = project_env(cfg2, home2)
            prepare(env2, home2)
            seq_s, max_diff = sequential(env2, home2, keys, (base / "ui" / "store").as_uri())
    result = {
        "bench": "backfill",
        "partitions": len(keys),
        "tiles": args.tiles,
        "months": args.months,
        "size_px": args.size,
        "backfill_s": observed.wall_s,
        "backfill_runs_s": observed.runs_s,
        "sequential_s": round(seq_s, 1) if seq_s is not None else None,
        "ratio": round(observed.wall_s / seq_s, 2) if seq_s else None,
        "limits": limits,
        **{k: v for k, v in asdict(observed).items() if k not in ("wall_s", "runs_s", "partitions")},
        "all_partitions_materialized": all(v == sorted(keys) for v in observed.partitions.values()),
        "max_abs_difference_vs_sequential": max_diff,
    }
    print(
        f"backfill of {len(keys)} tile-months x {len(ASSETS)} assets: {observed.wall_s} s from launch "
        f"({observed.runs_s} s first run start to last end) in {observed.runs} runs, status {observed.status}; "
        f"sequential in one process: {result['sequential_s']} s; ratio {result['ratio']}; stored values differ by "
        f"at most {max_diff}; "
        f"max {observed.max_runs_in_flight} runs in flight (limit {limits['runs']}), pool steps at once "
        f"{observed.max_pool_steps_overlap} (limits {limits['pools']})"
    )
    if args.json:
        print(json.dumps(result))
    return 0 if observed.failed_runs == 0 and result["all_partitions_materialized"] else 1


def _partition_keys(env: dict[str, str], tiles: Sequence[str]) -> list[str]:
    code = f"""
from assets.partitions import months_partitions, partition_key
print("\\n".join(str(partition_key(m, t)) for t in {list(tiles)!r} for m in months_partitions.get_partition_keys()))
"""
    return run_python(code, env).strip().splitlines()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _daemon_ready(home: Path) -> bool:
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        statuses = instance.get_daemon_statuses(["BACKFILL", "QUEUED_RUN_COORDINATOR"])
        return all(s.last_heartbeat is not None for s in statuses.values())


def _wait_for(ready: Any, timeout_s: float, what: str, procs: Sequence[tuple[subprocess.Popen[bytes], Any]]) -> None:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if ready():
            return
        dead = [p.args for p, _ in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{dead[0]} exited before {what} was ready; see its log")
        time.sleep(1)
    raise TimeoutError(f"{what} not ready after {timeout_s} s")


def _stop(p: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's session (its code servers and runs too), then SIGKILL what is left."""
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
    try:
        os.killpg(p.pid, signal.SIGKILL)  # run workers it started in its session
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
