"""Fetching scene assets through a network that fails: retries, waits, verification, completeness.

Every test runs a real HTTP server on 127.0.0.1 (``faulty_server.FaultyServer``)
that serves small COGs written here and misbehaves on cue, and fetches the
assets of the real Earth Search item in ``../shared/data/stac_items`` with its
hrefs rewritten to that server.
"""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from memories.cache import Cache
from memories.earth.fetch import fetch_assets, verify_raster
from memories.earth.stac_profiles import COMMON_BANDS, get_profile
from memories.errors import DataSourceError

from .faulty_server import FaultyServer

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "stac_items"
PROFILE = get_profile("earth-search")
KEYS = list(PROFILE.required_keys(COMMON_BANDS).values())  # 6 bands + scl


def write_cog(path: Path, seed: int, size: int = 512) -> bytes:
    """A single-band uint16 COG of noise (so every block compresses to many bytes); returns its bytes."""
    data = np.random.default_rng(seed).integers(1, 10000, (size, size), dtype=np.uint16)
    profile = {
        "driver": "COG",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint16",
        "nodata": 0,
        "crs": "EPSG:32613",
        "transform": rasterio.transform.from_origin(499980, 4500000, 10, 10),
        "blocksize": 256,
        "compress": "deflate",
        "overviews": "none",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path.read_bytes()


def es_items(base: str, n: int = 2) -> list[pystac.Item]:
    """``n`` copies of the real Earth Search S2 item, ids suffixed, required hrefs on the test server."""
    fc = json.loads((DATA / "earthsearch_v1_s2l2a_landsat_2023-10-08.json").read_text())
    src = next(f for f in fc["features"] if f["collection"] == "sentinel-2-l2a")
    items = []
    for i in range(n):
        d = json.loads(json.dumps(src))
        d["id"] = f"{src['id']}_{i}"
        d["links"] = []
        for k in KEYS:
            d["assets"][k]["href"] = f"{base}/cogs/{i}/{k}.tif"
        items.append(pystac.Item.from_dict(d))
    return items


@pytest.fixture(scope="module")
def cogs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("cogs")
    return {
        f"/cogs/{i}/{k}.tif": write_cog(folder / f"{i}_{k}.tif", seed=10 * i + j)
        for i in range(2)
        for j, k in enumerate(KEYS)
    }


@pytest.fixture
def server(cogs: dict[str, bytes]):
    with FaultyServer() as s:
        s.files.update(cogs)
        yield s


def fetch(server: FaultyServer, tmp_path: Path, **kw):
    kw.setdefault("backoff_s", 0.05)
    kw.setdefault("retries", 3)
    return fetch_assets(es_items(server.url), PROFILE, cache=Cache(tmp_path / "cache"), **kw)


def test_clean_fetch_verifies_every_asset_and_points_hrefs_at_identical_local_copies(server, tmp_path, cogs):
    result = fetch(server, tmp_path)
    assert result.completeness == 1.0 and result.failures == [] and result.requested == 14
    assert [it.id for it in result.items] == ["S2A_13TDE_20231008_0_L2A_0", "S2A_13TDE_20231008_0_L2A_1"]
    for i, it in enumerate(result.items):
        for k in KEYS:
            assert Path(it.assets[k].href).read_bytes() == cogs[f"/cogs/{i}/{k}.tif"]
    assert result.downloaded_bytes == sum(len(b) for b in cogs.values())


def test_429_waits_as_long_as_retry_after_says_in_seconds_and_as_an_http_date(server, tmp_path):
    server.script("/cogs/0/red.tif", ("429", 1))
    # An HTTP date has 1 s resolution: name a whole second 1-2 s ahead, so the date is exactly that instant.
    instant = float(int(time.time()) + 2)
    server.script("/cogs/1/red.tif", ("429", email.utils.formatdate(instant, usegmt=True)))
    wall_minus_monotonic = time.time() - time.monotonic()  # the server logs monotonic times
    result = fetch(server, tmp_path)
    assert result.completeness == 1.0 and result.retries == 2
    seconds = server.requests_to("/cogs/0/red.tif")
    date = server.requests_to("/cogs/1/red.tif")
    assert len(seconds) == 2 and len(date) == 2
    assert 1.0 <= seconds[1] - seconds[0] < 3.0  # not the 0.05 s backoff: the server's 1 s
    # The retry comes no earlier than the date's instant (wall clock; 20 ms for converting the clocks) ...
    assert date[1] + wall_minus_monotonic >= instant - 0.02
    # ... and not long after it, nor at the 0.05 s backoff (the first request came before the instant).
    assert date[1] + wall_minus_monotonic < instant + 1.5
    assert date[0] + wall_minus_monotonic < instant - 0.1


def test_500s_are_retried_with_exponential_backoff(server, tmp_path):
    server.script("/cogs/0/nir.tif", ("500",), ("500",), ("500",))
    result = fetch(server, tmp_path, backoff_s=0.2)
    assert result.completeness == 1.0 and result.retries == 3
    t = server.requests_to("/cogs/0/nir.tif")
    gaps = np.diff(t)
    assert len(t) == 4
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8  # 0.2, 0.4, 0.8 s
    assert gaps[2] < 2.0


def test_an_answer_slower_than_the_read_timeout_is_retried(server, tmp_path):
    # The read timeout is long enough that an unscripted 512 px COG never reaches it on a loaded
    # machine (0.5 s did, with the suite on two workers: a second, spurious retry), and the delay
    # is well past it.
    server.script("/cogs/1/scl.tif", ("delay", 3.0))
    result = fetch(server, tmp_path, timeout_s=(2.0, 2.0))
    assert result.completeness == 1.0 and result.retries == 1
    assert len(server.requests_to("/cogs/1/scl.tif")) == 2


def test_truncated_and_corrupt_bodies_are_detected_and_downloaded_again(server, tmp_path, cogs):
    server.script("/cogs/0/blue.tif", ("truncate",))
    server.script("/cogs/0/green.tif", ("corrupt",))
    result = fetch(server, tmp_path)
    assert result.completeness == 1.0 and result.retries == 2
    assert len(server.requests_to("/cogs/0/blue.tif")) == 2 and len(server.requests_to("/cogs/0/green.tif")) == 2
    assert Path(result.items[0].assets["green"].href).read_bytes() == cogs["/cogs/0/green.tif"]


def test_permanent_failures_are_listed_by_item_and_asset_and_the_item_is_excluded(server, tmp_path):
    server.forever("/cogs/1/swir16.tif", ("corrupt",))
    server.forever("/cogs/1/scl.tif", ("500",))
    result = fetch(server, tmp_path, retries=2)
    assert [it.id for it in result.items] == ["S2A_13TDE_20231008_0_L2A_0"]
    assert result.excluded == ["S2A_13TDE_20231008_0_L2A_1"]
    failed = {(f["item_id"], f["asset"]): f for f in result.failures_json()}
    assert set(failed) == {("S2A_13TDE_20231008_0_L2A_1", "swir16"), ("S2A_13TDE_20231008_0_L2A_1", "scl")}
    assert "corrupt download" in failed[("S2A_13TDE_20231008_0_L2A_1", "swir16")]["error"]
    assert "HTTP 500" in failed[("S2A_13TDE_20231008_0_L2A_1", "scl")]["error"]
    assert failed[("S2A_13TDE_20231008_0_L2A_1", "scl")]["href"].endswith("/cogs/1/scl.tif")
    assert result.completeness == pytest.approx(12 / 14)
    assert len(server.requests_to("/cogs/1/swir16.tif")) == 3  # first try + 2 re-downloads
    assert len(server.requests_to("/cogs/1/scl.tif")) == 3  # first try + 2 HTTP retries
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "cache").rglob("*"))  # nothing half cached


def test_without_content_md5_the_items_file_checksum_catches_corrupt_bytes(server, tmp_path, cogs):
    import hashlib

    server.content_md5 = False
    server.forever("/cogs/0/red.tif", ("corrupt",))
    items = es_items(server.url)
    for i, it in enumerate(items):
        it.assets["red"].extra_fields["file:checksum"] = "1220" + hashlib.sha256(cogs[f"/cogs/{i}/red.tif"]).hexdigest()
    result = fetch_assets(items, PROFILE, cache=Cache(tmp_path / "cache"), retries=1, backoff_s=0.05)
    assert [(f.item_id, f.asset) for f in result.failures] == [(items[0].id, "red")]
    assert "sha256 differs from the item's file:checksum" in result.failures[0].error
    assert [it.id for it in result.items] == [items[1].id]


def test_a_rerun_takes_verified_assets_from_the_cache_without_asking_the_server(server, tmp_path):
    first = fetch(server, tmp_path)
    n = len(server.log)
    second = fetch(server, tmp_path)
    assert len(server.log) == n == 14
    assert second.cache_hits == 14 and second.downloaded_bytes == 0 and second.completeness == 1.0
    assert [it.assets["red"].href for it in second.items] == [it.assets["red"].href for it in first.items]


def test_local_files_are_verified_in_place_and_a_missing_one_is_listed(tmp_path, cogs):
    items = es_items("http://unused")
    for i, it in enumerate(items):
        for k in KEYS:
            p = tmp_path / f"{i}_{k}.tif"
            p.write_bytes(cogs[f"/cogs/{i}/{k}.tif"])
            it.assets[k].href = str(p) if i == 0 else p.as_uri()
    (tmp_path / "1_nir.tif").unlink()
    result = fetch_assets(items, PROFILE)  # no cache needed: nothing is copied
    assert result.items[0].assets["red"].href == str(tmp_path / "0_red.tif")
    assert result.excluded == [items[1].id]
    assert result.failures[0].asset == "nir" and "does not exist" in result.failures[0].error


def test_verify_raster_rejects_a_truncated_cog(tmp_path, cogs):
    whole = tmp_path / "whole.tif"
    whole.write_bytes(cogs["/cogs/0/red.tif"])
    verify_raster(whole)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(cogs["/cogs/0/red.tif"][:-5000])
    verify_raster(cut, decode_last_block=False)  # the header alone is intact
    with pytest.raises(DataSourceError, match="cut.tif"):
        verify_raster(cut)
