"""The memory catalog: every materialization, with its valid and transaction time.

One row per version of a product partition: what (asset), where (tile, bbox,
CRS), the period it describes (valid time), when the memory learned it
(transaction time: from when it was recorded until a newer version replaced it),
the storage version it points at (an Icechunk snapshot id, a vector version id),
its storage URI and summary statistics.

Two backends with one schema and one API: SQLite (one local file, the default)
and PostgreSQL (``postgresql://...``, for a catalog several users share).
:meth:`MemoryCatalog.record` closes the previous version and inserts the new one
in one transaction, serialized per partition (``BEGIN IMMEDIATE`` on SQLite, a
transaction-scoped advisory lock on PostgreSQL); a unique partial index makes two
open versions of one partition impossible even for a writer that skips the lock.
A killed writer leaves the previous state.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memories.errors import ConfigError, StorageError
from memories.json_values import json_default_or_str

_COLUMNS = """
    asset TEXT NOT NULL,
    tile TEXT,
    partition TEXT,
    version INTEGER NOT NULL,
    valid_from TEXT,
    valid_to TEXT,
    transaction_from TEXT NOT NULL,
    transaction_to TEXT,
    uri TEXT NOT NULL,
    crs TEXT,
    bbox_wgs84 TEXT,
    stats TEXT NOT NULL DEFAULT '{}',
    run_id TEXT,
    version_id TEXT
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS ix_mat_asset_tile ON materializations (asset, tile, partition);
CREATE INDEX IF NOT EXISTS ix_mat_current ON materializations (asset, transaction_to);
CREATE UNIQUE INDEX IF NOT EXISTS ux_mat_one_open ON materializations
    (asset, COALESCE(tile, ''), COALESCE(partition, '')) WHERE transaction_to IS NULL;
"""
_ORDER = " ORDER BY asset, tile, partition"
_IDS_PER_QUERY = 900
"""Row ids per ``IN (...)`` list, below SQLite's oldest limit of 999 bound parameters."""
_SCHEMA_SQLITE = (
    f"CREATE TABLE IF NOT EXISTS materializations (id INTEGER PRIMARY KEY AUTOINCREMENT,{_COLUMNS});{_INDEXES}"
)
_SCHEMA_POSTGRES = f"CREATE TABLE IF NOT EXISTS materializations (id BIGSERIAL PRIMARY KEY,{_COLUMNS});{_INDEXES}"


CATALOG_URL_ENV = "MEMORIES_CATALOG_URL"
"""Environment variable holding a shared catalog's URL (``postgresql://user:password@host:5432/db``).

The code location (``dagster_project.definitions``), the query server and
:class:`~memories.memory.temporal.TemporalMemory` all read it, so they serve one
catalog; its password never enters a file or a command line."""


def configured_location() -> str:
    """The catalog of this process: ``$MEMORIES_CATALOG_URL`` when set, else the configured SQLite file.

    The SQLite file is ``storage.catalog_path`` of :mod:`memories.config`.
    """
    import os

    from memories.config import config

    return os.environ.get(CATALOG_URL_ENV, "").strip() or config.storage.catalog_path


@dataclass(frozen=True)
class Materialization:
    """One recorded version of a product partition (times are UTC ISO strings).

    ``version`` counts the versions of the partition (1, 2, ...); ``version_id``
    names the stored data of this version (an Icechunk snapshot id for rasters, a
    vector version id, or a JSON object of layer -> version id), ``None`` when the
    store is not versioned.
    """

    id: int
    asset: str
    tile: str | None
    partition: str | None
    version: int
    valid_from: str | None
    valid_to: str | None
    transaction_from: str
    transaction_to: str | None
    uri: str
    crs: str | None
    bbox_wgs84: tuple[float, float, float, float] | None
    stats: dict[str, Any]
    run_id: str | None
    version_id: str | None = None


class MemoryCatalog:
    """The catalog of everything the memory holds: a SQLite file or a PostgreSQL database.

    Args:
        location: a SQLite file path (``str`` or ``Path``, ``sqlite:///abs/path`` also
            accepted) or a PostgreSQL URL ``postgresql://user:password@host:port/db``.
    """

    def __init__(self, location: str | Path) -> None:
        text = str(location)
        self.url = text
        if text.startswith(("postgresql://", "postgres://")):
            self.backend = "postgresql"
            self.path: Path | None = None
            self.display = _mask_password(text)
            with self._connect() as con:
                con.execute("SELECT pg_advisory_xact_lock(7031)")  # one schema creator at a time
                con.execute(_SCHEMA_POSTGRES)
        else:
            if "://" in text and not text.startswith("sqlite:///"):
                raise ConfigError(
                    f"memory catalog {_mask_password(text)!r} is neither a SQLite path nor a postgresql:// URL; "
                    "use e.g. data/memory_catalog.sqlite or postgresql://user@host:5432/earth"
                )
            self.backend = "sqlite"
            self.path = Path(text.removeprefix("sqlite://"))
            self.display = str(self.path)
            _create_or_check_sqlite(self.path)
            with self._connect() as con:
                con.executescript(_SCHEMA_SQLITE.split("CREATE UNIQUE")[0])
                cols = {r["name"] for r in con.execute("PRAGMA table_info(materializations)").fetchall()}
                if "version_id" not in cols:  # catalogs written before versioned stores
                    con.execute("ALTER TABLE materializations ADD COLUMN version_id TEXT")
                con.executescript("CREATE UNIQUE" + _SCHEMA_SQLITE.split("CREATE UNIQUE")[1])

    @classmethod
    def open(cls, location: str | Path) -> MemoryCatalog:
        """The catalog at a SQLite path or a ``postgresql://`` URL."""
        return cls(location)

    def __repr__(self) -> str:
        return f"MemoryCatalog({self.display!r})"

    def record(
        self,
        *,
        asset: str,
        uri: str,
        tile: str | None = None,
        partition: str | None = None,
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
        crs: str | None = None,
        bbox_wgs84: tuple[float, float, float, float] | None = None,
        stats: dict[str, Any] | None = None,
        run_id: str | None = None,
        transaction_time: datetime | None = None,
        version_id: str | dict[str, Any] | None = None,
    ) -> Materialization:
        """Record a new version of (asset, tile, partition); the previous one is closed.

        The previous version's transaction time ends when this one's begins, in
        the same database transaction. ``version_id`` names the stored data (a
        snapshot id; a dict, e.g. layer -> version, is stored as JSON).
        """
        vid = json.dumps(version_id, sort_keys=True) if isinstance(version_id, dict) else version_id
        with self._connect() as con:
            if self.backend == "sqlite":
                con.execute("BEGIN IMMEDIATE")
            else:
                con.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"{asset}|{tile}|{partition}",))
            # Taken under the lock, so transaction times of one partition never go backwards.
            now = _iso(transaction_time or datetime.now(UTC))
            row = con.execute(
                "SELECT MAX(version) AS v FROM materializations WHERE asset=? AND tile IS ? AND partition IS ?",
                (asset, tile, partition),
            ).fetchone()
            version = (row["v"] or 0) + 1
            con.execute(
                "UPDATE materializations SET transaction_to=? "
                "WHERE asset=? AND tile IS ? AND partition IS ? AND transaction_to IS NULL",
                (now, asset, tile, partition),
            )
            new = con.execute(
                "INSERT INTO materializations (asset, tile, partition, version, valid_from, valid_to, "
                "transaction_from, uri, crs, bbox_wgs84, stats, run_id, version_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING *",
                (
                    asset,
                    tile,
                    partition,
                    version,
                    _iso(valid_from) if valid_from else None,
                    _iso(valid_to) if valid_to else None,
                    now,
                    uri,
                    crs,
                    json.dumps(list(bbox_wgs84)) if bbox_wgs84 else None,
                    json.dumps(stats or {}, default=_json_default),
                    run_id,
                    vid,
                ),
            ).fetchone()
        return _row(new)

    def get(self, id_: int) -> Materialization:
        """One row by id."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM materializations WHERE id=?", (id_,)).fetchone()
        if row is None:
            raise StorageError(f"the memory catalog {self.display} has no materialization {id_}")
        return _row(row)

    def current(self, asset: str, *, tile: str | None = None, as_of: datetime | None = None) -> list[Materialization]:
        """The versions in force (now, or as the memory stood at ``as_of``), by partition."""
        return self.query(asset, tile=tile, as_of=as_of)

    def query(
        self,
        asset: str | None = None,
        *,
        tile: str | None = None,
        partition: str | None = None,
        valid_at: datetime | None = None,
        valid_between: tuple[datetime, datetime] | None = None,
        as_of: datetime | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[Materialization]:
        """Bi-temporal selection: the versions in force at ``as_of`` (default: now).

        Args:
            asset: one asset, or all.
            tile: one tile, or all.
            partition: one partition key (``YYYY-MM``), or all.
            valid_at: keep records whose valid period contains this instant.
            valid_between: keep records whose valid period overlaps [start, end].
            as_of: transaction time: what the memory knew at this instant.
            ids: only among these rows (the candidates of an index on valid time).

        Records without a valid time (models) are left out when a valid-time
        filter is given. Sorted by asset, tile, partition.
        """
        sql = "SELECT * FROM materializations WHERE 1=1"
        args: list[Any] = []
        for col, value in (("asset", asset), ("tile", tile), ("partition", partition)):
            if value is not None:
                sql += f" AND {col}=?"
                args.append(value)
        if as_of is None:
            sql += " AND transaction_to IS NULL"
        else:
            t = _iso(as_of)
            sql += " AND transaction_from<=? AND (transaction_to IS NULL OR transaction_to>?)"
            args += [t, t]
        if valid_at is not None:
            valid_between = (valid_at, valid_at)
        if valid_between is not None:
            start, end = valid_between
            if _iso(end) < _iso(start):
                raise ConfigError(f"time_range {start.isoformat()} .. {end.isoformat()} ends before it starts")
            sql += " AND valid_from IS NOT NULL AND valid_from<=? AND (valid_to IS NULL OR valid_to>=?)"
            args += [_iso(end), _iso(start)]
        if ids is None:
            with self._connect() as con:
                return [_row(r) for r in con.execute(sql + _ORDER, args).fetchall()]
        wanted = sorted({int(i) for i in ids})
        rows = []
        with self._connect() as con:
            for k in range(0, len(wanted), _IDS_PER_QUERY):
                chunk = wanted[k : k + _IDS_PER_QUERY]
                rows += con.execute(sql + f" AND id IN ({','.join('?' * len(chunk))})", [*args, *chunk]).fetchall()
        out = [_row(r) for r in rows]
        return sorted(out, key=lambda m: (m.asset, m.tile or "", m.partition or "", m.id))

    def valid_times(self, after_id: int = 0) -> list[tuple[int, str | None, str | None]]:
        """``(id, valid_from, valid_to)`` of every row with an id above ``after_id``, by id.

        Valid times never change once recorded (a new version is a new row), so an
        index on valid time stays right by reading only the rows added since.
        """
        with self._connect() as con:
            rows = con.execute(
                "SELECT id, valid_from, valid_to FROM materializations WHERE id>? ORDER BY id", (int(after_id),)
            ).fetchall()
        return [(int(r["id"]), r["valid_from"], r["valid_to"]) for r in rows]

    def history(self, asset: str, *, tile: str | None, partition: str | None) -> list[Materialization]:
        """Every version of one partition, oldest first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM materializations WHERE asset=? AND tile IS ? AND partition IS ? ORDER BY version",
                (asset, tile, partition),
            ).fetchall()
        return [_row(r) for r in rows]

    def partitions(self, asset: str, *, tile: str | None = None) -> list[str]:
        """Partitions (months) of an asset with a current version, sorted."""
        return sorted({m.partition for m in self.current(asset, tile=tile) if m.partition})

    def assets(self) -> list[str]:
        """Every asset with at least one recorded version, sorted."""
        with self._connect() as con:
            return sorted(r["asset"] for r in con.execute("SELECT DISTINCT asset FROM materializations").fetchall())

    @contextmanager
    def _connect(self) -> Iterator[_Connection]:
        if self.backend == "postgresql":
            import psycopg
            from psycopg.rows import dict_row

            try:
                pg = psycopg.connect(self.url, row_factory=dict_row, connect_timeout=30)
            except psycopg.OperationalError as e:
                raise StorageError(
                    f"cannot connect to the memory catalog {self.display}: {_mask_password(str(e))}; "
                    "check the URL, that PostgreSQL runs there, and the credentials"
                ) from None
            try:
                with pg.transaction():
                    yield _Connection(pg, postgres=True)
            finally:
                pg.close()
            return
        assert self.path is not None
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            con.execute("PRAGMA journal_mode=WAL")
            yield _Connection(con, postgres=False)
            if con.in_transaction:
                con.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            if con.in_transaction:
                try:
                    con.execute("ROLLBACK")
                except sqlite3.DatabaseError:
                    pass  # the error below says what is wrong
            if type(e) is sqlite3.DatabaseError:  # not a locked or constraint error: the file itself is bad
                raise _damaged(self.path, str(e)) from None
            raise
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()


class _Connection:
    """One SQL dialect for both backends: ``?`` placeholders, ``IS ?`` for null-safe equality."""

    def __init__(self, con: Any, *, postgres: bool) -> None:
        self.con = con
        self.postgres = postgres

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        if self.postgres:
            sql = sql.replace(" IS ?", " IS NOT DISTINCT FROM ?").replace("?", "%s")
        return self.con.execute(sql, args)

    def executescript(self, sql: str) -> None:
        self.con.executescript(sql)


SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""


def _create_or_check_sqlite(path: Path) -> None:
    """Create a new SQLite catalog at ``path`` only where no file is; refuse an existing file that is no catalog.

    A new catalog is built under a temporary name and linked into place (``os.link``
    never replaces a file), so two processes opening a missing catalog at once never
    see a half-made one, and an existing file, even an empty one, is never started over.

    Raises:
        StorageError: ``path`` is a folder, an empty file or not a SQLite database.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.new-{uuid.uuid4().hex}")
        try:
            con = sqlite3.connect(tmp, isolation_level=None)
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(_SCHEMA_SQLITE)
            finally:
                con.close()
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process created it first: open theirs
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
                leftover.unlink(missing_ok=True)
    if path.is_dir():
        raise StorageError(
            f"memory catalog {path} is a folder, not a SQLite file; point storage.catalog_path at a file"
        )
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_HEADER))
    if not head:
        raise StorageError(
            f"memory catalog {path} is an empty file (0 bytes): the history it held is gone from it "
            "(a truncated copy, a full disk?). Restore it from a backup; it is not started over. "
            "To begin a new, empty catalog, delete the file (or set storage.catalog_path to a new path)."
        )
    if head != SQLITE_HEADER:
        raise _damaged(path, "the file does not start with the SQLite header")


def _damaged(path: Path | None, why: str) -> StorageError:
    """The error for a catalog file that SQLite cannot read: the file, the cause and what to do."""
    return StorageError(
        f"memory catalog {path} is not a readable SQLite database ({why}). Restore it from a backup, or "
        f"recover what it holds with `sqlite3 {path} .recover | sqlite3 recovered.sqlite`; "
        "it is not started over. To begin a new, empty catalog, move the file away."
    )


def _mask_password(url: str) -> str:
    """A URL or message with the password of any ``scheme://user:password@`` replaced by ``***``."""
    return re.sub(r"(://[^:/@\s]+):[^@\s]*@", r"\1:***@", url)


def _iso(d: datetime) -> str:
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.astimezone(UTC).isoformat(timespec="microseconds")


def _json_default(o: Any) -> Any:
    """The library's encoder (``memories.json_values``), with the catalog's own form of instants (UTC, µs)."""
    return _iso(o) if isinstance(o, datetime) else json_default_or_str(o)


def _row(r: Any) -> Materialization:
    keys = r.keys()
    return Materialization(
        id=int(r["id"]),
        asset=r["asset"],
        tile=r["tile"],
        partition=r["partition"],
        version=int(r["version"]),
        valid_from=r["valid_from"],
        valid_to=r["valid_to"],
        transaction_from=r["transaction_from"],
        transaction_to=r["transaction_to"],
        uri=r["uri"],
        crs=r["crs"],
        bbox_wgs84=tuple(json.loads(r["bbox_wgs84"])) if r["bbox_wgs84"] else None,
        stats=json.loads(r["stats"]),
        run_id=r["run_id"],
        version_id=r["version_id"] if "version_id" in keys else None,
    )
