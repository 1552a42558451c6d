"""An interval index on valid time: which records describe an instant or overlap a period.

The index answers ``overlaps([start, end])`` for intervals ``[valid_from, valid_to]``
(closed; an open end, ``valid_to`` unknown, reaches to the end of time) in
O(log n + k + answer) with numpy only. Intervals are grouped by length into
buckets of powers of two (bucket ``k`` holds lengths below ``2**k`` microseconds)
and each bucket keeps its starts sorted. An interval of a bucket that overlaps
the query starts in ``[start - 2**k, end]``: a binary search finds that run of
starts, and the run's ends are checked. Every candidate of bucket ``k`` is at
most twice as long as any bucket member, so false candidates are bounded by the
answer's size, whatever mix of months, years and instants the memory holds.

New intervals go into a small unsorted tail that is scanned linearly and merged
into the buckets when it outgrows :data:`TAIL_LIMIT`. Times are int64
microseconds since 1970 (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["OPEN_END", "TAIL_LIMIT", "IntervalIndex", "to_microseconds"]

OPEN_END = np.iinfo(np.int64).max
"""The end of an interval whose end is unknown (``valid_to`` null)."""

TAIL_LIMIT = 4096
"""Intervals added since the last merge that are scanned linearly; more are merged into the buckets."""


@dataclass
class _Bucket:
    starts: np.ndarray
    ends: np.ndarray
    ids: np.ndarray
    max_length: int


class IntervalIndex:
    """Closed intervals ``[start, end]`` (int64 microseconds) with an integer id each."""

    def __init__(self) -> None:
        self._buckets: list[_Bucket] = []
        self._tail: list[tuple[int, int, int]] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, ids: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        """Add intervals (arrays of one length; ``ends`` may hold :data:`OPEN_END`)."""
        ids = np.asarray(ids, dtype=np.int64)
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        if not (ids.shape == starts.shape == ends.shape):
            raise ValueError(f"ids {ids.shape}, starts {starts.shape} and ends {ends.shape} differ in length")
        if np.any(ends < starts):
            bad = int(ids[np.argmax(ends < starts)])
            raise ValueError(f"interval of id {bad} ends before it starts")
        self._n += len(ids)
        if len(self._tail) + len(ids) <= TAIL_LIMIT:
            self._tail += list(zip(ids.tolist(), starts.tolist(), ends.tolist()))
            return
        if self._tail:
            t = np.array(self._tail, dtype=np.int64)
            ids, starts, ends = (np.concatenate([t[:, i], a]) for i, a in enumerate((ids, starts, ends)))
            self._tail = []
        self._merge(ids, starts, ends)

    def overlaps(self, start: int, end: int) -> np.ndarray:
        """Ids of the intervals that share at least one instant with ``[start, end]``, sorted."""
        found = []
        for b in self._buckets:
            lo = np.searchsorted(b.starts, max(start - b.max_length, np.iinfo(np.int64).min), side="left")
            hi = np.searchsorted(b.starts, end, side="right")
            if hi > lo:
                run = slice(lo, hi)
                found.append(b.ids[run][b.ends[run] >= start])
        if self._tail:
            t = np.array(self._tail, dtype=np.int64)
            found.append(t[(t[:, 1] <= end) & (t[:, 2] >= start), 0])
        return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)

    def _merge(self, ids: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        old = self._buckets
        if old:
            ids = np.concatenate([ids, *(b.ids for b in old)])
            starts = np.concatenate([starts, *(b.starts for b in old)])
            ends = np.concatenate([ends, *(b.ends for b in old)])
        open_end = ends == OPEN_END
        length = np.where(open_end, 0, ends - starts)
        # Bucket k: lengths below 2**k; open-ended intervals get a bucket of their own (k = 64).
        k = np.where(open_end, 64, np.ceil(np.log2(length.astype(np.float64) + 1.0)).astype(np.int64))
        self._buckets = []
        for kk in np.unique(k).tolist():
            sel = np.flatnonzero(k == kk)
            order = np.argsort(starts[sel], kind="stable")
            sel = sel[order]
            max_length = int(np.iinfo(np.int64).max // 2) if kk == 64 else int(length[sel].max())
            self._buckets.append(_Bucket(starts[sel], ends[sel], ids[sel], max_length))


def to_microseconds(iso: list[str | None], *, missing: int) -> np.ndarray:
    """int64 microseconds since 1970 of UTC ISO strings as the catalog writes them; ``missing`` for ``None``."""
    out = np.full(len(iso), missing, dtype=np.int64)
    have = [i for i, s in enumerate(iso) if s is not None]
    if have:
        # The catalog writes '...+00:00' (UTC); numpy parses naive ISO times.
        text = np.array([str(iso[i])[:26] for i in have])
        out[have] = text.astype("datetime64[us]").astype(np.int64)
    return out
