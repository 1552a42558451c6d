"""Peak memory of one tile-month's raster assets against the pixel count, each asset in its own process.

    .venv/bin/python bench/memory_bench.py [--sizes 1098,10980] [--json] [--quick]

Steps, as the assets run them (library calls; Dagster left out), on dask's threaded
scheduler with ``--threads`` threads:

- ``surface_reflectance``: ``load_scenes`` -> ``monthly_composite`` -> ``write_month``, then
  the asset's statistics and suite on the lazy written composite (``summarize_composite``: stats,
  band medians and the suite's sample in two reads of each variable, then ``validate_composite``);
- ``spectral_indices``: ``compute_indices`` of the stored composite -> ``write_month``;
- ``land_cover``: ``write_land_cover_month`` of the stored composite (read one row of model tiles at a
  time, maps written in strips of store chunks), then ``class_ndvi_summary`` strip by strip, as the
  asset does. The model is an untrained ``LandCoverUNet`` of ``--lc-width`` (memory and time do not
  depend on the weights) with ``--lc-passes`` Monte-Carlo passes (the asset's default is 8; each pass
  adds one batch of probabilities, about 25 MB, to the peak, not a scene's worth).

Sizes above
4096 px use ``memories.sample.upsampled`` (a tenth-size world, each pixel repeated 10 x 10);
``--scenes`` caps the scenes of the month. Prints peak RSS (``ru_maxrss`` of each step's
process) per step and size; the target is 3 GiB at 10980 px on 2 threads.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, context

from memories.products import LAND_COVER, SPECTRAL_INDICES, SURFACE_REFLECTANCE

STEPS = (SURFACE_REFLECTANCE, SPECTRAL_INDICES, LAND_COVER)
QUICK_SIZES = (512,)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1098,10980")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scenes", type=int, default=4, help="scenes of the month (fewer files to write)")
    p.add_argument("--world", default=str(ROOT / "data" / "bench_world"))
    p.add_argument("--lc-width", type=int, default=16, help="land-cover U-Net width (the asset's default: 16)")
    p.add_argument("--lc-passes", type=int, default=2, help="Monte-Carlo dropout passes of the land-cover step")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--step", help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    args = p.parse_args()
    sizes = QUICK_SIZES if args.quick else tuple(int(s) for s in args.sizes.split(","))
    if args.step:
        print(json.dumps(_step(args.step, sizes[0], args)))
        return
    result: dict[str, Any] = {
        "bench": "memory",
        **context(args.threads),
        "scenes": args.scenes,
        "lc_width": args.lc_width,
        "lc_passes": args.lc_passes,
        "runs": [],
    }
    for size in sizes:
        _world(size, args)  # generated outside the measured processes
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as store:
            for step in STEPS:
                cmd = [
                    sys.executable,
                    __file__,
                    "--step",
                    step,
                    "--sizes",
                    str(size),
                    "--store",
                    store,
                    "--threads",
                    str(args.threads),
                    "--scenes",
                    str(args.scenes),
                    "--world",
                    args.world,
                    "--lc-width",
                    str(args.lc_width),
                    "--lc-passes",
                    str(args.lc_passes),
                ]
                env = {**os.environ, "PYTHONPATH": str(ROOT)}
                out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if out.returncode:
                    result["runs"].append({"step": step, "size_px": size, "error": out.stderr[-1500:]})
                    continue
                result["runs"].append(json.loads(out.stdout.strip().splitlines()[-1]))
                if not args.json:
                    r = result["runs"][-1]
                    print(
                        f"{step:20s} {size:6d} px  {r['pixels'] / 1e6:7.1f} Mpx  peak RSS {r['peak_rss_gib']:.2f} GiB"
                        f"  {r['seconds']:.1f} s",
                        flush=True,
                    )
    peaks = [r["peak_rss_gib"] for r in result["runs"] if "peak_rss_gib" in r]
    result["max_peak_rss_gib"] = max(peaks) if peaks else None
    result["ratio_vs_limit"] = result["max_peak_rss_gib"] / 3.0 if peaks else None
    if args.json:
        print(json.dumps(result))


def _world(size: int, args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from memories.sample import SampleWorldSpec

    if size > 4096:
        from memories.sample.upsampled import upsampled_items

        spec = SampleWorldSpec(seed=1, n_tiles=1, start_month="2023-06", n_months=1, size_px=size // 10)
        return upsampled_items(spec, 10, Path(args.world) / f"up{size}", month="2023-06", max_scenes=args.scenes)
    from _common import bench_items

    grid, items = bench_items(size, args.world)
    return grid, [it.to_dict() for it in items][: args.scenes]


def _step(step: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    import dask

    from memories.earth.composite_summary import summarize_composite
    from memories.earth.expectations import COMPOSITE_SAMPLE_PX, validate_composite
    from memories.earth.imagery import load_scenes, monthly_composite
    from memories.earth.indices import compute_indices
    from memories.earth.stac_profiles import COMMON_BANDS, get_profile
    from memories.store.paths import StorageRoot
    from memories.store.raster import MonthlyRasterStore

    dask.config.set(scheduler="threads", num_workers=args.threads)
    grid, items = _world(size, args)
    root = StorageRoot(Path(args.store).as_uri())
    chunk = 2048
    phases: dict[str, float] = {}
    t = time.perf_counter()
    sr = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, "2023-06", chunk_px=chunk)
    if step == SURFACE_REFLECTANCE:
        scenes = load_scenes(items, get_profile("embedded"), grid, COMMON_BANDS, chunk_px=chunk)
        sr.write_month("2023-06", monthly_composite(scenes))
        phases["write_s"] = round(time.perf_counter() - t, 2)
        written = sr.read_month("2023-06", snapshot=sr.last_snapshot)
        summary = summarize_composite(written, sample_px=COMPOSITE_SAMPLE_PX)  # as the asset
        validate_composite(written, summary=summary)
        phases["stats_and_suite_s"] = round(time.perf_counter() - t - phases["write_s"], 2)
    elif step == SPECTRAL_INDICES:
        ix = MonthlyRasterStore(root, SPECTRAL_INDICES, grid, "2023-06", chunk_px=chunk)
        ix.write_month("2023-06", compute_indices(sr.read_month("2023-06")["reflectance"]))
    else:
        _land_cover(root, grid, sr, args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    return {
        "step": step,
        "size_px": size,
        "pixels": grid.width * grid.height,
        "scenes": len(items),
        "peak_rss_gib": peak / 2**30,
        "seconds": time.perf_counter() - t,
        **phases,
    }


def _land_cover(root: Any, grid: Any, sr: Any, args: argparse.Namespace) -> None:
    """The ``land_cover`` asset's work on the stored composite (its store chunks: the default 512 px)."""
    import torch

    from memories.ai.land_cover import LandCoverUNet
    from memories.ai.land_cover_maps import write_land_cover_month
    from memories.applications.index_series import class_ndvi_summary
    from memories.earth.stac_profiles import COMMON_BANDS
    from memories.store.raster import MonthlyRasterStore

    torch.set_num_threads(args.threads)
    bands = list(COMMON_BANDS)
    model = LandCoverUNet(
        len(bands), width=args.lc_width, band_mean=[0.1] * len(bands), band_std=[0.05] * len(bands), band_names=bands
    )
    lc = MonthlyRasterStore(root, LAND_COVER, grid, "2023-06")
    composite = sr.read_month("2023-06")["reflectance"]
    write_land_cover_month(model, composite.sel(band=bands), lc, "2023-06", passes=args.lc_passes, seed=0)
    class_ndvi_summary(composite, lc.read_month("2023-06", snapshot=lc.last_snapshot)["land_cover"])


if __name__ == "__main__":
    main()
