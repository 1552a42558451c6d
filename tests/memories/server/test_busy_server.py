"""A burst of analyses over real HTTP: a bounded queue, 503 with Retry-After beyond it, and a fast /health meanwhile.

The application served here is gated: its report waits until the test opens the
gate, so the analyses overlap for exactly as long as the test needs, whatever the
machine's speed. It is plugged in the supported way, ``applications={kind: "module:Class"}``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import httpx

from memories.server import MemoriesServer

BURST = 45
"""Concurrent analysis requests (the burst that once queued for 70 s)."""
MAX_WAITING = 2
"""The server's queue in this test: 1 analysis runs, 2 wait."""
FAST_S = 1.0
"""Most seconds /health and a catalog query may take while the queue is full."""
SETTLE_S = 30.0
"""Most seconds the refused requests may take to come back."""


class GatedApplication:
    """An application whose report waits for :attr:`gate` (a real report is seconds of raster math)."""

    gate = threading.Event()
    running = 0
    most_running = 0
    lock = threading.Lock()

    def __init__(self, view: Any) -> None:
        self.view = view

    def report(self, tile: str, month: str) -> Any:
        cls = GatedApplication
        with cls.lock:
            cls.running += 1
            cls.most_running = max(cls.most_running, cls.running)
        try:
            assert cls.gate.wait(60), "the test never opened the gate"
            return _Built({"kind": "gated", "tile": tile, "month": month})
        finally:
            with cls.lock:
                cls.running -= 1


class _Built:
    def __init__(self, summary: dict[str, Any]) -> None:
        self.summary = summary

    def json(self) -> dict[str, Any]:
        return self.summary


def test_a_burst_of_analyses_is_bounded_and_health_stays_fast(served_memory):
    assert sys.modules.get(__name__) is not None  # the server imports the application by this module's name
    token = served_memory.token
    auth = {"Authorization": f"Bearer {token}"}
    apps = {"gated": f"{__name__}:GatedApplication"}
    answers: list[httpx.Response] = []
    with MemoriesServer(
        served_memory.memory, token=token, port=0, applications=apps, max_queued_analyses=MAX_WAITING
    ) as server:

        def ask(i: int) -> None:
            body = {"tile": served_memory.tile, "month": f"2023-{1 + i % 12:02d}"}
            answers.append(httpx.post(f"{server.url}/v1/analyses/gated", json=body, headers=auth, timeout=120))

        GatedApplication.gate.clear()
        workers = [threading.Thread(target=ask, args=(i,)) for i in range(BURST)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + SETTLE_S
        while len(answers) < BURST - 1 - MAX_WAITING and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = list(answers)
        assert len(refused) == BURST - 1 - MAX_WAITING, f"{len(refused)} answers while the queue is full"

        # The queue is full and one analysis is running: the server still answers at once.
        started = time.perf_counter()
        assert httpx.get(f"{server.url}/health").status_code == 200
        health_s = time.perf_counter() - started
        started = time.perf_counter()
        assert httpx.get(f"{server.url}/v1/tiles", headers=auth).status_code == 200
        tiles_s = time.perf_counter() - started
        assert server.app.state.analysis_queue.admitted == 1 + MAX_WAITING
        GatedApplication.gate.set()
        for w in workers:
            w.join(60)
        again = httpx.post(
            f"{server.url}/v1/analyses/gated", json={"tile": served_memory.tile, "month": "2023-06"}, headers=auth
        )
    print(f"\n/health {health_s * 1000:.1f} ms, /v1/tiles {tiles_s * 1000:.1f} ms with the queue full")
    assert health_s < FAST_S and tiles_s < FAST_S
    assert all(a.status_code == 503 for a in refused), [a.status_code for a in refused]
    for a in refused:
        assert int(a.headers["retry-after"]) >= 1 and "busy" in a.json()["detail"]
    done = [a for a in answers if a.status_code == 200]
    assert len(done) == 1 + MAX_WAITING and all(a.json()["kind"] == "gated" for a in done)
    assert GatedApplication.most_running == 1  # one at a time: pyplot is process-global
    assert again.status_code == 200  # a free queue admits again
