"""The one way this project reads a STAC item's metadata: as its JSON, without touching the network.

pystac's ``Item.to_dict()`` with its defaults makes the hrefs of hierarchical links
relative to the item's root catalog, and to find that root it resolves the item's
``root`` link. An item parsed from a file or a table keeps its links to the API that
served it (Planetary Computer's point at the public API): each such call sends an
HTTP request, or raises ``STACError ... does not resolve`` where that API is out of
reach. Metadata (assets, ``raster:bands``, ``proj:*``, ``s2:*`` properties) needs none
of it, so every reader here goes through ``item_dict``, and the scene loader hands
stackstac these dicts rather than pystac Items (stackstac would call ``to_dict()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["item_dict"]


def item_dict(item: Any) -> dict[str, Any]:
    """An item's STAC JSON, read locally: a pystac Item's ``to_dict`` without link resolution, a dict as it is.

    Link hrefs stay as stored and the item's own ``self`` link is left out; asset
    hrefs are the item's own. A dict is returned as it is (not copied: callers read
    it, never write it), another mapping as a dict.
    """
    if isinstance(item, dict):
        return item
    if isinstance(item, Mapping):
        return dict(item)
    return dict(item.to_dict(include_self_link=False, transform_hrefs=False))
