"""STAC search through pages, failures and the answer cache.

Paging runs against rustac (the real STAC API server of the embedded world) over
copies of the real Earth Search item; faults and caching against the
fault-injecting server, counting the requests that reach it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from memories.cache import Cache
from memories.earth.stac import open_client, search_scenes
from memories.earth.stac_profiles import get_profile
from memories.grid import TileGrid
from memories.sample.server import StacServer

from .faulty_server import FaultyServer

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "stac_items"
# Tile 13TDE of the real item (EPSG:32613), a 1 km grid inside its footprint.
GRID = TileGrid("13TDE", 32613, 500000, 4500000, 100, 100)
MONTH = "2023-10"


def real_items(n: int) -> list[dict]:
    """``n`` copies of the real Earth Search S2 item, one a day of October 2023; every third is cloudier."""
    fc = json.loads((DATA / "earthsearch_v1_s2l2a_landsat_2023-10-08.json").read_text())
    src = next(f for f in fc["features"] if f["collection"] == "sentinel-2-l2a")
    out = []
    for i in range(n):
        d = json.loads(json.dumps(src))
        d["id"] = f"S2A_13TDE_202310{i + 1:02d}_0_L2A"
        d["properties"]["datetime"] = f"2023-10-{i + 1:02d}T17:50:00Z"
        d["properties"]["eo:cloud_cover"] = 90.0 if i % 3 == 2 else 10.0
        d["links"] = []
        out.append(d)
    return out


def test_every_page_of_a_large_result_is_read_from_a_real_stac_api(tmp_path):
    items = real_items(7)
    collection = {
        "type": "Collection", "id": "sentinel-2-l2a", "stac_version": "1.0.0", "description": "copies",
        "license": "proprietary", "links": [],
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
    }  # fmt: skip
    (tmp_path / "collection.json").write_text(json.dumps(collection))
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    with StacServer([tmp_path / "collection.json", tmp_path / "items.json"]) as server:
        found = search_scenes(open_client(server.url), get_profile("earth-search"), GRID, MONTH,
                              max_cloud_cover=50, page_size=3)  # fmt: skip
    assert found.pages == 3  # 3 + 3 + 1
    assert [it.id for it in found.items] == [d["id"] for i, d in enumerate(items) if i % 3 != 2]
    assert set(found.rejected) == {items[2]["id"], items[5]["id"]}


@pytest.fixture
def api():
    with FaultyServer() as s:
        s.items = real_items(5)
        yield s


def test_a_429_on_a_search_page_waits_for_retry_after_and_the_search_completes(api):
    client = open_client(api.url, backoff_s=0.05)
    api.script("/search", ("500",), ("429", 1))
    t0 = time.monotonic()
    found = search_scenes(client, get_profile("earth-search"), GRID, MONTH, page_size=2)
    assert [it.id for it in found.items] == [d["id"] for d in api.items] and found.pages == 3
    hits = api.requests_to("/search")
    assert len(hits) == 5  # page 1 after a 500 and a 429, then pages 2 and 3
    assert hits[2] - hits[1] >= 1.0 and time.monotonic() - t0 < 5


def test_a_rerun_answers_from_the_cache_until_the_ttl_runs_out(api, tmp_path):
    cache = Cache(tmp_path / "stac", ttl_s=1.0, max_bytes=10**7)
    first = search_scenes(open_client(api.url, cache=cache), get_profile("earth-search"), GRID, MONTH, page_size=2)
    n = len(api.log)
    client = open_client(api.url, cache=cache)
    again = search_scenes(client, get_profile("earth-search"), GRID, MONTH, page_size=2)
    assert len(api.log) == n and client._stac_io.requests_sent == 0
    assert (again.pages, again.cache_hits) == (3, 3) and [i.id for i in again.items] == [i.id for i in first.items]
    time.sleep(1.1)
    later = search_scenes(open_client(api.url, cache=cache), get_profile("earth-search"), GRID, MONTH, page_size=2)
    assert later.cache_hits == 0 and len(api.requests_to("/search")) == 6
