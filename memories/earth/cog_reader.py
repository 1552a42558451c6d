"""Single-band COGs onto a tile grid: each block decoded once, in parallel, into the output buffer.

``stack_cogs`` is a lazy (time, band, y, x) dask array with one task per band and
grid chunk. The task reads that window of every scene's file on a shared pool
of threads (GDAL releases the GIL while it decodes) straight into one
preallocated buffer: no per-scene arrays, no concatenation, no rechunking.

A file whose pixels lie on the grid (same CRS, north-up pixels of k grid pixels,
corners on the grid's corners) is read by a plain windowed read, each native
pixel repeated k x k: the block-aligned windows decode each COG block once.
Any other file (another UTM zone, a shifted or rotated grid, an internal mask)
is read as stackstac reads it, through a nearest-neighbour ``WarpedVRT`` onto
the grid at k times its pixel size, in the same windows, so both engines give
the same digital numbers. Either way a pixel the file marks as nodata, or that
lies outside the file, reads as 0 (the stacks' fill value).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from memories.grid import TileGrid

__all__ = ["READ_THREADS", "GridWindow", "forget_open_files", "read_pool", "stack_cogs"]

READ_THREADS = max(1, min(os.cpu_count() or 1, 16))
"""Threads of the shared read pool: one per core (decoding is CPU work), at most 16."""

OPEN_FILES_PER_THREAD = 64
"""Open datasets each read thread keeps (LRU), so a file is opened once per thread, not once per window."""

GDAL_BLOCK_CACHE_BYTES = 256 * 2**20
"""Most bytes GDAL keeps of decoded blocks while this module reads (unless ``GDAL_CACHEMAX`` is set).

Each block is decoded once (windows are block-aligned), so a cache holds pixels that are never read
again; only a warped read's window edges reread a block. GDAL's default, 5 % of the RAM, kept 1.2 GiB
of them after one 10980 px tile-month on a 24 GiB machine, a third of the ingest's peak memory.
"""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_open = threading.local()
_generation = 0
"""Bumped by :func:`forget_open_files`: a thread whose cache is of an older generation closes it first."""
_block_cache_bounded = False


def forget_open_files() -> None:
    """Make every read thread close the datasets it keeps open, at its next read.

    Kept datasets also keep GDAL's cache of decoded blocks, so a second read of the same
    window decodes nothing; a bench that times reads as a new partition meets them (each
    file opened and decoded once) calls this between runs.
    """
    global _generation
    with _pool_lock:
        _generation += 1


def read_pool() -> ThreadPoolExecutor:
    """The process's shared pool of read threads (``READ_THREADS``), created on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="cog-read")
        return _pool


@dataclass(frozen=True)
class GridWindow:
    """Rows [y0, y1) and columns [x0, x1) of a tile grid, grid pixels."""

    y0: int
    y1: int
    x0: int
    x1: int


def stack_cogs(
    hrefs: Sequence[Sequence[str]],
    factors: Sequence[int],
    grid: TileGrid,
    dtype: str,
    chunk_px: int,
) -> Any:
    """(time, band, y, x) lazy dask array of ``hrefs[t][b]`` on ``grid``, chunks (time, 1, chunk_px, chunk_px).

    ``factors[b]``: band b is read on the grid at ``factors[b]`` times its pixel size
    and each pixel repeated k x k (``imagery._native_factor``; 1: the grid itself).
    ``dtype``: the output dtype (GDAL converts as it decodes, as ``out_dtype`` does).
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    n_time, n_band = len(hrefs), len(factors)
    ys = _chunk_edges(grid.height, chunk_px)
    xs = _chunk_edges(grid.width, chunk_px)
    specs = [_Spec.of(grid, k) for k in factors]
    name = f"read-cogs-{uuid.uuid4().hex}"
    dsk: dict[Any, Any] = {}
    for b in range(n_band):
        files = tuple(hrefs[t][b] for t in range(n_time))
        for iy, (y0, y1) in enumerate(ys):
            for ix, (x0, x1) in enumerate(xs):
                dsk[(name, 0, b, iy, ix)] = (_read_band_window, files, specs[b], GridWindow(y0, y1, x0, x1), dtype)
    chunks = ((n_time,), (1,) * n_band, tuple(b - a for a, b in ys), tuple(b - a for a, b in xs))
    return da.Array(HighLevelGraph.from_collections(name, dsk, dependencies=()), name, chunks, dtype=dtype)


# -- internals ------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """The grid at k times its pixel size: what a band with factor k is read on (stackstac's RasterSpec)."""

    epsg: int
    k: int
    x_min: float
    y_max: float
    cell: float
    width: int
    height: int

    @classmethod
    def of(cls, grid: TileGrid, k: int) -> _Spec:
        # a grid whose side k does not divide ends in part of a native pixel: the k-grid covers it whole
        return cls(grid.epsg, k, grid.x_min, grid.y_max, grid.resolution * k, -(-grid.width // k), -(-grid.height // k))

    @property
    def transform(self) -> Any:
        from affine import Affine

        return Affine(self.cell, 0.0, self.x_min, 0.0, -self.cell, self.y_max)


def _chunk_edges(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(a, min(a + chunk, n)) for a in range(0, n, chunk)]


def _read_band_window(files: tuple[str, ...], spec: _Spec, window: GridWindow, dtype: str) -> np.ndarray:
    """(time, 1, h, w): one band's window of every scene, read in parallel into one buffer (0 where missing)."""
    out = np.zeros((len(files), 1, window.y1 - window.y0, window.x1 - window.x0), dtype=dtype)
    futures = [read_pool().submit(_read_into, href, spec, window, out[t, 0]) for t, href in enumerate(files)]
    for f in futures:
        f.result()  # the first failure propagates, naming its file
    return out


def _read_into(href: str, spec: _Spec, window: GridWindow, out: np.ndarray) -> None:
    """Read ``window`` of the grid from one file into ``out`` (h, w), zeros kept where the file has no data."""
    from rasterio.errors import RasterioError

    k = spec.k
    # the window on the k-grid; the grid's chunks are multiples of k where k > 1, so this is exact
    r0, r1 = window.y0 // k, -(-window.y1 // k)
    c0, c1 = window.x0 // k, -(-window.x1 // k)
    try:
        ds = _dataset(href)
        offset = _aligned_offset(ds, spec)
        if offset is None:
            native = _read_warped(ds, spec, r0, r1, c0, c1, out.dtype)
        elif k == 1:
            _read_direct(ds, offset, r0, r1, c0, c1, out)
            return
        else:
            native = np.zeros((r1 - r0, c1 - c0), dtype=out.dtype)
            _read_direct(ds, offset, r0, r1, c0, c1, native)
    except RasterioError as e:
        raise RuntimeError(f"error reading rows {r0}-{r1}, columns {c0}-{c1} of {href!r}: {e}") from e
    dy, dx = window.y0 - r0 * k, window.x0 - c0 * k
    h, w = out.shape
    if dy == 0 and dx == 0 and h % k == 0 and w % k == 0:
        out.reshape(h // k, k, w // k, k)[...] = native[:, None, :, None]
    else:
        out[...] = np.repeat(np.repeat(native, k, axis=0), k, axis=1)[dy : dy + h, dx : dx + w]


def _aligned_offset(ds: Any, spec: _Spec) -> tuple[int, int] | None:
    """(row, col) of the spec's pixel (0, 0) in the file when a plain windowed read gives stackstac's values.

    That needs: the spec's CRS, north-up pixels of exactly the spec's size, corners on
    the spec's corners, and a nodata policy that reads as the fill value (nodata 0 or
    none, no internal mask). Else None: the file goes through a WarpedVRT.
    """
    from rasterio.enums import MaskFlags

    t = ds.transform
    if ds.count != 1 or ds.crs is None or ds.crs.to_epsg() != spec.epsg:
        return None
    if t.b != 0 or t.d != 0 or t.a != spec.cell or t.e != -spec.cell:
        return None
    if ds.nodata not in (None, 0) or ds.mask_flag_enums[0] not in ([MaskFlags.nodata], [MaskFlags.all_valid]):
        return None
    col, row = (spec.x_min - t.c) / spec.cell, (t.f - spec.y_max) / spec.cell
    if col != int(col) or row != int(row):
        return None
    return int(row), int(col)


def _read_direct(ds: Any, offset: tuple[int, int], r0: int, r1: int, c0: int, c1: int, out: np.ndarray) -> None:
    """Rows [r0, r1) x columns [c0, c1) of the spec grid from the file at ``offset``, into ``out``."""
    from rasterio.windows import Window

    row, col = offset
    fr0, fr1 = max(r0 + row, 0), min(r1 + row, ds.height)
    fc0, fc1 = max(c0 + col, 0), min(c1 + col, ds.width)
    if fr0 >= fr1 or fc0 >= fc1:
        return  # the file does not reach this window
    view = out[fr0 - row - r0 : fr1 - row - r0, fc0 - col - c0 : fc1 - col - c0]
    win = Window(fc0, fr0, fc1 - fc0, fr1 - fr0)
    if view.flags.c_contiguous:
        ds.read(1, window=win, out=view)
    else:
        view[...] = ds.read(1, window=win, out_dtype=out.dtype)


def _read_warped(ds: Any, spec: _Spec, r0: int, r1: int, c0: int, c1: int, dtype: np.dtype) -> np.ndarray:
    """stackstac's read of a window of the spec grid: a nearest WarpedVRT, masked, filled with 0."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    params = {"crs": spec.epsg, "transform": spec.transform, "height": spec.height, "width": spec.width}
    same = {
        "crs": ds.crs.to_epsg() if ds.crs else None,
        "transform": ds.transform,
        "height": ds.height,
        "width": ds.width,
    }
    win = Window(c0, r0, c1 - c0, r1 - r0)
    if same == params:
        result = ds.read(window=win, out_dtype=dtype, masked=True)
    else:
        with WarpedVRT(ds, sharing=False, resampling=Resampling.nearest, add_alpha=ds.nodata is None, **params) as vrt:
            result = vrt.read(window=win, out_dtype=dtype, masked=True)
    if result.shape[0] == 2:  # the alpha band of a file without nodata marks what lies outside it
        result = np.ma.masked_array(result[0], mask=result[1] == 0)
    else:
        result = result[0]
    return np.ma.filled(result, fill_value=0).astype(dtype, copy=False)


def _bound_block_cache() -> None:
    """Lower GDAL's block cache of this process to ``GDAL_BLOCK_CACHE_BYTES``, once, unless the user
    chose one (``GDAL_CACHEMAX`` in the environment) or it is smaller already. In the reading process:
    a dask worker of a cluster bounds its own."""
    global _block_cache_bounded
    if _block_cache_bounded:
        return
    from rasterio.env import get_gdal_config, set_gdal_config

    with _pool_lock:
        if not _block_cache_bounded:
            current = get_gdal_config("GDAL_CACHEMAX")
            if "GDAL_CACHEMAX" not in os.environ and (not isinstance(current, int) or current > GDAL_BLOCK_CACHE_BYTES):
                set_gdal_config("GDAL_CACHEMAX", GDAL_BLOCK_CACHE_BYTES)
            _block_cache_bounded = True


def _dataset(href: str) -> Any:
    """This thread's open dataset of ``href`` (kept open, LRU; a rewritten local file is opened again)."""
    import rasterio

    _bound_block_cache()

    cache: OrderedDict[tuple[Any, ...], Any] | None = getattr(_open, "cache", None)
    if cache is None or _open.generation != _generation:  # first read of this thread, or forget_open_files
        for kept in (cache or {}).values():
            kept.close()
        cache = _open.cache = OrderedDict()
        _open.generation = _generation
    try:
        st = os.stat(href)
        key: tuple[Any, ...] = (href, st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        key = (href,)  # a remote href (/vsicurl/, s3://): GDAL reads it; no stat to key on
    ds = cache.get(key)
    if ds is not None:
        cache.move_to_end(key)
        return ds
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        ds = rasterio.open(href, sharing=False)
    cache[key] = ds
    while len(cache) > OPEN_FILES_PER_THREAD:
        cache.popitem(last=False)[1].close()
    return ds
