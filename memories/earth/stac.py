"""Scene search on a STAC API, exactly as one reaches Earth Search: through pystac-client.

``search_scenes`` finds the scenes of one tile and one month, following the API's
``next`` links page by page; the result becomes a GeoParquet table
(``items_table``) that keeps each item's full JSON, so downstream steps rebuild
the items without asking the API again. ``open_client`` gives pystac-client the
project's retry policy and timeouts (``memories.earth.http``) and, optionally, a
``memories.cache.Cache`` of API answers keyed by method, URL and body, so a re-run
within the cache's TTL does not ask the API again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pystac_client.stac_api_io import StacApiIO

from memories.earth.http import DEFAULT_BACKOFF_S, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, Timeout, retry_policy
from memories.earth.items import item_dict
from memories.earth.stac_profiles import CatalogProfile
from memories.errors import ConfigError, DataSourceError
from memories.grid import TileGrid
from memories.months import month_range


@dataclass
class SceneSearch:
    """The scenes of one tile-month and what was left out, with reasons.

    Attributes:
        items: kept items (pystac Items), sorted by acquisition time.
        rejected: item id -> reason (cloud cover over the limit, another tile).
        pages: result pages of the search read (from the API or the cache).
        cache_hits: of those pages, how many came from the cache.
    """

    items: list[Any]
    rejected: dict[str, str] = field(default_factory=dict)
    pages: int = 0
    cache_hits: int = 0


class CachingStacApiIO(StacApiIO):
    """pystac-client's IO with an answer cache and request counters.

    Attributes:
        cache: the ``memories.cache.Cache`` of answers, or None.
        requests_sent: requests that reached the API.
        cache_hits: answers served from the cache.
        search_pages: ``/search`` result pages read (sent or cached).
        search_cache_hits: of those, the pages served from the cache.
    """

    def __init__(self, *args: Any, cache: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache = cache
        self.requests_sent = 0
        self.cache_hits = 0
        self.search_pages = 0
        self.search_cache_hits = 0

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        from memories.cache import request_key

        is_search = href.split("?", 1)[0].rstrip("/").endswith("/search")
        self.search_pages += is_search
        key = request_key(method or "GET", href, parameters)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.cache_hits += 1
                self.search_cache_hits += is_search
                return str(hit.decode("utf-8"))
        self.requests_sent += 1
        text = str(super().request(href, method=method, headers=headers, parameters=parameters))
        if self.cache is not None:
            self.cache.put(key, text.encode("utf-8"))
        return text


def open_client(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    timeout_s: Timeout = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    cache: Any = None,
) -> Any:
    """A pystac-client ``Client`` with the project's retry policy, timeouts and an optional answer cache.

    Args:
        url: API root.
        headers: sent with every request.
        timeout_s: seconds, or (connect, read) seconds, per request.
        retries: the most retries of one request (429/5xx, connection errors, timeouts).
        backoff_s: first backoff, seconds, doubling per retry; a ``Retry-After`` wins.
        cache: a ``memories.cache.Cache`` for API answers, or None.

    The client's ``_stac_io`` is a ``CachingStacApiIO`` whose counters tell how many
    requests reached the API and how many came from the cache.
    """
    from pystac_client import Client

    if not url:
        raise ConfigError("no STAC API URL is set; configure the catalog profile's url")
    io = CachingStacApiIO(headers=headers, timeout=timeout_s, max_retries=retry_policy(retries, backoff_s), cache=cache)
    try:
        return Client.open(url, stac_io=io)
    except Exception as e:  # pystac-client raises APIError, requests errors, ...
        raise DataSourceError(f"cannot open the STAC API at {url}: {e}. Is the server running?") from e


def search_scenes(
    client: Any,
    profile: CatalogProfile,
    grid: TileGrid,
    month: str,
    *,
    max_cloud_cover: float = 100.0,
    page_size: int = 100,
) -> SceneSearch:
    """Search the scenes of one tile and month (``search_period`` over the month).

    Args:
        client: from ``open_client``.
        profile: the catalog profile (collection, asset keys).
        grid: the tile.
        month: ``YYYY-MM``.
        max_cloud_cover: scene-level ``eo:cloud_cover`` limit, percent.
        page_size: items per result page (the API's ``limit``); every page is read.
    """
    start, end = month_range(month)
    return search_period(
        client, profile, grid, start, end, max_cloud_cover=max_cloud_cover, page_size=page_size, label=f"month {month}"
    )


def search_period(
    client: Any,
    profile: CatalogProfile,
    grid: TileGrid,
    start: datetime,
    end: datetime,
    *,
    max_cloud_cover: float = 100.0,
    page_size: int = 100,
    label: str | None = None,
) -> SceneSearch:
    """Search the scenes of one tile between two instants (both included, UTC).

    The bbox search returns neighbouring tiles' scenes too; only items whose MGRS
    tile is ``grid.tile_id`` are kept. Cloud cover is filtered here rather than in
    the query because not every API supports ``query``/``filter``.

    Args:
        client: from ``open_client``.
        profile: the catalog profile (collection, asset keys).
        grid: the tile.
        start, end: the period searched.
        max_cloud_cover: scene-level ``eo:cloud_cover`` limit, percent.
        page_size: items per result page (the API's ``limit``); every page is read.
        label: how error messages name the period (default: its two ends).
    """
    io = getattr(client, "_stac_io", None)
    pages0, hits0 = getattr(io, "search_pages", 0), getattr(io, "search_cache_hits", 0)
    search = client.search(
        collections=[profile.collection],
        bbox=list(grid.bbox_wgs84),
        datetime=datetime_range(start, end),
        limit=page_size,
    )
    try:
        found = list(search.items())
    except Exception as e:
        period = label or datetime_range(start, end)
        raise DataSourceError(
            f"STAC search for tile {grid.tile_id} {period} on {profile.collection} failed: {e}"
        ) from e
    kept: list[Any] = []
    rejected: dict[str, str] = {}
    for item in found:
        tile = item_tile(item.properties)
        cloud = item.properties.get("eo:cloud_cover")
        if tile is not None and tile != grid.tile_id:
            rejected[item.id] = f"tile {tile}"
        elif cloud is not None and float(cloud) > max_cloud_cover:
            rejected[item.id] = f"cloud cover {float(cloud):.1f}% > {max_cloud_cover:.1f}%"
        else:
            kept.append(item)
    kept.sort(key=lambda it: (it.datetime, it.id))
    pages = getattr(io, "search_pages", 0) - pages0
    hits = getattr(io, "search_cache_hits", 0) - hits0
    return SceneSearch(kept, rejected, pages=pages, cache_hits=hits)


def item_tile(props: dict[str, Any]) -> str | None:
    """The MGRS tile id of an item, from ``grid:code`` or the ``mgrs:*`` fields."""
    code = props.get("grid:code")
    if isinstance(code, str) and code.startswith("MGRS-"):
        return code[5:]
    if "mgrs:utm_zone" in props:
        return f"{int(props['mgrs:utm_zone']):02d}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
    if "s2:mgrs_tile" in props:  # Planetary Computer
        return str(props["s2:mgrs_tile"])
    return None


def items_table(items: list[Any]) -> Any:
    """A GeoDataFrame (EPSG:4326) of scene metadata with each item's JSON kept."""
    import geopandas as gpd
    from shapely.geometry import shape

    rows = []
    for it in items:
        p = it.properties
        rows.append(
            {
                "id": it.id,
                "datetime": pd.Timestamp(it.datetime),
                "created": pd.Timestamp(item_created(it)),
                "tile": item_tile(p),
                "platform": p.get("platform"),
                "cloud_cover": float(p.get("eo:cloud_cover", np.nan)),
                "epsg": item_epsg(it),
                "processing_baseline": p.get("s2:processing_baseline"),
                "item_json": json.dumps(_detached(it)),
                "geometry": shape(it.geometry),
            }
        )
    cols = ["id", "datetime", "created", "tile", "platform", "cloud_cover", "epsg", "processing_baseline", "item_json"]
    if not rows:
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry=[], crs="EPSG:4326")
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")


def items_from_table(table: Any) -> list[Any]:
    """Rebuild pystac Items from an ``items_table``."""
    import pystac

    return [pystac.Item.from_dict(json.loads(s)) for s in table["item_json"]]


def item_created(item: Any) -> datetime:
    """When the catalog published an item (UTC): ``created``, else ``updated``, else its ``datetime``."""
    c = item.properties.get("created") or item.properties.get("updated")
    d = datetime.fromisoformat(c.replace("Z", "+00:00")) if c else item.datetime
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def datetime_range(start: datetime, end: datetime) -> str:
    """A STAC API ``datetime`` interval, ``2023-01-01T00:00:00Z/2023-01-31T23:59:59Z``."""

    def z(d: datetime) -> str:
        return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "Z"

    return f"{z(start)}/{z(end)}"


def _detached(item: Any) -> dict[str, Any]:
    """An item's JSON without its links: links point at the API that answered the
    search, which later readers must not depend on (pystac would try to resolve
    them, a network call per item, or a failure once that server is gone)."""
    d = dict(item_dict(item))
    d["links"] = []
    return d


def item_epsg(item: Any, asset_key: str | None = None) -> int | None:
    """The EPSG code of an item (or of one of its assets), from ``proj:code`` or ``proj:epsg``.

    The one place that reads a CRS from STAC: the asset's fields win over the
    item's (projection extension v1.2 moved ``proj:epsg`` to ``proj:code``,
    ``"EPSG:32633"``; older items carry the integer). None when neither is set or
    the code is not an EPSG one.
    """
    d = item_dict(item)
    places = []
    if asset_key is not None:
        places.append(d.get("assets", {}).get(asset_key) or {})
    places.append(d.get("properties", {}))
    for fields in places:
        code = fields.get("proj:code")
        if isinstance(code, str) and code.upper().startswith("EPSG:"):
            return int(code.split(":", 1)[1])
        epsg = fields.get("proj:epsg")
        if epsg is not None:
            return int(epsg)
    return None
