"""Storage tiers: hot (memory), warm (local disk), cold (object storage), glacier (archive class).

Every object has a score from how recently and how often it was read, how large
it is and how relevant it is (``tier_score``); thresholds map the score to a tier
and ``TieredStore.rebalance`` moves objects whose tier no longer fits. A read
finds an object in whatever tier holds it, restores it first from the archive
class if needed, and promotes it to hot.

Each tier compresses with its own codec: none in memory, fast zstd on local disk,
stronger zstd on object storage, the strongest in the archive (where bytes cost
least but every byte still costs).

The hot tier is a byte-capped LRU cache in front of a write-through copy on the
warm disk, so a restarted process loses nothing; the object's access statistics
live in a SQLite file beside the warm tier.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from memories.errors import ConfigError, StorageError
from memories.store.paths import StorageRoot

Tier = Literal["hot", "warm", "cold", "glacier"]
TIERS: tuple[Tier, ...] = ("hot", "warm", "cold", "glacier")
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class TierWeights:
    """Weights of the four terms of ``tier_score`` and the scales that normalise them.

    Attributes:
        recency: weight of how recently the object was read.
        frequency: weight of how often it was read.
        size: weight of smallness (small objects are cheap to keep hot).
        relevance: weight of the caller's relevance (0-1), e.g. a tile in the area of interest.
        recency_half_life_days: days after which the recency term halves.
        frequency_scale: reads at which the frequency term reaches 1 - 1/e (63 %).
        size_scale_bytes: size at which the size term is 0.5.
    """

    recency: float = 0.4
    frequency: float = 0.3
    size: float = 0.1
    relevance: float = 0.2
    recency_half_life_days: float = 30.0
    frequency_scale: float = 5.0
    size_scale_bytes: float = 16 * 2**20

    def __post_init__(self) -> None:
        w = (self.recency, self.frequency, self.size, self.relevance)
        if min(w) < 0 or sum(w) <= 0:
            raise ConfigError(
                f"tier weights {w} must be >= 0 with a positive sum; e.g. TierWeights(0.4, 0.3, 0.1, 0.2)"
            )
        if min(self.recency_half_life_days, self.frequency_scale, self.size_scale_bytes) <= 0:
            raise ConfigError("recency_half_life_days, frequency_scale and size_scale_bytes must be positive")


@dataclass(frozen=True)
class TierThresholds:
    """Lowest score of each tier: score >= hot -> hot, >= warm -> warm, >= cold -> cold, else glacier."""

    hot: float = 0.7
    warm: float = 0.45
    cold: float = 0.2

    def __post_init__(self) -> None:
        if not 1.0 >= self.hot >= self.warm >= self.cold >= 0.0:
            raise ConfigError(
                f"tier thresholds must satisfy 1 >= hot >= warm >= cold >= 0, got {self.hot}, {self.warm}, {self.cold}"
            )

    def tier(self, score: float) -> Tier:
        """The tier of a score."""
        if score >= self.hot:
            return "hot"
        if score >= self.warm:
            return "warm"
        if score >= self.cold:
            return "cold"
        return "glacier"


def tier_score(
    recency_days: float,
    access_count: int,
    size_bytes: int,
    relevance: float,
    weights: TierWeights = TierWeights(),
) -> float:
    """How much an object deserves a fast tier, 0 (archive it) to 1 (keep it in memory).

    The weighted mean of four terms, each 0-1:

    - recency ``0.5 ** (recency_days / half_life)``: 1 just read, 0.5 after one half-life;
    - frequency ``1 - exp(-access_count / frequency_scale)``;
    - size ``1 / (1 + size_bytes / size_scale_bytes)``: small objects score higher;
    - relevance, clipped to 0-1.

    Args:
        recency_days: days since the last read (or the write, if never read).
        access_count: number of reads.
        size_bytes: uncompressed size in bytes.
        relevance: caller's relevance, 0-1.
        weights: the weights and scales.
    """
    if recency_days < 0 or access_count < 0 or size_bytes < 0:
        raise ConfigError(
            f"recency_days ({recency_days}), access_count ({access_count}) and size_bytes ({size_bytes}) must be >= 0"
        )
    w = weights
    terms = (
        0.5 ** (recency_days / w.recency_half_life_days),
        1.0 - math.exp(-access_count / w.frequency_scale),
        1.0 / (1.0 + size_bytes / w.size_scale_bytes),
        min(1.0, max(0.0, relevance)),
    )
    ws = (w.recency, w.frequency, w.size, w.relevance)
    return float(sum(a * b for a, b in zip(ws, terms)) / sum(ws))


@dataclass(frozen=True)
class TierCodec:
    """Compression of one tier: ``none`` or zstd at a level (1-22)."""

    name: Literal["none", "zstd"] = "none"
    level: int = 0

    def encode(self, data: bytes) -> bytes:
        """Compressed bytes."""
        if self.name == "none":
            return data
        from numcodecs import Zstd

        return bytes(Zstd(level=self.level).encode(data))

    def decode(self, data: bytes) -> bytes:
        """Decompressed bytes."""
        if self.name == "none":
            return data
        from numcodecs import Zstd

        return bytes(Zstd().decode(data))


DEFAULT_CODECS: dict[Tier, TierCodec] = {
    "hot": TierCodec("none"),
    "warm": TierCodec("zstd", 3),
    "cold": TierCodec("zstd", 9),
    "glacier": TierCodec("zstd", 19),
}


@dataclass(frozen=True)
class Move:
    """One object moved by ``rebalance`` or promoted by ``get``."""

    key: str
    source: Tier
    target: Tier
    score: float
    stored_bytes: int


@dataclass
class ObjectStats:
    """What the store knows of one object."""

    key: str
    tier: Tier
    size_bytes: int
    stored_bytes: int
    created: float
    last_access: float
    access_count: int
    relevance: float


@dataclass
class TieredStore:
    """Objects (bytes under string keys) kept in four tiers.

    Args:
        warm: a ``file://`` storage root for the warm tier (and the stats database).
        cold: an ``s3://`` (or file) root for the cold tier; None: cold objects stay warm.
        glacier: a root for the archive tier; None: archived objects go to cold.
        hot_capacity_bytes: byte cap of the in-memory tier (uncompressed bytes).
        weights: weights of ``tier_score``.
        thresholds: score -> tier.
        codecs: compression per tier.
        glacier_storage_class: S3 storage class of archived objects (``GLACIER``, ``DEEP_ARCHIVE``,
            ``GLACIER_IR``).
        restore_wait_s: how long a read of an archived object waits for its restore.
        clock: seconds since the epoch (``time.time``); a simulation passes its own.
    """

    warm: StorageRoot
    cold: StorageRoot | None = None
    glacier: StorageRoot | None = None
    hot_capacity_bytes: int = 64 * 2**20
    weights: TierWeights = field(default_factory=TierWeights)
    thresholds: TierThresholds = field(default_factory=TierThresholds)
    codecs: dict[Tier, TierCodec] = field(default_factory=lambda: dict(DEFAULT_CODECS))
    glacier_storage_class: str = "GLACIER"
    restore_wait_s: float = 30.0
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if not self.warm.is_local:
            raise ConfigError(f"the warm tier {self.warm.uri!r} must be a local file:// root")
        if self.hot_capacity_bytes < 0:
            raise ConfigError(f"hot_capacity_bytes must be >= 0, got {self.hot_capacity_bytes}")
        self._hot: OrderedDict[str, bytes] = OrderedDict()
        self._hot_bytes = 0
        self._lock = threading.RLock()
        db = Path(self.warm.local_path(self.warm.tier_uri("warm", ".stats.sqlite")))
        db.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, tier TEXT NOT NULL, size_bytes INTEGER, "
            "stored_bytes INTEGER, created REAL, last_access REAL, access_count INTEGER, relevance REAL)"
        )

    # -- public -------------------------------------------------------------
    def put(self, key: str, data: bytes, *, relevance: float = 0.5, tier: Tier | None = None) -> Tier:
        """Store ``data`` under ``key`` (replacing any older copy); returns the tier it went to.

        Without ``tier`` the object goes where its score puts it (never read yet, so
        frequency is 0 and recency is 1).
        """
        _check_key(key)
        if tier is not None and tier not in TIERS:
            raise ConfigError(f"tier {tier!r} is not one of {TIERS}")
        with self._lock:
            now = self.clock()
            old = self.stats(key)
            if old is not None:
                self._delete_copy(key, old.tier)
            score = tier_score(0.0, 0, len(data), relevance, self.weights)
            target = self._available(tier or self.thresholds.tier(score))
            if target == "hot" and len(data) > self.hot_capacity_bytes:
                target = "warm"
            stored = self._write(key, data, target)
            self._upsert(ObjectStats(key, target, len(data), stored, now, now, 0, relevance))
            return target

    def get(self, key: str) -> bytes:
        """The object's bytes, from whichever tier holds it; the read counts and promotes it to hot.

        Raises:
            StorageError: no tier has the key.
        """
        with self._lock:
            st = self.stats(key)
            if st is None:
                st = self._discover(key)
            data = self._read(key, st.tier)
            st.access_count += 1
            st.last_access = self.clock()
            target: Tier = "hot" if len(data) <= self.hot_capacity_bytes else "warm"
            if st.tier != target:
                self._move(st, target, data)
                st.tier = target
            elif target == "hot":
                if key in self._hot:
                    self._hot.move_to_end(key, last=True)
                else:
                    self._cache(key, data)
            self._upsert(st)
            return data

    def locate(self, key: str) -> Tier | None:
        """The tier of an object, None if unknown."""
        st = self.stats(key)
        return st.tier if st else None

    def stats(self, key: str) -> ObjectStats | None:
        """Access statistics of an object."""
        row = self._db.execute("SELECT * FROM objects WHERE key = ?", (key,)).fetchone()
        return ObjectStats(*row) if row else None

    def keys(self) -> list[str]:
        """Every key, sorted."""
        return [r[0] for r in self._db.execute("SELECT key FROM objects ORDER BY key")]

    def counts(self) -> dict[str, int]:
        """Number of objects per tier."""
        out: dict[str, int] = dict.fromkeys(TIERS, 0)
        for tier, n in self._db.execute("SELECT tier, COUNT(*) FROM objects GROUP BY tier"):
            out[tier] = n
        return out

    def score(self, key: str, now: float | None = None) -> float:
        """The object's current ``tier_score``."""
        st = self.stats(key)
        if st is None:
            raise StorageError(f"no object {key!r} in the tiered store; put it first")
        return self._score(st, self.clock() if now is None else now)

    def rebalance(self) -> list[Move]:
        """Move every object to the tier its score gives; returns the moves.

        The hot tier takes the best-scoring candidates until its byte cap is full;
        the others go warm. A move writes the new copy before it deletes the old one.
        """
        with self._lock:
            now = self.clock()
            rows = [ObjectStats(*r) for r in self._db.execute("SELECT * FROM objects")]
            scored = sorted(((self._score(st, now), st) for st in rows), key=lambda x: -x[0])
            hot_budget = self.hot_capacity_bytes
            moves: list[Move] = []
            for score, st in scored:
                target = self._available(self.thresholds.tier(score))
                if target == "hot":
                    if st.size_bytes <= hot_budget:
                        hot_budget -= st.size_bytes
                    else:
                        target = "warm"
                if target != st.tier:
                    data = self._read(st.key, st.tier)
                    source = st.tier
                    self._move(st, target, data)
                    st.tier = target
                    self._upsert(st)
                    moves.append(Move(st.key, source, target, score, st.stored_bytes))
            return moves

    def delete(self, key: str) -> None:
        """Remove an object from every tier."""
        with self._lock:
            st = self.stats(key)
            if st is not None:
                self._delete_copy(key, st.tier)
                self._db.execute("DELETE FROM objects WHERE key = ?", (key,))

    def close(self) -> None:
        """Close the statistics database."""
        self._db.close()

    # -- helpers ------------------------------------------------------------
    def _score(self, st: ObjectStats, now: float) -> float:
        days = max(0.0, now - st.last_access) / SECONDS_PER_DAY
        return tier_score(days, st.access_count, st.size_bytes, st.relevance, self.weights)

    def _available(self, tier: Tier) -> Tier:
        if tier == "glacier" and self.glacier is None:
            tier = "cold"
        if tier == "cold" and self.cold is None:
            tier = "warm"
        return tier

    def _root(self, tier: Tier) -> StorageRoot:
        root = {"hot": self.warm, "warm": self.warm, "cold": self.cold, "glacier": self.glacier}[tier]
        if root is None:
            raise ConfigError(f"the {tier} tier has no storage root; pass {tier}=StorageRoot(...)")
        return root

    def _uri(self, key: str, tier: Tier) -> str:
        # The hot tier's durable copy is the warm one; its codec is the warm codec.
        t: Tier = "warm" if tier == "hot" else tier
        return self._root(t).tier_uri(t, key + (".zst" if self.codecs[t].name == "zstd" else ""))

    def _write(self, key: str, data: bytes, tier: Tier) -> int:
        t: Tier = "warm" if tier == "hot" else tier
        blob = self.codecs[t].encode(data)
        root, uri = self._root(t), self._uri(key, tier)
        if t == "glacier" and not root.is_local:
            root.fs.pipe_file(root.path(uri), blob, StorageClass=self.glacier_storage_class)
        else:
            root.write_bytes(uri, blob)
        if tier == "hot":
            self._cache(key, data)
        return len(blob)

    def _read(self, key: str, tier: Tier) -> bytes:
        if tier == "hot" and key in self._hot:
            return self._hot[key]
        t: Tier = "warm" if tier == "hot" else tier
        root, uri = self._root(t), self._uri(key, tier)
        if t == "glacier" and not root.is_local:
            self._restore(root, uri)
        return self.codecs[t].decode(root.read_bytes(uri))

    def _restore(self, root: StorageRoot, uri: str) -> None:
        """Ask S3 to restore an archived object and wait until it is readable."""
        bucket, _, key = root.path(uri).partition("/")
        head = root.fs.call_s3("head_object", Bucket=bucket, Key=key)
        if head.get("StorageClass", "STANDARD") not in ("GLACIER", "DEEP_ARCHIVE"):
            return
        if 'ongoing-request="false"' in head.get("Restore", ""):
            return
        if "Restore" not in head:
            root.fs.call_s3(
                "restore_object",
                Bucket=bucket,
                Key=key,
                RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Expedited"}},
            )
        deadline = time.monotonic() + self.restore_wait_s
        while time.monotonic() < deadline:
            head = root.fs.call_s3("head_object", Bucket=bucket, Key=key)
            if 'ongoing-request="false"' in head.get("Restore", ""):
                return
            time.sleep(0.5)
        raise StorageError(
            f"{uri} is archived ({head.get('StorageClass')}) and its restore is still running after "
            f"{self.restore_wait_s} s; read it again later or raise restore_wait_s"
        )

    def _move(self, st: ObjectStats, target: Tier, data: bytes) -> None:
        source = st.tier
        same_copy = {source, target} <= {"hot", "warm"}
        if same_copy:
            # hot <-> warm share the warm copy: only the memory cache changes.
            if target == "hot":
                self._cache(st.key, data)
            else:
                self._evict(st.key)
            return
        st.stored_bytes = self._write(st.key, data, target)
        self._delete_copy(st.key, source)

    def _delete_copy(self, key: str, tier: Tier) -> None:
        self._evict(key)
        root, uri = self._root("warm" if tier == "hot" else tier), self._uri(key, tier)
        path = root.path(uri)
        if root.fs.exists(path):
            root.fs.rm(path)

    def _cache(self, key: str, data: bytes) -> None:
        self._evict(key)
        if len(data) > self.hot_capacity_bytes:
            return
        self._hot[key] = data
        self._hot_bytes += len(data)
        while self._hot_bytes > self.hot_capacity_bytes:
            old, blob = self._hot.popitem(last=False)
            self._hot_bytes -= len(blob)
            # Evicted from memory: its durable warm copy remains, so it is warm now.
            self._db.execute("UPDATE objects SET tier = 'warm' WHERE key = ? AND tier = 'hot'", (old,))

    def _evict(self, key: str) -> None:
        blob = self._hot.pop(key, None)
        if blob is not None:
            self._hot_bytes -= len(blob)

    def _discover(self, key: str) -> ObjectStats:
        """An object that is in a tier but not in the statistics (e.g. copied in by hand)."""
        for tier in ("warm", "cold", "glacier"):
            root = {"warm": self.warm, "cold": self.cold, "glacier": self.glacier}[tier]
            if root is not None and root.exists(self._uri(key, tier)):
                size = int(root.fs.size(root.path(self._uri(key, tier))))
                now = self.clock()
                st = ObjectStats(key, tier, size, size, now, now, 0, 0.5)
                self._upsert(st)
                return st
        raise StorageError(
            f"no tier holds {key!r}; put it first (tiers: warm {self.warm.uri}, cold "
            f"{self.cold.uri if self.cold else None}, glacier {self.glacier.uri if self.glacier else None})"
        )

    def _upsert(self, st: ObjectStats) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                st.key,
                st.tier,
                st.size_bytes,
                st.stored_bytes,
                st.created,
                st.last_access,
                st.access_count,
                st.relevance,
            ),
        )

    def __enter__(self) -> TieredStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_key(key: str) -> None:
    if not key or key.startswith("/") or ".." in key.split("/") or key.endswith(".zst"):
        raise ConfigError(f"key {key!r} must be a relative path without '..' and not end in .zst, e.g. 'ndvi/33TVM'")
