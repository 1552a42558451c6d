"""TaskManager and agather: the bound holds, results keep their order, errors and timeouts cancel what waits."""

from __future__ import annotations

import asyncio
import threading
import time
import traceback

import pytest

from memories.concurrency import TaskManager, agather
from memories.errors import ConcurrencyError, MemoriesError, TaskTimeoutError

SLOT_S = 0.05
"""How long one simulated I/O task holds its slot, seconds."""


class Gauge:
    """Counts tasks in flight under a lock and remembers the most seen at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.started: list[int] = []

    def __enter__(self) -> Gauge:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


def test_never_more_than_max_workers_run_at_once():
    gauge = Gauge()

    def io(i: int) -> int:
        with gauge:
            time.sleep(SLOT_S)
        return i * i

    with TaskManager(max_workers=3, name="bound") as tasks:
        t0 = time.perf_counter()
        out = tasks.map(io, range(12))
        elapsed = time.perf_counter() - t0
    print(f"peak in flight {gauge.peak} of 3; 12 tasks of {SLOT_S} s took {elapsed:.2f} s")
    assert out == [i * i for i in range(12)]
    assert gauge.peak == 3  # the bound is reached and never exceeded
    assert elapsed >= 4 * SLOT_S * 0.9  # 12 tasks / 3 slots = 4 rounds at least
    assert tasks.counts.done == 12 and tasks.counts.running == 0 and tasks.counts.failed == 0


def test_gather_returns_results_in_submission_order_not_completion_order():
    with TaskManager(max_workers=4) as tasks:
        # the first submitted finishes last
        futures = [tasks.submit(lambda d, v: time.sleep(d) or v, (4 - i) * 0.03, i) for i in range(4)]
        finish_order: list[int] = []
        for i, f in enumerate(futures):
            f.add_done_callback(lambda _f, i=i: finish_order.append(i))
        assert tasks.gather(futures) == [0, 1, 2, 3]
        assert tasks.gather(*futures) == [0, 1, 2, 3]
    assert finish_order[0] == 3


def test_first_error_is_raised_as_is_with_its_traceback_and_pending_tasks_are_cancelled():
    ran: list[int] = []

    class ScenePageError(Exception):
        pass

    def work(i: int) -> int:
        if i == 1:
            raise ScenePageError(f"page {i} is bad")
        time.sleep(SLOT_S)
        ran.append(i)
        return i

    tasks = TaskManager(max_workers=2, name="pages")
    with pytest.raises(ScenePageError, match="page 1 is bad") as info:
        tasks.map(work, range(20))
    tasks.close()
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "work" in frames  # the worker's frame travelled with the exception
    c = tasks.counts
    print(f"after the error: {c}")
    assert c.failed == 1 and c.cancelled >= 15 and c.pending == 0
    assert c.done + c.failed + c.cancelled == 20 == c.submitted
    assert len(ran) == c.done < 5


def test_return_exceptions_puts_each_error_in_its_place():
    def work(i: int) -> int:
        if i % 2:
            raise ValueError(i)
        return i

    with TaskManager(max_workers=2) as tasks:
        out = tasks.gather([tasks.submit(work, i) for i in range(5)], return_exceptions=True)
    assert [o if not isinstance(o, ValueError) else ("err", o.args[0]) for o in out] == [
        0,
        ("err", 1),
        2,
        ("err", 3),
        4,
    ]
    assert tasks.counts.failed == 2 and tasks.counts.done == 3


def test_gather_timeout_raises_and_cancels_tasks_not_started():
    release = threading.Event()
    tasks = TaskManager(max_workers=1, name="slow")
    futures = [tasks.submit(release.wait, 5) for _ in range(4)]
    t0 = time.perf_counter()
    with pytest.raises(TaskTimeoutError, match=r"4 of 4 task\(s\) of 'slow' were not done after 0.1 s") as info:
        tasks.gather(futures, timeout=0.1)
    waited = time.perf_counter() - t0
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, MemoriesError)
    assert 0.1 <= waited < 1.0
    assert [f.cancelled() for f in futures] == [False, True, True, True]  # the running one cannot be interrupted
    release.set()
    tasks.close()
    assert tasks.counts.done == 1 and tasks.counts.cancelled == 3


def test_leaving_the_block_on_an_error_cancels_pending_tasks():
    started = threading.Event()
    release = threading.Event()

    def first() -> None:
        started.set()
        release.wait(5)

    with pytest.raises(KeyError):
        with TaskManager(max_workers=1) as tasks:
            running = tasks.submit(first)
            waiting = [tasks.submit(time.sleep, 0) for _ in range(3)]
            started.wait(5)
            release.set()
            raise KeyError("caller failed")
    assert running.done() and not running.cancelled()
    assert all(f.cancelled() for f in waiting)
    assert tasks.counts.cancelled == 3


def test_submit_after_close_is_a_clear_error():
    tasks = TaskManager(max_workers=2, name="closed-pool")
    tasks.close()
    with pytest.raises(ConcurrencyError, match="'closed-pool' is closed"):
        tasks.submit(print, "x")


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_max_workers_is_rejected(bad):
    with pytest.raises(ConcurrencyError, match="max_workers"):
        TaskManager(max_workers=bad)


def test_gather_rejects_plain_callables():
    with TaskManager() as tasks, pytest.raises(ConcurrencyError, match="use TaskManager.map"):
        tasks.gather([lambda: 1])


def test_counts_show_running_and_pending_while_tasks_run():
    release = threading.Event()
    gate = threading.Barrier(3)  # two workers and this test

    def hold() -> None:
        gate.wait(5)
        release.wait(5)

    with TaskManager(max_workers=2) as tasks:
        futures = [tasks.submit(hold) for _ in range(5)]
        gate.wait(5)
        c = tasks.counts
        assert (c.running, c.pending, c.done) == (2, 3, 0)
        release.set()
        gate.abort()  # the later tasks must not wait for a third party
        tasks.gather(futures, return_exceptions=True)
    assert tasks.counts.running == 0 and tasks.counts.pending == 0


# -- asyncio ---------------------------------------------------------------------------------------------------------


def test_agather_bounds_coroutines_and_keeps_order():
    in_flight = peak = 0

    async def fetch(i: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01 * (10 - i))
        in_flight -= 1
        return i

    out = asyncio.run(agather(*(fetch(i) for i in range(10)), limit=3))
    assert out == list(range(10))
    assert peak == 3
    assert asyncio.run(agather([fetch(i) for i in range(4)])) == [0, 1, 2, 3]  # an iterable works too
    assert asyncio.run(agather()) == []


def test_agather_raises_the_first_error_and_cancels_the_rest():
    finished: list[int] = []
    cancelled: list[int] = []

    async def fetch(i: int) -> int:
        try:
            if i == 2:
                await asyncio.sleep(0.01)
                raise LookupError(f"item {i} missing")
            await asyncio.sleep(1.0)
            finished.append(i)
            return i
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    t0 = time.perf_counter()
    with pytest.raises(LookupError, match="item 2 missing"):
        asyncio.run(agather([fetch(i) for i in range(8)], limit=4))
    assert time.perf_counter() - t0 < 0.8  # nobody waited for the 1 s sleepers
    assert finished == []
    assert {0, 1, 3} <= set(cancelled)  # the ones that held a slot were cancelled, not left running


def test_agather_return_exceptions_and_timeout():
    async def ok(v: int) -> int:
        await asyncio.sleep(0)
        return v

    async def bad() -> int:
        raise ValueError("bad")

    out = asyncio.run(agather(ok(1), bad(), ok(3), return_exceptions=True))
    assert out[0] == 1 and isinstance(out[1], ValueError) and out[2] == 3

    async def slow() -> None:
        await asyncio.sleep(5)

    with pytest.raises(TaskTimeoutError, match="2 of 3 awaitable"):
        asyncio.run(agather(ok(1), slow(), slow(), timeout=0.05))
    with pytest.raises(ConcurrencyError, match="limit=0"):
        asyncio.run(agather(ok(1), limit=0))


def test_task_manager_agather_uses_its_bound():
    in_flight = peak = 0

    async def fetch() -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1

    with TaskManager(max_workers=2) as tasks:
        asyncio.run(tasks.agather(*(fetch() for _ in range(6))))
    assert peak == 2


# -- the seed's form: TaskManager(max_concurrent=).add_task(coroutine); await gather() ---------------------------


def test_added_coroutines_are_gathered_in_order_with_at_most_max_concurrent_at_once():
    running, most = 0, 0

    async def fetch(i: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(SLOT_S * (3 - i % 3))  # later ones finish first
        running -= 1
        return i * i

    async def main() -> tuple[list[int], list[int]]:
        tasks = TaskManager(max_concurrent=5)
        places = [tasks.add_task(fetch(i)) for i in range(12)]
        first = await tasks.gather()
        tasks.add_task(fetch(20))  # the manager takes a next batch
        return places, first + await tasks.gather()

    places, results = asyncio.run(main())
    assert places == list(range(12))
    assert results == [i * i for i in range(12)] + [400]
    assert most == 5
    with pytest.raises(ConcurrencyError, match="they name the same bound"):
        TaskManager(max_workers=2, max_concurrent=5)
    with pytest.raises(ConcurrencyError, match="max_concurrent=0"):
        TaskManager(max_concurrent=0)
    with pytest.raises(ConcurrencyError, match="not the function itself"):
        TaskManager().add_task(fetch)  # type: ignore[arg-type]


def test_a_failed_added_task_raises_its_own_exception_and_close_closes_the_rest():
    async def boom() -> None:
        raise ValueError("no imagery for this location")

    async def main() -> None:
        tasks = TaskManager(max_concurrent=2)
        tasks.add_task(boom())
        with pytest.raises(ValueError, match="no imagery"):
            await tasks.gather()

    asyncio.run(main())

    async def never() -> None:
        raise AssertionError("an added task that is never gathered must not run")

    tasks = TaskManager(max_concurrent=2)
    coro = never()
    tasks.add_task(coro)
    tasks.close()
    assert coro.cr_frame is None  # closed, so no "never awaited" warning either
    with pytest.raises(ConcurrencyError, match="is closed"):
        tasks.add_task(never())
