"""The one home of the Dagster instance's limits: pools and the run queue, sized from the machine.

``python -m dagster_project.instance`` writes ``$DAGSTER_HOME/dagster.yaml`` (queued run
coordinator, run and pool limits, telemetry off) and sets each pool's slots in the instance;
``scripts/ui.sh`` and the demo call it, so the UI, the daemon and the demo run under the same
limits. Sizes come from the cores and memory this process may use (cgroup limits first, so a
container gets its share, not the host's), each overridable by an environment variable:

=============================  =====================================  ============================
variable                       default                                bounds
=============================  =====================================  ============================
MEMORIES_MAX_CONCURRENT_RUNS   min(cores, memory / 1.5 GiB)            runs in flight (each one
                                                                      process, its STAC server,
                                                                      Dask cluster and models)
MEMORIES_POOL_RASTER           max(1, cores // 2)                     composites and indices
MEMORIES_POOL_TRAINING         1                                      model training (all cores)
MEMORIES_POOL_INFERENCE        max(1, cores // 4)                     land cover and change maps
MEMORIES_POOL_REPORTS          max(1, cores // 2)                     the five reports
=============================  =====================================  ============================

Pools are enforced per step (``granularity: op``); per-pool limits live in the instance's
storage (Dagster reads only a default pool limit from ``dagster.yaml``), so :func:`apply_limits`
sets them, and ``default_limit`` in the file is the smallest of them for any pool not set.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memories.errors import ConfigError

POOLS = ("raster", "training", "inference", "reports")
"""The pools the assets name (``@asset(pool=...)``); deploy files use the same names."""
RUN_MEMORY_GIB = 1.5
"""Memory one run of up to 12 tile-months holds at its peak (measured: about 1 GiB on the demo world)."""
HEADER = "# Written by dagster_project.instance (python -m dagster_project.instance); edits are overwritten.\n"
ENV_RUNS = "MEMORIES_MAX_CONCURRENT_RUNS"
FREE_SLOTS_AFTER_S = 60
"""Seconds after a run ends before the daemon frees pool slots it still holds (``run_monitoring``)."""


@dataclass(frozen=True)
class InstanceLimits:
    """How much runs at once: runs in the queue's flight, and slots per pool (steps)."""

    max_concurrent_runs: int
    pools: dict[str, int] = field(default_factory=dict)
    cores: int = 1
    memory_gib: float = 0.0


def machine_cores() -> int:
    """CPU cores this process may use: the cgroup quota if any, else its CPU affinity."""
    quota = _read("/sys/fs/cgroup/cpu.max")
    if quota and not quota.startswith("max"):
        q, period = (float(x) for x in quota.split()[:2])
        return max(1, int(q // period))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def machine_memory_gib() -> float:
    """Memory this process may use, GiB: the cgroup limit if any, else the machine's."""
    limit = _read("/sys/fs/cgroup/memory.max")
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if limit and limit.isdigit():
        total = min(total, int(limit))
    return total / 2**30


def machine_limits(env: Mapping[str, str] | None = None) -> InstanceLimits:
    """The limits for this machine, with the environment's overrides (see the module docstring).

    Raises:
        ConfigError: an override is not a whole number >= 1.
    """
    env = os.environ if env is None else env
    cores, memory = machine_cores(), machine_memory_gib()
    defaults = {
        "raster": max(1, cores // 2),
        "training": 1,
        "inference": max(1, cores // 4),
        "reports": max(1, cores // 2),
    }
    runs = _override(env, ENV_RUNS, max(1, min(cores, int(memory // RUN_MEMORY_GIB))))
    pools = {p: _override(env, f"MEMORIES_POOL_{p.upper()}", n) for p, n in defaults.items()}
    return InstanceLimits(max_concurrent_runs=runs, pools=pools, cores=cores, memory_gib=round(memory, 1))


def render_instance_yaml(limits: InstanceLimits) -> str:
    """The ``dagster.yaml`` of these limits (queued run coordinator, op-granular pools, no telemetry)."""
    import yaml

    config: dict[str, Any] = {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_interval_seconds": 2},
        },
        "concurrency": {
            "runs": {"max_concurrent_runs": limits.max_concurrent_runs},
            "pools": {"granularity": "op", "default_limit": min(limits.pools.values(), default=1)},
        },
        # A run that ends without giving its pool slots back (its process was killed) would block the
        # pool for good; the daemon frees the slots of ended runs after this many seconds.
        "run_monitoring": {
            "enabled": True,
            "poll_interval_seconds": 30,
            "max_resume_run_attempts": 0,
            "free_slots_after_run_end_seconds": FREE_SLOTS_AFTER_S,
        },
        "telemetry": {"enabled": False},
    }
    sizes = ", ".join(f"{p}={n}" for p, n in limits.pools.items())
    note = (
        f"# Sized for {limits.cores} cores and {limits.memory_gib} GiB: {limits.max_concurrent_runs} runs; "
        f"pools {sizes} (set in the instance's storage by apply_limits).\n"
    )
    return HEADER + note + yaml.safe_dump(config, sort_keys=False)


def write_instance(home: str | Path, limits: InstanceLimits | None = None) -> Path:
    """Write ``home/dagster.yaml`` for ``limits`` (default: :func:`machine_limits`); returns its path.

    A ``dagster.yaml`` someone wrote by hand (without this module's header) is left as it is.
    """
    path = Path(home) / "dagster.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.read_text().startswith(HEADER):
        print(f"{path} was not written by dagster_project.instance: left as it is", file=sys.stderr)
        return path
    path.write_text(render_instance_yaml(limits or machine_limits()))
    return path


def apply_limits(instance: Any, limits: InstanceLimits | None = None) -> dict[str, int]:
    """Set each pool's slots in ``instance`` (a ``DagsterInstance``); returns pool -> slots."""
    limits = limits or machine_limits()
    for pool, slots in limits.pools.items():
        instance.event_log_storage.set_concurrency_slots(pool, slots)
    return dict(limits.pools)


def prepare_home(home: str | Path) -> InstanceLimits:
    """Write the instance config under ``home`` and set its pool slots: what ui.sh and the demo call."""
    from dagster import DagsterInstance

    limits = machine_limits()
    path = write_instance(home, limits)
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(Path(home).resolve())
    try:
        with DagsterInstance.from_config(str(path.parent)) as instance:
            apply_limits(instance, limits)
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    return limits


def set_pools(home: str | Path) -> InstanceLimits:
    """Set the pool slots of the instance whose ``dagster.yaml`` is in ``home``, leaving the file alone.

    What a deployment runs once its database exists (``deploy/set-pool-limits.sh``): its own
    ``dagster.yaml`` (PostgreSQL storage) is read as it is, and the slots come from the same
    sizing and ``MEMORIES_POOL_*`` overrides as everywhere else.
    """
    from dagster import DagsterInstance

    path = Path(home) / "dagster.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: no dagster.yaml there; point DAGSTER_HOME (or --home) at the instance's folder")
    limits = machine_limits()
    with DagsterInstance.from_config(str(path.parent)) as instance:
        apply_limits(instance, limits)
    return limits


def main(argv: list[str] | None = None) -> int:
    """Write ``$DAGSTER_HOME/dagster.yaml`` (or ``--home``) and set the pools; prints the limits."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", default=os.environ.get("DAGSTER_HOME"), help="DAGSTER_HOME (default: $DAGSTER_HOME)")
    p.add_argument(
        "--pools-only",
        action="store_true",
        help="only set the pool slots of the instance in --home; its dagster.yaml is left as it is",
    )
    args = p.parse_args(argv)
    if not args.home:
        raise SystemExit("set DAGSTER_HOME or pass --home: the folder of the instance's dagster.yaml")
    if args.pools_only:
        try:
            limits = set_pools(args.home)
        except ConfigError as e:
            print(e, file=sys.stderr)
            return 2
        print("pools " + ", ".join(f"{k}={v}" for k, v in limits.pools.items()) + f" set in {args.home}")
        return 0
    limits = prepare_home(args.home)
    pools = ", ".join(f"{k}={v}" for k, v in limits.pools.items())
    print(
        f"{Path(args.home) / 'dagster.yaml'}: {limits.max_concurrent_runs} runs at once; pools {pools} "
        f"({limits.cores} cores, {limits.memory_gib} GiB)"
    )
    return 0


def _override(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name}={raw!r}: use a whole number >= 1 (unset it to size from the machine)")
    return value


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
