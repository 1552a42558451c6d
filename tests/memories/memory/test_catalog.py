from datetime import UTC, datetime, timedelta

from memories.memory.catalog import MemoryCatalog


def test_rematerialized_partition_closes_the_previous_version(tmp_path):
    cat = MemoryCatalog(tmp_path / "c.sqlite")
    t1 = datetime(2024, 1, 1, tzinfo=UTC)
    t2 = t1 + timedelta(days=30)
    v1 = cat.record(asset="sr", uri="file:///a", tile="33TVM", partition="2023-03", stats={"x": 1},
                    valid_from=datetime(2023, 3, 1, tzinfo=UTC), transaction_time=t1)
    v2 = cat.record(asset="sr", uri="file:///b", tile="33TVM", partition="2023-03", stats={"x": 2},
                    transaction_time=t2)
    cat.record(asset="sr", uri="file:///c", tile="33TVM", partition="2023-04", transaction_time=t2)
    assert (v1.version, v2.version) == (1, 2)
    hist = cat.history("sr", tile="33TVM", partition="2023-03")
    assert hist[0].transaction_to == hist[1].transaction_from
    assert hist[1].transaction_to is None
    now = cat.current("sr", tile="33TVM")
    assert [(m.partition, m.uri) for m in now] == [("2023-03", "file:///b"), ("2023-04", "file:///c")]
    before = cat.current("sr", tile="33TVM", as_of=t1 + timedelta(days=1))
    assert [(m.partition, m.stats["x"]) for m in before] == [("2023-03", 1)]
    assert hist[0].valid_from.startswith("2023-03-01")
    assert cat.partitions("sr") == ["2023-03", "2023-04"]
