"""A local disk cache with a time to live and a size cap, safe across threads and processes.

``Cache(root, ttl_s=..., max_bytes=...)`` keeps byte payloads (STAC API answers,
downloaded COGs) under a key: a URL, or a request (method, URL and body, see
``request_key``). Entries are written atomically (a temporary file renamed into
place), expire ``ttl_s`` seconds after they were written, and the least recently
used ones are evicted once the cache holds more than ``max_bytes``. A file lock
serializes writers and eviction, and a per-key lock makes ``get_or_fetch`` fetch
a key once even when several processes ask for it at the same time.

Layout under ``root``: ``objects/<2 hex>/<sha256>`` (the payload; its mtime is
the last use) and ``<sha256>.json`` beside it (key, written-at time, size, and for
typed values their kind and own TTL).

The seed's form keeps values, not bytes: ``Cache(name="imagery_cache", max_size_gb=2)``
is a cache folder of the configured storage root (``<root>/cache/<name>``), and
``set(key, value, ttl_days=30)`` / ``get(key)`` store and return NumPy arrays,
(Geo)DataFrames, xarray objects and JSON-able values in typed files
(:mod:`memories.cache_values`: ``.npy`` without pickle, Parquet, Zarr, JSON; nothing is
ever unpickled). A cache given no size cap takes ``storage.cache_size_gb`` of
:mod:`memories.config`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memories.cache_values import read_value, write_value
from memories.errors import ConfigError, StorageError
from memories.store.atomic import atomic_write_file

DEFAULT_TTL_S = 7 * 24 * 3600.0
"""A week, seconds."""
DEFAULT_MAX_BYTES = 10 * 1024**3
"""10 GiB, the default of ``storage.cache_size_gb``."""
GIB = 1024**3
"""Bytes in a GiB (``max_size_gb`` and ``storage.cache_size_gb`` count GiB)."""
DAY_S = 86400.0


@dataclass
class CacheStats:
    """What a Cache instance did since it was opened.

    Attributes:
        hits: lookups answered from disk.
        misses: lookups that found nothing valid (missing or expired).
        puts: entries written.
        evicted: entries removed to respect the size cap.
        expired: entries removed because they outlived the TTL.
    """

    hits: int = 0
    misses: int = 0
    puts: int = 0
    evicted: int = 0
    expired: int = 0


class Cache:
    """Payloads and typed values on local disk, keyed by URL, request or text, with TTL expiry and LRU eviction.

    Args:
        root: local folder of the cache (created when missing); None: ``<storage root>/cache/<name>``
            (the configured storage root; for an S3 root a folder of this machine's temp dir).
        name: the cache's name (letters, digits, ``_.-``), its folder when no ``root`` is given.
        ttl_s: seconds an entry stays valid after it was written; None: forever (``set`` may give its own).
        max_bytes: size cap of all payloads, bytes; the least recently used go first.
        max_size_gb: the same cap in GiB (the seed's name); give one of the two. Neither:
            ``storage.cache_size_gb`` of the configuration.

    Example::

        cache = Cache("/tmp/stac-cache", ttl_s=3600, max_bytes=2**30)
        body = cache.get_or_fetch(request_key("POST", url, query), lambda: post(url, query))

        imagery_cache = Cache(name="imagery_cache", max_size_gb=2)
        imagery_cache.set("ndvi_33TVM_2023-06", ndvi_array, ttl_days=30)
        ndvi = imagery_cache.get("ndvi_33TVM_2023-06")      # the array, or None

    Raises:
        ConfigError: neither ``root`` nor ``name``, a bad name, a non-positive TTL or size cap.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        ttl_s: float | None = DEFAULT_TTL_S,
        max_bytes: int | None = None,
        max_size_gb: float | None = None,
    ) -> None:
        if ttl_s is not None and ttl_s <= 0:
            raise ConfigError(f"cache ttl_s must be positive (seconds) or None for no expiry, not {ttl_s}")
        max_bytes = _size_cap(max_bytes, max_size_gb)
        if max_bytes <= 0:
            raise ConfigError(f"cache max_bytes must be a positive number of bytes, not {max_bytes}")
        self.name = name
        self.root = Path(root) if root is not None else _named_root(name)
        self.ttl_s = ttl_s
        self.max_bytes = int(max_bytes)
        self.stats = CacheStats()
        try:
            (self.root / "objects").mkdir(parents=True, exist_ok=True)
            (self.root / "locks").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the cache folder {self.root}: {e}; choose a writable cache_dir") from e
        self._thread_lock = threading.RLock()

    # -- lookups ------------------------------------------------------------
    def path(self, key: str | bytes) -> Path | None:
        """The payload file of a valid entry (and mark it used), or None when missing or expired."""
        found = self._lookup(key)
        return None if found is None else found[0]

    def _lookup(self, key: str | bytes) -> tuple[Path, dict[str, Any]] | None:
        """(payload file, sidecar) of a valid entry, marked used; None when missing or expired."""
        digest = _digest(key)
        data, meta = self._files(digest)
        try:
            info = json.loads(meta.read_text())
        except (FileNotFoundError, ValueError):
            self.stats.misses += 1
            return None
        if self._expired(info):
            with self._locked():
                self._remove(digest)
            self.stats.expired += 1
            self.stats.misses += 1
            return None
        try:
            os.utime(data)  # last use, for LRU eviction
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return data, info

    def get(self, key: str | bytes) -> Any:
        """The value of a valid entry, or None: bytes for :meth:`put` payloads, the typed value :meth:`set` stored."""
        found = self._lookup(key)
        if found is None:
            return None
        path, info = found
        try:
            return read_value(str(info.get("kind", "bytes")), path, dict(info.get("extra") or {}))
        except FileNotFoundError:  # evicted by another process between the two calls
            return None

    def set(self, key: str | bytes, value: Any, ttl_days: float | None = None) -> Path:
        """Store ``value`` (array, frame, xarray, JSON-able, bytes) under ``key`` in a typed file; returns it.

        Args:
            ttl_days: days this entry stays valid; None: the cache's ``ttl_s``.

        Raises:
            ConfigError: a value of no supported kind (see :mod:`memories.cache_values`), or ``ttl_days`` <= 0.
            StorageError: the value's file is larger than the size cap.
        """
        if ttl_days is not None and not ttl_days > 0:
            raise ConfigError(f"ttl_days={ttl_days!r}: give a positive number of days, or None for the cache's TTL")
        tmp = self.root / "objects" / f".tmp-{uuid.uuid4().hex}"
        try:
            kind, extra = write_value(value, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        sidecar: dict[str, Any] = {"kind": kind, "extra": extra}
        if ttl_days is not None:
            sidecar["ttl_s"] = float(ttl_days) * DAY_S
        return self.put_file(key, tmp, _sidecar=sidecar)

    def __contains__(self, key: str | bytes) -> bool:
        digest = _digest(key)
        data, meta = self._files(digest)
        try:
            return data.exists() and not self._expired(json.loads(meta.read_text()))
        except (FileNotFoundError, ValueError):
            return False

    # -- writes -------------------------------------------------------------
    def put(self, key: str | bytes, data: bytes) -> Path:
        """Store a payload atomically; returns its file. Evicts old entries beyond the size cap."""
        tmp = self.root / "objects" / f".tmp-{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        return self.put_file(key, tmp)

    def put_file(
        self, key: str | bytes, src: str | os.PathLike[str], *, _sidecar: dict[str, Any] | None = None
    ) -> Path:
        """Move a finished local file into the cache under ``key`` (same filesystem: a rename)."""
        digest = _digest(key)
        data, meta = self._files(digest)
        src = Path(src)
        size = src.stat().st_size
        if size > self.max_bytes:
            src.unlink(missing_ok=True)
            raise StorageError(
                f"a {size} byte payload for {_show(key)} exceeds the cache size cap of {self.max_bytes} bytes; "
                "raise max_bytes"
            )
        with self._locked():
            data.parent.mkdir(parents=True, exist_ok=True)
            if src.parent != data.parent:
                staged = data.with_name(f".tmp-{uuid.uuid4().hex}")
                shutil.move(str(src), staged)
                src = staged
            os.replace(src, data)
            info = {"key": _show(key), "written": time.time(), "bytes": size, **(_sidecar or {})}
            atomic_write_file(meta, json.dumps(info).encode())
            self.stats.puts += 1
            self._evict(keep=digest)
        return data

    def get_or_fetch(self, key: str | bytes, fetch: Callable[[], bytes]) -> bytes:
        """The cached payload, or ``fetch()``'s result stored first. One process fetches a key at a time."""
        hit = self.get(key)
        if hit is not None:
            return bytes(hit)
        with self._key_lock(key):
            hit = self.get(key)
            if hit is not None:
                return bytes(hit)
            data = fetch()
            self.put(key, data)
            return data

    def path_or_fetch(self, key: str | bytes, fetch_to: Callable[[Path], Any]) -> Path:
        """The cached file, or one that ``fetch_to(tmp_path)`` writes first (for payloads too big for memory).

        ``fetch_to`` writes the whole payload to the path it is given, or raises;
        a failed fetch leaves nothing in the cache.
        """
        hit = self.path(key)
        if hit is not None:
            return hit
        with self._key_lock(key):
            hit = self.path(key)
            if hit is not None:
                return hit
            tmp = self.root / "objects" / f".tmp-{uuid.uuid4().hex}"
            try:
                fetch_to(tmp)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return self.put_file(key, tmp)

    def delete(self, key: str | bytes) -> None:
        """Remove an entry if present."""
        with self._locked():
            self._remove(_digest(key))

    def clear(self) -> None:
        """Remove every entry."""
        with self._locked():
            for d, _, _ in self._entries():
                self._remove(d)

    @property
    def size_bytes(self) -> int:
        """Bytes held by all payloads."""
        return sum(size for _, size, _ in self._entries())

    def __len__(self) -> int:
        return sum(1 for _ in self._entries())

    def __repr__(self) -> str:
        named = f", name={self.name!r}" if self.name else ""
        return f"Cache({str(self.root)!r}{named}, ttl_s={self.ttl_s}, max_bytes={self.max_bytes})"

    # -- internals ----------------------------------------------------------
    def _files(self, digest: str) -> tuple[Path, Path]:
        folder = self.root / "objects" / digest[:2]
        return folder / digest, folder / f"{digest}.json"

    def _expired(self, info: dict[str, Any]) -> bool:
        ttl = info.get("ttl_s", self.ttl_s)  # an entry's own TTL (set(..., ttl_days=)) wins
        return ttl is not None and time.time() - float(info.get("written", 0)) > float(ttl)

    def _entries(self) -> list[tuple[str, int, float]]:
        """(digest, bytes, last use) of every payload."""
        out = []
        for folder in (self.root / "objects").iterdir():
            if not folder.is_dir():
                continue
            for f in folder.iterdir():
                if f.suffix == ".json" or f.name.startswith(".tmp-"):
                    continue
                try:
                    st = f.stat()
                except FileNotFoundError:
                    continue
                out.append((f.name, st.st_size, st.st_mtime))
        return out

    def _evict(self, keep: str) -> None:
        """Drop expired entries, then the least recently used until the payloads fit ``max_bytes``."""
        entries = self._entries()
        total = sum(size for _, size, _ in entries)
        for digest, size, _ in sorted(entries, key=lambda e: e[2]):
            if digest == keep:
                continue
            _, meta = self._files(digest)
            try:
                expired = self._expired(json.loads(meta.read_text()))
            except (FileNotFoundError, ValueError):
                expired = True
            if expired:
                self._remove(digest)
                self.stats.expired += 1
                total -= size
            elif total > self.max_bytes:
                self._remove(digest)
                self.stats.evicted += 1
                total -= size

    def _remove(self, digest: str) -> None:
        data, meta = self._files(digest)
        meta.unlink(missing_ok=True)
        data.unlink(missing_ok=True)

    def _locked(self) -> Any:
        return _Both(self._thread_lock, _file_lock(self.root / "locks" / "cache.lock"))

    def _key_lock(self, key: str | bytes) -> Any:
        return _file_lock(self.root / "locks" / f"{_digest(key)}.lock")


def _size_cap(max_bytes: int | None, max_size_gb: float | None) -> int:
    """The size cap in bytes from either form; neither: ``storage.cache_size_gb`` of the configuration."""
    if max_bytes is not None and max_size_gb is not None:
        raise ConfigError(
            f"Cache(max_bytes={max_bytes}, max_size_gb={max_size_gb}): both give the size cap; give one of them"
        )
    if max_bytes is not None:
        return int(max_bytes)
    if max_size_gb is not None:
        if not max_size_gb > 0:
            raise ConfigError(f"Cache(max_size_gb={max_size_gb}): give a positive size in GiB, e.g. 2")
        return int(float(max_size_gb) * GIB)
    from memories.config import config

    return int(config.storage.cache_size_gb * GIB)


def _named_root(name: str | None) -> Path:
    """``<storage root>/cache/<name>`` of the configured storage root."""
    import re

    if name is None:
        raise ConfigError("Cache() needs a folder (root=...) or a name (name='imagery_cache')")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
        raise ConfigError(f"Cache(name={name!r}): use letters, digits, '_', '.' and '-' (a folder name)")
    from memories.config import config
    from memories.store.paths import StorageRoot

    return Path(StorageRoot(config.storage.root, config.storage.s3_endpoint_url).cache_dir(name))


def request_key(method: str, url: str, body: Any = None) -> str:
    """The cache key of an HTTP request: method, URL and body (JSON bodies in canonical key order)."""
    if body is None or body == b"" or body == "":
        text = ""
    elif isinstance(body, bytes):
        text = body.decode("utf-8", errors="replace")
    elif isinstance(body, str):
        text = body
    else:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return f"{method.upper()} {url}\n{text}"


def _digest(key: str | bytes) -> str:
    if isinstance(key, str):
        key = key.encode("utf-8")
    return hashlib.sha256(key).hexdigest()


def _show(key: str | bytes) -> str:
    """The key as recorded in the sidecar, with any query string (signatures, tokens) dropped."""
    s = key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key
    first, _, rest = s.partition("\n")
    return first.split("?", 1)[0] + (f" (+{len(rest)} byte body)" if rest else "")


def _file_lock(path: Path) -> Any:
    from filelock import FileLock

    return FileLock(str(path), timeout=600)


class _Both:
    """Hold a thread lock and a file lock together."""

    def __init__(self, thread_lock: Any, file_lock: Any) -> None:
        self._t, self._f = thread_lock, file_lock

    def __enter__(self) -> None:
        self._t.acquire()
        try:
            self._f.acquire()
        except BaseException:
            self._t.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._f.release()
        self._t.release()
