"""``load_scenes`` on ordinary COGs against a plain windowed rasterio read of the same pixels.

    .venv/bin/python bench/read_bench.py [--size 2048] [--repeat 3] [--json] [--quick]

Layouts: the real Slovenian Sentinel-2 COGs in ``../shared/data/s2_slovenia/cogs`` (100 x 101 px),
and files this bench writes the way real catalogs publish them: 1024 px internal tiles,
deflate and zstd, overviews, 10 m, 20 m and 60 m bands, and a scene in the neighbouring UTM
zone. For each layout: ours = ``load_scenes(...).dn`` computed (the tile grid, uint16, every
scene and band); plain = ``rasterio.open(f).read(1, window=...)`` of the same native pixels,
one file after another as a user writes it (a ``WarpedVRT`` read for the other zone), and the
same reads on ``--threads`` threads. Ratios are plain seconds over ours (>= 1: ours faster).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, context, timed

SLOVENIA = ROOT.parent / "shared" / "data" / "s2_slovenia" / "cogs"
SLOVENIA_BANDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12"}
QUICK_SIZE = 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048, help="tile side of the written files, px at 10 m")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SIZE} px: under a minute")
    args = p.parse_args()
    if args.quick:
        args.size, args.repeat = QUICK_SIZE, 2
    import dask

    dask.config.set(scheduler="threads", num_workers=args.threads)
    result: dict[str, Any] = {"bench": "read", **context(args.threads), "size_px": args.size, "layouts": {}}
    with tempfile.TemporaryDirectory(prefix="bench-read-") as tmp:
        layouts = {"slovenia_real": _slovenia(), **_written(Path(tmp), args.size)}
        for name, (items, grid, plain) in layouts.items():
            result["layouts"][name] = _measure(items, grid, plain, args.repeat, args.threads)
    ratios = [r["ratio_vs_plain"] for r in result["layouts"].values()]
    result["min_ratio_vs_plain"] = min(ratios)
    result["min_ratio_vs_plain_threaded"] = min(r["ratio_vs_plain_threaded"] for r in result["layouts"].values())
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.threads} threads, load average {result['load_average'][0]:.1f}, commit {result['commit']}")
    for name, r in result["layouts"].items():
        print(
            f"{name:22s} {r['mb']:8.1f} MB  ours {r['ours']['best_s']:.3f} s  plain {r['plain']['best_s']:.3f} s "
            f"(threaded {r['plain_threaded']['best_s']:.3f} s)  ours/plain speed {r['ratio_vs_plain']:.2f}x "
            f"(vs threaded {r['ratio_vs_plain_threaded']:.2f}x)"
        )


def _measure(items: list[dict[str, Any]], grid: Any, plain: list[Any], repeat: int, threads: int) -> dict[str, Any]:
    from memories.earth.cog_reader import forget_open_files
    from memories.earth.imagery import load_scenes
    from memories.earth.stac_profiles import get_profile

    bands = tuple(SLOVENIA_BANDS)

    def ours(_: int) -> None:
        forget_open_files()  # each run opens and decodes every file, as one partition's read does
        load_scenes(items, get_profile("embedded"), grid, bands, mask_kind="spectral").dn.compute()

    nbytes = sum(int(np.prod(job.shape)) * 2 for job in plain)
    out: dict[str, Any] = {"mb": nbytes / 1e6, "files": len(plain)}
    out["ours"] = timed(repeat, ours)
    out["plain"] = timed(repeat, lambda _: [job.read() for job in plain])
    with ThreadPoolExecutor(threads) as pool:
        out["plain_threaded"] = timed(repeat, lambda _: list(pool.map(lambda j: j.read(), plain)))
    out["ratio_vs_plain"] = out["plain"]["best_s"] / out["ours"]["best_s"]
    out["ratio_vs_plain_threaded"] = out["plain_threaded"]["best_s"] / out["ours"]["best_s"]
    return out


class _Read:
    """One plain read: a window of a file at its native resolution (or a WarpedVRT onto the grid)."""

    def __init__(self, path: str, grid: Any) -> None:
        import rasterio

        self.path, self.grid = path, grid
        with rasterio.open(path) as ds:
            self.warp = ds.crs.to_epsg() != grid.epsg
            if self.warp:
                self.window = None
                self.shape: tuple[int, ...] = grid.shape
            else:
                self.window = rasterio.windows.from_bounds(*grid.bounds, transform=ds.transform).round_offsets()
                self.window = self.window.round_lengths()
                self.shape = (int(self.window.height), int(self.window.width))

    def read(self) -> np.ndarray:
        import rasterio
        from rasterio.vrt import WarpedVRT

        with rasterio.open(self.path) as ds:
            if not self.warp:
                return ds.read(1, window=self.window, boundless=False)
            g = self.grid
            with WarpedVRT(ds, crs=g.crs, transform=g.transform, width=g.width, height=g.height) as vrt:
                return vrt.read(1)


def _slovenia() -> tuple[list[dict[str, Any]], Any, list[_Read]]:
    """Items over the five real L1C scenes; the grid is their own 10 m pixels."""
    import rasterio

    from memories.grid import TileGrid

    dates = sorted({p.name.split("_")[2] for p in SLOVENIA.glob("S2_L1C_*_B02.tif")})
    with rasterio.open(SLOVENIA / f"S2_L1C_{dates[0]}_B02.tif") as ds:
        t, h, w = ds.transform, ds.height, ds.width
        grid = TileGrid("33TVM", ds.crs.to_epsg(), t.c, t.f, w, h, abs(t.a))
    items = []
    for i, d in enumerate(dates):
        files = {b: str(SLOVENIA / f"S2_L1C_{d}_{code}.tif") for b, code in SLOVENIA_BANDS.items()}
        items.append(_item(f"slovenia-{i}", f"{d}T10:00:00Z", files, grid.epsg))
    return items, grid, [_Read(f, grid) for it in items for f in _hrefs(it)]


def _written(folder: Path, size: int) -> dict[str, tuple[list[dict[str, Any]], Any, list[_Read]]]:
    """Four scenes per layout on a ``size`` px grid in EPSG:32633."""
    from memories.grid import TileGrid

    grid = TileGrid("33TVM", 32633, 500_000.0, 5_100_000.0, size, size, 10.0)
    rng = np.random.default_rng(3)
    field = _field(rng, size)
    layouts = {
        "deflate_1024_overviews": {"compress": "deflate", "overviews": "AUTO"},
        "zstd_1024": {"compress": "zstd"},
        "10_20_60m_bands": {"compress": "deflate", "res": {"swir16": 20, "swir22": 60, "green": 20}},
        "neighbouring_utm_zone": {"compress": "deflate", "epsg": 32634},
    }
    out = {}
    for name, opts in layouts.items():
        items = []
        for i in range(4):
            files = _write_scene(folder / name / str(i), grid, field, rng, dict(opts))
            items.append(_item(f"{name}-{i}", f"2023-06-0{i + 1}T10:00:00Z", files, opts.get("epsg", 32633)))
        out[name] = (items, grid, [_Read(f, grid) for it in items for f in _hrefs(it)])
    return out


def _field(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth reflectance-like field (DN) with noise: compresses like real imagery, not like noise."""
    coarse = rng.integers(500, 4000, (size // 64 + 2, size // 64 + 2)).astype(np.float32)
    up = np.repeat(np.repeat(coarse, 64, 0), 64, 1)[:size, :size]
    return (up + rng.normal(0, 50, (size, size))).clip(1, 10000).astype(np.uint16)


def _write_scene(folder: Path, grid: Any, field: np.ndarray, rng: np.random.Generator, opts: dict[str, Any]) -> dict:
    import rasterio
    from rasterio.warp import transform_bounds

    folder.mkdir(parents=True, exist_ok=True)
    epsg = opts.pop("epsg", 32633)
    res = opts.pop("res", {})
    x0, y0 = grid.x_min, grid.y_max
    if epsg != grid.epsg:
        w, s, e, n = transform_bounds(grid.epsg, epsg, *grid.bounds)
        x0, y0 = float(w // 60 * 60) - 600, float(-(-n // 60) * 60) + 600
    files = {}
    for band in SLOVENIA_BANDS:
        r = res.get(band, 10)
        k = r // 10
        values = field[::k, ::k] if k > 1 else field
        if epsg != grid.epsg:
            values = np.pad(values, ((0, 240 // k * 10), (0, 240 // k * 10)), mode="edge")
        values = (values + rng.integers(0, 20, values.shape, dtype=np.uint16)).astype(np.uint16)
        path = folder / f"{band}.tif"
        with rasterio.open(
            path,
            "w",
            driver="COG",
            width=values.shape[1],
            height=values.shape[0],
            count=1,
            dtype="uint16",
            crs=f"EPSG:{epsg}",
            nodata=0,
            transform=rasterio.transform.from_origin(x0, y0, r, r),
            blocksize=1024,
            **opts,
        ) as dst:
            dst.write(values, 1)
        files[band] = str(path)
    return files


def _item(item_id: str, when: str, files: dict[str, str], epsg: int) -> dict[str, Any]:
    import rasterio

    assets = {}
    for band, path in files.items():
        with rasterio.open(path) as ds:
            t = ds.transform
            assets[band] = {
                "href": path,
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "proj:code": f"EPSG:{epsg}",
                "proj:shape": [ds.height, ds.width],
                "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
                "raster:bands": [{"data_type": "uint16", "nodata": 0, "scale": 0.0001, "offset": 0.0}],
            }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "links": [],
        "assets": assets,
        "geometry": None,
        "bbox": None,
        "properties": {"datetime": when, "proj:code": f"EPSG:{epsg}"},
    }


def _hrefs(item: dict[str, Any]) -> list[str]:
    return [a["href"] for a in item["assets"].values()]


if __name__ == "__main__":
    main()
