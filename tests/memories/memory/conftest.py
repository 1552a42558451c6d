"""Catalog backends for the memory tests: a SQLite file, and a database of the session's PostgreSQL cluster.

The cluster is ``tests/conftest.py::postgres_url`` (a throwaway ``initdb`` cluster on
127.0.0.1); the PostgreSQL variant is skipped, with the reason, only when no
PostgreSQL binary is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
