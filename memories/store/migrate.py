"""Migration of raster stores from their legacy name ``<tile>.zarr`` to ``<tile>.icechunk``.

Raster stores were Icechunk repositories named ``rasters/<product>/<tile>.zarr``;
neither ``xr.open_zarr`` nor GDAL can open them under that name. They are now
``rasters/<product>/<tile>.icechunk`` (:meth:`StorageRoot.raster_uri`). A store
still at its legacy place is moved the first time it is opened, whole and with
every snapshot, so versions recorded in the memory catalog stay loadable (the
catalog keeps the URIs it recorded; :func:`current_raster_uri` maps them).

A local root renames the folder (atomic) holding both stores' commit locks. An S3
root has no rename: the objects are copied, branch refs last, so the new
repository exists only once it is complete, then the legacy objects are deleted,
refs first. Run no writer of a version of this project older than the rename
while a store is migrated on S3.
"""

from __future__ import annotations

import contextlib
import os

from memories.errors import StorageError
from memories.store.paths import LEGACY_RASTER_SUFFIX, RASTER_SUFFIX, StorageRoot
from memories.store.repository import commit_lock, quiet_local_storage_warning

__all__ = ["current_raster_uri", "migrate_raster_store"]


def current_raster_uri(root: StorageRoot, uri: str) -> str:
    """The URI a raster store lives at now, with the store moved there if it was still at its legacy place.

    A legacy ``.zarr`` URI (as a catalog recorded it) maps to ``.icechunk``; for a
    ``.icechunk`` URI, a store at its legacy sibling is moved (:func:`migrate_raster_store`).
    Other URIs come back unchanged.
    """
    if not root.is_raster_uri(uri):
        return uri
    stem = uri.removesuffix(LEGACY_RASTER_SUFFIX).removesuffix(RASTER_SUFFIX)
    migrate_raster_store(root, stem + LEGACY_RASTER_SUFFIX, stem + RASTER_SUFFIX)
    return stem + RASTER_SUFFIX


def migrate_raster_store(root: StorageRoot, legacy_uri: str, uri: str) -> bool:
    """Move the Icechunk repository at ``legacy_uri`` to ``uri``; True if it moved, False if there was none to move.

    Raises:
        StorageError: both places hold a store (the fix: keep one of them), or the copy failed.
    """
    import icechunk

    quiet_local_storage_warning()
    # Icechunk's local storage creates the folder it is asked about: look before asking.
    if root.is_local and not os.path.isdir(root.local_path(legacy_uri)):
        return False
    if not icechunk.Repository.exists(root.icechunk_storage(legacy_uri)):
        return False
    if root.is_local:
        with commit_lock(root, legacy_uri), commit_lock(root, uri):
            if not os.path.exists(root.local_path(legacy_uri)):
                return False  # another process moved it meanwhile
            _refuse_both(root, legacy_uri, uri)
            os.rename(root.local_path(legacy_uri), root.local_path(uri))
        with contextlib.suppress(OSError):
            os.remove(root.local_path(legacy_uri) + ".lock")
        return True
    _refuse_both(root, legacy_uri, uri)
    _move_objects(root, legacy_uri, uri)
    return True


def _refuse_both(root: StorageRoot, legacy_uri: str, uri: str) -> None:
    import icechunk

    if icechunk.Repository.exists(root.icechunk_storage(uri)):
        raise StorageError(
            f"two raster stores for one product and tile: {legacy_uri} (the name used before) and {uri}; "
            "keep the one you want (export a month of each with memories.store.export to compare) and delete the other"
        )


def _move_objects(root: StorageRoot, legacy_uri: str, uri: str) -> None:
    """Copy every object of the repository (refs last), then delete the legacy ones (refs first)."""
    import icechunk

    src, dst = root.path(legacy_uri), root.path(uri)
    fs = root.fs
    fs.invalidate_cache()
    keys = sorted(str(k) for k in fs.find(src))
    refs = [k for k in keys if k[len(src) :].startswith("/refs/")]
    data = [k for k in keys if k not in set(refs)]
    try:
        for key in data + refs:
            fs.copy(key, dst + key[len(src) :])
    except FileNotFoundError:
        # Another process migrated the store at the same time and deleted the legacy objects.
        fs.invalidate_cache()
        if icechunk.Repository.exists(root.icechunk_storage(uri)):
            return
        raise StorageError(
            f"moving {legacy_uri} to {uri} failed: objects vanished mid-copy; open the store again"
        ) from None
    for key in refs + data:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(key)
    fs.invalidate_cache()
