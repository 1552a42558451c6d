"""Maintenance of the raster stores: deleting what no snapshot references, never a version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memories.errors import StorageError
from memories.store.migrate import current_raster_uri
from memories.store.paths import StorageRoot
from memories.store.repository import commit_lock, quiet_local_storage_warning

__all__ = ["GC_COUNTS", "collect_raster_garbage"]

GC_COUNTS = (
    "bytes_deleted",
    "chunks_deleted",
    "manifests_deleted",
    "snapshots_deleted",
    "attributes_deleted",
    "transaction_logs_deleted",
)
"""The keys of :func:`collect_raster_garbage`'s answer (Icechunk's ``GCSummary``)."""


def collect_raster_garbage(
    root: StorageRoot, uri: str, older_than: timedelta = timedelta(days=1), *, dry_run: bool = False
) -> dict[str, int]:
    """Delete the objects of the raster store at ``uri`` that no snapshot references, e.g. the chunks of a killed write.

    Icechunk's ``Repository.garbage_collect`` keeps everything reachable from a
    branch or tag; no snapshot is expired here, so every committed version stays
    readable (by snapshot id and ``as_of``). Only unreferenced objects older than
    ``older_than`` go: a write still in flight has written chunks that no snapshot
    references yet, so ``older_than`` must exceed the longest write (default one
    day). On a local root the collection holds the store's commit lock.

    Args:
        older_than: keep unreferenced objects younger than this (a ``timedelta``, >= 0).
        dry_run: count what would go, delete nothing.

    Returns:
        ``bytes_deleted`` (bytes), ``chunks_deleted``, ``manifests_deleted``,
        ``snapshots_deleted``, ``attributes_deleted``, ``transaction_logs_deleted``
        (counts); all 0 for a store that does not exist.
    """
    import icechunk

    if older_than < timedelta(0):
        raise StorageError(f"older_than={older_than} is negative; pass a timedelta >= 0, e.g. timedelta(days=1)")
    quiet_local_storage_warning()
    uri = current_raster_uri(root, uri)
    storage = root.icechunk_storage(uri)
    if not icechunk.Repository.exists(storage):
        return dict.fromkeys(GC_COUNTS, 0)
    with commit_lock(root, uri):
        try:
            summary = icechunk.Repository.open(storage).garbage_collect(datetime.now(UTC) - older_than, dry_run=dry_run)
        except icechunk.IcechunkError as e:
            raise StorageError(f"{uri}: garbage collection failed: {e}") from None
    return {k: int(getattr(summary, k)) for k in GC_COUNTS}
