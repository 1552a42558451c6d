"""Whole-tile statistics of a lazy raster, one row block at a time: memory bounded by a chunk.

A 10980 x 10980 px composite is 2.9 GB of float32 per variable; its statistics
(counts, valid fraction, medians) need not hold it. ``row_blocks`` walks a lazy
(dask-backed) array in blocks of its own chunk rows. Medians are exact, not
approximate: ``exact_median`` finds the two middle order statistics by a two-pass
radix selection on the float32 bit patterns (a 65536-bin histogram of the high
16 bits, then of the low 16 bits inside the chosen bins), then averages them as
``np.median`` does (in float32), so it returns ``np.median``'s value bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import xarray as xr

__all__ = ["exact_median", "row_blocks", "valid_rows"]

Blocks = Callable[[], Iterator[np.ndarray]]
"""A factory of the float32 value blocks of one median (called once per pass)."""


def row_blocks(var: xr.DataArray) -> Iterator[tuple[int, int]]:
    """(y0, y1) row ranges of ``var``: its dask chunks along ``y``, or all rows when it is in memory."""
    n = var.sizes["y"]
    chunks = getattr(var.data, "chunks", None)
    if chunks is None:
        yield 0, n
        return
    y0 = 0
    for h in chunks[var.dims.index("y")]:
        yield y0, y0 + h
        y0 += h


def valid_rows(refl: xr.DataArray, y0: int, y1: int) -> np.ndarray:
    """(y1 - y0, x) bool: rows [y0, y1) of a (band, y, x) array finite in every band, one band read at a time."""
    valid = np.ones((y1 - y0, refl.sizes["x"]), dtype=bool)
    for i in range(refl.sizes["band"]):
        valid &= np.isfinite(np.asarray(refl.isel(band=i, y=slice(y0, y1)).values))
    return valid


def exact_median(blocks: Blocks) -> float | None:
    """``np.median`` of all values the blocks yield (float32, NaN-free), in two passes; None when empty."""
    high = np.zeros(1 << 16, dtype=np.int64)
    n = 0
    for block in blocks():
        k = _keys(block)
        high += np.bincount(k >> 16, minlength=1 << 16)
        n += k.size
    if n == 0:
        return None
    ranks = sorted({(n - 1) // 2, n // 2})
    cum = np.cumsum(high)
    bins = [int(np.searchsorted(cum, r, side="right")) for r in ranks]
    low = {b: np.zeros(1 << 16, dtype=np.int64) for b in set(bins)}
    for blk in blocks():
        k = _keys(blk)
        top = k >> 16
        for b, hist in low.items():
            hist += np.bincount(k[top == b] & 0xFFFF, minlength=1 << 16)
    values = []
    for r, b in zip(ranks, bins, strict=True):
        before = int(cum[b - 1]) if b else 0
        j = int(np.searchsorted(np.cumsum(low[b]), r - before, side="right"))
        values.append(_value((b << 16) | j))
    a, c = values[0], values[-1]
    return float((a + c) / np.float32(2)) if len(ranks) == 2 else float(a)


def _keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint32 keys of float32 values (negative floats reversed below the positive)."""
    u = np.ascontiguousarray(values, dtype=np.float32).ravel().view(np.uint32)
    return np.where(u >> 31, ~u, u | np.uint32(0x80000000)).astype(np.int64)


def _value(key: int) -> np.float32:
    u = np.uint32(key)
    bits = u & np.uint32(0x7FFFFFFF) if key >> 31 else ~u
    return np.float32(np.array([bits], dtype=np.uint32).view(np.float32)[0])
