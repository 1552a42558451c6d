"""Admission of on-demand analyses: one runs at a time, a bounded number wait, the rest are told when to retry.

An analysis holds a worker thread while it runs and while it waits, and
matplotlib's pyplot state is process-global, so analyses run one at a time. Left
unbounded, a burst of requests queues for minutes and takes every thread of the
server's pool (45 at once: the last waited 70 s, ``/health`` 8.7 s). An
:class:`AnalysisQueue` admits one running and at most ``max_waiting`` waiting;
any request beyond is answered at once with 503 and ``Retry-After`` (seconds: the
mean duration of recent analyses times the analyses ahead of a retry).
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

__all__ = ["DEFAULT_MAX_WAITING", "AnalysisQueue"]

T = TypeVar("T")

DEFAULT_MAX_WAITING = 4
"""Analyses that may wait while one runs (a 5th waiting request gets 503)."""
FIRST_GUESS_S = 10.0
"""Duration assumed for an analysis before one was measured, seconds."""
RECENT = 20
"""Analyses whose durations make the mean of ``Retry-After``."""


class AnalysisQueue:
    """One analysis at a time, at most ``max_waiting`` waiting; beyond that a 503 with ``Retry-After``.

    Args:
        max_waiting: analyses that may wait while one runs (0: none wait).

    Raises:
        ConfigError: ``max_waiting`` is negative.
    """

    def __init__(self, max_waiting: int = DEFAULT_MAX_WAITING) -> None:
        if max_waiting < 0:
            raise ConfigError(f"max_waiting={max_waiting} is negative; give 0 (none wait) or more")
        self.max_waiting = max_waiting
        self._run = threading.Lock()
        self._state = threading.Lock()
        self._admitted = 0
        self._durations: deque[float] = deque(maxlen=RECENT)

    @property
    def admitted(self) -> int:
        """Analyses running or waiting now."""
        return self._admitted

    def run(self, analysis: Callable[[], T]) -> T:
        """Run ``analysis`` when its turn comes; its result.

        Raises:
            HTTPException: 503 with ``Retry-After`` when one runs and ``max_waiting`` wait already.
        """
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
