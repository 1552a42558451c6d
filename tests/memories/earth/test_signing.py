"""Planetary Computer signing inside ``fetch_assets``, end to end against real servers on 127.0.0.1.

``TokenServer`` plays the SAS token API (``/api/sas/v1/token/<collection>``) and
``BlobServer`` plays Azure blob storage: it serves files with byte ranges only to
requests whose query carries a ``sig`` the token server issued for the file's
collection, and answers 403 ``AuthenticationFailed`` to every other request.
The items are the real Planetary Computer Sentinel-2 item and the real Landsat
item of ``../shared/data/stac_items``, with hrefs moved to the blob server under
their storage account and path; the profiles' ``signed_hosts`` name 127.0.0.1.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pystac
import pytest
import rasterio
import requests

from memories.cache import Cache
from memories.earth.fetch import fetch_assets
from memories.earth.stac_profiles import (
    CatalogProfile,
    PlanetaryComputerSigner,
    get_profile,
    href_needs_signing,
    signer_for,
)
from memories.errors import ConfigError

from .test_fetch import write_cog

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "stac_items"
PC_S2 = DATA / "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json"
ES_V1 = DATA / "earthsearch_v1_s2l2a_landsat_2023-10-08.json"


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 that logs ``(method, path, query)`` and calls ``answer``."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, dict[str, str], int]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_HEAD(self) -> None:
                server._handle(self, "HEAD")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(h.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        status, body, headers = self.answer(method, parsed.path, query, h.headers.get("Range"))
        with self._lock:
            self.log.append((method, parsed.path, query, status))
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if method != "HEAD":
            try:
                h.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    def answer(
        self, method: str, path: str, query: dict[str, str], rng: str | None
    ) -> tuple[int, bytes, dict[str, str]]:
        raise NotImplementedError


class TokenServer(_Server):
    """The SAS token API: a fresh random ``sig`` per request, valid for an hour."""

    def __init__(self) -> None:
        super().__init__()
        self.issued: dict[str, set[str]] = {}

    def answer(self, method: str, path: str, query: dict[str, str], rng: str | None) -> tuple[int, bytes, dict]:
        prefix = "/api/sas/v1/token/"
        if not path.startswith(prefix):
            return 404, b"not found", {}
        collection = path[len(prefix) :]
        sig = secrets.token_urlsafe(24)
        expiry = datetime.now(UTC) + timedelta(hours=1)
        with self._lock:
            self.issued.setdefault(collection, set()).add(sig)
        start = datetime.now(UTC)
        token = f"st={start:%Y-%m-%dT%H:%M:%SZ}&se={expiry:%Y-%m-%dT%H:%M:%SZ}&sp=rl&sv=2021-06-08&sr=c&sig={sig}"
        body = json.dumps({"msft:expiry": f"{expiry:%Y-%m-%dT%H:%M:%SZ}", "token": token}).encode()
        return 200, body, {"Content-Type": "application/json"}

    def calls(self) -> Counter[str]:
        """Token requests per collection."""
        return Counter(p.rsplit("/", 1)[1] for _, p, _, _ in self.log)


class BlobServer(_Server):
    """Blob storage: ``files[path] = (collection, bytes)``, served (with ranges) only with that collection's sig."""

    def __init__(self, tokens: TokenServer) -> None:
        super().__init__()
        self.tokens = tokens
        self.files: dict[str, tuple[str, bytes]] = {}

    def answer(self, method: str, path: str, query: dict[str, str], rng: str | None) -> tuple[int, bytes, dict]:
        if path not in self.files:
            return 404, b"BlobNotFound", {}
        collection, data = self.files[path]
        if query.get("sig") not in self.tokens.issued.get(collection, set()):
            return 403, b"AuthenticationFailed: Server failed to authenticate the request.", {}
        headers = {"Content-Type": "image/tiff", "Accept-Ranges": "bytes"}
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a) if a else max(len(data) - int(b), 0)
            end = min(int(b), len(data) - 1) if a and b else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return 206, data[start : end + 1], headers
        return 200, data, headers

    def statuses(self) -> Counter[int]:
        return Counter(status for *_, status in self.log)


@pytest.fixture
def servers() -> Iterator[tuple[TokenServer, BlobServer]]:
    tokens = TokenServer()
    blobs = BlobServer(tokens)
    try:
        yield tokens, blobs
    finally:
        blobs.close()
        tokens.close()


def on_blob_server(d: dict, profile: CatalogProfile, blobs: BlobServer, folder: Path, seed: int) -> pystac.Item:
    """The item with its required hrefs moved to the blob server, COGs behind them.

    Paths are ``/<account>/<container>/<folder of the real href>/<item id>_<asset key>.tif``.
    """
    d = json.loads(json.dumps(d))
    d["links"] = []
    for j, key in enumerate(profile.required_keys().values()):
        href = urlparse(d["assets"][key]["href"])
        if href.scheme == "s3":  # Earth Search's copy of a Landsat item: PC keeps it in landsateuwest/landsat-c2
            path = "/landsateuwest/landsat-c2/" + href.path.lstrip("/").split("/", 1)[1]
        else:  # https://<account>.blob.core.windows.net/<container>/<path>
            path = f"/{href.hostname.split('.')[0]}{href.path}"  # type: ignore[union-attr]
        path = f"{path.rsplit('/', 1)[0]}/{d['id']}_{key}.tif"
        blobs.files[path] = (profile.collection, write_cog(folder / f"{d['id']}_{key}.tif", seed + j, size=64))
        d["assets"][key]["href"] = blobs.url + path
    return pystac.Item.from_dict(d)


def pc_profile(name: str, tokens: TokenServer, hosts: tuple[str, ...] = ("127.0.0.1",)) -> CatalogProfile:
    return replace(get_profile(name), token_endpoint=f"{tokens.url}/api/sas/v1/token", signed_hosts=hosts)


def test_fetch_signs_blob_hrefs_with_one_cached_token_per_collection(servers, tmp_path: Path) -> None:
    tokens, blobs = servers
    s2 = pc_profile("planetary-computer", tokens)
    landsat = pc_profile("planetary-computer-landsat", tokens)
    s2_dict = json.loads(PC_S2.read_text())
    s2_items = []
    for i in range(2):
        d = {**s2_dict, "id": f"{s2_dict['id']}_{i}"}
        s2_items.append(on_blob_server(d, s2, blobs, tmp_path, seed=10 * i))
    ls_dict = next(f for f in json.loads(ES_V1.read_text())["features"] if f["collection"] == "landsat-c2-l2")
    ls_item = on_blob_server(ls_dict, landsat, blobs, tmp_path, seed=50)

    first = fetch_assets(s2_items, s2, cache=Cache(tmp_path / "c1"), max_workers=4)
    assert first.completeness == 1.0 and first.failures == [] and first.requested == 14
    assert tokens.calls() == {"sentinel-2-l2a": 1}  # 14 downloads on 4 threads, one token
    assert blobs.statuses() == {200: 14}  # every blob request carried the issued sig
    for it, src in zip(first.items, s2_items, strict=True):
        for key in s2.required_keys().values():
            assert Path(it.assets[key].href).read_bytes() == blobs.files[urlparse(src.assets[key].href).path][1]
        assert "sig=" not in src.assets["B04"].href  # the input item keeps its unsigned href

    # Another call (another partition), another collection, then the first collection again with an empty cache:
    # the process-wide signer keeps each collection's token until it nears expiry.
    assert fetch_assets([ls_item], landsat, cache=Cache(tmp_path / "c2")).completeness == 1.0
    again = fetch_assets(s2_items, s2, cache=Cache(tmp_path / "c3"))
    assert again.completeness == 1.0 and again.downloaded_bytes == first.downloaded_bytes
    assert tokens.calls() == {"sentinel-2-l2a": 1, "landsat-c2-l2": 1}
    assert blobs.statuses() == {200: 14 + 7 + 14}

    # The blob server really checks: no token, or the other collection's token, is refused.
    b04 = s2_items[0].assets["B04"].href
    assert requests.get(b04, timeout=5).status_code == 403
    assert requests.get(signer_for(landsat).sign_href(b04, "landsat-c2-l2"), timeout=5).status_code == 403  # type: ignore[union-attr]

    # A signed href also streams with byte ranges, as GDAL reads a COG in place.
    signed = signer_for(s2).sign_href(b04, s2.collection)  # type: ignore[union-attr]
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(signed) as ds:
        streamed = ds.read(1)
    with rasterio.open(first.items[0].assets["B04"].href) as ds:
        assert np.array_equal(streamed, ds.read(1))
    assert any(status == 206 for *_, status in blobs.log)


def test_hrefs_off_the_signed_hosts_go_out_unsigned_and_the_failures_name_the_403(servers, tmp_path: Path) -> None:
    tokens, blobs = servers
    default = pc_profile("planetary-computer", tokens, hosts=get_profile("planetary-computer").signed_hosts)
    item = on_blob_server(json.loads(PC_S2.read_text()), default, blobs, tmp_path, seed=1)
    result = fetch_assets([item], default, cache=Cache(tmp_path / "c"), retries=1, backoff_s=0.01)
    assert result.completeness == 0.0 and result.excluded == [item.id]
    assert {f.asset for f in result.failures} == set(default.required_keys().values())
    assert all("HTTP 403" in f.error for f in result.failures)
    assert tokens.calls() == {}  # 127.0.0.1 is not blob storage: no token was asked for, none was sent
    assert all("sig" not in q for _, _, q, _ in blobs.log)


def test_signing_policy_matches_hosts_by_suffix_or_exactly_and_never_twice() -> None:
    blob = "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/x.tif"
    assert href_needs_signing(blob)
    assert not href_needs_signing(blob + "?st=1&sig=abc")
    assert not href_needs_signing("https://evil.example/?x=.blob.core.windows.net")
    assert not href_needs_signing("https://blob.core.windows.net.evil.example/x.tif")
    assert not href_needs_signing("s3://sentinel2l2a01.blob.core.windows.net/x.tif")
    assert href_needs_signing("http://127.0.0.1:8080/a.tif", ("127.0.0.1",))
    assert not href_needs_signing("http://127.0.0.10/a.tif", ("127.0.0.1",))
    signer = PlanetaryComputerSigner("http://127.0.0.1:9/unused", signed_hosts=("mirror.example.org",))
    assert signer.sign_href(blob, "sentinel-2-l2a") == blob  # off its hosts: unchanged, no token request
    assert signer.token_requests == 0
    with pytest.raises(ConfigError, match="signed_hosts must be a tuple"):
        replace(get_profile("planetary-computer"), signed_hosts=".blob.core.windows.net")  # type: ignore[arg-type]
