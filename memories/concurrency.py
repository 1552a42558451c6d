"""Bounded concurrency for I/O-bound work: downloads, STAC API pages, tile analyses.

``TaskManager`` runs callables on at most ``max_workers`` threads at once and
collects their results in submission order::

    with TaskManager(max_workers=8, name="cog-downloads") as tasks:
        paths = tasks.map(download, hrefs)            # a list, in the order of hrefs
        futures = [tasks.submit(search_page, n) for n in range(5)]
        pages = tasks.gather(futures, timeout=60)     # seconds

The first task to fail raises its own exception, as is and with its traceback
from the worker thread; the tasks of that gather that have not started yet are
cancelled (``return_exceptions=True`` returns the exceptions in place instead).
Leaving the ``with`` block on an error cancels every pending task; leaving it
normally waits for all of them. Threads cannot be interrupted, so a task already
running when a gather times out or fails runs to its end; its result is dropped.

Coroutines (the seed runs its fetchers on asyncio) have the same contract in
:func:`agather`, bounded by an ``asyncio.Semaphore``::

    results = await agather(*(fetch(url) for url in urls), limit=8)

or, as the seed writes it, added to a manager and gathered, at most ``max_concurrent``
awaited at once (``max_concurrent`` is the seed's name of ``max_workers``)::

    tasks = TaskManager(max_concurrent=5)
    tasks.add_task(fetch_imagery(location1))
    tasks.add_task(fetch_imagery(location2))
    results = await tasks.gather()                    # in the order added

Threads suit this library's work: GDAL, rasterio, zarr and requests release the
GIL while they wait on I/O. CPU-bound raster math belongs to Dask, not here.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any, TypeVar, overload

from memories.errors import ConcurrencyError, TaskTimeoutError

__all__ = ["TaskCounts", "TaskManager", "agather"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ids = itertools.count(1)


@dataclass(frozen=True)
class TaskCounts:
    """How many tasks of a TaskManager are in each state (a snapshot)."""

    submitted: int
    pending: int
    """Submitted, not yet started, not cancelled."""
    running: int
    done: int
    """Finished with a result."""
    failed: int
    """Finished by raising."""
    cancelled: int
    """Cancelled before they started."""

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for log lines and asset metadata)."""
        return asdict(self)


class TaskManager:
    """A bounded pool of threads for I/O-bound tasks: submit, map, gather, cancel.

    Args:
        max_workers: the most tasks running at once (>= 1; default 4): threads of the pool, and
            coroutines of :meth:`add_task` awaited at once by :meth:`gather`.
        name: a name for logs and thread names (``<name>-<n>``).
        max_concurrent: the seed's name of ``max_workers`` (give one of the two).

    Raises:
        ConcurrencyError: a bound below 1, or ``max_workers`` and ``max_concurrent`` that disagree.
    """

    def __init__(
        self, max_workers: int | None = None, name: str | None = None, *, max_concurrent: int | None = None
    ) -> None:
        if max_workers is not None and max_concurrent is not None and max_workers != max_concurrent:
            raise ConcurrencyError(
                f"TaskManager(max_workers={max_workers!r}, max_concurrent={max_concurrent!r}): they name the same "
                "bound; give one of them"
            )
        bound = max_concurrent if max_concurrent is not None else max_workers if max_workers is not None else 4
        if not isinstance(bound, int) or isinstance(bound, bool) or bound < 1:
            which = "max_concurrent" if max_concurrent is not None else "max_workers"
            raise ConcurrencyError(f"TaskManager({which}={bound!r}): pass a whole number of at least 1")
        self.max_workers = bound
        self.name = name or f"tasks-{next(_ids)}"
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=self.name)
        self._lock = threading.Lock()
        self._futures: set[Future[Any]] = set()
        self._added: list[Awaitable[Any]] = []
        self._closed = False
        self._submitted = self._running = self._done = self._failed = self._cancelled = 0

    # -- submitting ------------------------------------------------------------------------------------------------

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)``; it starts once fewer than ``max_workers`` tasks run.

        Raises:
            ConcurrencyError: the manager is closed.
        """
        with self._lock:
            if self._closed:
                raise ConcurrencyError(
                    f"TaskManager {self.name!r} is closed; submit work inside its `with` block or use a new one"
                )
            self._submitted += 1
            future = self._pool.submit(self._run, fn, args, kwargs)
            self._futures.add(future)
        future.add_done_callback(self._finished)
        return future

    def map(self, fn: Callable[[Any], T], iterable: Iterable[Any], *, timeout: float | None = None) -> list[T]:
        """``[fn(x) for x in iterable]`` run on the pool; results in the order of ``iterable``.

        Args:
            timeout: seconds for the whole map; None waits as long as it takes.

        Raises:
            the first task's exception, as is (the tasks not started yet are cancelled);
            TaskTimeoutError: not every task finished within ``timeout``.
        """
        return self.gather([self.submit(fn, x) for x in iterable], timeout=timeout)

    def add_task(self, task: Awaitable[T]) -> int:
        """Add a coroutine (or other awaitable) for the next ``await gather()``; returns its place in the results.

        Nothing runs until :meth:`gather` is awaited; then at most ``max_workers`` are awaited at once.

        Raises:
            ConcurrencyError: ``task`` is not awaitable (pass ``fetch(x)``, not ``fetch``), or the manager is closed.
        """
        if not isinstance(task, Awaitable):
            raise ConcurrencyError(
                f"add_task({task!r}): pass an awaitable, e.g. the coroutine fetch_imagery(location), "
                "not the function itself; plain functions go to submit()"
            )
        with self._lock:
            if self._closed:
                _close_unawaited(task)
                raise ConcurrencyError(f"TaskManager {self.name!r} is closed; add tasks to a new one")
            self._added.append(task)
            return len(self._added) - 1

    # -- collecting ------------------------------------------------------------------------------------------------

    @overload
    def gather(
        self, *, return_exceptions: bool = False, timeout: float | None = None
    ) -> Coroutine[Any, Any, list[Any]]: ...

    @overload
    def gather(
        self,
        first: Future[Any] | Iterable[Future[Any]],
        /,
        *futures: Future[Any],
        return_exceptions: bool = False,
        timeout: float | None = None,
    ) -> list[Any]: ...

    def gather(
        self,
        *futures: Any,
        return_exceptions: bool = False,
        timeout: float | None = None,
    ) -> list[Any] | Coroutine[Any, Any, list[Any]]:
        """The results of ``futures`` in the order given (futures, or one iterable of them).

        Without futures, a coroutine: ``await gather()`` awaits the tasks of :meth:`add_task`, at most
        ``max_workers`` at once, and returns their results in the order added (the list of added tasks
        is emptied, so the manager can take the next batch).

        Args:
            return_exceptions: put a failed task's exception in its place instead of raising.
            timeout: seconds to wait for all of them; None waits as long as it takes.

        Raises:
            the exception of the first task to fail, as is and with its traceback, after cancelling
            the given futures that have not started (of several failed at once, the earliest given);
            TaskTimeoutError: some did not finish within ``timeout``; those not started are cancelled.
        """
        if not futures:
            with self._lock:
                added, self._added = self._added, []
            return agather(added, limit=self.max_workers, return_exceptions=return_exceptions, timeout=timeout)
        fs = _flatten_futures(futures)
        if return_exceptions:
            finished, not_done = wait(fs, timeout=timeout)
        else:
            finished, not_done = wait(fs, timeout=timeout, return_when=FIRST_EXCEPTION)
            failed = [f for f in fs if f in finished and not f.cancelled() and f.exception() is not None]
            if failed:
                cancelled = _cancel(not_done)
                first = failed[0]
                logger.debug("%s: a task failed; cancelled %d pending task(s)", self.name, cancelled)
                raise first.exception()  # type: ignore[misc]  # its __traceback__ holds the worker's frames
        if not_done:
            cancelled = _cancel(not_done)
            raise TaskTimeoutError(
                f"{len(not_done)} of {len(fs)} task(s) of {self.name!r} were not done after {timeout} s "
                f"({cancelled} not started were cancelled); pass a larger timeout= or split the work"
            )
        return [_outcome(f) if return_exceptions else f.result() for f in fs]

    async def agather(self, *aws: Awaitable[Any] | Iterable[Awaitable[Any]], **kwargs: Any) -> list[Any]:
        """:func:`agather` bounded by this manager's ``max_workers`` (same keyword arguments)."""
        kwargs.setdefault("limit", self.max_workers)
        return await agather(*aws, **kwargs)

    # -- state and lifecycle ---------------------------------------------------------------------------------------

    @property
    def counts(self) -> TaskCounts:
        """How many tasks are pending, running, done, failed and cancelled right now."""
        with self._lock:
            started = self._running + self._done + self._failed
            return TaskCounts(
                submitted=self._submitted,
                pending=self._submitted - started - self._cancelled,
                running=self._running,
                done=self._done,
                failed=self._failed,
                cancelled=self._cancelled,
            )

    def cancel_pending(self) -> int:
        """Cancel every task that has not started; returns how many were cancelled."""
        with self._lock:
            pending = list(self._futures)
        return _cancel(pending)

    def close(self, *, cancel_pending: bool = False) -> None:
        """Stop taking work and wait for the running tasks (and pending ones, unless ``cancel_pending``)."""
        with self._lock:
            self._closed = True
            added, self._added = self._added, []
        for a in added:  # added but never gathered: close them rather than leave "never awaited" warnings
            _close_unawaited(a)
        if cancel_pending:
            self.cancel_pending()
        self._pool.shutdown(wait=True, cancel_futures=cancel_pending)
        logger.debug("%s closed: %s", self.name, self.counts.as_dict())

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> TaskManager:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(cancel_pending=exc_type is not None)

    def __repr__(self) -> str:
        c = self.counts
        return (
            f"TaskManager({self.name!r}, max_workers={self.max_workers}, running={c.running}, "
            f"pending={c.pending}, done={c.done}, failed={c.failed}, cancelled={c.cancelled})"
        )

    # -- helpers ---------------------------------------------------------------------------------------------------

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        with self._lock:
            self._running += 1
        ok = False
        try:
            result = fn(*args, **kwargs)
            ok = True
            return result
        finally:
            with self._lock:
                self._running -= 1
                if ok:
                    self._done += 1
                else:
                    self._failed += 1

    def _finished(self, future: Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)
            if future.cancelled():
                self._cancelled += 1


async def agather(
    *aws: Awaitable[Any] | Iterable[Awaitable[Any]],
    limit: int | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
) -> list[Any]:
    """Await coroutines with at most ``limit`` running at once; results in the order given.

    Args:
        aws: coroutines or other awaitables, or one iterable of them.
        limit: the most awaited at once (>= 1); None: no bound.
        return_exceptions: put a failed awaitable's exception in its place instead of raising.
        timeout: seconds for all of them; None waits as long as it takes.

    Raises:
        the exception of the first awaitable to fail, as is, after cancelling the others;
        TaskTimeoutError: not all finished within ``timeout``; the rest were cancelled.
        ConcurrencyError: ``limit`` is below 1.
    """
    items: list[Awaitable[Any]]
    if len(aws) == 1 and not isinstance(aws[0], Awaitable) and isinstance(aws[0], Iterable):
        items = list(aws[0])
    else:
        items = list(aws)  # type: ignore[arg-type]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        for a in items:
            _close_unawaited(a)
        raise ConcurrencyError(f"agather(limit={limit!r}): pass a whole number of at least 1, or None for no bound")
    if not items:
        return []
    semaphore = asyncio.Semaphore(limit) if limit is not None else None

    async def bounded(a: Awaitable[Any]) -> Any:
        if semaphore is None:
            return await a
        try:
            async with semaphore:
                return await a
        finally:
            _close_unawaited(a)  # cancelled while waiting for a slot: close the never-started coroutine

    tasks = [asyncio.ensure_future(bounded(a)) for a in items]
    when = asyncio.ALL_COMPLETED if return_exceptions else asyncio.FIRST_EXCEPTION
    finished, not_done = await asyncio.wait(tasks, timeout=timeout, return_when=when)
    if not return_exceptions:
        failed = [t for t in tasks if t in finished and not t.cancelled() and t.exception() is not None]
        if failed:
            # FIRST_EXCEPTION may complete several at once; the earliest one in the given order is raised.
            await _cancel_tasks(not_done)
            raise failed[0].exception()  # type: ignore[misc]
    if not_done:
        await _cancel_tasks(not_done)
        raise TaskTimeoutError(
            f"{len(not_done)} of {len(tasks)} awaitable(s) were not done after {timeout} s and were cancelled; "
            "pass a larger timeout= or split the work"
        )
    return [_outcome(t) if return_exceptions else t.result() for t in tasks]


def _flatten_futures(futures: tuple[Future[Any] | Iterable[Future[Any]], ...]) -> list[Future[Any]]:
    if len(futures) == 1 and not isinstance(futures[0], Future):
        futures = tuple(futures[0])
    bad = [f for f in futures if not isinstance(f, Future)]
    if bad:
        raise ConcurrencyError(
            f"gather() takes futures (from TaskManager.submit), got {type(bad[0]).__name__}; "
            "to run plain callables use TaskManager.map"
        )
    return list(futures)  # type: ignore[arg-type]


def _cancel(futures: Iterable[Future[Any]]) -> int:
    return sum(1 for f in list(futures) if f.cancel())


async def _cancel_tasks(tasks: Iterable[asyncio.Future[Any]]) -> None:
    pending = list(tasks)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _outcome(f: Future[Any] | asyncio.Future[Any]) -> Any:
    if f.cancelled():
        return asyncio.CancelledError() if isinstance(f, asyncio.Future) else _cancelled_error()
    exc = f.exception()
    return exc if exc is not None else f.result()


def _cancelled_error() -> BaseException:
    from concurrent.futures import CancelledError

    return CancelledError()


def _close_unawaited(a: Awaitable[Any]) -> None:
    # A coroutine cancelled before it got a slot was never started; closing it avoids "never awaited" warnings.
    if inspect.iscoroutine(a) and inspect.getcoroutinestate(a) == inspect.CORO_CREATED:
        a.close()
