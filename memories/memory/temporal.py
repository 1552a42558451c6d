"""Temporal memory: what the memory knew, about which place and period, at which time.

Every record of the memory catalog has a valid time (the period the data
describes, e.g. March 2023) and a transaction time (from when the memory learned
it until a newer version replaced it), and names the stored version it points at
(an Icechunk snapshot of a raster store, a version of a GeoParquet file). So

    memory.query(tile="33TVM", time_point="2023-03", as_of=datetime(2024, 1, 1))

answers "what did we know about tile 33TVM for March 2023, as of 1 January 2024",
and ``memory.load(record)`` returns exactly that version's pixels or features,
even after the partition was re-materialized.

A user keeps data of their own in the same memory, the seed's way::

    memory = TemporalMemoryManager()          # the configured catalog and storage root
    rid = memory.store(data=array, valid_time=(datetime(2023, 5, 1), datetime(2023, 5, 31)),
                       metadata={"source": "sentinel-2"})
    rid2 = memory.update(rid, metadata={"source": "sentinel-2", "checked": True})
    memory.query(time_range=(datetime(2023, 1, 1), datetime(2024, 1, 1)), as_of=before_update)

Queries on valid time go through an in-memory interval index
(:mod:`memories.memory.interval_index`) over the catalog's rows, refreshed with the
rows added since the last query; transaction time is checked by the catalog.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memories.errors import ConfigError, StorageError
from memories.memory.catalog import Materialization, MemoryCatalog, configured_location
from memories.memory.interval_index import OPEN_END, IntervalIndex, to_microseconds
from memories.memory.user_data import jsonable, read_user_data, write_user_data
from memories.months import parse_instant, parse_period
from memories.products import TEMPORAL_MEMORY
from memories.store.atomic import is_temporary
from memories.store.paths import StorageRoot

TimeLike = datetime | str
"""An instant: a datetime (UTC if naive), ``YYYY-MM`` (the whole month) or an ISO date/time string."""

USER_ASSET = TEMPORAL_MEMORY
"""The catalog's asset name of data stored with :meth:`TemporalMemory.store` (one partition per item)."""

INDEX_SHARE = 0.25
"""A query whose candidates exceed this share of all records reads the catalog in one scan instead."""


@dataclass(frozen=True)
class TemporalRecord(Materialization):
    """A catalog record as :meth:`TemporalMemory.query` returns it: times, metadata, and ``data`` on demand.

    Its fields are exactly those of :class:`~memories.memory.catalog.Materialization`
    (``dataclasses.asdict`` gives the catalog row), so pipeline code reads
    ``record.partition`` or ``record.version_id`` as before; the memory it loads its
    data from is bound by :meth:`bind`, outside the fields.
    """

    @classmethod
    def bind(cls, m: Materialization, memory: TemporalMemory) -> TemporalRecord:
        """The record ``m`` reading its data through ``memory``."""
        rec = cls(**{name: getattr(m, name) for name in _FIELDS})
        object.__setattr__(rec, "_memory", memory)
        object.__setattr__(rec, "_loaded", {})
        return rec

    @property
    def valid_time(self) -> tuple[datetime | None, datetime | None]:
        """(valid_from, valid_to), UTC; ``valid_to`` is ``None`` when open."""
        return _opt_dt(self.valid_from), _opt_dt(self.valid_to)

    @property
    def transaction_time(self) -> tuple[datetime, datetime | None]:
        """(transaction_from, transaction_to), UTC; ``transaction_to`` is ``None`` while the record is in force."""
        return _as_dt(self.transaction_from), _opt_dt(self.transaction_to)

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata given to ``store``/``update``; for pipeline records, their summary statistics."""
        if self.asset == USER_ASSET:
            return dict(self.stats.get("metadata") or {})
        return dict(self.stats)

    @property
    def previous_version(self) -> int | None:
        """The record id this version replaced (``update``), else ``None``."""
        prev = self.stats.get("previous_record")
        return int(prev) if prev is not None else None

    @property
    def data(self) -> Any:
        """The stored data of exactly this version, read on first access (see :meth:`TemporalMemory.load`)."""
        memory = getattr(self, "_memory", None)
        if memory is None:
            raise StorageError(f"record {self.id} is not bound to a memory; use TemporalMemory.load(record)")
        loaded: dict[str, Any] = self._loaded  # type: ignore[attr-defined]
        if "data" not in loaded:
            loaded["data"] = memory.load(self)
        return loaded["data"]


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
        self._index = IntervalIndex()
        self._indexed_to = 0

    def store(self, data: Any, valid_time: tuple[TimeLike, TimeLike], metadata: dict[str, Any] | None = None) -> int:
        """Keep ``data`` for the period ``valid_time``; returns the record id.

        Args:
            data: a numpy array or xarray object (a versioned Zarr store of its own),
                a DataFrame or GeoDataFrame ((Geo)Parquet), or a mapping of JSON values
                (see :mod:`memories.memory.user_data`).
            valid_time: (from, to), the period the data describes (datetimes, UTC if
                naive; ``YYYY-MM`` stands for the whole month).
            metadata: JSON values kept with the record (numpy numbers are converted).

        Raises:
            ConfigError: a type that is not stored, metadata that is not JSON, or a
                period that ends before it starts.
        """
        start, end = _period(valid_time)
        meta = jsonable(metadata or {}, "metadata")
        item = f"item-{uuid.uuid4().hex[:16]}"
        kind, uri, version = write_user_data(self.root, item, data)
        rec = self.catalog.record(
            asset=USER_ASSET,
            uri=uri,
            partition=item,
            valid_from=start,
            valid_to=end,
            stats={"kind": kind, "metadata": meta},
            version_id=version,
        )
        return rec.id

    def update(
        self,
        record_id: int,
        data: Any = None,
        valid_time: tuple[TimeLike, TimeLike] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """Replace a stored record by a new version; returns the new record's id.

        The old record's transaction time ends when the new one's begins (one catalog
        transaction); the new record names the old one (``previous_version``). What is
        not given is kept: ``data=None`` keeps the stored version (nothing is copied).

        Raises:
            StorageError: no such record, or it was already replaced (the message names the
                record in force to update instead).
            ConfigError: the record is a pipeline product (re-materialize its partition instead).
        """
        current = self.catalog.get(int(record_id))
        if current.asset != USER_ASSET:
            raise ConfigError(
                f"record {record_id} is the pipeline's {current.asset} of {current.partition}|{current.tile}; "
                "re-materialize that partition to replace it (update() changes data kept with store())"
            )
        if current.transaction_to is not None:
            newest = self.catalog.history(USER_ASSET, tile=None, partition=current.partition)[-1]
            raise StorageError(
                f"record {record_id} was replaced at {current.transaction_to}; the version in force is "
                f"record {newest.id}: update that one"
            )
        if valid_time is None:
            start, end = _opt_dt(current.valid_from), _opt_dt(current.valid_to)
        else:
            start, end = _period(valid_time)
        meta = jsonable(metadata, "metadata") if metadata is not None else current.stats.get("metadata", {})
        kind, uri, version = current.stats["kind"], current.uri, current.version_id
        if data is not None:
            assert current.partition is not None
            kind, uri, version = write_user_data(self.root, current.partition, data)
        rec = self.catalog.record(
            asset=USER_ASSET,
            uri=uri,
            partition=current.partition,
            valid_from=start,
            valid_to=end,
            stats={"kind": kind, "metadata": meta, "previous_record": current.id},
            version_id=version,
        )
        return rec.id

    def query(
        self,
        *,
        tile: str | None = None,
        asset: str | None = None,
        time_point: TimeLike | None = None,
        time_range: tuple[TimeLike, TimeLike] | None = None,
        as_of: datetime | str | None = None,
    ) -> list[TemporalRecord]:
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
            the stored data, URI, stats, ``metadata`` and lazily loaded ``data``),
            sorted by asset, tile, valid time and partition.
        """
        if time_point is not None and time_range is not None:
            raise ConfigError("pass time_point or time_range, not both")
        between = None
        if time_point is not None:
            between = (_start(time_point), _end(time_point))
        elif time_range is not None:
            between = (_start(time_range[0]), _end(time_range[1]))
        when = _start(as_of) if isinstance(as_of, str) else as_of
        if between is None:
            found = self.catalog.query(asset, tile=tile, as_of=when)
        else:
            if between[1] < between[0]:
                raise ConfigError(f"time_range {between[0]} .. {between[1]} ends before it starts")
            ids = self.candidates(between[0], between[1])
            if len(ids) > INDEX_SHARE * len(self._index):
                found = self.catalog.query(asset, tile=tile, valid_between=between, as_of=when)
            elif len(ids):
                found = self.catalog.query(asset, tile=tile, valid_between=between, as_of=when, ids=ids.tolist())
            else:
                found = []
        # Partitions (YYYY-MM) sort as their valid times; items kept with store() sort by valid time too.
        found = sorted(found, key=lambda m: (m.asset, m.tile or "", m.valid_from or "", m.partition or "", m.id))
        return [self._bind(m) for m in found]

    def candidates(self, start: datetime, end: datetime) -> Any:
        """Ids (int64 array, sorted) of every record, in force or not, whose valid time overlaps [start, end]."""
        self._refresh_index()
        return self._index.overlaps(_microseconds(start), _microseconds(end))

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
        if record.asset == USER_ASSET:
            if not record.version_id:
                raise StorageError(f"record {record.id} of the temporal memory names no stored version")
            return read_user_data(self.root, str(record.stats.get("kind")), uri, record.version_id)
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

    def _refresh_index(self) -> None:
        """Add the catalog rows written since the last query to the interval index."""
        rows = [r for r in self.catalog.valid_times(self._indexed_to)]
        if not rows:
            return
        self._indexed_to = rows[-1][0]
        timed = [r for r in rows if r[1] is not None]
        if timed:
            ids = [r[0] for r in timed]
            starts = to_microseconds([r[1] for r in timed], missing=0)
            ends = to_microseconds([r[2] for r in timed], missing=OPEN_END)
            self._index.add(ids, starts, ends)  # type: ignore[arg-type]

    def _bind(self, m: Materialization) -> TemporalRecord:
        return TemporalRecord.bind(m, self)


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

_FIELDS = tuple(f.name for f in fields(Materialization))


def _period(valid_time: tuple[TimeLike, TimeLike]) -> tuple[datetime, datetime]:
    try:
        first, last = valid_time
    except (TypeError, ValueError):
        raise ConfigError(
            f"valid_time {valid_time!r} must be a pair (from, to), e.g. (datetime(2023, 5, 1), ...)"
        ) from None
    start, end = _start(first), _end(last)
    if end < start:
        raise ConfigError(f"valid_time {start.isoformat()} .. {end.isoformat()} ends before it starts")
    return start, end


def _microseconds(d: datetime) -> int:
    d = d if d.tzinfo else d.replace(tzinfo=UTC)
    delta = d.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _as_dt(iso: str) -> datetime:
    return parse_instant(iso, "catalog time")


def _opt_dt(iso: str | None) -> datetime | None:
    return _as_dt(iso) if iso is not None else None


def _layers_at(root: StorageRoot, pattern: str) -> list[str]:
    """Layer names of an unversioned tile-month (``vectors/*/tile=../month=..``)."""
    return sorted(str(p).split("/vectors/")[1].split("/")[0] for p in root.fs.glob(root.path(pattern)))


def _start(t: TimeLike) -> datetime:
    return parse_period(t if isinstance(t, datetime) else str(t))[0]


def _end(t: TimeLike) -> datetime:
    return parse_period(t if isinstance(t, datetime) else str(t))[1]
