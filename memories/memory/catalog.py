"""The memory catalog: every materialization, with its valid and transaction time.

One row per version of a product partition: what (asset), where (tile, bbox,
CRS), the period it describes (valid time), when the memory learned it
(transaction time: from when it was recorded until a newer version replaced it),
its storage URI and summary statistics. SQLite by default (one local file);
writes are transactions, so a killed writer leaves the previous state.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memories.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS materializations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    run_id TEXT
);
CREATE INDEX IF NOT EXISTS ix_mat_asset_tile ON materializations (asset, tile, partition);
CREATE INDEX IF NOT EXISTS ix_mat_current ON materializations (asset, transaction_to);
"""


@dataclass(frozen=True)
class Materialization:
    """One recorded version of a product partition (times are UTC ISO strings)."""

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


class MemoryCatalog:
    """The catalog of everything the memory holds, in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_SCHEMA)

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
    ) -> Materialization:
        """Record a new version of (asset, tile, partition); the previous one is closed.

        The previous version's transaction time ends when this one's begins, in
        the same database transaction.
        """
        now = _iso(transaction_time or datetime.now(UTC))
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute(
                "SELECT MAX(version) FROM materializations WHERE asset=? AND tile IS ? AND partition IS ?",
                (asset, tile, partition),
            ).fetchone()
            version = (row[0] or 0) + 1
            con.execute(
                "UPDATE materializations SET transaction_to=? "
                "WHERE asset=? AND tile IS ? AND partition IS ? AND transaction_to IS NULL",
                (now, asset, tile, partition),
            )
            cur = con.execute(
                "INSERT INTO materializations (asset, tile, partition, version, valid_from, valid_to, "
                "transaction_from, uri, crs, bbox_wgs84, stats, run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
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
                ),
            )
            new_id = cur.lastrowid
        return self.get(int(new_id or 0))

    def get(self, id_: int) -> Materialization:
        """One row by id."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM materializations WHERE id=?", (id_,)).fetchone()
        if row is None:
            raise StorageError(f"the memory catalog {self.path} has no materialization {id_}")
        return _row(row)

    def current(
        self, asset: str, *, tile: str | None = None, as_of: datetime | None = None
    ) -> list[Materialization]:
        """The versions in force (now, or as the memory stood at ``as_of``), by partition."""
        sql = "SELECT * FROM materializations WHERE asset=?"
        args: list[Any] = [asset]
        if tile is not None:
            sql += " AND tile=?"
            args.append(tile)
        if as_of is None:
            sql += " AND transaction_to IS NULL"
        else:
            t = _iso(as_of)
            sql += " AND transaction_from<=? AND (transaction_to IS NULL OR transaction_to>?)"
            args += [t, t]
        sql += " ORDER BY tile, partition"
        with self._connect() as con:
            return [_row(r) for r in con.execute(sql, args).fetchall()]

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

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            con.execute("PRAGMA journal_mode=WAL")
            yield con
            if con.in_transaction:
                con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()


def _iso(d: datetime) -> str:
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.astimezone(UTC).isoformat(timespec="microseconds")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, datetime):
        return _iso(o)
    return str(o)


def _row(r: sqlite3.Row) -> Materialization:
    return Materialization(
        id=r["id"],
        asset=r["asset"],
        tile=r["tile"],
        partition=r["partition"],
        version=r["version"],
        valid_from=r["valid_from"],
        valid_to=r["valid_to"],
        transaction_from=r["transaction_from"],
        transaction_to=r["transaction_to"],
        uri=r["uri"],
        crs=r["crs"],
        bbox_wgs84=tuple(json.loads(r["bbox_wgs84"])) if r["bbox_wgs84"] else None,
        stats=json.loads(r["stats"]),
        run_id=r["run_id"],
    )
