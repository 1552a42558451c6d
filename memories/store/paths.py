"""The one home of storage paths: every URI under the storage root is built here.

The root is ``file:///abs/path`` by default or ``s3://bucket/prefix`` in production
(any S3-compatible server through ``s3_endpoint_url``; credentials come from the
environment, as boto does it). Nothing else in the project joins path strings.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from memories.errors import ConfigError, StorageError
from memories.store.atomic import atomic_write_file, replace_link

CURRENT_LINK = "_current"
"""The link in a local report folder to the version its plain files show (``StorageRoot.publish_report``)."""

RASTER_SUFFIX = ".icechunk"
"""Raster stores are Icechunk repositories, named so (see :meth:`StorageRoot.raster_uri`)."""

LEGACY_RASTER_SUFFIX = ".zarr"
"""The name raster stores had before: ``xr.open_zarr`` and GDAL cannot open them, the name notwithstanding."""


@dataclass(frozen=True)
class StorageRoot:
    """A storage root URI and the filesystem that reaches it."""

    uri: str
    s3_endpoint_url: str | None = None

    def __post_init__(self) -> None:
        scheme = urlparse(self.uri).scheme
        if scheme not in ("file", "s3"):
            raise ConfigError(
                f"storage root {self.uri!r} must be a file:// or s3:// URI, "
                "e.g. file:///home/me/earth or s3://bucket/earth"
            )
        object.__setattr__(self, "uri", self.uri.rstrip("/"))

    # -- URIs of products -------------------------------------------------
    def raster_uri(self, product: str, tile: str) -> str:
        """Icechunk repository (versioned Zarr v3) of one raster product of one tile.

        Open it with ``icechunk`` (``Repository.open(...).readonly_session("main").store``),
        not as a plain Zarr store; ``memories.store.export`` writes plain COG and Zarr copies.
        """
        return f"{self.uri}/rasters/{product}/{tile}{RASTER_SUFFIX}"

    def legacy_raster_uri(self, product: str, tile: str) -> str:
        """Where stores written before the rename lived (``<tile>.zarr``, although Icechunk repositories).

        ``memories.store.migrate`` moves such a store to :meth:`raster_uri` when it is first opened.
        """
        return f"{self.uri}/rasters/{product}/{tile}{LEGACY_RASTER_SUFFIX}"

    def is_raster_uri(self, uri: str) -> bool:
        """Whether ``uri`` names a raster store (``.../rasters/<product>/<tile>``), by its current or its legacy name.

        Any root's: a catalog may hold URIs recorded under an earlier root URI.
        """
        return "/rasters/" in uri and uri.endswith((RASTER_SUFFIX, LEGACY_RASTER_SUFFIX))

    def vector_uri(self, layer: str, tile: str, month: str) -> str:
        """GeoParquet file of one vector layer, hive-partitioned by tile and month."""
        return f"{self.uri}/vectors/{layer}/tile={tile}/month={month}/part-0.parquet"

    def vectors_uri(self, tile: str, month: str) -> str:
        """The folder name pattern of one tile-month across all vector layers."""
        return f"{self.uri}/vectors/*/tile={tile}/month={month}"

    def table_uri(self, name: str, tile: str, month: str) -> str:
        """A plain (Geo)Parquet table of one partition."""
        return f"{self.uri}/tables/{name}/tile={tile}/month={month}/part-0.parquet"

    def tile_file_uri(self, product: str, tile: str, filename: str) -> str:
        """A file of a per-tile (not monthly) product: climate, census regions, historical maps."""
        return f"{self.uri}/sources/{product}/tile={tile}/{filename}"

    def report_uri(self, kind: str, tile: str, month: str, filename: str) -> str:
        """A file of one report."""
        return f"{self.uri}/reports/{kind}/{tile}/{month}/{filename}"

    def report_index_uri(self) -> str:
        """The page listing every report (``reports/index.html``, :mod:`memories.applications.report_index`)."""
        return f"{self.uri}/reports/index.html"

    def memory_uri(self, kind: str, name: str) -> str:
        """A file of the spatial, context or relationship memory (``kind``), e.g. ``spatial``, ``default.parquet``."""
        return f"{self.uri}/memory/{kind}/{name}"

    def tier_uri(self, tier: str, key: str) -> str:
        """An object kept by the tiered store in one tier (``warm``, ``cold``, ``glacier``)."""
        return f"{self.uri}/tiers/{tier}/{key}"

    def model_uri(self, name: str, version: int) -> str:
        """A model checkpoint in the registry."""
        return f"{self.uri}/models/{name}/v{version:04d}.ckpt"

    def model_sidecar_uri(self, name: str, version: int) -> str:
        """The JSON record (metrics, training data) beside a checkpoint."""
        return f"{self.uri}/models/{name}/v{version:04d}.json"

    def model_dir(self, name: str) -> str:
        """The folder of all versions of one model."""
        return f"{self.uri}/models/{name}"

    # -- versions of whole files (vectors, tables) ---------------------------
    def version_uri(self, uri: str, version: str) -> str:
        """The immutable copy of one version of a file: ``<folder>/_versions/<version>.<ext>``.

        The ``_`` prefix keeps versions out of hive-partitioned dataset scans (pyarrow,
        DuckDB), which see only the current file at ``uri``.
        """
        folder, _, name = uri.rpartition("/")
        ext = name.rpartition(".")[2] if "." in name else "bin"
        _check_version(version, uri)
        return f"{folder}/_versions/{version}.{ext}"

    def version_pointer_uri(self, uri: str) -> str:
        """The small JSON file naming the current version of the file at ``uri``."""
        folder, _, name = uri.rpartition("/")
        return f"{folder}/_versions/{name}.current.json"

    def versions_dir(self, uri: str) -> str:
        """The folder holding every version of the file at ``uri``."""
        return f"{uri.rpartition('/')[0]}/_versions"

    def current_version(self, uri: str) -> str | None:
        """The version id the pointer of ``uri`` names; ``None`` for a file never written versioned."""
        import json

        pointer = self.version_pointer_uri(uri)
        if not self.exists(pointer):
            return None
        return str(json.loads(self.read_bytes(pointer))["version"])

    def versions(self, uri: str) -> list[str]:
        """Every stored version id of the file at ``uri``, oldest first (ids sort by write time)."""
        folder = self.versions_dir(uri)
        if not self.exists(folder):
            return []
        ext = "." + uri.rpartition(".")[2]
        names = [str(p).rpartition("/")[2] for p in self.fs.ls(self.path(folder), detail=False)]
        return sorted(n[: -len(ext)] for n in names if n.endswith(ext))

    # -- versions of file sets (reports) ---------------------------------------
    def report_version_uri(self, kind: str, tile: str, month: str, version: str, filename: str) -> str:
        """A file of one immutable version of a report: ``<report folder>/_versions/<version>/<filename>``.

        A version holds the whole set of the report's files (HTML, figures, summary);
        its pointer is ``version_pointer_uri(report_uri(kind, tile, month, "report.html"))``.
        """
        _check_version(version, self.report_uri(kind, tile, month, filename))
        return f"{self.uri}/reports/{kind}/{tile}/{month}/_versions/{version}/{filename}"

    def report_parts(self, uri: str) -> tuple[str, str, str, str] | None:
        """(kind, tile, month, filename) of a plain report file's URI (``report_uri``); ``None`` for other URIs."""
        prefix = f"{self.uri}/reports/"
        if not uri.startswith(prefix):
            return None
        parts = uri[len(prefix) :].split("/")
        if len(parts) != 4 or not all(parts):
            return None
        kind, tile, month, filename = parts
        return kind, tile, month, filename

    def report_versions(self, kind: str, tile: str, month: str) -> list[str]:
        """Every complete stored version id of one report, oldest first (ids sort by write time).

        A version is complete once its ``summary.json`` is written (the last of its files).
        """
        folder = self.versions_dir(self.report_uri(kind, tile, month, "report.html"))
        if not self.exists(folder):
            return []
        names = [str(p).rstrip("/").rpartition("/")[2] for p in self.fs.ls(self.path(folder), detail=False)]
        return sorted(
            n
            for n in names
            if not n.endswith(".json")
            and not n.startswith(".")
            and self.exists(self.report_version_uri(kind, tile, month, n, "summary.json"))
        )

    def publish_report(
        self, kind: str, tile: str, month: str, version: str, payload: dict[str, bytes]
    ) -> dict[str, str]:
        """Make the stored ``version`` of a report its plain files (``report_uri``); returns name -> plain URI.

        On a local root the plain files are relative symbolic links ``<name> ->
        _current/<name>`` and ``_current`` links to ``_versions/<version>``: the links
        of every name are made first, then ``_current`` is switched with one atomic
        rename, then links of names the version lacks (dangling now) are removed. A kill at any point
        leaves the previous set of files or the new one, never a mix, and a browser
        opening ``report.html`` loads the figures of the same version. (Plain files that
        older versions of this code wrote as copies are replaced by links once.)

        On S3 the plain files are copies, figures first and the page last: S3 has no
        multi-object commit, so a kill can leave a mix there until the next write;
        readers that need one version resolve it through the pointer (the server does).
        """
        files = {name: self.report_uri(kind, tile, month, name) for name in payload}
        if not self.is_local:
            for name in sorted(payload, key=lambda n: n == "report.html"):  # the page after its figures
                self.write_bytes(files[name], payload[name])
            return files
        folder = Path(self.path(self.report_uri(kind, tile, month, "report.html"))).parent
        current = folder / CURRENT_LINK
        if not current.is_symlink():  # first publish: let the links show the previous version until the switch
            previous = self.current_version(self.report_uri(kind, tile, month, "report.html"))
            if previous and previous != version and (folder / "_versions" / previous).is_dir():
                replace_link(current, f"_versions/{previous}")
        for name in payload:
            replace_link(folder / name, f"{CURRENT_LINK}/{name}")
        replace_link(current, f"_versions/{version}")
        for entry in os.scandir(folder):  # links to names the version lacks (they dangle now)
            if (
                entry.name not in payload
                and entry.is_symlink()
                and os.readlink(entry.path).startswith(f"{CURRENT_LINK}/")
                and not os.path.exists(entry.path)
            ):
                os.unlink(entry.path)
        return files

    def cache_dir(self, name: str) -> str:
        """Local folder of one download cache (``stac``, ``assets``): ``<root>/cache/<name>`` on a
        local root; for an S3 root, a folder of this machine's temp dir named after the root."""
        if self.is_local:
            return f"{self.path(self.uri)}/cache/{name}"
        import hashlib
        import tempfile

        return f"{tempfile.gettempdir()}/earth-memory-cache/{hashlib.sha1(self.uri.encode()).hexdigest()[:12]}/{name}"

    # -- access -----------------------------------------------------------
    @property
    def is_local(self) -> bool:
        """True for a ``file://`` root."""
        return self.uri.startswith("file://")

    @cached_property
    def fs(self) -> Any:
        """The fsspec filesystem of the root."""
        import fsspec

        if self.is_local:
            return fsspec.filesystem("file")
        kwargs: dict[str, Any] = {}
        if self.s3_endpoint_url:
            kwargs["client_kwargs"] = {"endpoint_url": self.s3_endpoint_url}
        return fsspec.filesystem("s3", **kwargs)

    def path(self, uri: str) -> str:
        """The filesystem path of a URI (no scheme for local, ``bucket/key`` for S3)."""
        if uri.startswith("file://"):
            return urlparse(uri).path
        if uri.startswith("s3://"):
            return uri[len("s3://") :]
        raise StorageError(f"{uri!r} is not under a file:// or s3:// root")

    def exists(self, uri: str) -> bool:
        """Whether a file or folder exists."""
        return bool(self.fs.exists(self.path(uri)))

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write a whole file so that readers see the old or the new content, never half.

        Local files go to a hidden temporary name in the same folder and are renamed
        over the target (:func:`memories.store.atomic.atomic_write_file`: hive readers
        never see the temporary, and a killed write's is removed by the next write into
        the folder); an S3 PUT is atomic by itself.
        """
        p = self.path(uri)
        if self.is_local:
            atomic_write_file(p, data)
        else:
            self.fs.pipe_file(p, data)

    def read_bytes(self, uri: str) -> bytes:
        """Read a whole file."""
        try:
            return bytes(self.fs.cat_file(self.path(uri)))
        except FileNotFoundError:
            raise StorageError(f"{uri} does not exist; materialize the asset that writes it first") from None

    def local_path(self, uri: str) -> str:
        """The local path of a ``file://`` URI; an error for remote roots."""
        if not self.is_local:
            raise StorageError(f"{uri} is not local; read it through StorageRoot.fs")
        return self.path(uri)

    def icechunk_storage(self, uri: str) -> Any:
        """The Icechunk storage of a versioned store at ``uri`` (a local folder or an S3 prefix).

        S3 credentials come from the environment (``AWS_ACCESS_KEY_ID``, ...); with an
        endpoint (MinIO, moto, Ceph) path-style addressing is used, and plain HTTP is
        allowed only for an ``http://`` endpoint.
        """
        import icechunk

        if self.is_local:
            return icechunk.local_filesystem_storage(self.path(uri))
        bucket, _, prefix = self.path(uri).partition("/")
        endpoint = self.s3_endpoint_url
        return icechunk.s3_storage(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=endpoint,
            allow_http=bool(endpoint and endpoint.startswith("http://")),
            force_path_style=bool(endpoint),
            region=os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or ("us-east-1" if endpoint else None),
            from_env=True,
        )


def new_version_id(now: datetime | None = None) -> str:
    """A fresh version id that sorts by write time: ``20240101T120000123456Z-1a2b3c4d`` (UTC)."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


def _check_version(version: str, uri: str) -> None:
    """A version id is one path segment: not empty, no ``/``, not starting with ``.``."""
    if not version or "/" in version or version.startswith("."):
        raise StorageError(f"version {version!r} of {uri} is not a valid version id (no '/', not empty)")
