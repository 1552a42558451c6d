"""``python -m memories.server`` as a subprocess: the catalog of ``MEMORIES_CATALOG_URL``, and a log without tokens.

The command reads the catalog the way the code location does (a shared PostgreSQL
named by ``MEMORIES_CATALOG_URL``), refuses to start when it cannot reach it, and
never writes a token to its log, wherever a client put it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from memories.memory.catalog import CATALOG_URL_ENV, MemoryCatalog
from memories.server import TOKEN_ENV

START_TIMEOUT_S = 30.0
REFUSAL_TIMEOUT_S = 30.0
"""Seconds the command may take to refuse an unreachable catalog (the old one served another catalog for good)."""

# The PostgreSQL cluster is tests/conftest.py's session fixture ``postgres_url`` (real initdb / pg_ctl on 127.0.0.1).


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (CATALOG_URL_ENV, TOKEN_ENV)}
    return {**env, **extra}


class Served:
    """A ``python -m memories.server`` process and its base URL; :meth:`stop` returns its log."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memories.server", "--port", str(self.port), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited: {self.stop()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /health in time: {self.stop()}")
            time.sleep(0.2)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=15)
        return out.decode()


def test_the_command_refuses_an_unreachable_catalog_with_a_clear_message(tmp_path):
    port = _free_port()  # nothing listens there
    url = f"postgresql://earth:pw-{secrets.token_hex(4)}@127.0.0.1:{port}/earth"
    done = subprocess.run(
        [sys.executable, "-m", "memories.server", "--port", str(_free_port()), "--root", (tmp_path / "s").as_uri()],
        env=_env(**{CATALOG_URL_ENV: url}),
        capture_output=True,
        timeout=REFUSAL_TIMEOUT_S,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert f"cannot connect to the memory catalog postgresql://earth:***@127.0.0.1:{port}/earth" in err
    assert "check the URL, that PostgreSQL runs there" in err
    assert "Traceback" not in err and url.split(":")[2].split("@")[0] not in err  # no traceback, no password


@pytest.fixture
def pg_catalog(postgres_url: str) -> Iterator[str]:
    """The URL of a fresh PostgreSQL database of the test cluster."""
    import psycopg

    name = f"served_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_the_command_serves_the_catalog_of_memories_catalog_url(pg_catalog, tmp_path):
    catalog = MemoryCatalog.open(pg_catalog)
    for month, ndvi in (("2024-06", 0.51), ("2024-07", 0.47)):
        catalog.record(
            asset="spectral_indices",
            uri=f"s3://bucket/rasters/spectral_indices/33TVM.icechunk#{month}",
            tile="33TVM",
            partition=month,
            valid_from=datetime.fromisoformat(f"{month}-01T00:00:00+00:00"),
            valid_to=datetime.fromisoformat(f"{month}-28T00:00:00+00:00"),
            stats={"ndvi_mean": ndvi},
        )
    expected = catalog.query("spectral_indices")
    token = secrets.token_hex(16)
    served = Served(["--root", (tmp_path / "store").as_uri()], _env(**{CATALOG_URL_ENV: pg_catalog, TOKEN_ENV: token}))
    try:
        auth = {"Authorization": f"Bearer {token}"}
        got = httpx.get(f"{served.base}/v1/records", params={"asset": "spectral_indices"}, headers=auth).json()
        tiles = httpx.get(f"{served.base}/v1/tiles", headers=auth).json()["tiles"]
    finally:
        log = served.stop()
    assert got["count"] == len(expected) == 2, got
    assert [(r["id"], r["partition"], r["stats"]) for r in got["records"]] == [
        (r.id, r.partition, r.stats) for r in expected
    ]
    assert [t["tile"] for t in tiles] == ["33TVM"]
    assert "memory catalog postgresql://earth@127.0.0.1:" in log  # the log says which catalog it serves


def test_the_log_never_holds_the_token_wherever_a_client_puts_it(served_memory: Any):
    token = served_memory.token
    other_secret = "k3y-" + secrets.token_hex(8)
    served = Served(
        ["--catalog", served_memory.catalog.display, "--root", served_memory.root.uri], _env(**{TOKEN_ENV: token})
    )
    try:
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{served.base}/v1/tiles", params={"token": token}).status_code == 401
        assert httpx.get(f"{served.base}/v1/tiles", params={"access_token": token, "x": "1"}, headers=auth).is_success
        assert httpx.get(f"{served.base}/health", params={"api_key": other_secret}).status_code == 200
        assert httpx.get(f"{served.base}/v1/tiles", params={"note": token}, headers=auth).status_code == 200
        assert httpx.get(f"{served.base}/v1/{token}", headers=auth).status_code == 404
    finally:
        log = served.stop()
    access = [line for line in log.splitlines() if '"GET ' in line and '"GET /health" 200' not in line]
    assert len(access) == 5, log
    assert token not in log and other_secret not in log
    assert '"GET /v1/tiles?token=***" 401' in access[0]
    assert '"GET /v1/tiles?access_token=***&x=1" 200' in access[1]
    assert '"GET /health?api_key=***" 200' in access[2]
    assert '"GET /v1/tiles?note=***" 200' in access[3]
    assert '"GET /v1/***" 404' in access[4]
