"""Monthly composite of one tile-month: this project's pipeline against two plain recipes and the
decode limit of the machine, on the same scenes, in one run.

    .venv/bin/python bench/composite_bench.py [--size 2048] [--repeat 3] [--json] [--quick]

- ours: ``load_scenes`` (direct COG reader) -> ``monthly_composite`` (SCL mask, median and IQR
  of DN, scaled once) -> ``MonthlyRasterStore.write_month`` (an Icechunk commit of reflectance,
  spread and both counts).
- stackstac: ``stackstac.stack`` with its defaults (float64, rescale) -> ``.where(scl clear)`` ->
  ``.median("time")`` -> ``to_zarr``.
- odc-stac: ``odc.stac.load`` (uint16, 1024 px chunks) -> ``.where(scl clear)`` ->
  ``.median("time")`` -> ``to_zarr`` (odc-stac is a bench-only dependency: ``pip install odc-stac``).
- the decode limit: plain rasterio decoding every block of every file the composite reads, on
  the same number of threads (``_common.decode_limit``).

All on dask's threaded scheduler with ``--threads`` threads. Prints best/median/worst of
``--repeat`` runs; ``--json`` prints one JSON object (ratios: the faster peer over ours, and ours
against the decode limit), with the commit and the load average at the start (the machine
may be shared: only ratios within one run compare).

Where the time went (py-spy, ``ours`` at 2048 px, 6 scenes, 2 threads, load average 11-15):

- before (commit 6744b6a): 39 % the per-pixel sort and gathers of the median/IQR (``np.sort``
  along a 6-long axis, ``take_along_axis``), 11 % zstd encoding of the written chunks, 8 % GDAL
  decoding, the rest dask's concatenation and rechunking of one-scene chunks and the stackstac
  reader;
- after: 27 % zstd (level 3, zarr's default) encoding of the 12 float32 and 2 uint8 arrays
  written, 23 % the median/IQR (now a sorting network on cache-sized strips,
  ``memories.earth.order_stats``, 6x less CPU than the sort, the same bits), 6 % GDAL
  decoding (``memories.earth.cog_reader``: each block once, into the chunk's buffer), 10 %
  imports (once), the rest dask and the SCL mask. Encoding one 2048 px float32 band costs
  0.23 s of CPU at zstd level 3 (0.085 s at level 1, 52 % larger): the write, not the decode,
  is now the floor, so ours cannot reach 50 % of the decode limit while the store compresses
  at level 3.

Bench-only dependencies (not the project's): ``pip install odc-stac py-spy``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, bench_items, context, decode_limit, timed

from memories.products import SURFACE_REFLECTANCE

BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
SCL_CLEAR = [4, 5, 6, 7, 11]
QUICK_SIZE = 512


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048, help="tile side in pixels (10 m)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--world", default=str(ROOT / "data" / "bench_world"), help="where the bench world is kept")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--chunk", type=int, default=None, help="spatial chunk, px (default: compute.chunk_px)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SIZE} px, 2 repeats: under a minute")
    p.add_argument("--no-odc", action="store_true", help="skip the odc-stac recipe")
    args = p.parse_args()
    if args.quick:
        args.size, args.repeat = QUICK_SIZE, 2
    result = run(args.size, args.repeat, args.threads, args.chunk, Path(args.world), odc=not args.no_odc)
    if args.json:
        print(json.dumps(result))
    else:
        _report(result)


def run(size: int, repeat: int, threads: int, chunk: int | None, world: Path, *, odc: bool = True) -> dict[str, Any]:
    """Time the recipes and the decode limit; the result as a JSON-ready dict."""
    import dask

    from memories.config import config

    ctx = context(threads)
    chunk = chunk or config.compute.chunk_px
    grid, items = bench_items(size, world)
    paths = [it.assets[k].href for it in items for k in (*BANDS, "scl")]
    in_bytes, decode_s = decode_limit(paths, threads)
    out = Path(tempfile.mkdtemp(prefix="bench-composite-"))
    dask.config.set(scheduler="threads", num_workers=threads)
    fns: dict[str, Any] = {
        "ours": lambda i: _ours(items, grid, out / f"ours{i}", chunk),
        "stackstac": lambda i: _stackstac(items, grid, out / f"stackstac{i}"),
    }
    missing_peer = None
    if odc:
        import importlib.util

        # find_spec of a submodule raises when its parent package is missing
        if importlib.util.find_spec("odc") is None or importlib.util.find_spec("odc.stac") is None:
            missing_peer = "odc-stac is not installed (a bench-only dependency: pip install odc-stac)"
        else:
            fns["odc_stac"] = lambda i: _odc(items, grid, out / f"odc{i}")
    try:
        # rounds interleave the recipes, so a load that changes during the run weighs on each alike
        rounds = [{name: timed(1, lambda _, f=f, i=i: f(i)) for name, f in fns.items()} for i in range(repeat)]
        recipes = {name: _merged([r[name] for r in rounds]) for name in fns}
        agree = _max_difference(out / "ours0", out / "stackstac0", grid)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    ours = recipes["ours"]["best_s"]
    peer = min((r["best_s"], name) for name, r in recipes.items() if name != "ours")
    for r in recipes.values():
        r["input_gbps"] = in_bytes / r["best_s"] / 1e9
    return {
        "bench": "composite",
        **ctx,
        "size_px": size,
        "chunk_px": chunk,
        "scenes": len(items),
        "input_gb": in_bytes / 1e9,
        "decode_limit": {"seconds": decode_s, "gbps": in_bytes / decode_s / 1e9},
        "recipes": recipes,
        "faster_peer": peer[1],
        **({"peer_not_run": {"odc_stac": missing_peer}} if missing_peer else {}),
        "ratio_vs_peer": peer[0] / ours,
        "fraction_of_decode_limit": decode_s / ours,
        "max_abs_difference_vs_stackstac": agree,
    }


def _merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One recipe's single-run timings of every round, as ``timed`` reports them."""
    import statistics

    times = [r["best_s"] for r in runs]
    return {"best_s": min(times), "median_s": statistics.median(times), "worst_s": max(times), "runs": len(times)}


def _ours(items: list[Any], grid: Any, path: Path, chunk: int) -> None:
    from memories.earth.cog_reader import forget_open_files
    from memories.earth.imagery import load_scenes, monthly_composite
    from memories.earth.stac_profiles import get_profile
    from memories.store.paths import StorageRoot
    from memories.store.raster import MonthlyRasterStore

    forget_open_files()  # no decoded blocks kept from the previous round: every file decoded, as the peers do
    scenes = load_scenes(items, get_profile("embedded"), grid, BANDS, chunk_px=chunk)
    store = MonthlyRasterStore(StorageRoot(path.as_uri()), SURFACE_REFLECTANCE, grid, "2023-06", chunk_px=chunk)
    store.write_month("2023-06", monthly_composite(scenes))


def _stackstac(items: list[Any], grid: Any, path: Path) -> None:
    import stackstac

    stack = stackstac.stack(items, assets=[*BANDS, "scl"], epsg=grid.epsg, resolution=10, bounds=grid.bounds)
    refl = stack.sel(band=list(BANDS)).where(stack.sel(band="scl").isin(SCL_CLEAR))
    comp = refl.median("time")
    comp.attrs = {}  # stackstac's RasterSpec attr is not JSON: every hand-written recipe needs this line
    comp = comp.drop_vars([c for c in comp.coords if c not in ("band", "x", "y")])
    comp.to_dataset(name="reflectance").to_zarr(path / "composite.zarr", mode="w", consolidated=False)


def _odc(items: list[Any], grid: Any, path: Path) -> None:
    import odc.stac

    ds = odc.stac.load(
        items,
        bands=[*BANDS, "scl"],
        crs=f"EPSG:{grid.epsg}",
        resolution=grid.resolution,
        x=(grid.bounds[0], grid.bounds[2]),
        y=(grid.bounds[1], grid.bounds[3]),
        chunks={"x": 1024, "y": 1024},
        groupby=None,
    )
    clear = ds["scl"].isin(SCL_CLEAR)
    comp = ds[list(BANDS)].where(clear).median("time")
    for v in comp.data_vars:
        comp[v].attrs = {}
        comp[v].encoding = {}
    comp = comp.drop_vars([c for c in comp.coords if c not in ("x", "y")])
    comp.to_zarr(path / "composite.zarr", mode="w", consolidated=False)


def _max_difference(ours: Path, plain: Path, grid: Any) -> float:
    """Largest |ours - stackstac's| over the tile, reflectance (stackstac rescales in float64)."""
    import xarray as xr

    from memories.store.paths import StorageRoot
    from memories.store.raster import MonthlyRasterStore

    a = MonthlyRasterStore(StorageRoot(ours.as_uri()), SURFACE_REFLECTANCE, grid, "2023-06").read_month("2023-06")
    b = xr.open_zarr(plain / "composite.zarr", consolidated=False)["reflectance"]
    d = np.abs(a["reflectance"].values - b.values.astype(np.float32))
    return float(np.nanmax(d))


def _report(r: dict[str, Any]) -> None:
    print(
        f"{r['scenes']} scenes x {len(BANDS)} bands + SCL, {r['size_px']} px tile, chunks {r['chunk_px']} px, "
        f"{r['threads']} threads on {r['cores']} cores, load average {r['load_average'][0]:.1f}, "
        f"commit {r['commit']}"
    )
    lim = r["decode_limit"]
    print(f"GDAL decode limit: {r['input_gb']:.3f} GB in {lim['seconds']:.2f} s = {lim['gbps']:.3f} GB/s")
    for name, t in r["recipes"].items():
        print(
            f"{name:10s} best {t['best_s']:7.2f} s  median {t['median_s']:7.2f}  worst {t['worst_s']:7.2f} "
            f"({t['runs']} runs)  {t['input_gbps']:.3f} GB/s of input"
        )
    print(f"ours vs the faster peer ({r['faster_peer']}): {r['ratio_vs_peer']:.2f}x")
    print(f"ours reaches {r['fraction_of_decode_limit']:.0%} of the GDAL decode limit")
    print(f"max |ours - stackstac| = {r['max_abs_difference_vs_stackstac']:.2e} reflectance")


if __name__ == "__main__":
    main()
