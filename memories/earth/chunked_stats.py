"""Whole-tile statistics of a lazy raster, one row block at a time: memory bounded by a chunk.

A 10980 x 10980 px composite is 2.9 GB of float32 per variable; its statistics
(counts, valid fraction, medians) need not hold it. ``row_blocks`` walks a lazy
(dask-backed) array in blocks of its own chunk rows. Medians are exact, not
approximate: ``exact_median`` finds the two middle order statistics by a two-pass
radix selection on the float32 bit patterns (a 65536-bin histogram of the high
16 bits, then of the low 16 bits inside the chosen bins), then averages them as
``np.median`` does (in float32), so it returns ``np.median``'s value bit for bit (of a median of
zero, the sign may differ: -0.0 == 0.0, and ``np.median``'s partition picks either).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import xarray as xr

__all__ = ["TwoPassMedian", "exact_median", "row_blocks"]

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


def exact_median(blocks: Blocks) -> float | None:
    """``np.median`` of all values the blocks yield (float32, NaN-free), in two passes; None when empty."""
    median = TwoPassMedian()
    for block in blocks():
        median.count(block)
    for block in blocks():
        median.refine(block)
    return median.value()


class TwoPassMedian:
    """``np.median`` of values seen twice: every block once by :meth:`count`, then the same blocks (in any
    order) by :meth:`refine`; :meth:`value` is then ``np.median`` of them all, bit for bit (None when empty).

    Several medians can share the passes of one reader: each pass over the data feeds every median.
    """

    def __init__(self) -> None:
        self._high = np.zeros(1 << 16, dtype=np.int64)
        self._n = 0
        self._low: dict[int, np.ndarray] | None = None

    def count(self, block: np.ndarray) -> None:
        """First pass: a block of float32, NaN-free values."""
        if self._low is not None:
            raise RuntimeError("TwoPassMedian.count after refine: the first pass is over")
        _, high = _high_keys(block)
        self._high += np.bincount(high, minlength=1 << 16)
        self._n += high.size

    def refine(self, block: np.ndarray) -> None:
        """Second pass: the same values as the first pass, block by block."""
        if self._n == 0:
            return
        if self._low is None:
            self._cum = np.cumsum(self._high)
            self._ranks = sorted({(self._n - 1) // 2, self._n // 2})
            self._bins = [int(np.searchsorted(self._cum, r, side="right")) for r in self._ranks]
            self._low = {b: np.zeros(1 << 16, dtype=np.int64) for b in set(self._bins)}
        u, high = _high_keys(block)
        for b, hist in self._low.items():
            hist += np.bincount(_low_keys(u[high == b]), minlength=1 << 16)

    def value(self) -> float | None:
        """The median, after both passes; None when no value was counted."""
        if self._n == 0:
            return None
        if self._low is None:
            raise RuntimeError("TwoPassMedian.value before refine: run the second pass first")
        values = []
        for r, b in zip(self._ranks, self._bins, strict=True):
            before = int(self._cum[b - 1]) if b else 0
            j = int(np.searchsorted(np.cumsum(self._low[b]), r - before, side="right"))
            values.append(_value((b << 16) | j))
        a, c = values[0], values[-1]
        return float((a + c) / np.float32(2)) if len(self._ranks) == 2 else float(a)


# Order-preserving uint32 keys of float32 values: the bits with the sign bit set for positive floats, all bits
# flipped for negative ones (so negative floats sort reversed, below the positive). Each pass needs only one
# half of a key, computed in 16 bits (a 22 Mpx block: 0.1 s, against 0.7 s for whole int64 keys).


def _high_keys(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the values' uint32 bits, the high 16 bits of their keys as uint16)."""
    u = np.ascontiguousarray(values, dtype=np.float32).ravel().view(np.uint32)
    high = (u >> 16).astype(np.uint16)
    # negative (sign bit set): ~high; positive: high with the sign bit set
    return u, high ^ ((high >> 15) * np.uint16(0x7FFF) | np.uint16(0x8000))


def _low_keys(u: np.ndarray) -> np.ndarray:
    """The low 16 bits of the keys of float32 bits ``u``, as uint16."""
    return (u & np.uint32(0xFFFF)).astype(np.uint16) ^ ((u >> 31).astype(np.uint16) * np.uint16(0xFFFF))


def _value(key: int) -> np.float32:
    u = np.uint32(key)
    bits = u & np.uint32(0x7FFFFFFF) if key >> 31 else ~u
    return np.float32(np.array([bits], dtype=np.uint32).view(np.float32)[0])
