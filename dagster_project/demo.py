"""The main job over the embedded world: ``python -m dagster_project.demo``.

Runs every partition through Dagster itself (a persistent instance under
``$DAGSTER_HOME``, default ``.dagster_home``): ingest each tile-month, train the
land-cover and change models, then land cover, change and the environmental report of
each tile-month, the per-tile sources and forecasts, and the memory's graphs and tiers.
Ingest and analysis run a year of one tile per run (``MAX_PARTITIONS_PER_RUN`` months, as a
backfill does), so resources start once per run, not once per tile-month.
Afterwards ``dagster dev`` shows the same runs, materializations and reports.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from memories.config import PROJECT_ROOT
from memories.products import ENVIRONMENTAL_REPORT


def main(argv: list[str] | None = None) -> int:
    """Run the whole pipeline; returns a process exit code."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--last-months", type=int, default=None, help="only the newest N months (default: all)")
    p.add_argument(
        "--report-months",
        default=None,
        help="comma-separated YYYY-MM months of the application reports (default: the months the sample world's "
        "events begin in, from the second year on, and the last month)",
    )
    args = p.parse_args(argv)

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home")))
    from dagster_project.instance import prepare_home

    # The same limits as the UI's daemon (scripts/ui.sh): queued runs and pool slots sized from the machine.
    prepare_home(home)

    import logging
    import warnings

    from dagster import DagsterInstance

    # The demo prints one line per run; the runs' own event logs are in the UI.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="All-NaN slice encountered")
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    from assets.partitions import MAX_PARTITIONS_PER_RUN, TILES, months_partitions, partition_key
    from dagster_project.definitions import defs
    from memories.config import config

    instance = DagsterInstance.get()
    resources = dict(defs.resources or {})
    stac = resources["stac"]
    t0 = time.perf_counter()
    print(
        f"sample world: {config.sample.n_tiles} tiles x {config.sample.n_months} months "
        f"x {config.sample.size_px} px at 10 m, in {config.sample.root}",
        flush=True,
    )
    world = stac.sample_world.ensure()
    print(f"  ready in {time.perf_counter() - t0:.0f} s", flush=True)
    tiles = [g.tile_id for g in world.tiles]
    instance.add_dynamic_partitions(TILES, [t for t in tiles if not instance.has_dynamic_partition(TILES, t)])
    months = months_partitions.get_partition_keys()
    if args.last_months:
        months = months[-args.last_months :]

    failed: list[str] = []

    def run(job_name: str, key: str | None, last: str | None = None) -> None:
        """One run of ``job_name``: of partition ``key``, or of the key range ``key``..``last``."""
        job = defs.resolve_job_def(job_name)
        t = time.perf_counter()
        if last is None or last == key:
            result = job.execute_in_process(
                instance=instance, partition_key=key, raise_on_error=False, run_config=quiet
            )
            label = f"{job_name} {key or ''}".strip()
        else:
            result = job.execute_in_process(
                instance=instance,
                raise_on_error=False,
                run_config=quiet,
                tags={"dagster/asset_partition_range_start": str(key), "dagster/asset_partition_range_end": str(last)},
            )
            label = f"{job_name} {key}..{last}"
        print(f"  {label:40s} {'ok' if result.success else 'FAILED'} ({time.perf_counter() - t:.1f} s)", flush=True)
        if not result.success:
            failed.append(label)

    # Month ranges of one tile per run, as a backfill with the assets' BackfillPolicy launches them: each run
    # starts its resources once and computes its tile-months in order (change and the reports read earlier months).
    ranges = [
        (partition_key(chunk[0], tile), partition_key(chunk[-1], tile))
        for start in range(0, len(months), MAX_PARTITIONS_PER_RUN)
        for chunk in [months[start : start + MAX_PARTITIONS_PER_RUN]]
        for tile in tiles
    ]
    print(f"ingest: {len(months)} months x {len(tiles)} tiles in {len(ranges)} runs", flush=True)
    for first, last in ranges:
        run("ingest_job", first, last)
    print("train the land-cover model", flush=True)
    run("train_job", None)
    print("land cover and reports", flush=True)
    for first, last in ranges:
        run("analysis_job", first, last)

    print("per-tile sources and forecasts", flush=True)
    for tile in tiles:
        run("tile_job", tile)
    report_months = _report_months(args.report_months, world, months)
    print(f"application reports (disaster, urban, historical, real estate): {', '.join(report_months)}", flush=True)
    for month in report_months:
        for tile in tiles:
            run("report_job", partition_key(month, tile))
    print("memory: spatial index, events, knowledge graph, tiers", flush=True)
    run("memory_job", None)

    root = resources["storage"].storage_root()
    catalog = resources["memory"].catalog()
    print(f"\ndone in {(time.perf_counter() - t0) / 60:.1f} min; {len(failed)} failed runs")
    print("reports (open in a browser):")
    print(f"  index of every report: {root.report_index_uri()}")
    for tile in tiles:
        rows = [r for r in catalog.current(ENVIRONMENTAL_REPORT, tile=tile) if r.partition in months]
        alerts = [r for r in rows if r.stats.get("alert")]
        print(f"  {tile} latest:      {root.report_uri('environmental', tile, months[-1], 'report.html')}")
        if alerts:
            first = alerts[0]
            loss, since = first.stats["forest_loss"]["area_ha"], first.stats["reference_month"]
            print(f"  {tile} first alert: {first.uri}  (forest loss {loss:.1f} ha since {since})")
    for kind in ("disaster", "urban", "historical", "real_estate"):
        for tile in tiles:
            rows = [r for r in catalog.current(f"{kind}_report", tile=tile) if r.partition in report_months]
            for r in rows:
                print(f"  {kind:12s} {tile} {r.partition}: {r.uri}")
    print("Dagster UI over the same instance:  ./scripts/ui.sh  (http://127.0.0.1:3000)")
    print("Query server over the same memory:   MEMORIES_API_TOKEN=... ./scripts/serve.sh  (http://127.0.0.1:8765)")
    return 1 if failed else 0


def _report_months(option: str | None, world: object, months: Sequence[str]) -> list[str]:
    """The months of the application reports: ``option`` (comma-separated) or the event months from the
    second year on (a year-earlier reference exists) and the last month."""
    if option:
        chosen = [m.strip() for m in option.split(",") if m.strip()]
        unknown = [m for m in chosen if m not in months]
        if unknown:
            raise SystemExit(f"--report-months {unknown} are not partitions; the months are {months[0]}..{months[-1]}")
        return chosen
    events = {e.start.strftime("%Y-%m") for t in world.tiles for e in world.events(t.tile_id)}  # type: ignore[attr-defined]
    return sorted({m for m in events if m in months[12:]} | {months[-1]})


if __name__ == "__main__":
    sys.exit(main())
