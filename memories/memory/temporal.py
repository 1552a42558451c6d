"""Temporal memory: what the memory knew, about which place and period, at which time.

Every record of the memory catalog has a valid time (the period the data
describes, e.g. March 2023) and a transaction time (from when the memory learned
it until a newer version replaced it), and names the stored version it points at
(an Icechunk snapshot of a raster store, a version of a GeoParquet file). So

    memory.query(tile="33TVM", time_point="2023-03", as_of=datetime(2024, 1, 1))

answers "what did we know about tile 33TVM for March 2023, as of 1 January 2024",
and ``memory.load(record)`` returns exactly that version's pixels or features,
even after the partition was re-materialized.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from memories.errors import ConfigError, StorageError
from memories.memory.catalog import Materialization, MemoryCatalog, configured_location
from memories.months import is_month, month_range, parse_time
from memories.store.atomic import is_temporary
from memories.store.paths import StorageRoot

TimeLike = datetime | str
"""An instant: a datetime (UTC if naive), ``YYYY-MM`` (the whole month) or an ISO date/time string."""


class TemporalMemory:
    """Bi-temporal queries over the memory catalog, and loads of exact versions from the stores.

    Args:
        catalog: a :class:`MemoryCatalog`, a SQLite path or a ``postgresql://`` URL;
            default: ``$MEMORIES_CATALOG_URL``, else the configured SQLite file.
        root: the storage root (``StorageRoot`` or URI); default: the configured one.
        s3_endpoint_url: endpoint of an S3-compatible server when ``root`` is a URI.
    """

    def __init__(
        self,
        catalog: MemoryCatalog | str | Path | None = None,
        root: StorageRoot | str | None = None,
        s3_endpoint_url: str | None = None,
    ) -> None:
        from memories.config import config

        if catalog is None:
            catalog = configured_location()  # $MEMORIES_CATALOG_URL or the configured SQLite file
        self.catalog = catalog if isinstance(catalog, MemoryCatalog) else MemoryCatalog.open(catalog)
        if root is None:
            root = StorageRoot(config.storage.root, s3_endpoint_url or config.storage.s3_endpoint_url)
        self.root = root if isinstance(root, StorageRoot) else StorageRoot(root, s3_endpoint_url)

    def query(
        self,
        *,
        tile: str | None = None,
        asset: str | None = None,
        time_point: TimeLike | None = None,
        time_range: tuple[TimeLike, TimeLike] | None = None,
        as_of: datetime | str | None = None,
    ) -> list[Materialization]:
        """The records in force at ``as_of`` (default: now) whose valid time matches.

        Args:
            tile: MGRS tile id, e.g. ``33TVM``; all tiles if ``None``.
            asset: asset name, e.g. ``surface_reflectance``; all assets if ``None``.
            time_point: valid time: records describing this instant (a ``YYYY-MM``
                month matches records overlapping that month).
            time_range: valid time: records overlapping ``[start, end]`` (months
                stand for their whole span).
            as_of: transaction time: what the memory knew then.

        Returns:
            Records (valid and transaction times, version number, ``version_id`` of
            the stored data, URI, stats), sorted by asset, tile and partition.
        """
        if time_point is not None and time_range is not None:
            raise ConfigError("pass time_point or time_range, not both")
        between = None
        if time_point is not None:
            between = (_start(time_point), _end(time_point))
        elif time_range is not None:
            between = (_start(time_range[0]), _end(time_range[1]))
        when = _start(as_of) if isinstance(as_of, str) else as_of
        return self.catalog.query(asset, tile=tile, valid_between=between, as_of=when)

    def history(self, asset: str, *, tile: str | None, partition: str | None) -> list[Materialization]:
        """Every version of one partition (``YYYY-MM``), oldest first, open or closed."""
        return self.catalog.history(asset, tile=tile, partition=partition)

    def load(self, record: Materialization, *, layer: str | None = None) -> Any:
        """The data of exactly this record's version.

        Returns:
            an ``xarray.Dataset`` of the month (raster products, dims ``([band,] y, x)``);
            a ``GeoDataFrame`` (a GeoParquet table); for ``gis_layers`` a dict
            layer -> ``GeoDataFrame`` (or one ``GeoDataFrame`` with ``layer=``); for a
            versioned report, that version's summary (see :func:`load_report_version`);
            the raw bytes of any other file (a report written before versioning, a checkpoint).
        """
        from memories.earth.gis import read_geoparquet

        uri = record.uri
        report = self.root.report_parts(uri)
        if report is not None and record.version_id:
            kind, tile, month, _ = report
            return load_report_version(self.root, kind, tile, month, record.version_id)
        if self.root.is_raster_uri(uri):
            from memories.store.raster import open_raster_version

            return open_raster_version(self.root, uri, record.version_id, month=record.partition)
        if uri.endswith(".parquet"):
            return read_geoparquet(self.root, uri, version=record.version_id)
        if "/vectors/*/" in uri:
            if not (record.tile and record.partition):
                raise StorageError(f"record {record.id} of {record.asset} has no tile-month to find its layers")
            versions: dict[str, str] = json.loads(record.version_id) if record.version_id else {}
            layers = [layer] if layer else (sorted(versions) or _layers_at(self.root, uri))
            out = {}
            for name in layers:
                if versions and name not in versions:
                    raise StorageError(f"record {record.id} has no layer {name!r}; it holds {sorted(versions)}")
                out[name] = read_geoparquet(
                    self.root, self.root.vector_uri(name, record.tile, record.partition), version=versions.get(name)
                )
            return out[layer] if layer else out
        return self.root.read_bytes(uri)


def load_report_version(
    root: StorageRoot, kind: str, tile: str, month: str, version: str | None = None
) -> dict[str, Any]:
    """The summary of one stored version of a tile-month's report (``kind``: e.g. ``environmental``).

    Args:
        version: the version id the catalog recorded; ``None``: the current version (the pointer's).

    Returns:
        the dict of that version's ``summary.json``, plus ``version`` (the id) and
        ``files`` (file name -> URI of that version's immutable copy: ``report.html``,
        ``summary.json``, the PNG figures).

    Raises:
        StorageError: the report was never written versioned, or has no such version.
    """
    html_uri = root.report_uri(kind, tile, month, "report.html")
    version = version or root.current_version(html_uri)
    if version is None:
        raise StorageError(f"{html_uri} has no versioned report; materialize the {kind} report of {month}|{tile}")
    summary_uri = root.report_version_uri(kind, tile, month, version, "summary.json")
    if not root.exists(summary_uri):
        raise StorageError(
            f"the {kind} report of {month}|{tile} has no version {version!r}; stored versions: "
            f"{root.report_versions(kind, tile, month)[-5:]} (latest last)"
        )
    folder = summary_uri.rpartition("/")[0]
    names = sorted(str(p).rstrip("/").rpartition("/")[2] for p in root.fs.ls(root.path(folder), detail=False))
    files = {n: root.report_version_uri(kind, tile, month, version, n) for n in names if not is_temporary(n)}
    summary: dict[str, Any] = json.loads(root.read_bytes(summary_uri))
    return {**summary, "version": version, "files": files}


TemporalMemoryManager = TemporalMemory
"""The seed's name of the temporal memory."""


def _layers_at(root: StorageRoot, pattern: str) -> list[str]:
    """Layer names of an unversioned tile-month (``vectors/*/tile=../month=..``)."""
    return sorted(str(p).split("/vectors/")[1].split("/")[0] for p in root.fs.glob(root.path(pattern)))


def _parse(t: TimeLike) -> tuple[datetime, datetime]:
    """[start, end] of an instant or a month (UTC)."""
    text = t if isinstance(t, datetime) else str(t).strip()
    if isinstance(text, str) and is_month(text):
        return month_range(text)
    start = parse_time(text)  # one parser of instants: ConfigError at the calendar's edge, never an overflow
    return start, start


def _start(t: TimeLike) -> datetime:
    return _parse(t)[0]


def _end(t: TimeLike) -> datetime:
    return _parse(t)[1]
