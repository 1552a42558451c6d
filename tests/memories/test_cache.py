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


# -- typed values: Cache(name=, max_size_gb=).set(key, value, ttl_days=) / get(key) -------------------------------


def test_set_and_get_keep_arrays_frames_xarray_and_json_as_their_own_types(tmp_path):
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import xarray as xr
    from shapely.geometry import Point

    c = Cache(tmp_path, name="imagery_cache", max_size_gb=1)
    array = np.arange(12, dtype=np.uint16).reshape(3, 4)
    frame = pd.DataFrame({"month": ["2023-05", "2023-06"], "ndvi": [0.61, 0.58]})
    buildings = gpd.GeoDataFrame({"height": [55.0]}, geometry=[Point(500010.0, 5100020.0)], crs=32633)
    da = xr.DataArray(
        np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3), dims=("y", "x"), name="ndvi", attrs={"units": "1"}
    )
    ds = da.to_dataset()
    plain = {"tile": "33TVM", "months": ["2023-05"], "cloud_cover": 3.5, "note": None}
    for key, value in [("a", array), ("f", frame), ("g", buildings), ("da", da), ("ds", ds), ("j", plain)]:
        c.set(key, value, ttl_days=30)
    back = c.get("a")
    assert back.dtype == np.uint16 and np.array_equal(back, array)
    assert c.get("f").equals(frame)
    g = c.get("g")
    assert isinstance(g, gpd.GeoDataFrame) and g.crs.to_epsg() == 32633 and g.geometry[0].equals(buildings.geometry[0])
    assert c.get("da").identical(da) and c.get("ds").identical(ds)
    assert c.get("j") == plain
    assert c.get("missing") is None
    c.put("raw", b"bytes stay bytes")
    assert c.get("raw") == b"bytes stay bytes"


def test_set_refuses_what_needs_pickle_and_never_unpickles(tmp_path):
    import numpy as np

    c = Cache(tmp_path, max_bytes=10**6)
    with pytest.raises(ConfigError, match="needs pickle"):
        c.set("o", np.array([object()], dtype=object))
    with pytest.raises(ConfigError, match="cannot store a builtins.set"):
        c.set("s", {1, 2})
    assert len(c) == 0
    # A pickled array written under a key is not loaded: .npy files are read with allow_pickle=False.
    c.set("a", np.zeros(3))
    path = c.path("a")
    assert path is not None
    with path.open("wb") as f:  # np.save(path) would add ".npy" to the name
        np.save(f, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        c.get("a")


def test_ttl_days_expires_an_entry_and_the_size_cap_evicts_the_least_recently_used(tmp_path):
    import numpy as np

    c = Cache(tmp_path, max_bytes=350_000)
    c.set("short", [1, 2, 3], ttl_days=1e-6)  # 0.0864 s
    c.set("long", [4], ttl_days=30)
    time.sleep(0.2)
    assert c.get("short") is None and c.get("long") == [4]
    block = np.zeros(12_500, dtype=np.float64)  # 100 kB each
    for i in range(3):
        c.set(f"b{i}", block)
        time.sleep(0.02)
    assert c.get("b0") is not None  # b0 is now the most recently used
    c.set("b3", block)
    assert c.size_bytes <= 350_000
    assert c.get("b1") is None and c.get("b0") is not None and c.get("b3") is not None
