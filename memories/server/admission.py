"""Admission of on-demand analyses: one runs at a time, a bounded number wait, the rest are told when to retry.

An analysis holds a worker thread while it runs and while it waits, and
matplotlib's pyplot state is process-global, so analyses run one at a time. Left
unbounded, a burst of requests queues for minutes and takes every thread of the
server's pool (45 at once: the last waited 70 s, ``/health`` 8.7 s). An
:class:`AnalysisQueue` admits one running and at most ``max_waiting`` waiting;
any request beyond is answered at once with 503 and ``Retry-After`` (seconds: the
mean duration of recent analyses times the analyses ahead of a retry).

A :class:`MemoryBudget` (the server's ``max_memory_gb``, shared out among its worker
processes) refuses an analysis that would not fit: before it is admitted and again
just before it starts, the worker's resident memory (RSS) plus the analysis's
estimate (:func:`estimate_analysis_bytes`, from the tile's pixels) must stay within
the worker's share, else the answer is 503 with ``Retry-After``. The analysis is
refused, never started and killed halfway; the memory's other paths keep answering.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from fastapi import HTTPException

from memories.errors import ConfigError

__all__ = [
    "ANALYSIS_BYTES_PER_PIXEL",
    "DEFAULT_MAX_WAITING",
    "AnalysisQueue",
    "MemoryBudget",
    "estimate_analysis_bytes",
    "worker_memory_bytes",
]

T = TypeVar("T")

DEFAULT_MAX_WAITING = 4
"""Analyses that may wait while one runs (a 5th waiting request gets 503)."""
FIRST_GUESS_S = 10.0
"""Duration assumed for an analysis before one was measured, seconds."""
RECENT = 20
"""Analyses whose durations make the mean of ``Retry-After``."""
ANALYSIS_BYTES_PER_PIXEL = 2400
"""Memory an analysis of one tile-month takes per pixel of the tile, bytes. Measured as the peak RSS
growth of one report on the 256 px test tile (December 2026): environmental 912, urban 2184, disaster
2323 B/px; that includes one-time costs (matplotlib, lazily imported modules) a larger tile does not
repeat per pixel, so it errs on the safe side. The test tile comes to 150 MiB."""


class AnalysisQueue:
    """One analysis at a time, at most ``max_waiting`` waiting; beyond that a 503 with ``Retry-After``.

    Args:
        max_waiting: analyses that may wait while one runs (0: none wait).

    Raises:
        ConfigError: ``max_waiting`` is negative.
    """

    def __init__(self, max_waiting: int = DEFAULT_MAX_WAITING, budget: MemoryBudget | None = None) -> None:
        if max_waiting < 0:
            raise ConfigError(f"max_waiting={max_waiting} is negative; give 0 (none wait) or more")
        self.max_waiting = max_waiting
        self.budget = budget
        self._run = threading.Lock()
        self._state = threading.Lock()
        self._admitted = 0
        self._durations: deque[float] = deque(maxlen=RECENT)

    @property
    def admitted(self) -> int:
        """Analyses running or waiting now."""
        return self._admitted

    def run(self, analysis: Callable[[], T], *, estimate_bytes: int = 0) -> T:
        """Run ``analysis`` when its turn comes; its result.

        Args:
            estimate_bytes: memory the analysis will take, bytes (checked against the budget, if any).

        Raises:
            HTTPException: 503 with ``Retry-After`` when one runs and ``max_waiting`` wait already,
                or when the analysis would not fit the memory budget.
        """
        if self.budget is not None:
            self.budget.check(estimate_bytes, self.retry_after())
        with self._state:
            if self._admitted > self.max_waiting:
                wait = self.retry_after()
                raise HTTPException(
                    503,
                    f"the server is busy: 1 analysis runs and {self.max_waiting} wait; retry in {wait} s "
                    "(stored reports under /v1/reports answer at once)",
                    headers={"Retry-After": str(wait)},
                )
            self._admitted += 1
        try:
            with self._run:
                if self.budget is not None:  # the analysis before this one may have left less room
                    self.budget.check(estimate_bytes, self.retry_after())
                started = time.monotonic()
                try:
                    return analysis()
                finally:
                    self._durations.append(time.monotonic() - started)
        finally:
            with self._state:
                self._admitted -= 1

    def retry_after(self) -> int:
        """Seconds after which a slot is likely free: the mean recent duration times the analyses ahead."""
        mean = sum(self._durations) / len(self._durations) if self._durations else FIRST_GUESS_S
        ahead = max(1, self._admitted - self.max_waiting)
        return max(1, math.ceil(mean * ahead))


class MemoryBudget:
    """The memory one server worker may use: an analysis whose estimate does not fit is refused (503).

    Args:
        max_bytes: the worker's share of the server's ``max_memory_gb``, bytes.

    Raises:
        ConfigError: a budget that is not positive.
    """

    def __init__(self, max_bytes: int) -> None:
        if not max_bytes > 0:
            raise ConfigError(f"memory budget {max_bytes} bytes is not positive; give max_memory_gb > 0")
        self.max_bytes = int(max_bytes)

    @staticmethod
    def resident_bytes() -> int:
        """This process's resident memory (RSS), bytes."""
        import psutil

        return int(psutil.Process().memory_info().rss)

    def check(self, estimate_bytes: int, retry_after_s: int) -> None:
        """Pass when RSS plus ``estimate_bytes`` fits the budget.

        Raises:
            HTTPException: 503 with ``Retry-After``, saying how much is in use and needed.
        """
        used = self.resident_bytes()
        if used + estimate_bytes <= self.max_bytes:
            return
        gib = 1024**3
        raise HTTPException(
            503,
            f"not enough memory for this analysis: it needs about {estimate_bytes / gib:.2f} GiB and this worker "
            f"uses {used / gib:.2f} GiB of its {self.max_bytes / gib:.2f} GiB (the server's max_memory_gb over its "
            f"workers); retry in {retry_after_s} s, or start the server with a larger max_memory_gb or fewer workers",
            headers={"Retry-After": str(retry_after_s)},
        )


def estimate_analysis_bytes(pixels: int) -> int:
    """Memory an analysis of a tile of ``pixels`` pixels takes, bytes (:data:`ANALYSIS_BYTES_PER_PIXEL`)."""
    return int(pixels) * ANALYSIS_BYTES_PER_PIXEL


def worker_memory_bytes(max_memory_gb: float | None, workers: int) -> int | None:
    """One worker's share of the server's ``max_memory_gb``, bytes; None without a budget."""
    return None if max_memory_gb is None else int(max_memory_gb * 1024**3 / workers)
