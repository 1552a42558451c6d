"""Test session setup: a small embedded world, and no network beyond 127.0.0.1.

The library reads its settings at import, so the test configuration is written and
named in ``MEMORIES_CONFIG`` here, before any test module imports the project.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.real_data import MARKER, require_data

TEST_ROOT = Path(tempfile.mkdtemp(prefix="earth-memory-tests-"))
TEST_SETTINGS = {
    "storage": {"root": (TEST_ROOT / "store").as_uri(), "catalog_path": str(TEST_ROOT / "catalog.sqlite")},
    "sample": {
        "seed": 42,
        "n_tiles": 2,
        "start_month": "2023-05",
        "n_months": 4,
        "size_px": 256,
        "revisit_days": 5,
        "root": str(TEST_ROOT / "sample_world"),
    },
    "compute": {"dask_threads": 2, "chunk_px": 128},
    "model": {"width": 16, "max_epochs": 8, "patch_px": 64, "patches_per_scene": 32, "seed": 7},
}
(TEST_ROOT / "config.yaml").write_text(yaml.safe_dump(TEST_SETTINGS))
os.environ["MEMORIES_CONFIG"] = str(TEST_ROOT / "config.yaml")
os.environ.setdefault("MPLBACKEND", "Agg")

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        try:
            ok = ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            ok = host == "localhost"
        if not ok:
            raise ConnectionRefusedError(f"a test tried to reach {address}; tests stay on 127.0.0.1")
    return _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(*paths): reads real data of ../shared/data; fails naming a missing path"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``needs_data`` fails naming the missing path, before its fixtures load anything."""
    for mark in item.iter_markers(MARKER):
        require_data(*mark.args)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 server (moto's server mode) on a free port of 127.0.0.1 for the session.

    Test credentials go into ``AWS_*`` for as long as it runs; each test module
    makes its own bucket with :func:`s3_bucket`.
    """
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    mp = pytest.MonkeyPatch()
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        mp.setenv(k, v)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        mp.undo()
        server.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> Callable[[str], Any]:
    """Make a bucket on the session's S3 server (idempotent); returns a boto3 client."""
    import boto3

    def make(name: str) -> Any:
        client = boto3.client("s3", endpoint_url=s3_endpoint)
        if name not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=name)
        return client

    return make


@pytest.fixture(autouse=True)
def _dagster_state_storage_restored() -> Iterator[None]:
    """Put Dagster's current defs-state storage back after each test.

    Entering a ``DagsterInstance`` (``with instance_for_test() as instance``) installs its
    state storage in a context variable that Dagster 1.13 does not always reset; a later
    ``materialize`` in the same process then opens the deleted temporary instance's
    ``runs.db`` ("unable to open database file").
    """
    from dagster._core.storage.defs_state.base import _current_storage

    before = _current_storage.get()
    yield
    _current_storage.set(before)
