"""Catalog backends for the memory tests: a SQLite file, and a throwaway PostgreSQL cluster on 127.0.0.1.

The PostgreSQL cluster is created with the real ``initdb`` / ``pg_ctl`` (found on
PATH or under ``/usr/lib/postgresql/*/bin``) in a temporary folder, listens on a
free port of 127.0.0.1 only, and is stopped after the session. ``initdb`` refuses
to run as root: as root, the cluster runs as the ``postgres`` (or ``nobody``)
user through ``runuser``. The PostgreSQL variant is skipped, with the reason,
only when no PostgreSQL binary is installed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


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


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty catalog location of each backend (one PostgreSQL database per test)."""
    if request.param == "sqlite":
        return str(tmp_path / "catalog.sqlite")
    import psycopg

    url = request.getfixturevalue("postgres_url")
    name = "t_" + os.urandom(6).hex()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name
