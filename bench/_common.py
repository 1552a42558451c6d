"""Helpers the benches share: the bench world, the GDAL decode limit, timing, the run's context."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def bench_items(size: int, world: str | Path, month: str = "2023-06") -> tuple[Any, list[Any]]:
    """(grid, pystac items of ``month``) of a one-tile sample world of ``size`` px, generated once under ``world``."""
    import pystac

    from memories.sample import SampleWorld, SampleWorldSpec

    spec = SampleWorldSpec(seed=1, n_tiles=1, start_month="2023-06", n_months=2, size_px=size)
    w = SampleWorld.ensure(spec, Path(world) / f"px{size}")
    fc = json.loads(Path(w.items_path).read_text())
    items = [pystac.Item.from_dict(f) for f in fc["features"] if f["properties"]["datetime"].startswith(month)]
    return w.tiles[0], items


def decode_limit(paths: Sequence[str], threads: int, repeat: int = 2) -> tuple[int, float]:
    """(bytes of decoded pixels, best seconds) to decode every block of band 1 of every file at full
    resolution with plain rasterio on ``threads`` threads (each thread keeps its own open datasets)."""
    import threading

    import rasterio

    local = threading.local()
    jobs: list[tuple[str, Any]] = []
    nbytes = 0
    for p in paths:
        with rasterio.open(p) as ds:
            for _, w in ds.block_windows(1):
                jobs.append((p, w))
                nbytes += int(w.width * w.height) * _itemsize(ds)

    def read(job: tuple[str, Any]) -> None:
        cache = getattr(local, "cache", None)
        if cache is None:
            cache = local.cache = {}
        ds = cache.get(job[0])
        if ds is None:
            ds = cache[job[0]] = rasterio.open(job[0])
        ds.read(1, window=job[1])

    best = float("inf")
    for _ in range(repeat):
        local = threading.local()
        t = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(read, jobs, chunksize=8))
        best = min(best, time.perf_counter() - t)
    return nbytes, best


def _itemsize(ds: Any) -> int:
    import numpy as np

    return int(np.dtype(ds.dtypes[0]).itemsize)


def timed(repeat: int, fn: Callable[[int], Any]) -> dict[str, Any]:
    """Run ``fn(i)`` ``repeat`` times: best, median, worst seconds and the count."""
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return {"best_s": min(times), "median_s": statistics.median(times), "worst_s": max(times), "runs": len(times)}


def context(threads: int) -> dict[str, Any]:
    """What a reader needs to compare runs: commit, threads, cores, load average at the start."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {
        "commit": commit + ("+dirty" if dirty else ""),
        "threads": threads,
        "cores": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }
