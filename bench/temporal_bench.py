"""Temporal memory query latency on 1 million records: the interval index vs a plain scan of the catalog.

The records are bulk-loaded (seeded) into a real SQLite memory catalog with the
catalog's own schema: valid times spread over 2005–2025, 70 % one day long
(scenes), 29 % a month (pipeline partitions; the seed stores scenes for 30 days),
1 % a year, 0.01 % open-ended; transaction times after the valid start, a fifth
of the records already replaced (closed transaction time). A point query then
matches about 1 800 records, most of them in force.

Each query is the seed's ``TemporalMemoryManager.query(time_point=...)`` or
``query(time_range=(t, t + 30 days))``, half of them with an ``as_of`` in the past:

- ``index``: ``TemporalMemory.query`` — candidates from the in-memory interval index on
  valid time, then the catalog rows of those ids (transaction time checked in SQL),
  returned as records (what a user gets);
- ``scan``: ``MemoryCatalog.query(valid_between=..., as_of=...)`` — the same selection
  as one SQL statement without an index on valid time (a scan of every row);
- ``candidates``: the interval index alone (``TemporalMemory.candidates``: ids whose valid
  time overlaps, before transaction time is checked and rows are read).

Both answers are checked to hold the same record ids. Index build time (reading
every row's valid time from the catalog on the first query) is reported apart.

Run: ``.venv/bin/python bench/temporal_bench.py [--n 1000000] [--queries 100] [--json]``
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._sizes import add_size_flags, apply_size_flags
from memories.products import TEMPORAL_MEMORY

START = datetime(2005, 1, 1, tzinfo=UTC)
YEARS = 20
QUICK = {"n": 100_000, "queries": 50}
FULL = {"n": 1_000_000, "queries": 100}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_size_flags(ap)
    args = apply_size_flags(ap.parse_args(), QUICK, FULL)

    from memories.memory.catalog import MemoryCatalog
    from memories.memory.temporal import TemporalMemory
    from memories.store.paths import StorageRoot

    folder = Path(tempfile.mkdtemp(prefix="temporal-bench-"))
    path = folder / "catalog.sqlite"
    catalog = MemoryCatalog(path)
    t0 = time.perf_counter()
    _bulk_load(path, args.n, args.seed)
    load_s = time.perf_counter() - t0
    memory = TemporalMemory(catalog, StorageRoot(folder.as_uri()))

    t0 = time.perf_counter()
    memory.candidates(START, START)  # first query: reads every row's valid time
    build_s = time.perf_counter() - t0

    rng = np.random.default_rng([args.seed, 1])
    span_s = YEARS * 365.25 * 86400
    index_ms, scan_ms, cand_ms, sizes = [], [], [], []
    for q in range(args.queries):
        t = START + timedelta(seconds=float(rng.uniform(0, span_s)))
        as_of = NOW - timedelta(days=float(rng.uniform(0, 3 * 365))) if q % 2 else None
        point = q % 4 < 2
        between = (t, t) if point else (t, t + timedelta(days=30))
        t0 = time.perf_counter()
        memory.candidates(*between)
        cand_ms.append(1000 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        if point:
            got = memory.query(time_point=t, as_of=as_of)
        else:
            got = memory.query(time_range=between, as_of=as_of)
        index_ms.append(1000 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        want = catalog.query(None, valid_between=between, as_of=as_of)
        scan_ms.append(1000 * (time.perf_counter() - t0))
        if sorted(r.id for r in got) != sorted(r.id for r in want):
            raise SystemExit(f"query {q}: index and scan disagree ({len(got)} vs {len(want)} records)")
        sizes.append(len(got))
    out = {
        "n_records": args.n,
        "queries": args.queries,
        "bulk_load_s": round(load_s, 2),
        "index_build_s": round(build_s, 2),
        "records_per_query_median": float(np.median(sizes)),
        "index_ms": _percentiles(index_ms),
        "scan_ms": _percentiles(scan_ms),
        "candidates_ms": _percentiles(cand_ms),
        "speedup_p50": round(float(np.median(scan_ms) / np.median(index_ms)), 1),
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"{args.n} records, {args.queries} queries, median {out['records_per_query_median']:.0f} records each")
    print(f"bulk load {load_s:.1f} s, index build {build_s:.2f} s")
    for name in ("index", "scan", "candidates"):
        p = out[f"{name}_ms"]
        print(f"{name:>10}: p50 {p['p50']:8.2f} ms   p95 {p['p95']:8.2f} ms")  # type: ignore[index]
    print(f"speed-up at p50: {out['speedup_p50']}x")


def _percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p95": round(float(np.percentile(ms, 95)), 3)}


def _bulk_load(path: Path, n: int, seed: int) -> None:
    """``n`` seeded records straight into the catalog's table, in one transaction."""
    rng = np.random.default_rng(seed)
    span_us = int(YEARS * 365.25 * 86400e6)
    start_us = int((START - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)
    now_us = int((NOW - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)
    day = 86400 * 10**6
    vf = start_us + rng.integers(0, span_us, n)
    kind = rng.random(n)
    length = np.where(kind < 0.7, day - 1, np.where(kind < 0.99, 31 * day - 1, 365 * day))
    open_end = kind >= 0.9999
    vt = vf + length
    tf = vf + rng.integers(0, np.maximum(now_us - vf, 1))
    closed = rng.random(n) < 0.2
    tt = tf + rng.integers(1, np.maximum(now_us - tf, 2))

    def iso(us: np.ndarray) -> list[str]:
        return [s + "+00:00" for s in np.datetime_as_string(us.astype("datetime64[us]"), unit="us").tolist()]

    vf_s, vt_s, tf_s, tt_s = iso(vf), iso(vt), iso(tf), iso(tt)
    rows = (
        (
            TEMPORAL_MEMORY,
            f"item-{i:08d}",
            1,
            vf_s[i],
            None if open_end[i] else vt_s[i],
            tf_s[i],
            tt_s[i] if closed[i] else None,
            "file:///bench",
        )
        for i in range(n)
    )
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO materializations (asset, partition, version, valid_from, valid_to, transaction_from, "
            "transaction_to, uri) VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )
        con.execute("COMMIT")
    finally:
        con.close()


if __name__ == "__main__":
    main()
