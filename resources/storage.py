"""Storage root and memory catalog resources."""

from __future__ import annotations

import threading
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from memories.config import config
from memories.memory.catalog import MemoryCatalog
from memories.store.paths import StorageRoot


class StorageResource(ConfigurableResource):  # type: ignore[misc]
    """Where products are written: ``file://`` (default) or ``s3://`` through s3fs.

    S3 credentials come from the environment (``AWS_ACCESS_KEY_ID``, ...), never
    from this configuration.
    """

    root: str = Field(default_factory=lambda: config.storage.root, description="file:// or s3:// URI")
    s3_endpoint_url: str | None = Field(
        default_factory=lambda: config.storage.s3_endpoint_url,
        description="endpoint of an S3-compatible server; empty for AWS",
    )

    def storage_root(self) -> StorageRoot:
        """The storage root of this run."""
        return StorageRoot(self.root, self.s3_endpoint_url)


class MemoryCatalogResource(ConfigurableResource):  # type: ignore[misc]
    """The memory catalog that records every materialization: a SQLite file or PostgreSQL.

    ``url`` takes a ``postgresql://user:password@host:5432/db`` URL for a shared
    catalog; pass it as ``EnvVar("MEMORIES_CATALOG_URL")`` so the password stays out
    of the configuration. Empty: the SQLite file at ``path``. The password is never
    logged (``MemoryCatalog`` shows the URL with ``***``).
    """

    path: str = Field(
        default_factory=lambda: config.storage.catalog_path, description="SQLite file (when url is empty)"
    )
    url: str = Field(default="", description="postgresql:// URL of a shared catalog (use an EnvVar); empty: path")

    def location(self) -> str:
        """The catalog's URL or SQLite path."""
        return self.url or self.path

    def catalog(self) -> MemoryCatalog:
        """The catalog of this run: one ``MemoryCatalog`` per location and process.

        Opening a catalog checks and migrates its schema (a few statements, each on its own
        connection); every asset asks for the catalog once per partition, so it is opened once and
        reused (each operation still takes its own connection, so threads may share it). A SQLite
        file removed meanwhile is opened anew.
        """
        location = self.location()
        with _CATALOGS_LOCK:
            catalog = _CATALOGS.get(location)
            if catalog is None or (catalog.path is not None and not Path(catalog.path).is_file()):
                catalog = _CATALOGS[location] = MemoryCatalog.open(location)
            return catalog


_CATALOGS: dict[str, MemoryCatalog] = {}
"""Location -> the process's open catalog there."""
_CATALOGS_LOCK = threading.Lock()
