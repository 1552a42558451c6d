"""``python -m memories.server``: one command starts the server; SIGTERM stops it; no token, no public host."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx

from memories.server import TOKEN_ENV

START_TIMEOUT_S = 30.0
ACCESS_LINE = re.compile(
    r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO memories\.server\.app: 127\.0\.0\.1 "GET /v1/tiles" 200 [0-9.]+ ms$'
)
"""An access-log line as ``python -m memories.server`` writes it."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(served_memory, *extra: str) -> list[str]:
    catalog = served_memory.catalog.display
    return [sys.executable, "-m", "memories.server", "--catalog", catalog, "--root", served_memory.root.uri, *extra]


def test_the_command_serves_the_memory_until_sigterm(served_memory):
    port = _free_port()
    env = {**os.environ, TOKEN_ENV: served_memory.token}
    proc = subprocess.Popen(
        _command(served_memory, "--port", str(port)), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /health in time"
            time.sleep(0.2)
        auth = {"Authorization": f"Bearer {served_memory.token}"}
        tiles = httpx.get(f"{base}/v1/tiles", headers=auth).json()["tiles"]
        assert [t["tile"] for t in tiles] == [served_memory.tile]
        assert httpx.get(f"{base}/v1/tiles").status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    log = out.decode()
    # uvicorn shuts down gracefully, then re-raises the signal so the parent sees how the process ended.
    assert proc.returncode in (0, -signal.SIGTERM), log
    assert "Finished server process" in log and "Traceback" not in log
    assert '"GET /v1/tiles" 200' in log and '"GET /v1/tiles" 401' in log
    assert served_memory.token not in log
    # The project's one CLI format (memories.logs): UTC ISO 8601 time, level, logger, message.
    access = [line for line in log.splitlines() if '"GET /v1/tiles" 200' in line]
    assert len(access) == 1 and ACCESS_LINE.match(access[0]), access


def test_the_command_refuses_a_public_host_without_a_token(served_memory):
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    done = subprocess.run(
        _command(served_memory, "--host", "0.0.0.0", "--port", str(_free_port())),
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert TOKEN_ENV in done.stderr.decode() and "refusing" in done.stderr.decode()


def test_a_damaged_catalog_is_one_line_naming_the_file_not_a_traceback(tmp_path):
    catalog = tmp_path / "memory_catalog.sqlite"
    catalog.write_bytes(b"")
    root = (tmp_path / "store").as_uri()
    env = {**os.environ, TOKEN_ENV: "t" * 32}
    for content in (b"", b"not a database at all\n" * 100):
        catalog.write_bytes(content)
        proc = subprocess.run(
            [sys.executable, "-m", "memories.server", "--catalog", str(catalog), "--root", root, "--port", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith(f"error: memory catalog {catalog} ")
        assert "backup" in proc.stderr
        assert catalog.read_bytes() == content  # never started over
