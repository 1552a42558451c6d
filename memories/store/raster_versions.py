"""The versions of a raster store: its branch's Icechunk snapshots, newest first, and the one current at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from memories.months import parse_instant
from memories.store.migrate import current_raster_uri
from memories.store.paths import StorageRoot
from memories.store.repository import quiet_local_storage_warning

BRANCH = "main"
"""The branch every partition write commits to."""


@dataclass(frozen=True)
class RasterVersion:
    """One committed snapshot of a raster store.

    Attributes:
        snapshot_id: the Icechunk snapshot id (the version id the catalog records).
        written_at: when it was committed (UTC).
        message: the commit message.
        metadata: product, tile, month (``None`` for layout commits) and run id.
    """

    snapshot_id: str
    written_at: datetime
    message: str
    metadata: dict[str, Any]

    @property
    def month(self) -> str | None:
        """The month this snapshot wrote, or ``None`` for a layout commit."""
        m = self.metadata.get("month")
        return str(m) if m else None


def ancestry(repo: Any) -> list[RasterVersion]:
    """The snapshots of the branch, newest first."""
    return [
        RasterVersion(str(s.id), s.written_at.astimezone(UTC), s.message, dict(s.metadata or {}))
        for s in repo.ancestry(branch=BRANCH)
    ]


def raster_versions(root: StorageRoot, uri: str) -> list[RasterVersion]:
    """The snapshots of the raster store at ``uri``, newest first, without its grid (a legacy URI is mapped)."""
    import icechunk

    quiet_local_storage_warning()
    storage = root.icechunk_storage(current_raster_uri(root, uri))
    return ancestry(icechunk.Repository.open(storage)) if icechunk.Repository.exists(storage) else []


def snapshot_at_time(versions: list[RasterVersion], as_of: datetime) -> str | None:
    """The id of the newest of ``versions`` (newest first) committed at or before ``as_of`` (UTC if naive)."""
    t = parse_instant(as_of, "as_of")
    return next((v.snapshot_id for v in versions if v.written_at <= t), None)
