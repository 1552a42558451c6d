"""What an ingest or analysis run costs beyond the raster math, per partition, on a 64 px world.

At 64 x 64 px the raster math of a tile-month is milliseconds, so the wall time of a run is
its overhead: Dagster's run and step machinery, resource start-up (the embedded STAC server,
the Dask cluster, the memory catalog), the STAC search, the quality suites, the catalog records
and the versioned commits. The bench generates a 1-tile world, runs ``ingest_job`` once per month
(``execute_in_process`` on one ephemeral instance, as the demo does; the first month is the
warm-up: imports, world files, store creation), trains tiny models, runs ``analysis_job`` the same
way, and then the same ingest months again as one run over the month range (what a backfill with
the project's ``BackfillPolicy`` launches), on a second storage root.

    .venv/bin/python bench/overhead_bench.py --json            # 4 months
    .venv/bin/python bench/overhead_bench.py --quick --json    # 3 months, no analysis
    .venv/bin/python bench/overhead_bench.py --full --json     # 8 months

``--json`` prints one JSON object last: ``ingest_s_per_partition`` and ``analysis_s_per_partition``
(median wall over the months after the warm-up, seconds; ``*_cpu_s_*`` the same in CPU seconds of
the process, all threads: on a loaded machine the steadier figure), ``range_run_s_per_partition`` (the range run's
wall over its months), ``steps_s`` (median seconds per step, from the runs' step events),
``resource_init_s`` (median, from the run's start to its first step), ``target_s`` (0.5) and
``ratio_to_target`` (ingest per partition / target: <= 1 meets the issue's bound).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._sizes import add_size_flags, apply_size_flags  # noqa: E402
from memories.products import SPECTRAL_INDICES, STAC_ITEMS, SURFACE_REFLECTANCE  # noqa: E402

TARGET_S = 0.5
"""Issue 13's bound on the overhead of one partition, seconds."""
SIZE_PX = 64
QUICK = {"months": 3, "analysis": False}
FULL = {"months": 8, "analysis": True}
TINY_MODEL = {"width": 8, "max_epochs": 1, "patch_px": 16, "patches_per_scene": 4, "seed": 7}


def _config(root: Path, months: int) -> Path:
    """A MEMORIES_CONFIG of a 1-tile 64 px world under ``root`` with a tiny model."""
    import yaml

    from bench.backfill_bench import world_config

    path = world_config(root, tiles=1, months=months, size_px=SIZE_PX, world=root / "world")
    settings = yaml.safe_load(path.read_text())
    settings["model"] = dict(TINY_MODEL)
    path.write_text(yaml.safe_dump(settings))
    return path


def _steps(instance: Any, run_id: str) -> tuple[dict[str, float], float]:
    """Seconds per step of a run (start to success) and from the run's start to its first step."""
    from dagster import DagsterEventType

    starts: dict[str, float] = {}
    steps: dict[str, float] = {}
    run_start = first_step = None
    for entry in instance.all_logs(run_id):
        ev = entry.dagster_event
        if ev is None:
            continue
        t = entry.timestamp
        kind = ev.event_type
        if kind == DagsterEventType.RUN_START:
            run_start = t
        elif kind == DagsterEventType.STEP_START and ev.step_key:
            starts[ev.step_key] = t
            first_step = t if first_step is None else first_step
        elif kind == DagsterEventType.STEP_SUCCESS and ev.step_key in starts:
            steps[str(ev.step_key)] = t - starts[str(ev.step_key)]
    init = (first_step - run_start) if run_start is not None and first_step is not None else float("nan")
    return steps, init


def measure(months: int, analysis: bool, workdir: Path, profile: Path | None = None) -> dict[str, Any]:
    """Run the partitions in this process (the project reads its config at import: call once).

    With ``profile``, the runs after each job's warm-up run under cProfile, and its statistics are
    written there (``python -m pstats FILE``): where the overhead goes, without the imports.
    """
    import cProfile

    profiler = cProfile.Profile() if profile else None
    os.environ["MEMORIES_CONFIG"] = str(_config(workdir, months))
    os.environ.setdefault("MPLBACKEND", "Agg")
    t0 = time.perf_counter()
    from dagster import AssetKey, DagsterInstance

    from assets.partitions import TILES, months_partitions, partition_key
    from dagster_project.definitions import defs

    import_s = time.perf_counter() - t0
    instance = DagsterInstance.ephemeral()
    world = defs.resources["stac"].sample_world.ensure()
    tile = world.tiles[0].tile_id
    instance.add_dynamic_partitions(TILES, [tile])
    keys = months_partitions.get_partition_keys()
    runs: dict[str, list[float]] = {"ingest_job": [], "analysis_job": []}
    cpu: dict[str, list[float]] = {"ingest_job": [], "analysis_job": []}
    steps: dict[str, list[float]] = {}
    inits: list[float] = []

    def run(job: str, month: str, **kw: Any) -> None:
        warm = profiler is not None and len(runs[job]) > 0
        t, c = time.perf_counter(), time.process_time()
        if warm:
            profiler.enable()
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, partition_key=partition_key(month, tile), **kw
        )
        if warm:
            profiler.disable()
        wall = time.perf_counter() - t
        cpu[job].append(time.process_time() - c)
        if not result.success:
            raise RuntimeError(f"{job} {month}|{tile} failed")
        runs[job].append(wall)
        if len(runs[job]) > 1:  # the first of each job is the warm-up
            per_step, init = _steps(instance, result.run_id)
            inits.append(init)
            for k, v in per_step.items():
                steps.setdefault(k, []).append(v)

    for m in keys:
        run("ingest_job", m)
    out: dict[str, Any] = {"size_px": SIZE_PX, "months": months, "import_s": round(import_s, 2)}
    if analysis:
        t = time.perf_counter()
        if not defs.resolve_job_def("train_job").execute_in_process(instance=instance).success:
            raise RuntimeError("train_job failed")
        out["train_s"] = round(time.perf_counter() - t, 2)
        for m in keys:
            run("analysis_job", m)
    # The same ingest months as one run over the month range, on a second storage root and catalog.
    second = workdir / "range"
    run_config = {
        "resources": {
            "storage": {"config": {"root": (second / "store").as_uri()}},
            "memory": {"config": {"path": str(second / "catalog.sqlite")}},
        }
    }
    ingest_assets = [STAC_ITEMS, SURFACE_REFLECTANCE, SPECTRAL_INDICES]
    t = time.perf_counter()
    result = defs.resolve_job_def("ingest_job").execute_in_process(
        instance=instance,
        run_config=run_config,
        asset_selection=[AssetKey(a) for a in ingest_assets],
        tags={
            "dagster/asset_partition_range_start": str(partition_key(keys[0], tile)),
            "dagster/asset_partition_range_end": str(partition_key(keys[-1], tile)),
        },
    )
    range_s = time.perf_counter() - t
    out["range_run_ok"] = bool(result.success)
    if profiler is not None and profile is not None:
        profiler.dump_stats(str(profile))

    def med(xs: list[float]) -> float:
        return round(statistics.median(xs), 3) if xs else float("nan")

    ingest = med(runs["ingest_job"][1:])
    out.update(
        {
            "ingest_warmup_s": round(runs["ingest_job"][0], 2),
            "ingest_s_per_partition": ingest,
            "ingest_cpu_s_per_partition": med(cpu["ingest_job"][1:]),
            "analysis_s_per_partition": med(runs["analysis_job"][1:]) if analysis else None,
            "analysis_cpu_s_per_partition": med(cpu["analysis_job"][1:]) if analysis else None,
            "range_run_assets": ingest_assets,
            "range_run_s_per_partition": round(range_s / len(keys), 3),
            "resource_init_s": med(inits),
            "steps_s": {k: med(v) for k, v in sorted(steps.items())},
            "target_s": TARGET_S,
            "ratio_to_target": round(ingest / TARGET_S, 2),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
        }
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, measure, print the table or the JSON object."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--months", type=int, default=4, help="months of the world (the first is the warm-up)")
    p.add_argument("--no-analysis", dest="analysis", action="store_false", help="ingest only")
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    p.add_argument("--workdir", default=None, help="keep the world and stores here (default: a temporary folder)")
    p.add_argument("--profile", type=Path, default=None, help="write cProfile statistics of the warm runs here")
    add_size_flags(p)
    args = apply_size_flags(p.parse_args(argv), QUICK, FULL)
    if args.months < 2:
        p.error("--months must be at least 2 (the first month is the warm-up)")
    with tempfile.TemporaryDirectory(prefix="overhead-bench-") as tmp:
        out = measure(args.months, args.analysis, Path(args.workdir or tmp), args.profile)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
