"""The one home of the STAC catalog profiles: API root, collection, asset keys, mask, signing.

Each profile maps the catalog's asset keys to the common band names the pipeline
uses (``red``, ``nir``, ``scl``, ``qa_pixel``, ...), and says which band masks
clouds and how to decode it (``mask_kind``: Sentinel-2 ``scl`` classes or Landsat
``qa_pixel`` bits). Switching from the embedded world to Earth Search or
Planetary Computer, Sentinel-2 or Landsat, is choosing another profile (or the
same catalog with another collection), not changing code.

Planetary Computer serves its blobs from Azure storage that wants a SAS token:
``PlanetaryComputerSigner`` implements its token flow (``GET
{token_endpoint}/{collection}`` -> ``{"token", "msft:expiry"}``, appended as the
query string of blob hrefs), one token per collection, cached until it expires.

Which hrefs get signed is one policy, ``href_needs_signing``: an ``http(s)``
href of a signing profile whose host is one of the profile's ``signed_hosts``
(a name starting with ``.`` is a domain suffix, ``.blob.core.windows.net`` by
default; any other name is one exact host) and whose query has no ``sig=`` yet.
Every other href (a STAC API, a public mirror, a local file) goes out unchanged,
so a token never leaks to a host that did not ask for it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlparse

from memories.earth.items import item_dict
from memories.errors import ConfigError, DataSourceError

COMMON_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16", "swir22")
"""Reflectance bands the composites carry, in this order."""
MASK_BAND = "scl"
"""The mask band of Sentinel-2 profiles (kept for callers written before Landsat)."""

S2_BAND_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "B1": "coastal",
        "B2": "blue",
        "B3": "green",
        "B4": "red",
        "B5": "rededge1",
        "B6": "rededge2",
        "B7": "rededge3",
        "B8": "nir",
        "B8A": "nir08",
        "B9": "nir09",
        "B10": "cirrus",
        "B11": "swir16",
        "B12": "swir22",
    }
)
"""Sentinel-2 MSI band number -> common name (``B2`` and ``B02`` alike; ``common_band_name``)."""


def common_band_name(name: str) -> str:
    """The common band name of a Sentinel-2 band number or a common name: ``B2``, ``B02``, ``b02``, ``blue``.

    The one translation of band numbers: profiles map common names to asset keys
    (``CatalogProfile.asset_key``), so a caller may name bands either way.

    Raises:
        ConfigError: neither a Sentinel-2 band number nor a common name (the message lists both forms).
    """
    key = str(name).strip()
    upper = key.upper()
    if upper.startswith("B"):
        number = "B" + upper[1:].lstrip("0")
        if number in S2_BAND_NAMES:
            return S2_BAND_NAMES[number]
    lower = key.lower()
    if lower in S2_BAND_NAMES.values() or lower in ("scl", "qa_pixel"):
        return lower
    raise ConfigError(
        f"band {name!r} is neither a Sentinel-2 band number nor a common name; use one of "
        f"{list(S2_BAND_NAMES)} (B02 works too) or {sorted(set(S2_BAND_NAMES.values()))}"
    )


MaskKind = Literal["scl", "qa_pixel"]
SigningKind = Literal["none", "planetary-computer"]

PC_SUBSCRIPTION_KEY_ENV = "PC_SDK_SUBSCRIPTION_KEY"
"""Environment variable of an optional Planetary Computer subscription key (never logged)."""
PC_TOKEN_ENDPOINT = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
PC_BLOB_SUFFIX = ".blob.core.windows.net"
PC_SIGNED_HOSTS: tuple[str, ...] = (PC_BLOB_SUFFIX,)
"""Hosts whose hrefs a Planetary Computer profile signs: Azure blob storage accounts."""


@dataclass(frozen=True)
class CatalogProfile:
    """A STAC API collection and how to read its items.

    Attributes:
        name: profile name.
        url: API root, or None for the embedded server started locally.
        collection: the collection searched.
        asset_keys: common band name -> asset key in that catalog's items
            (reflectance bands and the mask band).
        mask_band: the common name of the cloud-mask band (``scl`` or ``qa_pixel``).
        mask_kind: how the mask band is decoded: ``scl`` (Sentinel-2 scene
            classes) or ``qa_pixel`` (Landsat Collection 2 QA bits).
        signing: ``planetary-computer`` when hrefs need a SAS token, else ``none``.
        token_endpoint: the SAS token API of a signing profile.
        signed_hosts: hosts whose hrefs a signing profile signs (``href_needs_signing``):
            ``.suffix`` entries match a domain and its subdomains, others one exact
            host name (no port). Point it at a mirror or a test server to sign there.
    """

    name: str
    url: str | None
    collection: str
    asset_keys: Mapping[str, str] = field(default_factory=dict)
    mask_band: str = MASK_BAND
    mask_kind: MaskKind = "scl"
    signing: SigningKind = "none"
    token_endpoint: str | None = None
    signed_hosts: tuple[str, ...] = PC_SIGNED_HOSTS

    def __post_init__(self) -> None:
        if isinstance(self.signed_hosts, str) or not all(isinstance(h, str) and h for h in self.signed_hosts):
            raise ConfigError(
                f"catalog profile {self.name!r}: signed_hosts must be a tuple of host names, "
                f"e.g. ('.blob.core.windows.net',), not {self.signed_hosts!r}"
            )

    def asset_key(self, band: str) -> str:
        """The asset key of a common band name."""
        try:
            return self.asset_keys[band]
        except KeyError:
            raise ConfigError(
                f"catalog profile {self.name!r} has no asset for band {band!r}; known bands: {sorted(self.asset_keys)}"
            ) from None

    @property
    def mask_asset_key(self) -> str:
        """The asset key of the mask band."""
        return self.asset_key(self.mask_band)

    def required_keys(self, bands: Iterable[str] = COMMON_BANDS) -> dict[str, str]:
        """Common name -> asset key of ``bands`` plus the mask band, the assets a composite needs."""
        names = [*bands, self.mask_band]
        return {b: self.asset_key(b) for b in dict.fromkeys(names)}

    def resolve_bands(self, item: Any, bands: Iterable[str] = COMMON_BANDS) -> dict[str, str]:
        """Common name -> asset key for one item, checked against the item's assets.

        Raises:
            DataSourceError: the item lacks some of the keys (``check_assets``).
        """
        keys = self.required_keys(bands)
        self.check_assets(item, keys)
        return keys

    def check_assets(self, item: Any, keys: Mapping[str, str]) -> None:
        """Check that an item carries the assets ``keys`` (common name -> asset key) names.

        The one check of an item's assets: ``resolve_bands``, the scene loader and
        the fetcher all report a missing asset with this message.

        Raises:
            DataSourceError: naming the item, the missing asset keys and the bands
                they stand for, the profile(s) the item's assets do fit (or the assets
                it has), and the fix; for a missing mask band, also the spectral mask
                that needs none.
        """
        message = self.missing_assets(item, keys)
        if message:
            raise DataSourceError(message)

    def missing_assets(self, item: Any, keys: Mapping[str, str]) -> str | None:
        """The ``check_assets`` message for an item that lacks some of ``keys``; None when it has them all."""
        d = item_dict(item)
        assets = d.get("assets", {})
        missing = {b: k for b, k in keys.items() if k not in assets}
        if not missing:
            return None
        bands = [b for b in keys if b not in _MASK_BANDS]
        fits = [p.name for p in PROFILES.values() if _fits(p, bands, assets)]
        hint = f"its assets fit the profile(s) {fits}" if fits else f"its assets are {sorted(assets)}"
        fix = "Choose the profile that matches the catalog the item came from"
        if set(missing) & set(_MASK_BANDS):
            fix += ", or load with mask_kind='spectral', which needs no mask asset"
        return (
            f"item {d.get('id')!r} has no asset {sorted(missing.values())} that profile {self.name!r} maps "
            f"bands {sorted(missing)} to; {hint}. {fix}."
        )


_MASK_BANDS: tuple[str, ...] = ("scl", "qa_pixel")
"""Common names of quality bands (not reflectance): a profile fits an item without them when the spectral
mask is used."""


def _fits(profile: CatalogProfile, bands: Iterable[str], assets: Mapping[str, Any]) -> bool:
    """Whether an item with ``assets`` carries every asset ``profile`` needs for ``bands`` and its mask."""
    try:
        return all(k in assets for k in profile.required_keys(bands).values())
    except ConfigError:  # the profile has no such band
        return False


_S2_COMMON_KEYS = MappingProxyType({b: b for b in (*COMMON_BANDS, "scl")})
"""Earth Search v1 (and the embedded world): asset keys are the common names."""
S2_BAND_NUMBER_KEYS = MappingProxyType(
    {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12", "scl": "SCL"}
)
"""Planetary Computer and Earth Search v0: asset keys are Sentinel-2 band numbers."""
_LANDSAT_KEYS = MappingProxyType(
    {
        "blue": "blue",
        "green": "green",
        "red": "red",
        "nir": "nir08",
        "swir16": "swir16",
        "swir22": "swir22",
        "qa_pixel": "qa_pixel",
    }
)
"""Landsat Collection 2 Level-2, on Earth Search and Planetary Computer alike."""
_DEM_KEYS = MappingProxyType({"elevation": "data"})
"""Copernicus DEM GLO-30 (``cop-dem-glo-30``): one ``data`` COG per 1 x 1 degree cell, on both catalogs."""
DEM_COLLECTION = "cop-dem-glo-30"

_EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
_PLANETARY = "https://planetarycomputer.microsoft.com/api/stac/v1"


def _landsat(name: str, url: str, **kw: Any) -> CatalogProfile:
    return CatalogProfile(name, url, "landsat-c2-l2", _LANDSAT_KEYS, mask_band="qa_pixel", mask_kind="qa_pixel", **kw)


_PC_SIGNING: dict[str, Any] = {"signing": "planetary-computer", "token_endpoint": PC_TOKEN_ENDPOINT}

PROFILES: Mapping[str, CatalogProfile] = MappingProxyType(
    {
        "embedded": CatalogProfile("embedded", None, "sentinel-2-l2a", _S2_COMMON_KEYS),
        "earth-search": CatalogProfile("earth-search", _EARTH_SEARCH, "sentinel-2-l2a", _S2_COMMON_KEYS),
        "earth-search-landsat": _landsat("earth-search-landsat", _EARTH_SEARCH),
        "earth-search-v0": CatalogProfile(
            "earth-search-v0",
            "https://earth-search.aws.element84.com/v0",
            "sentinel-s2-l2a-cogs",
            S2_BAND_NUMBER_KEYS,
        ),
        "planetary-computer": CatalogProfile(
            "planetary-computer", _PLANETARY, "sentinel-2-l2a", S2_BAND_NUMBER_KEYS, **_PC_SIGNING
        ),
        "planetary-computer-landsat": _landsat("planetary-computer-landsat", _PLANETARY, **_PC_SIGNING),
        # DEM profiles: no cloud mask; the terrain asset reads their ``elevation`` band (memories.earth.dem).
        "earth-search-dem": CatalogProfile("earth-search-dem", _EARTH_SEARCH, DEM_COLLECTION, _DEM_KEYS),
        "planetary-computer-dem": CatalogProfile(
            "planetary-computer-dem", _PLANETARY, DEM_COLLECTION, _DEM_KEYS, **_PC_SIGNING
        ),
    }
)
"""Every known profile by name. A catalog's profiles share its name as prefix."""


def get_profile(name: str, *, url: str | None = None, collection: str | None = None) -> CatalogProfile:
    """A profile by name, optionally with another URL or collection.

    A collection that another profile of the same catalog reads (``earth-search``
    with ``landsat-c2-l2``) selects that profile's asset keys and mask; any other
    collection keeps the named profile's keys.
    """
    try:
        base = PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown catalog profile {name!r}; choose one of {sorted(PROFILES)}") from None
    if collection and collection != base.collection:
        family = name.split("-landsat")[0].split("-v0")[0].split("-dem")[0]
        for p in PROFILES.values():
            if p.collection == collection and p.name.startswith(family) and p.url == base.url:
                base = p
                break
    return replace(base, url=url or base.url, collection=collection or base.collection)


def profile_names() -> list[str]:
    """The names of all profiles, sorted."""
    return sorted(PROFILES)


# -- Planetary Computer href signing ------------------------------------------


def href_needs_signing(href: str, signed_hosts: Iterable[str] = PC_SIGNED_HOSTS) -> bool:
    """Whether a signing profile appends its token to ``href``: the one policy of which hrefs get signed.

    True for an ``http(s)`` href whose host matches ``signed_hosts`` (an entry
    starting with ``.`` matches that domain's hosts, any other entry one exact host
    name, case-insensitive, ports ignored) and whose query carries no ``sig=`` yet
    (never signed twice).
    """
    parsed = urlparse(href)
    host = (parsed.hostname or "").lower()
    if parsed.scheme not in ("http", "https") or not host or "sig=" in parsed.query:
        return False
    for entry in signed_hosts:
        e = entry.lower()
        if (e.startswith(".") and (host.endswith(e) or host == e[1:])) or host == e:
            return True
    return False


@dataclass(frozen=True)
class SasToken:
    """A Planetary Computer SAS token of one collection.

    Attributes:
        token: the query string to append to blob hrefs (without ``?``).
        expiry: UNIX time (seconds) at which Azure stops accepting it.
    """

    token: str
    expiry: float


class PlanetaryComputerSigner:
    """Signs Azure blob hrefs of Planetary Computer items with per-collection SAS tokens.

    Tokens are fetched from ``{token_endpoint}/{collection}`` and cached until
    ``margin_s`` before their ``msft:expiry``. The subscription key, when the
    environment sets ``PC_SDK_SUBSCRIPTION_KEY``, goes in the
    ``Ocp-Apim-Subscription-Key`` header; it never appears in messages or logs.

    Args:
        token_endpoint: the SAS API, ``https://planetarycomputer.microsoft.com/api/sas/v1/token``.
        session: a ``requests.Session`` (``memories.earth.http.session()``: retries, timeouts).
        margin_s: seconds before expiry at which a cached token is renewed.
        signed_hosts: the hosts whose hrefs get a token (``href_needs_signing``).
    """

    def __init__(
        self,
        token_endpoint: str = PC_TOKEN_ENDPOINT,
        *,
        session: Any = None,
        margin_s: float = 60.0,
        signed_hosts: Iterable[str] = PC_SIGNED_HOSTS,
    ):
        self.token_endpoint = token_endpoint.rstrip("/")
        self.signed_hosts = tuple(signed_hosts)
        self._session = session
        self.margin_s = margin_s
        self._tokens: dict[str, SasToken] = {}
        self._lock = threading.Lock()
        self.token_requests = 0
        """How many tokens were fetched from the endpoint (the rest came from the cache)."""

    def token(self, collection: str) -> SasToken:
        """The SAS token of a collection, from the cache while it is valid."""
        with self._lock:
            cached = self._tokens.get(collection)
            if cached is not None and cached.expiry - self.margin_s > time.time():
                return cached
            fresh = self._fetch(collection)
            self._tokens[collection] = fresh
            return fresh

    def sign_href(self, href: str, collection: str) -> str:
        """``href`` with the collection's token as query string; hrefs ``href_needs_signing`` rejects unchanged."""
        if not href_needs_signing(href, self.signed_hosts):
            return href
        token = self.token(collection).token
        return f"{href}{'&' if urlparse(href).query else '?'}{token}"

    def _fetch(self, collection: str) -> SasToken:
        from memories.earth.http import session as http_session

        s = self._session or http_session()
        headers = {}
        key = os.environ.get(PC_SUBSCRIPTION_KEY_ENV)
        if key:
            headers["Ocp-Apim-Subscription-Key"] = key
        url = f"{self.token_endpoint}/{collection}"
        try:
            r = s.get(url, headers=headers)
        except Exception as e:
            raise DataSourceError(f"cannot get a Planetary Computer SAS token from {url}: {e}") from e
        if r.status_code != 200:
            raise DataSourceError(
                f"the Planetary Computer token API answered {r.status_code} for collection {collection!r} at {url}; "
                f"check the collection id (and {PC_SUBSCRIPTION_KEY_ENV} if the API asks for a key)"
            )
        try:
            body = r.json()
            token = str(body["token"])
            expiry = datetime.fromisoformat(str(body["msft:expiry"]).replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError) as e:
            raise DataSourceError(
                f"the token API at {url} did not return JSON with 'token' and 'msft:expiry': {e}"
            ) from e
        self.token_requests += 1
        return SasToken(token, expiry)


_SIGNERS: dict[tuple[str, tuple[str, ...]], PlanetaryComputerSigner] = {}
_SIGNERS_LOCK = threading.Lock()


def signer_for(profile: CatalogProfile, *, session: Any = None) -> PlanetaryComputerSigner | None:
    """The href signer a profile needs, or None when its hrefs are public.

    One signer per token endpoint and ``signed_hosts`` is shared by the whole
    process, so every ``fetch_assets`` call (every partition of a run) reuses the
    cached token of a collection until it nears expiry: one token request per
    collection and hour, not per call. The first caller's ``session`` is the one
    it keeps for token requests.
    """
    if profile.signing != "planetary-computer":
        return None
    key = ((profile.token_endpoint or PC_TOKEN_ENDPOINT).rstrip("/"), profile.signed_hosts)
    with _SIGNERS_LOCK:
        signer = _SIGNERS.get(key)
        if signer is None:
            signer = _SIGNERS[key] = PlanetaryComputerSigner(key[0], session=session, signed_hosts=key[1])
        return signer
