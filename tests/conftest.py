"""Test session setup: a small embedded world, and no network beyond 127.0.0.1.

The library reads its settings on first use (importing it reads nothing); the test
configuration is written and named in ``MEMORIES_CONFIG`` here, before any test runs.

``app_memory``: the applications' memory of a small sample world (tile 33TVM, 2023-01..08),
built once per session by ``tests/memories/applications/conftest.py``'s builder and shared
by every package that needs it.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
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


# -- a throwaway PostgreSQL cluster ----------------------------------------------------------------
# Created with the real ``initdb`` / ``pg_ctl`` (found on PATH or under ``/usr/lib/postgresql/*/bin``)
# in a temporary folder, listening on a free port of 127.0.0.1 only, stopped after the session.
# ``initdb`` refuses to run as root: as root, the cluster runs as the ``postgres`` (or ``nobody``)
# user through ``runuser``. Tests that need it are skipped, with the reason, only when no
# PostgreSQL binary is installed.


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").exists() and Path(d, "pg_ctl").exists():
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> list[str]:
    """The command prefix that drops root for initdb/pg_ctl (empty when not root)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        if shutil.which("runuser"):
            return ["runuser", "-u", user, "--"]
        if shutil.which("setpriv"):
            pw = pwd.getpwnam(user)
            return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    pytest.skip("running as root and no non-root user (postgres, nobody) with runuser/setpriv to run initdb as")
    return []


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://earth@127.0.0.1:<port>/postgres`` of a fresh cluster, stopped after the session."""
    bindir = _pg_bindir()
    if bindir is None:
        reason = "no PostgreSQL binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin"
        print(f"SKIP PostgreSQL catalog tests: {reason}")
        pytest.skip(reason)
    prefix = _run_as()
    base = Path(tempfile.mkdtemp(prefix="earth-memory-pg-"))
    data = base / "data"
    if prefix:
        user = prefix[2] if prefix[0] == "runuser" else pwd.getpwuid(int(prefix[1].split("=")[1])).pw_name
        pw = pwd.getpwnam(user)
        os.chown(base, pw.pw_uid, pw.pw_gid)
        base.chmod(0o700)
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "earth", "-A", "trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        env=env,
    )
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' -c fsync=off"
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
        check=True,
        capture_output=True,
        env=env,
    )
    url = f"postgresql://earth@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            env=env,
        )
        shutil.rmtree(base, ignore_errors=True)


# -- two workers (pytest-xdist) ------------------------------------------------------------------------
# ``scripts/test.sh`` runs the suite with ``-n 2 --dist loadfile``. Each worker is its own process with its
# own ``TEST_ROOT`` (this module runs in each), and every server the tests start takes a free port. A file is
# one unit of work, so its module fixtures are built once; the files that share a costly session fixture are
# one unit too (see ``SHARED_SESSION``), so it is built once. Units run longest first (``LONGEST_FIRST``,
# measured with ``--durations``), so the two workers finish together.
SHARED_SESSION = {
    "tests/memories/ai/": "ai-trained-models",  # tests/memories/ai/conftest.py
    "tests/memories/applications/": "app-memory",
    "tests/memories/server/": "app-memory",
    "tests/test_seed_examples.py": "app-memory",
}
LONGEST_FIRST = [  # seconds of one unit on two workers, 2 cores (--durations, 2026-12-03)
    "tests/dagster_project/test_pipeline.py",  # 265
    "app-memory",  # 223
    "tests/dagster_project/test_durability.py",  # 176
    "tests/ui/test_ui.py",  # 154
    "tests/dagster_project/test_multiprocess_deployment.py",  # 145
    "tests/dagster_project/test_backfill.py",  # 103
    "ai-trained-models",  # 66
]
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER and int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # Two workers on two cores: one intra-op thread each for torch and BLAS (two each would spin against
    # each other). Set before anything imports torch or numpy.
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")


def _work_unit(nodeid: str) -> str:
    """The unit of work of a test: its file, or the name of the session fixture its file shares."""
    path = nodeid.split("::")[0]
    for prefix, unit in SHARED_SESSION.items():
        if path.startswith(prefix):
            return unit
    return path


def _rank(unit: str) -> int:
    return LONGEST_FIRST.index(unit) if unit in LONGEST_FIRST else len(LONGEST_FIRST)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: the longest units of work first (the controller hands units out in this order)."""
    if XDIST_WORKER:
        items.sort(key=lambda item: _rank(_work_unit(item.nodeid)))  # stable: the files' own order within a unit


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, with the files that share a session fixture (``SHARED_SESSION``) as one unit.

    (xdist's own ``loadgroup`` marks do not group on pytest 9: xdist 3.8 renames ``item._nodeid``, which
    pytest 9 no longer reads.)
    """
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return UnitScheduling(config, log)


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


@pytest.fixture(scope="session")
def app_memory() -> Any:
    """The memory of tile 33TVM, 2023-01..2023-08 (see ``tests/memories/applications/conftest.py``), built once."""
    import importlib.util

    path = Path(__file__).resolve().parent / "memories" / "applications" / "conftest.py"
    spec = importlib.util.spec_from_file_location("app_memory_builder", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module.build_app_memory(Path(tempfile.mkdtemp(prefix="app-memory-")))


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
