"""Fetching the assets of scenes so that a composite never rests on a broken file.

``fetch_assets`` takes the items of a tile-month and the bands a composite needs,
brings each remote asset (``http(s)://``, ``s3://``) into a ``memories.cache.Cache``
and verifies it: the byte count matches ``Content-Length`` (and ``file:size``),
the digest matches the server's ``Content-MD5`` or the item's ``file:checksum``
when either is published, the file opens with rasterio, and its last block
decodes (which catches truncated and corrupt COGs; a flipped bit inside a deflate
block can still decode, which only a published checksum catches).
A download that fails is retried with exponential backoff (429/5xx, connection
errors and timeouts by the shared retry policy of ``memories.earth.http``; bodies
that arrive short or corrupt by this module's own loop with the same delays).
Local files (the embedded world) are verified cheaply (open and header) and not
copied. Planetary Computer hrefs are signed just before the request; the cache
keys on the unsigned href, so a new token does not fetch a file again.

The result keeps every item whose required assets are all verified, with those
hrefs pointing at the verified local copies, and lists every failed asset by
item id and asset key: an item with a failed band is excluded from compositing,
never silently dropped, and ``completeness`` says how much of what was asked for
arrived.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from memories.earth.http import (
    DEFAULT_BACKOFF_S,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    Timeout,
    backoff_delays,
    retries_of,
)
from memories.earth.stac_profiles import COMMON_BANDS, CatalogProfile
from memories.errors import ConfigError, DataSourceError

CHUNK_BYTES = 1024 * 1024
"""Bytes read per chunk while streaming a download."""


@dataclass(frozen=True)
class AssetFailure:
    """One asset that could not be fetched or verified.

    Attributes:
        item_id: the item's id.
        asset: the asset key.
        href: the href asked for (unsigned: no token in it).
        error: what went wrong, for a person to read.
    """

    item_id: str
    asset: str
    href: str
    error: str

    def to_dict(self) -> dict[str, str]:
        """``{item_id, asset, href, error}``."""
        return {"item_id": self.item_id, "asset": self.asset, "href": self.href, "error": self.error}


@dataclass
class FetchResult:
    """What ``fetch_assets`` brought in.

    Attributes:
        items: the items whose required assets are all verified, hrefs of those
            assets pointing at local files, in the input order.
        failures: every asset that failed, by item id and asset key.
        excluded: ids of the items left out because an asset failed.
        requested: required assets asked for (items x assets).
        ok: of those, the assets verified.
        downloaded_bytes: bytes downloaded in this call.
        cache_hits: remote assets found, already verified, in the cache.
        retries: retries made in all (HTTP retries and re-downloads).
    """

    items: list[Any]
    failures: list[AssetFailure] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    requested: int = 0
    ok: int = 0
    downloaded_bytes: int = 0
    cache_hits: int = 0
    retries: int = 0

    @property
    def completeness(self) -> float:
        """Fraction (0-1) of requested assets that arrived and verified; 1.0 when none was requested."""
        return self.ok / self.requested if self.requested else 1.0

    def failures_json(self) -> list[dict[str, str]]:
        """The failures as a JSON-ready list of ``{item_id, asset, href, error}``."""
        return [f.to_dict() for f in self.failures]


def fetch_assets(
    items: Sequence[Any],
    profile: CatalogProfile,
    bands: Iterable[str] = COMMON_BANDS,
    *,
    cache: Any = None,
    session: Any = None,
    signer: Any = None,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    timeout_s: Timeout = DEFAULT_TIMEOUT_S,
    max_workers: int = 4,
    s3_options: Mapping[str, Any] | None = None,
) -> FetchResult:
    """Fetch and verify the assets a composite needs: ``bands`` and the profile's mask band.

    Args:
        items: pystac Items of one tile-month.
        profile: maps band names to asset keys; says whether hrefs need signing.
        bands: common band names to fetch besides the mask band.
        cache: a ``memories.cache.Cache`` for downloads; needed when any href is remote.
        session: a ``requests.Session``; default ``memories.earth.http.session(...)``.
        signer: signs hrefs (``PlanetaryComputerSigner``); default the profile's own.
        retries: the most retries per download (HTTP retries and re-downloads alike).
        backoff_s: first wait between re-downloads, seconds, doubling each time.
        timeout_s: seconds, or (connect, read) seconds, per HTTP request.
        max_workers: downloads running at once.
        s3_options: fsspec options for ``s3://`` hrefs (``anon``, ``requester_pays``, ``client_kwargs``).

    Returns:
        a FetchResult; it raises only for configuration errors, never for a failed asset.
    """
    from memories.earth.http import session as http_session
    from memories.earth.stac_profiles import signer_for

    required = profile.required_keys(bands)
    keys = list(required.values())
    needs_network = any(_scheme(_asset_href(it, k) or "") not in ("", "file") for it in items for k in keys)
    if needs_network and cache is None:
        raise ConfigError("remote asset hrefs need a download cache: pass cache=memories.cache.Cache(<folder>)")
    if needs_network and session is None:
        session = http_session(retries=retries, backoff_s=backoff_s, timeout_s=timeout_s)
    if signer is None and needs_network:
        signer = signer_for(profile, session=session)
    fetcher = _Fetcher(profile, required, cache, session, signer, retries, backoff_s, dict(s3_options or {}))

    tasks = [(i, it, k) for i, it in enumerate(items) for k in keys]
    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        outcomes = list(pool.map(lambda t: fetcher.fetch(t[1], t[2]), tasks))

    result = FetchResult(items=[], requested=len(tasks))
    local: dict[int, dict[str, str]] = {}
    failed: set[int] = set()
    for (i, _it, k), outcome in zip(tasks, outcomes, strict=True):
        if isinstance(outcome, AssetFailure):
            result.failures.append(outcome)
            failed.add(i)
        else:
            result.ok += 1
            local.setdefault(i, {})[k] = outcome
    for i, it in enumerate(items):
        if i in failed:
            result.excluded.append(str(it.id))
            continue
        clone = it.clone()
        for k, path in local.get(i, {}).items():
            clone.assets[k].href = path
        result.items.append(clone)
    result.downloaded_bytes = fetcher.downloaded_bytes
    result.cache_hits = fetcher.cache_hits
    result.retries = fetcher.retries
    return result


def verify_raster(path: str | os.PathLike[str], *, decode_last_block: bool = True) -> None:
    """Check that a raster file is whole: it opens, has pixels, and (optionally) its last block decodes.

    The last block of a (Cloud-Optimized) GeoTIFF lies at the end of the file for
    a truncated download and is the one a flipped byte near the end breaks, so
    decoding it catches both without reading the whole image.

    Raises:
        DataSourceError: naming the file and what is wrong.
    """
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(path) as ds:
            if ds.count < 1 or ds.width < 1 or ds.height < 1:
                raise DataSourceError(f"{path} has no pixels ({ds.count} bands, {ds.width} x {ds.height})")
            if decode_last_block:
                last = None
                for _, window in ds.block_windows(1):
                    last = window
                ds.read(1, window=last)
    except RasterioError as e:
        raise DataSourceError(f"{path} is not a readable raster (truncated or corrupt?): {e}") from e


# -- internals ------------------------------------------------------------------


class _Permanent(DataSourceError):
    """A failure that another attempt cannot fix (404, 403, unsupported scheme)."""


class _Fetcher:
    """Fetches one asset at a time, with the shared settings and counters of one ``fetch_assets`` call."""

    def __init__(
        self,
        profile: CatalogProfile,
        required: Mapping[str, str],
        cache: Any,
        session: Any,
        signer: Any,
        retries: int,
        backoff_s: float,
        s3_options: dict[str, Any],
    ) -> None:
        self.profile = profile
        self.required = required  # names a missing asset as CatalogProfile.check_assets does
        self.cache = cache
        self.session = session
        self.signer = signer
        self.delays = backoff_delays(retries, backoff_s)
        self.s3_options = s3_options
        self._lock = threading.Lock()
        self.downloaded_bytes = 0
        self.cache_hits = 0
        self.retries = 0

    def fetch(self, item: Any, key: str) -> str | AssetFailure:
        """The verified local path of one asset, or its failure."""
        href = _asset_href(item, key)
        if href is None:
            message = self.profile.missing_assets(item, self.required) or f"item has no asset {key!r}"
            return AssetFailure(str(item.id), key, "", message)
        try:
            scheme = _scheme(href)
            if scheme in ("", "file"):
                path = unquote(urlparse(href).path) if scheme == "file" else href
                if not Path(path).is_file():
                    raise _Permanent(f"{path} does not exist")
                verify_raster(path, decode_last_block=False)
                return path
            if scheme not in ("http", "https", "s3"):
                raise _Permanent(f"unsupported href scheme {scheme!r}; use http(s)://, s3:// or a local path")
            cached = self.cache.path(href)
            if cached is not None:
                with self._lock:
                    self.cache_hits += 1
                return str(cached)
            fields = item.assets[key].extra_fields
            return str(self.cache.path_or_fetch(href, lambda tmp: self._download(href, tmp, fields)))
        except DataSourceError as e:
            return AssetFailure(str(item.id), key, href, str(e))
        except Exception as e:  # noqa: BLE001 - any other failure is listed, not raised
            return AssetFailure(str(item.id), key, href, f"{type(e).__name__}: {e}")

    def _download(self, href: str, dest: Path, fields: Mapping[str, Any]) -> None:
        """Download and verify into ``dest``, re-trying short or corrupt bodies with backoff."""
        attempt_errors: list[str] = []
        for attempt in range(len(self.delays) + 1):
            if attempt:
                with self._lock:
                    self.retries += 1
                time.sleep(self.delays[attempt - 1])
            try:
                n = self._download_s3(href, dest) if href.startswith("s3://") else self._download_http(href, dest)
                _check_published(dest, n, fields)
                verify_raster(dest, decode_last_block=True)
                with self._lock:
                    self.downloaded_bytes += n
                return
            except _Permanent:
                dest.unlink(missing_ok=True)
                raise
            except Exception as e:  # noqa: BLE001 - transient until the attempts run out
                dest.unlink(missing_ok=True)
                attempt_errors.append(_no_query(str(e)))
        raise DataSourceError(
            f"failed after {len(attempt_errors)} attempts; last error: {attempt_errors[-1]}"
            if attempt_errors
            else "failed"
        )

    def _download_http(self, href: str, dest: Path) -> int:
        import requests

        url = self.signer.sign_href(href, self.profile.collection) if self.signer is not None else href
        try:
            response = self.session.get(url, stream=True)
        except requests.RequestException as e:
            # the session's retry policy has already spent its retries on this one
            raise _Permanent(f"no answer after the retries of the HTTP policy: {_no_query(str(e))}") from None
        with response as r:
            k = retries_of(r)
            with self._lock:
                self.retries += k
            if r.status_code != 200:
                raise _Permanent(f"HTTP {r.status_code} {r.reason} after {k} retries")
            expected = r.headers.get("Content-Length")
            md5 = hashlib.md5(usedforsecurity=False)
            n = 0
            with open(dest, "wb") as f:
                for chunk in r.iter_content(CHUNK_BYTES):
                    f.write(chunk)
                    md5.update(chunk)
                    n += len(chunk)
            if expected is not None and not r.headers.get("Content-Encoding") and n != int(expected):
                raise DataSourceError(f"truncated download: {n} of {expected} bytes")
            published = r.headers.get("Content-MD5")
            if published and base64.b64encode(md5.digest()).decode() != published.strip():
                raise DataSourceError("corrupt download: its MD5 differs from the server's Content-MD5")
            return n

    def _download_s3(self, href: str, dest: Path) -> int:
        import fsspec

        try:
            with fsspec.open(href, "rb", **self.s3_options) as src, open(dest, "wb") as f:
                expected = getattr(src, "size", None)
                n = 0
                while chunk := src.read(CHUNK_BYTES):
                    f.write(chunk)
                    n += len(chunk)
        except FileNotFoundError:
            # s3fs's answer to NoSuchKey / 404 (and to a missing bucket): another attempt finds nothing either
            raise _Permanent(f"{href} does not exist (no such key or bucket)") from None
        except PermissionError as e:
            raise _Permanent(
                f"access to {href} denied ({e}); check the credentials, or pass s3_options "
                "anon=True for a public bucket or requester_pays=True for a requester-pays one"
            ) from None
        if expected is not None and n != int(expected):
            raise DataSourceError(f"truncated download: {n} of {expected} bytes")
        return n


def _check_published(path: Path, n: int, fields: Mapping[str, Any]) -> None:
    """Compare a download with the STAC file extension's ``file:size`` and ``file:checksum`` (multihash)."""
    size = fields.get("file:size")
    if size is not None and int(size) != n:
        raise DataSourceError(f"truncated download: {n} bytes, the item says file:size {size}")
    checksum = fields.get("file:checksum")
    if not isinstance(checksum, str):
        return
    algorithms = {"d501": "md5", "1220": "sha256", "1340": "sha512", "1114": "sha1"}
    algorithm = algorithms.get(checksum[:4].lower())
    if algorithm is None:
        return  # a multihash this module does not know: nothing to compare with
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
    if h.hexdigest() != checksum[4:].lower():
        raise DataSourceError(f"corrupt download: its {algorithm} differs from the item's file:checksum")


def _no_query(message: str) -> str:
    """A message with the query strings of URLs in it cut off: they may carry SAS tokens."""
    import re

    return re.sub(r"\?[^\s'\")]*", "?...", message)


def _asset_href(item: Any, key: str) -> str | None:
    asset = item.assets.get(key)
    return None if asset is None else str(asset.href)


def _scheme(href: str) -> str:
    scheme = urlparse(href).scheme.lower()
    return "" if len(scheme) == 1 else scheme  # a Windows drive letter is a local path
