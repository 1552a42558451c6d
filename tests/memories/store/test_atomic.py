"""Atomic local writes: temporaries hidden from hive readers, strays of dead writers removed, live ones kept."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from memories.store.atomic import (
    STRAY_AGE_S,
    atomic_write_file,
    is_temporary,
    remove_stray_temporaries,
    replace_link,
)
from memories.store.atomic import _host as host


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(proc.stdout)


def test_strays_of_dead_or_old_writers_go_and_a_live_writers_temporary_stays(tmp_path):
    live = tmp_path / f".a.parquet.tmp-{os.getpid()}-{host()}-{'1' * 16}"
    dead = tmp_path / f".b.parquet.tmp-{_dead_pid()}-{host()}-{'2' * 16}"
    old = tmp_path / f".c.parquet.tmp-{os.getpid()}-otherhost-{'3' * 16}"
    elsewhere = tmp_path / f".d.parquet.tmp-{_dead_pid()}-otherhost-{'4' * 16}"  # another host: only age tells
    legacy = tmp_path / f"part-0.parquet.tmp-{'5' * 32}"
    data = tmp_path / "part-0.parquet"
    for p in (live, dead, old, elsewhere, legacy, data):
        p.write_bytes(b"x")
    os.utime(old, (time.time() - STRAY_AGE_S - 1,) * 2)
    assert all(is_temporary(p.name) for p in (live, dead, old, elsewhere, legacy)) and not is_temporary(data.name)

    removed = remove_stray_temporaries(tmp_path)
    assert sorted(removed) == sorted([dead.name, old.name, legacy.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, elsewhere.name, data.name])


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "tile=33TVM" / "month=2023-06" / "part-0.parquet"
    atomic_write_file(target, b"one")
    atomic_write_file(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["part-0.parquet"]


def test_replace_link_switches_a_link_in_one_rename(tmp_path):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    (tmp_path / "v1" / "f").write_text("1")
    (tmp_path / "v2" / "f").write_text("2")
    replace_link(tmp_path / "cur", "v1")
    replace_link(tmp_path / "f", "cur/f")
    assert (tmp_path / "f").read_text() == "1"
    replace_link(tmp_path / "cur", "v2")
    assert (tmp_path / "f").read_text() == "2" and os.readlink(tmp_path / "cur") == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cur", "f", "v1", "v2"]
