"""The tiered store against a real S3 server (moto's server mode) on 127.0.0.1, through s3fs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memories.errors import ConfigError, StorageError
from memories.memory.tiers import (
    DEFAULT_CODECS,
    TieredStore,
    TierThresholds,
    TierWeights,
    tier_score,
)
from memories.store.paths import StorageRoot

DAY = 86_400.0


@pytest.fixture(scope="module")
def s3(s3_endpoint, s3_bucket):
    return s3_endpoint, s3_bucket("earth-tiers")


class Clock:
    """Simulated time, so that objects can age by days within a test."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def store(s3, tmp_path, request):
    endpoint, _ = s3
    prefix = request.node.name
    clock = Clock()
    st = TieredStore(
        warm=StorageRoot((tmp_path / "warm").as_uri()),
        cold=StorageRoot(f"s3://earth-tiers/{prefix}/cold", s3_endpoint_url=endpoint),
        glacier=StorageRoot(f"s3://earth-tiers/{prefix}/glacier", s3_endpoint_url=endpoint),
        hot_capacity_bytes=200_000,
        clock=clock,
    )
    yield st, clock, prefix
    st.close()


def _payload(n: int, seed: int = 0) -> bytes:
    """JSON of a feature table: compressible like real vector data, not trivially so."""
    rng = np.random.default_rng(seed)
    rows = [
        {"osm_id": int(i), "ndvi": round(float(v), 3), "class": "forest" if v > 0.5 else "crop"}
        for i, v in enumerate(rng.random(n))
    ]
    return json.dumps(rows).encode()


def test_score_terms_follow_their_documented_formula():
    w = TierWeights()
    assert tier_score(0, 0, 0, 1.0, w) == pytest.approx((0.4 * 1 + 0.3 * 0 + 0.1 * 1 + 0.2 * 1) / 1.0)
    # One half-life later the recency term halves; five reads give 1 - 1/e of the frequency term.
    s = tier_score(30, 5, 16 * 2**20, 0.0, w)
    assert s == pytest.approx(0.4 * 0.5 + 0.3 * (1 - np.exp(-1)) + 0.1 * 0.5)
    only_size = TierWeights(recency=0, frequency=0, size=1, relevance=0)
    assert tier_score(999, 0, 16 * 2**20, 0, only_size) == pytest.approx(0.5)
    assert TierThresholds().tier(0.8) == "hot" and TierThresholds().tier(0.1) == "glacier"
    with pytest.raises(ConfigError, match="hot >= warm >= cold"):
        TierThresholds(hot=0.2, warm=0.5)


def test_objects_age_down_to_glacier_with_its_storage_class(store, s3):
    st, clock, prefix = store
    _, client = s3
    data = _payload(2000)
    assert st.put("tables/33TVM", data, relevance=0.0) == "warm"
    clock.now += 400 * DAY
    moves = st.rebalance()
    assert [(m.key, m.source, m.target) for m in moves] == [("tables/33TVM", "warm", "glacier")]
    head = client.head_object(Bucket="earth-tiers", Key=f"{prefix}/glacier/tiers/glacier/tables/33TVM.zst")
    assert head["StorageClass"] == "GLACIER"
    assert not st.warm.exists(st.warm.tier_uri("warm", "tables/33TVM.zst"))


def test_read_restores_from_glacier_and_promotes_to_hot(store, s3):
    st, clock, prefix = store
    _, client = s3
    data = _payload(1500, seed=3)
    st.put("indices/31UDQ", data, tier="glacier")
    key = f"{prefix}/glacier/tiers/glacier/indices/31UDQ.zst"
    assert client.head_object(Bucket="earth-tiers", Key=key)["StorageClass"] == "GLACIER"
    assert st.get("indices/31UDQ") == data
    assert st.locate("indices/31UDQ") == "hot"
    assert st.stats("indices/31UDQ").access_count == 1
    with pytest.raises(client.exceptions.ClientError):
        client.head_object(Bucket="earth-tiers", Key=key)
    # Reads are counted and persisted: a new store over the same warm folder sees them.
    assert st.get("indices/31UDQ") == data
    again = TieredStore(warm=st.warm, cold=st.cold, glacier=st.glacier, clock=clock)
    assert again.stats("indices/31UDQ").access_count == 2 and again.get("indices/31UDQ") == data
    again.close()


def test_cold_tier_round_trips_and_rebalance_moves_back_up_when_read_often(store, s3):
    st, clock, prefix = store
    _, client = s3
    data = _payload(800, seed=5)
    st.put("a", data, tier="cold")
    head = client.head_object(Bucket="earth-tiers", Key=f"{prefix}/cold/tiers/cold/a.zst")
    assert head.get("StorageClass", "STANDARD") == "STANDARD"
    for _ in range(10):
        assert st.get("a") == data
    clock.now += 1 * DAY
    assert st.score("a") >= TierThresholds().hot
    assert st.rebalance() == [] and st.locate("a") == "hot"
    # 91 days unread: recency 0.12, but ten reads keep it warm (score 0.51), not cold.
    clock.now += 90 * DAY
    expected = 0.4 * 0.5 ** (91 / 30) + 0.3 * (1 - np.exp(-2)) + 0.1 / (1 + len(data) / 2**24) + 0.2 * 0.5
    assert st.score("a") == pytest.approx(expected)
    moves = st.rebalance()
    assert [(m.source, m.target) for m in moves] == [("hot", "warm")]
    assert st.get("a") == data


def test_hot_tier_is_a_byte_capped_lru_backed_by_warm(store):
    st, _, _ = store
    blobs = {k: bytes([i]) * 90_000 for i, k in enumerate("abc")}
    for k, v in blobs.items():
        st.put(k, v, tier="hot")
    # 3 x 90 kB > 200 kB: the least recently used falls back to its warm copy.
    assert [st.locate(k) for k in "abc"] == ["warm", "hot", "hot"]
    assert st.get("a") == blobs["a"] and st.locate("a") == "hot" and st.locate("b") == "warm"
    assert st.counts() == {"hot": 2, "warm": 1, "cold": 0, "glacier": 0}


def test_each_tier_compresses_harder(store):
    st, _, _ = store
    data = _payload(5000, seed=9)
    sizes = {}
    for tier in ("warm", "cold", "glacier"):
        st.put(f"c/{tier}", data, tier=tier)
        sizes[tier] = st.stats(f"c/{tier}").stored_bytes
        assert st.get(f"c/{tier}") == data
    ratios = {t: len(data) / n for t, n in sizes.items()}
    print(f"compression ratios on {len(data)} B of JSON: {ratios}")
    assert DEFAULT_CODECS["hot"].name == "none"
    assert 2.0 < ratios["warm"] <= ratios["cold"] <= ratios["glacier"]


def test_missing_key_and_bad_keys_are_clear_errors(store):
    st, _, _ = store
    with pytest.raises(StorageError, match="no tier holds 'nope'"):
        st.get("nope")
    with pytest.raises(ConfigError, match="relative path"):
        st.put("../etc/passwd", b"x")
    with pytest.raises(ConfigError, match="must be a local file"):
        TieredStore(warm=StorageRoot("s3://earth/warm"))
