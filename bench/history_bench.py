"""Cost of an environmental analysis against the length of the memory's history (issue 13 item 4).

Builds a memory of one small tile with 24 and with 96 months of ``spectral_indices`` and
``land_cover`` (synthetic: four land-cover blocks with an annual NDVI cycle, a pond, a
clear-cut in the last year), recorded in a real SQLite catalog as the assets record them,
with the per-month summaries the assets keep (``--old-store``: records without them, as
written before the summaries existed, so the analysis computes them from the rasters).
Then times ``EnvironmentalMonitor(view).analyze`` of the first and of the last month of
each store, each on a fresh :class:`MemoryView` (no cache carried between runs), the four analyses
in turn each round so that a drift of the machine's load falls on all of them alike.

The number to read is ``last_96_vs_last_24``: the analysis of month 96 over that of month
24 (the same rules: a reference month a year back, the first month, anomaly fits). Flat in
history is <= 1.1. The stores' last 24 months hold the same values (noise seeded by the distance from
the last month) over the same calendar months (every store ends in :data:`END`), so the anomaly fits of
their last months iterate alike. ``last_vs_first`` per store compares with the first month, which has no
reference month and no anomaly fit, so it is cheaper by construction.

Run: ``.venv/bin/python bench/history_bench.py [--months 24 96] [--size-px 128] [--repeat 3] [--old-store] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._common import context
from bench._sizes import add_size_flags, apply_size_flags

QUICK = {"months": [24, 96], "size_px": 64, "repeat": 7}
FULL = {"months": [24, 96], "size_px": 256, "repeat": 9}
END = "2022-12"
"""Every store ends with this month: the last months of two stores are the same calendar months."""
TILE = "33TVM"


def first_month(n_months: int) -> str:
    """The first month of a store of ``n_months`` months ending with :data:`END`."""
    from memories.months import add_months, month_key, parse_month

    return month_key(add_months(parse_month(END), 1 - n_months))


def build_store(folder: Path, n_months: int, size_px: int, *, summaries: bool = True) -> Any:
    """A memory of ``n_months`` months of one tile under ``folder``: its :class:`MemoryView`'s parts."""
    import xarray as xr

    from memories.applications.index_series import INDEX_SUMMARY, class_ndvi_summary, index_summary
    from memories.classes import CLASS_BY_NAME
    from memories.grid import TileGrid
    from memories.memory.catalog import MemoryCatalog
    from memories.months import add_months, month_key, month_range, parse_month
    from memories.products import LAND_COVER, SPECTRAL_INDICES
    from memories.store.paths import StorageRoot
    from memories.store.raster import MonthlyRasterStore

    grid = TileGrid(tile_id=TILE, epsg=32633, x_min=500_000.0, y_max=5_000_000.0, width=size_px, height=size_px)
    root = StorageRoot((folder / "store").as_uri())
    catalog = MemoryCatalog.open(folder / "catalog.sqlite")
    start = first_month(n_months)
    si = MonthlyRasterStore(root, SPECTRAL_INDICES, grid, start, chunk_px=size_px)
    lc = MonthlyRasterStore(root, LAND_COVER, grid, start, chunk_px=size_px)
    half = size_px // 2
    base = np.zeros(grid.shape, np.uint8)
    base[:half, :half] = CLASS_BY_NAME["forest"].code
    base[:half, half:] = CLASS_BY_NAME["cropland"].code
    base[half:, :half] = CLASS_BY_NAME["grassland"].code
    base[half:, half:] = CLASS_BY_NAME["built-up"].code
    q = size_px // 8
    base[half + q : half + 2 * q, half + q : half + 2 * q] = CLASS_BY_NAME["water"].code
    ndvi_of = {"forest": 0.75, "cropland": 0.5, "grassland": 0.55, "built-up": 0.15, "water": -0.3}
    cut = (slice(q, 2 * q), slice(q, 3 * q))
    for i in range(n_months):
        month = month_key(add_months(parse_month(start), i))
        classes = base.copy()
        if i >= n_months - 10:
            classes[cut] = CLASS_BY_NAME["bare soil"].code
        season = 0.15 * np.sin(2 * np.pi * (i % 12) / 12)
        ndvi = np.full(grid.shape, 0.2, np.float32)
        for name, value in ndvi_of.items():
            ndvi[classes == CLASS_BY_NAME[name].code] = value + (season if name in ("cropland", "grassland") else 0)
        # Noise seeded by the month's distance from the last one: every store ends with the same 24 months (the
        # phase of the annual cycle too, stores differ by whole years), so the last month's analysis does the same
        # fits on the same values and the ratio of two stores measures their history only.
        rng = np.random.default_rng(n_months - i)
        ndvi += rng.normal(0, 0.03, grid.shape).astype(np.float32)
        ndvi[rng.random(grid.shape) < 0.05] = np.nan  # cloud gaps
        ndwi = np.where(classes == CLASS_BY_NAME["water"].code, 0.4, -0.4 - 0.3 * ndvi).astype(np.float32)
        ndwi[np.isnan(ndvi)] = np.nan
        nbr = (0.8 * ndvi - 0.05).astype(np.float32)
        evi = (1.1 * ndvi).astype(np.float32)
        ds = xr.Dataset({k: (("y", "x"), v) for k, v in (("ndvi", ndvi), ("ndwi", ndwi), ("evi", evi), ("nbr", nbr))})
        si.write_month(month, ds)
        written = si.read_month(month, snapshot=si.last_snapshot).compute()
        si_stats: dict[str, Any] = {INDEX_SUMMARY: index_summary(written)} if summaries else {}
        _record(catalog, SPECTRAL_INDICES, si.uri, grid, month, si_stats, si.last_snapshot, month_range)
        zeros = np.zeros(grid.shape, np.float32)
        lc.write_month(
            month,
            xr.Dataset(
                {
                    "land_cover": (("y", "x"), classes),
                    "confidence": (("y", "x"), zeros + 1),
                    "variance": (("y", "x"), zeros),
                    "entropy": (("y", "x"), zeros),
                }
            ),
        )
        lc_stats: dict[str, Any] = {"model_id": "truth"}
        if summaries:
            lc_stats.update(class_ndvi_summary(written["ndvi"].values, classes))
        _record(catalog, LAND_COVER, lc.uri, grid, month, lc_stats, lc.last_snapshot, month_range)
    return root, catalog


def _record(catalog: Any, asset: str, uri: str, grid: Any, month: str, stats: dict, version: Any, rng: Any) -> None:
    valid_from, valid_to = rng(month)
    catalog.record(
        asset=asset,
        uri=uri,
        tile=grid.tile_id,
        partition=month,
        valid_from=valid_from,
        valid_to=valid_to,
        crs=grid.crs,
        bbox_wgs84=grid.bbox_wgs84,
        stats=stats,
        run_id="history-bench",
        version_id=version,
    )


def analysis_runner(root: Any, catalog: Any, month: str, *, summaries: bool) -> Callable[[int], Any]:
    """A warmed ``EnvironmentalMonitor(view).analyze(TILE, month)``, a fresh view each call.

    Raises:
        RuntimeError: the analysis read its series other than the store was built for (``summaries``: from the
            records' month summaries, else from the rasters), so the figure would time the wrong path.
    """
    from memories.applications.environmental import EnvironmentalMonitor
    from memories.memory.temporal import TemporalMemory
    from memories.memory.view import MemoryView
    from memories.products import SPECTRAL_INDICES

    def run(_: int) -> Any:
        return EnvironmentalMonitor(MemoryView(TemporalMemory(catalog, root))).analyze(TILE, month)

    # The warm-up keeps imports (statsmodels, scipy) and the first catalog connection outside the timing.
    source = run(0).sources[f"{SPECTRAL_INDICES} series"]
    if ("computed from their rasters" in source) == summaries:
        raise RuntimeError(f"the {month} analysis read its series as {source!r}; the store was built with {summaries=}")
    return run


def time_interleaved(runners: dict[str, Callable[[int], Any]], repeat: int) -> dict[str, dict[str, Any]]:
    """Seconds of each runner, run in turn ``repeat`` rounds, so a drift of the machine's load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(repeat):
        for name, run in runners.items():
            t = time.perf_counter()
            run(i)
            times[name].append(time.perf_counter() - t)
    return {
        name: {
            "best_s": round(min(ts), 4),
            "median_s": round(statistics.median(ts), 4),
            "worst_s": round(max(ts), 4),
            "runs": len(ts),
        }
        for name, ts in times.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--months", type=int, nargs="+", default=[24, 96], help="history lengths of the stores")
    ap.add_argument("--size-px", type=int, default=128, help="tile side in pixels (10 m)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per analysis (the median is compared)")
    ap.add_argument("--old-store", action="store_true", help="records without the per-month summaries")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_size_flags(ap)
    args = apply_size_flags(ap.parse_args(), QUICK, FULL)

    result: dict[str, Any] = {
        "size_px": args.size_px,
        "repeat": args.repeat,
        "store": "old (no summaries)" if args.old_store else "summaries in the records",
        **context(threads=1),
        "stores": {},
    }
    summaries = not args.old_store
    runners: dict[str, Callable[[int], Any]] = {}
    for n in args.months:
        folder = Path(tempfile.mkdtemp(prefix=f"history-bench-{n}-"))
        t0 = time.perf_counter()
        root, catalog = build_store(folder, n, args.size_px, summaries=summaries)
        result["stores"][str(n)] = {
            "months": n,
            "build_s": round(time.perf_counter() - t0, 1),
            "first_month": first_month(n),
            "last_month": END,
        }
        runners[f"{n}/first"] = analysis_runner(root, catalog, first_month(n), summaries=summaries)
        runners[f"{n}/last"] = analysis_runner(root, catalog, END, summaries=summaries)
    timings = time_interleaved(runners, args.repeat)
    for n in args.months:
        store = result["stores"][str(n)]
        store["first"], store["last"] = timings[f"{n}/first"], timings[f"{n}/last"]
        store["last_vs_first"] = round(store["last"]["median_s"] / store["first"]["median_s"], 3)
    sizes = sorted(args.months)
    if len(sizes) >= 2:
        lo, hi = result["stores"][str(sizes[0])], result["stores"][str(sizes[-1])]
        result[f"last_{sizes[-1]}_vs_last_{sizes[0]}"] = round(hi["last"]["median_s"] / lo["last"]["median_s"], 3)
    result["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(result))
        return
    for n, s in result["stores"].items():
        print(
            f"{n:>3} months: analyze first {s['first']['median_s']:.3f} s, last {s['last']['median_s']:.3f} s "
            f"(last/first {s['last_vs_first']}), store built in {s['build_s']} s"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
