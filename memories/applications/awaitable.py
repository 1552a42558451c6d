"""Coroutine twins of the applications' analyses: the seed awaits every analysis.

Each application's analysis is synchronous (assets, notebooks and the server call
it as it is); its twin is a coroutine that runs the same analysis in a worker
thread (:func:`asyncio.to_thread`), so an event loop stays free while it reads the
memory and several analyses can be awaited together::

    report = await EnvironmentalMonitor().areport("33TVM", "2023-08")
    analyses = await TaskManager(max_concurrent=2).gather()   # after add_task(planner.aanalyze(...))

Reports draw their figures with matplotlib's pyplot, whose state is process-global,
so the report twins of this process build one report at a time (a lock); the
analyses without figures run side by side.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memories.applications.report import Report

__all__ = ["AwaitableReport"]

_FIGURES = threading.Lock()
"""Held while a report twin builds a report (pyplot is one state per process)."""


class AwaitableReport:
    """``await app.areport(tile, month)``: the coroutine twin of ``app.report(tile, month)``."""

    async def areport(self, tile: str, month: str) -> Report:
        """The report of a tile-month (the class's ``report``), built in a worker thread."""
        build: Any = self.report  # type: ignore[attr-defined]

        def locked() -> Report:
            with _FIGURES:
                return build(tile, month)  # type: ignore[no-any-return]

        return await asyncio.to_thread(locked)
