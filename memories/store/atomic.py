"""The one home of atomic writes to local files: whole or not at all, temporaries out of sight.

A file is written under a temporary name in its own folder, flushed to disk and
renamed over the target (``os.replace`` is atomic on POSIX), so a reader sees the
old content or the new, never half. The temporary name starts with ``.``
(``.part-0.parquet.tmp-<pid>-<host>-<hex>``): hive-partitioned readers (pyarrow,
which skips names starting with ``.`` or ``_``; DuckDB and Spark globs of
``*.parquet``) never count a temporary as data, even one a killed writer left
behind. Each write first removes the strays of its folder: temporaries whose
writer is dead (its process id no longer runs on this host) or older than
:data:`STRAY_AGE_S`, and the ``<name>.tmp-<hex>`` temporaries of versions before
this module (they lay in plain sight and were read as data).

A set of files switches at once through a symbolic link: :func:`replace_link`
points a link at a new target with one rename, so everything reached through it
changes together (the plain files of a report, ``StorageRoot.publish_report``).
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from functools import cache
from pathlib import Path

__all__ = ["STRAY_AGE_S", "atomic_write_file", "is_temporary", "remove_stray_temporaries", "replace_link"]

STRAY_AGE_S = 3600.0
"""Seconds after which a temporary is a stray whatever its writer: longer than any single file write."""

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<host>[A-Za-z0-9-]+)-(?P<hex>[0-9a-f]{16})$")
_LEGACY_RE = re.compile(r"^[^.].*\.tmp-[0-9a-f]{32}$")
"""``<name>.tmp-<uuid hex>``: the temporaries ``StorageRoot.write_bytes`` left in plain sight before this module."""


def atomic_write_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to the local file ``path`` so that readers see the old or the new content, never half.

    Creates the folder if needed and removes the folder's stray temporaries first
    (:func:`remove_stray_temporaries`). A write that raises leaves no temporary; one
    that is killed leaves a hidden one, removed by the next write into the folder.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stray_temporaries(target.parent)
    tmp = target.with_name(_temp_name(target.name))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def replace_link(link: str | os.PathLike[str], target: str) -> None:
    """Point the symbolic link ``link`` at ``target`` (relative to the link's folder) with one atomic rename.

    Replaces a link or a file at ``link`` (never a folder); does nothing when the
    link already points there. Removes the folder's stray temporaries first, as
    :func:`atomic_write_file` does.
    """
    link = Path(link)
    if link.is_symlink() and os.readlink(link) == target:
        return
    remove_stray_temporaries(link.parent)
    tmp = link.with_name(_temp_name(link.name))
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(link.parent)


def is_temporary(name: str) -> bool:
    """Whether a file name is a temporary of an atomic write (this module's, or the older ``<name>.tmp-<hex>``)."""
    return bool(_TEMP_RE.match(name) or _LEGACY_RE.match(name))


def remove_stray_temporaries(folder: str | os.PathLike[str], *, now: float | None = None) -> list[str]:
    """Delete the temporaries in ``folder`` that no live write owns; returns their names.

    A temporary is a stray when its writer's process is gone from this host, when it
    is older than :data:`STRAY_AGE_S` seconds (a writer on another host, or a reused
    process id), or when it has the pre-``.`` form ``<name>.tmp-<hex>``.
    """
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None and not _LEGACY_RE.match(entry.name):
            continue
        if m is not None and not _is_stray(int(m["pid"]), m["host"], entry, now):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue  # another writer removed it first
        removed.append(entry.name)
    return removed


def _is_stray(pid: int, host: str, entry: os.DirEntry[str], now: float) -> bool:
    try:
        age = now - entry.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return False
    if age > STRAY_AGE_S:
        return True
    return host == _host() and not _alive(pid)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True


@cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _temp_name(name: str) -> str:
    return f".{name}.tmp-{os.getpid()}-{_host()}-{uuid.uuid4().hex[:16]}"


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the directory entry, not just the file's bytes)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
