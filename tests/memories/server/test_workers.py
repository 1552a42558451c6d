"""``MemoriesServer(workers=, max_memory_gb=)``: real uvicorn worker processes, and a memory budget that refuses.

A server of two worker processes is started for real on 127.0.0.1 over the served
memory: /health is answered by two processes that are not this one; an analysis
that would not fit the memory budget is answered 503 with ``Retry-After`` while the
workers live on (the same processes answer after it); ``stop()`` ends every process.
"""

from __future__ import annotations

import os
import time

import httpx
import psutil
import pytest
from fastapi import HTTPException

from memories.errors import ConfigError
from memories.server import MemoriesServer
from memories.server.admission import ANALYSIS_BYTES_PER_PIXEL, AnalysisQueue, MemoryBudget, estimate_analysis_bytes
from tests.memories.server.conftest import REPORT_MONTH, TILE, TOKEN

MIB = 2**20


def _worker_pids(url: str, want: int, tries: int = 300) -> set[int]:
    """Process ids answering /health, each request on a new connection, until ``want`` were seen."""
    seen: set[int] = set()
    for _ in range(tries):
        seen.add(httpx.get(f"{url}/health", timeout=10).json()["pid"])
        if len(seen) >= want:
            break
    return seen


def test_two_workers_are_two_processes_refuse_an_analysis_over_budget_and_stop_cleanly(served_memory):
    server = MemoriesServer(served_memory.memory, token=TOKEN, port=0, workers=2, max_memory_gb=0.05)
    server.start()
    try:
        supervisor = psutil.Process(server._pool.pid)
        pids = _worker_pids(server.url, 2)
        assert len(pids) == 2 and os.getpid() not in pids, pids
        children = {p.pid for p in supervisor.children(recursive=True)}
        assert pids <= children, (pids, children)

        auth = {"Authorization": f"Bearer {TOKEN}"}
        tiles = httpx.get(f"{server.url}/v1/tiles", headers=auth, timeout=30)
        assert tiles.status_code == 200 and TILE in str(tiles.json())

        # 0.05 GiB over two workers is 25.6 MiB each: less than a worker already holds.
        refused = httpx.post(
            f"{server.url}/v1/analyses/environmental",
            json={"tile": TILE, "month": REPORT_MONTH},
            headers=auth,
            timeout=60,
        )
        assert refused.status_code == 503, refused.text
        assert "not enough memory" in refused.json()["detail"] and "of its 0.02 GiB" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) >= 1

        assert _worker_pids(server.url, 2) == pids  # refused, not killed: the same processes answer
    finally:
        server.stop()
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        assert time.monotonic() < deadline, "worker processes outlived stop()"
        time.sleep(0.1)
    assert not psutil.pid_exists(supervisor.pid) or supervisor.status() == psutil.STATUS_ZOMBIE
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=2)


def test_memory_budget_refuses_an_analysis_whose_estimate_does_not_fit():
    rss = MemoryBudget.resident_bytes()
    queue = AnalysisQueue(budget=MemoryBudget(rss + 64 * MIB))
    ran = []
    tile_64 = estimate_analysis_bytes(64 * 64)
    assert tile_64 == 64 * 64 * ANALYSIS_BYTES_PER_PIXEL == 9_830_400
    assert queue.run(lambda: ran.append("small") or "done", estimate_bytes=tile_64) == "done"
    with pytest.raises(HTTPException) as refused:
        queue.run(lambda: ran.append("big"), estimate_bytes=estimate_analysis_bytes(1024 * 1024))  # 2.34 GiB
    assert refused.value.status_code == 503 and "needs about 2.34 GiB" in refused.value.detail
    assert refused.value.headers is not None and int(refused.value.headers["Retry-After"]) >= 1
    assert ran == ["small"]  # the refused analysis never started
    assert queue.admitted == 0


def test_server_arguments_are_checked():
    with pytest.raises(ConfigError, match="workers=0"):
        MemoriesServer(workers=0)
    with pytest.raises(ConfigError, match="max_memory_gb=-1"):
        MemoriesServer(max_memory_gb=-1)
    with pytest.raises(ConfigError, match="worker processes open by location"):
        MemoriesServer(lambda as_of: None, workers=2)
