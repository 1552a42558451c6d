"""Icechunk plumbing shared by the raster-store modules: the commit lock and Icechunk's log filter."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from memories.store.paths import StorageRoot

__all__ = ["commit_lock", "quiet_local_storage_warning"]


def commit_lock(root: StorageRoot, uri: str) -> contextlib.AbstractContextManager[Any]:
    """The lock that serializes commits to the raster store at ``uri`` between processes on a local root.

    Icechunk's local file storage is not safe for concurrent commits; on S3 its
    conditional writes make commits safe without a lock (a null context there).
    """
    if not root.is_local:
        return contextlib.nullcontext()
    from filelock import FileLock

    path = root.local_path(uri) + ".lock"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return FileLock(path, timeout=300)


_QUIETED = False


def quiet_local_storage_warning() -> None:
    """Icechunk warns at every open of local storage; commits here are serialized by a file lock."""
    global _QUIETED
    if _QUIETED or "ICECHUNK_LOG" in os.environ:
        return
    import icechunk

    icechunk.set_logs_filter("icechunk=warn,icechunk::storage::object_store=error")
    _QUIETED = True
