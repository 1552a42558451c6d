"""The local disk cache: TTL expiry, LRU eviction at the size cap, atomic and process-safe fetches."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memories.cache import Cache, request_key
from memories.errors import ConfigError


def test_get_or_fetch_calls_the_fetcher_once_and_survives_a_new_instance(tmp_path):
    calls = []
    c = Cache(tmp_path, ttl_s=60, max_bytes=10_000)
    assert c.get_or_fetch("http://x/a", lambda: calls.append(1) or b"payload") == b"payload"
    again = Cache(tmp_path, ttl_s=60, max_bytes=10_000)
    assert again.get_or_fetch("http://x/a", lambda: calls.append(1) or b"other") == b"payload"
    assert calls == [1] and again.stats.hits == 1


def test_entries_expire_after_the_ttl(tmp_path):
    c = Cache(tmp_path, ttl_s=0.3, max_bytes=10_000)
    c.put("k", b"v1")
    assert c.get("k") == b"v1"
    time.sleep(0.4)
    assert c.get("k") is None and c.stats.expired == 1 and len(c) == 0
    assert c.get_or_fetch("k", lambda: b"v2") == b"v2"


def test_the_size_cap_evicts_the_least_recently_used(tmp_path):
    c = Cache(tmp_path, ttl_s=None, max_bytes=250)
    for i, key in enumerate("ab"):
        c.put(key, bytes([i]) * 100)
        os.utime(c.path(key), (1000 + i, 1000 + i))  # a older than b
    assert c.get("a") == bytes([0]) * 100  # a is used again: b is now the least recently used
    c.put("c", bytes([2]) * 100)  # 300 bytes > 250: one must go
    assert "b" not in c and c.get("a") == bytes([0]) * 100 and c.get("c") == bytes([2]) * 100
    assert c.size_bytes == 200 and c.stats.evicted == 1


def test_request_keys_tell_bodies_apart_and_ignore_json_key_order():
    k1 = request_key("POST", "http://api/search", {"bbox": [1, 2, 3, 4], "limit": 10})
    assert k1 == request_key("post", "http://api/search", {"limit": 10, "bbox": [1, 2, 3, 4]})
    assert k1 != request_key("POST", "http://api/search", {"limit": 11, "bbox": [1, 2, 3, 4]})


def test_bad_settings_and_oversized_payloads_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="ttl_s must be positive"):
        Cache(tmp_path, ttl_s=0)
    c = Cache(tmp_path, max_bytes=10)
    with pytest.raises(Exception, match="exceeds the cache size cap of 10 bytes"):
        c.put("big", b"x" * 11)
    assert not [p for p in (tmp_path / "objects").rglob("*") if p.is_file()]


_FETCH_ONCE = """
import sys, time
from memories.cache import Cache

def slow():
    with open(sys.argv[2], "a") as f:
        f.write("fetch\\n")
    time.sleep(0.3)
    return b"once"

sys.stdout.write(Cache(sys.argv[1], ttl_s=60, max_bytes=10_000).get_or_fetch("shared-key", slow).decode())
"""


def test_processes_asking_for_one_key_at_once_fetch_it_once(tmp_path):
    log = tmp_path / "log.txt"
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FETCH_ONCE, str(tmp_path / "c"), str(log)],
            cwd=root,
            stdout=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    out = [p.communicate(timeout=60)[0] for p in procs]
    assert out == [b"once"] * 3
    assert log.read_text().count("fetch") == 1
