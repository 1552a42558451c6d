"""Scene search on a STAC API, exactly as one reaches Earth Search: through pystac-client.

``search_scenes`` finds the Sentinel-2 scenes of one tile and one month; the result
becomes a GeoParquet table (``items_table``) that keeps each item's full JSON, so
downstream steps rebuild the items without asking the API again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from memories.earth.catalogs import CatalogProfile
from memories.earth.http import DEFAULT_TIMEOUT_S, retry_policy
from memories.errors import ConfigError, DataSourceError
from memories.grid import TileGrid
from memories.months import month_range


@dataclass
class SceneSearch:
    """The scenes of one tile-month and what was left out, with reasons.

    Attributes:
        items: kept items (pystac Items), sorted by acquisition time.
        rejected: item id -> reason (cloud cover over the limit, another tile).
    """

    items: list[Any]
    rejected: dict[str, str] = field(default_factory=dict)


def open_client(url: str, *, headers: dict[str, str] | None = None) -> Any:
    """A pystac-client ``Client`` with the project's retry policy and timeouts."""
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO

    if not url:
        raise ConfigError("no STAC API URL is set; configure the catalog profile's url")
    io = StacApiIO(headers=headers, timeout=DEFAULT_TIMEOUT_S, max_retries=retry_policy())
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
) -> SceneSearch:
    """Search the scenes of one tile and month.

    The bbox search returns neighbouring tiles' scenes too; only items whose MGRS
    tile is ``grid.tile_id`` are kept. Cloud cover is filtered here rather than in
    the query because not every API supports ``query``/``filter``.

    Args:
        client: from ``open_client``.
        profile: the catalog profile (collection, asset keys).
        grid: the tile.
        month: ``YYYY-MM``.
        max_cloud_cover: scene-level ``eo:cloud_cover`` limit, percent.
    """
    start, end = month_range(month)
    search = client.search(
        collections=[profile.collection],
        bbox=list(grid.bbox_wgs84),
        datetime=datetime_range(start, end),
        limit=100,
    )
    try:
        found = list(search.items())
    except Exception as e:
        raise DataSourceError(
            f"STAC search for tile {grid.tile_id} month {month} on {profile.collection} failed: {e}"
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
    return SceneSearch(kept, rejected)


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
                "epsg": p.get("proj:epsg") or _epsg_of_code(p.get("proj:code")),
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
    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    d["links"] = []
    return d


def _epsg_of_code(code: Any) -> int | None:
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    return None
