"""Monthly composite + indices for one tile-month: this project's pipeline against the
plain recipe a user writes by hand, on the same scenes, in one run.

    .venv/bin/python bench/composite_bench.py [--size 2048] [--repeat 3]

Ours: ``load_scenes`` (uint16 read, scale/offset from raster:bands)
-> ``monthly_composite`` (SCL mask, median of DN, scaled once) -> ``MonthlyRasterStore.write_month``
(Zarr v3 slice) -> indices -> Zarr. Plain: ``stackstac.stack`` with its defaults
(float64, rescale) -> ``.where(scl mask)`` -> ``.median("time")`` -> ``to_zarr``,
then NDVI/NDWI/EVI -> ``to_zarr``. Both on dask's threaded scheduler. Prints wall
times (best of --repeat), the ratio, input GB/s against two limits of the machine
(GDAL's decode rate of the same files times the threads, and the memory-copy
bandwidth), and checks that both composites agree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048, help="tile side in pixels (10 m)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--world", default=str(ROOT / "data" / "bench_world"), help="where the bench world is kept")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--chunk", type=int, default=None, help="spatial chunk, px (default: compute.chunk_px)")
    args = p.parse_args()

    import dask
    import pystac

    from memories.config import config

    chunk = args.chunk or config.compute.chunk_px
    from memories.sample import SampleWorld, SampleWorldSpec

    spec = SampleWorldSpec(seed=1, n_tiles=1, start_month="2023-06", n_months=2, size_px=args.size)
    t = time.perf_counter()
    world = SampleWorld.ensure(spec, Path(args.world) / f"px{args.size}")
    print(f"bench world {args.size} px ready in {time.perf_counter() - t:.1f} s")
    grid = world.tiles[0]
    fc = json.loads(Path(world.items_path).read_text())
    items = [pystac.Item.from_dict(f) for f in fc["features"] if f["properties"]["datetime"].startswith("2023-06")]
    n = len(items)
    hrefs = [it.assets[k].href for it in items for k in (*BANDS, "scl")]
    in_bytes, decode_s = _decode_all(hrefs)
    print(f"chunks: ours {chunk} px (compute.chunk_px), plain stackstac's default 1024 px")
    print(
        f"{n} scenes x {len(BANDS)} bands + SCL on a {grid.width} x {grid.height} px tile: "
        f"{in_bytes / 1e9:.3f} GB of digital numbers at native resolution"
    )
    decode_limit = in_bytes / decode_s * args.threads / 1e9
    print(
        f"GDAL decode of those files, one thread: {decode_s:.2f} s -> limit with {args.threads} threads "
        f"{decode_limit:.3f} GB/s"
    )

    out = Path(tempfile.mkdtemp(prefix="bench-"))
    dask.config.set(scheduler="threads", num_workers=args.threads)
    try:
        ours = _best(args.repeat, lambda i: _ours(items, grid, out / f"ours{i}", chunk))
        plain = _best(args.repeat, lambda i: _plain(items, grid, out / f"plain{i}"))
        agree = _compare(out / "ours0", out / "plain0", grid)
        bw = _memcpy_gbps()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print()
    print(f"ours : {ours:7.2f} s   {in_bytes / ours / 1e9:6.3f} GB/s of input")
    print(f"plain: {plain:7.2f} s   {in_bytes / plain / 1e9:6.3f} GB/s of input")
    print(f"ratio plain/ours: {plain / ours:.2f}x  (above 1: ours is faster)")
    print(f"ours reaches {in_bytes / ours / 1e9 / decode_limit:.0%} of the GDAL decode limit")
    print(
        f"memory-copy bandwidth (numpy copyto, 1 GiB): {bw:.1f} GB/s; ours reads input at "
        f"{in_bytes / ours / 1e9 / bw:.2%} of it"
    )
    print(f"composites agree: max |ours - plain| = {agree:.2e} reflectance")


def _ours(items, grid, path: Path, chunk: int) -> None:  # type: ignore[no-untyped-def]
    from memories.earth.catalogs import get_profile
    from memories.earth.imagery import load_scenes, monthly_composite
    from memories.earth.indices import compute_indices
    from memories.store.paths import StorageRoot
    from memories.store.raster import MonthlyRasterStore

    root = StorageRoot(path.as_uri())
    scenes = load_scenes(items, get_profile("embedded"), grid, BANDS, chunk_px=chunk)
    sr = MonthlyRasterStore(root, "surface_reflectance", grid, "2023-06", chunk_px=chunk)
    sr.write_month("2023-06", monthly_composite(scenes))
    ix = MonthlyRasterStore(root, "spectral_indices", grid, "2023-06", chunk_px=chunk)
    ix.write_month("2023-06", compute_indices(sr.read_month("2023-06")["reflectance"], ("ndvi", "ndwi", "evi")))


def _plain(items, grid, path: Path) -> None:  # type: ignore[no-untyped-def]
    import stackstac

    stack = stackstac.stack(items, assets=[*BANDS, "scl"], epsg=grid.epsg, resolution=10, bounds=grid.bounds)
    scl = stack.sel(band="scl")
    refl = stack.sel(band=list(BANDS)).where(scl.isin([4, 5, 6, 7, 11]))
    comp = refl.median("time")
    comp.attrs = {}  # stackstac's RasterSpec attr is not JSON: every hand-written recipe needs this line
    comp.to_dataset(name="reflectance").drop_vars([c for c in comp.coords if c not in ("band", "x", "y")]).to_zarr(
        path / "composite.zarr", mode="w", consolidated=False
    )
    import xarray as xr

    c = xr.open_zarr(path / "composite.zarr", consolidated=False)["reflectance"]
    red, nir, green, blue = (c.sel(band=b) for b in ("red", "nir", "green", "blue"))
    xr.Dataset(
        {
            "ndvi": (nir - red) / (nir + red),
            "ndwi": (green - nir) / (green + nir),
            "evi": 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1),
        }
    ).drop_vars("band", errors="ignore").to_zarr(path / "indices.zarr", mode="w", consolidated=False)


def _compare(ours: Path, plain: Path, grid) -> float:  # type: ignore[no-untyped-def]
    import xarray as xr

    from memories.store.paths import StorageRoot
    from memories.store.raster import MonthlyRasterStore

    a = MonthlyRasterStore(StorageRoot(ours.as_uri()), "surface_reflectance", grid, "2023-06").read_month("2023-06")
    b = xr.open_zarr(plain / "composite.zarr", consolidated=False)["reflectance"]
    d = np.abs(a["reflectance"].values - b.values.astype(np.float32))
    return float(np.nanmax(d))


def _decode_all(hrefs: list[str]) -> tuple[int, float]:
    """Bytes of all files' pixels and the best-of-2 time to decode them all on one thread."""
    import rasterio

    best, nbytes = float("inf"), 0
    for _ in range(2):
        t, nbytes = time.perf_counter(), 0
        for h in hrefs:
            with rasterio.open(h) as ds:
                nbytes += ds.read(1).nbytes
        best = min(best, time.perf_counter() - t)
    return nbytes, best


def _best(repeat: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return min(times)


def _memcpy_gbps() -> float:
    src = np.ones(1 << 27, dtype=np.float64)  # 1 GiB
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(3))
    return 2 * src.nbytes / best / 1e9  # read + write


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
