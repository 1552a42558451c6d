"""The memory catalog on both backends (SQLite file, PostgreSQL on 127.0.0.1)."""

import multiprocessing as mp
from datetime import UTC, datetime, timedelta

import pytest

from memories.errors import ConfigError, StorageError
from memories.memory.catalog import MemoryCatalog


def test_rematerialized_partition_closes_the_previous_version(catalog_location):
    cat = MemoryCatalog.open(catalog_location)
    assert cat.backend == ("postgresql" if catalog_location.startswith("postgresql") else "sqlite")
    t1 = datetime(2024, 1, 1, tzinfo=UTC)
    t2 = t1 + timedelta(days=30)
    v1 = cat.record(
        asset="sr",
        uri="file:///a",
        tile="33TVM",
        partition="2023-03",
        stats={"x": 1},
        valid_from=datetime(2023, 3, 1, tzinfo=UTC),
        transaction_time=t1,
        version_id="SNAP1",
    )
    v2 = cat.record(
        asset="sr",
        uri="file:///b",
        tile="33TVM",
        partition="2023-03",
        stats={"x": 2},
        transaction_time=t2,
        version_id="SNAP2",
    )
    cat.record(asset="sr", uri="file:///c", tile="33TVM", partition="2023-04", transaction_time=t2)
    assert (v1.version, v2.version) == (1, 2)
    assert (v1.version_id, v2.version_id) == ("SNAP1", "SNAP2")
    hist = cat.history("sr", tile="33TVM", partition="2023-03")
    assert hist[0].transaction_to == hist[1].transaction_from
    assert hist[1].transaction_to is None
    now = cat.current("sr", tile="33TVM")
    assert [(m.partition, m.uri) for m in now] == [("2023-03", "file:///b"), ("2023-04", "file:///c")]
    before = cat.current("sr", tile="33TVM", as_of=t1 + timedelta(days=1))
    assert [(m.partition, m.stats["x"], m.version_id) for m in before] == [("2023-03", 1, "SNAP1")]
    assert hist[0].valid_from.startswith("2023-03-01")
    assert cat.partitions("sr") == ["2023-03", "2023-04"]


def test_query_selects_by_valid_time_and_transaction_time(catalog_location):
    cat = MemoryCatalog.open(catalog_location)
    t1, t2 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)
    for month, start, end in (("2023-03", (2023, 3, 1), (2023, 3, 31)), ("2023-04", (2023, 4, 1), (2023, 4, 30))):
        cat.record(
            asset="ndvi",
            uri="file:///x",
            tile="33TVM",
            partition=month,
            transaction_time=t1,
            valid_from=datetime(*start, tzinfo=UTC),
            valid_to=datetime(*end, 23, 59, tzinfo=UTC),
        )
    cat.record(asset="model", uri="file:///m.ckpt", transaction_time=t1, version_id={"b": "2", "a": "1"})
    cat.record(
        asset="ndvi",
        uri="file:///y",
        tile="33TVM",
        partition="2023-03",
        transaction_time=t2,
        valid_from=datetime(2023, 3, 1, tzinfo=UTC),
        valid_to=datetime(2023, 3, 31, 23, 59, tzinfo=UTC),
    )
    mid_march = datetime(2023, 3, 15, tzinfo=UTC)
    assert [m.uri for m in cat.query("ndvi", valid_at=mid_march)] == ["file:///y"]
    assert [m.uri for m in cat.query("ndvi", valid_at=mid_march, as_of=t1 + timedelta(days=1))] == ["file:///x"]
    assert cat.query("ndvi", valid_at=mid_march, as_of=t1 - timedelta(days=1)) == []
    spring = (datetime(2023, 3, 20, tzinfo=UTC), datetime(2023, 4, 5, tzinfo=UTC))
    assert [m.partition for m in cat.query(valid_between=spring)] == ["2023-03", "2023-04"]
    assert [m.asset for m in cat.query(tile=None)] == ["model", "ndvi", "ndvi"]
    assert cat.query("model")[0].version_id == '{"a": "1", "b": "2"}'
    assert cat.assets() == ["model", "ndvi"]
    with pytest.raises(ConfigError, match="ends before it starts"):
        cat.query(valid_between=(spring[1], spring[0]))


def _record_many(location: str, worker: int, n: int) -> None:
    cat = MemoryCatalog.open(location)
    for k in range(n):
        cat.record(asset="sr", uri=f"file:///w{worker}/{k}", tile="33TVM", partition="2023-05", stats={"k": k})


def test_concurrent_recorders_never_leave_two_open_versions(catalog_location):
    MemoryCatalog.open(catalog_location)  # schema first
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(catalog_location, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    hist = MemoryCatalog.open(catalog_location).history("sr", tile="33TVM", partition="2023-05")
    assert [m.version for m in hist] == list(range(1, 61))
    assert sum(m.transaction_to is None for m in hist) == 1
    for older, newer in zip(hist, hist[1:]):
        assert older.transaction_from <= older.transaction_to == newer.transaction_from


def test_postgres_url_password_never_shown(postgres_url):
    url = postgres_url.replace("earth@", "earth:s3cret-pw@")  # trust auth accepts and ignores it
    cat = MemoryCatalog.open(url)
    assert "s3cret-pw" not in repr(cat) and "earth:***@" in repr(cat)
    bad = url.rsplit(":", 1)[0] + ":1/postgres"
    with pytest.raises(Exception) as info:
        MemoryCatalog.open(bad)
    assert "s3cret-pw" not in str(info.value) and "cannot connect" in str(info.value)


def test_unknown_catalog_scheme_is_a_clear_error():
    with pytest.raises(ConfigError, match="postgresql://"):
        MemoryCatalog.open("mysql://u:pw@host/db")


def test_catalog_resource_takes_a_postgres_url_or_falls_back_to_the_sqlite_path(postgres_url, tmp_path):
    from resources.storage import MemoryCatalogResource

    pg = MemoryCatalogResource(path=str(tmp_path / "unused.sqlite"), url=postgres_url).catalog()
    assert pg.backend == "postgresql" and not (tmp_path / "unused.sqlite").exists()
    local = MemoryCatalogResource(path=str(tmp_path / "c.sqlite")).catalog()
    assert local.backend == "sqlite" and (tmp_path / "c.sqlite").exists()


def _catalog_with_history(path) -> None:
    cat = MemoryCatalog.open(path)
    cat.record(asset="ndvi", uri="file:///s/ndvi.zarr", tile="33TVM", partition="2023-06")


def test_empty_existing_catalog_file_is_refused_never_started_over(tmp_path):
    path = tmp_path / "memory_catalog.sqlite"
    path.write_bytes(b"")  # e.g. a copy truncated by a full disk
    with pytest.raises(StorageError) as info:
        MemoryCatalog.open(path)
    message = str(info.value)
    assert str(path) in message and "empty file (0 bytes)" in message
    assert "backup" in message and "delete the file" in message
    assert path.read_bytes() == b""  # untouched: not turned into a new, empty catalog


def test_corrupt_catalog_file_is_a_storage_error_naming_the_file_and_the_fix(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is no database\n" * 200)
    with pytest.raises(StorageError, match="not a readable SQLite database") as info:
        MemoryCatalog.open(garbage)
    assert str(garbage) in str(info.value) and ".recover" in str(info.value)

    # A real catalog whose pages were overwritten after its header: SQLite's own error, wrapped.
    damaged = tmp_path / "damaged.sqlite"
    _catalog_with_history(damaged)
    data = bytearray(damaged.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)
    damaged.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="not a readable SQLite database") as info:
        MemoryCatalog.open(damaged).current("ndvi")
    assert str(damaged) in str(info.value) and "backup" in str(info.value)


def test_missing_catalog_file_is_created_and_reopened_with_its_history(tmp_path):
    path = tmp_path / "new" / "memory_catalog.sqlite"
    _catalog_with_history(path)
    assert [m.partition for m in MemoryCatalog.open(path).current("ndvi")] == ["2023-06"]
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [path.name]
