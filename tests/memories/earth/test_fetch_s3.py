"""Fetching ``s3://`` scene assets through fsspec, against a real S3 server (moto's server mode) on 127.0.0.1.

Small COGs are written with rasterio and put to a bucket; the real Earth Search
item of ``test_fetch`` is copied with its hrefs rewritten to ``s3://`` keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from memories.cache import Cache
from memories.earth.fetch import fetch_assets

from .test_fetch import KEYS, PROFILE, es_items, write_cog

BUCKET = "scenes"
PREFIX = f"s3://{BUCKET}/sentinel-2"


@pytest.fixture(scope="module")
def s3(s3_endpoint, s3_bucket) -> dict[str, Any]:
    """The session's S3 server with this module's bucket; fsspec's ``s3_options`` for it."""
    s3_bucket(BUCKET)
    return {"client_kwargs": {"endpoint_url": s3_endpoint}}


@pytest.fixture(scope="module")
def cogs(s3: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Key -> bytes of a 128 px COG per asset of two items, uploaded to the bucket."""
    folder = tmp_path_factory.mktemp("s3cogs")
    client = boto3.client("s3", endpoint_url=s3["client_kwargs"]["endpoint_url"])
    out = {}
    for i in range(2):
        for j, k in enumerate(KEYS):
            key = f"sentinel-2/cogs/{i}/{k}.tif"
            out[key] = write_cog(folder / f"{i}_{k}.tif", seed=100 + 10 * i + j, size=128)
            client.put_object(Bucket=BUCKET, Key=key, Body=out[key])
    return out


def test_s3_assets_are_downloaded_verified_and_then_served_from_the_cache(s3, cogs, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    items = es_items(PREFIX)
    first = fetch_assets(items, PROFILE, cache=cache, s3_options=s3, backoff_s=0.05)
    assert first.completeness == 1.0 and first.failures == [] and first.requested == 14 == first.ok
    assert first.downloaded_bytes == sum(len(b) for b in cogs.values()) and first.cache_hits == 0
    for i, it in enumerate(first.items):
        for k in KEYS:
            local = Path(it.assets[k].href)
            assert local.is_relative_to(tmp_path / "cache")  # a copy in the cache, not the bucket
            assert local.read_bytes() == cogs[f"sentinel-2/cogs/{i}/{k}.tif"]
            assert cache.path(f"{PREFIX}/cogs/{i}/{k}.tif") == local  # keyed on the s3:// href
    assert items[0].assets["red"].href == f"{PREFIX}/cogs/0/red.tif"  # the input items are left as they were

    second = fetch_assets(es_items(PREFIX), PROFILE, cache=cache, s3_options=s3)
    assert second.completeness == 1.0 and second.downloaded_bytes == 0 and second.cache_hits == 14
    assert [it.assets["nir"].href for it in second.items] == [it.assets["nir"].href for it in first.items]


def test_a_missing_s3_key_is_listed_by_item_and_asset_without_retrying(s3, cogs, tmp_path: Path) -> None:
    items = es_items(PREFIX)
    items[1].assets["swir22"].href = f"{PREFIX}/cogs/1/no-such-key.tif"
    result = fetch_assets(items, PROFILE, cache=Cache(tmp_path / "cache"), s3_options=s3, retries=3, backoff_s=0.5)
    assert [(f.item_id, f.asset) for f in result.failures] == [(items[1].id, "swir22")]
    assert result.failures[0].href == f"{PREFIX}/cogs/1/no-such-key.tif"
    assert "does not exist" in result.failures[0].error
    assert result.retries == 0  # a missing key is permanent: no backoff spent on it
    assert result.excluded == [items[1].id] and [it.id for it in result.items] == [items[0].id]
    assert result.completeness == pytest.approx(13 / 14)
