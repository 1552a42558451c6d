"""The caches under the providers: tabular results as Parquet, and STAC API answers.

The cache policy of ``memories.earth.providers``: a result is keyed by the provider, the
source files' path, size and modification time, and the request, so a source that changes
is read again, and kept a day (``DEFAULT_TTL_S``). Frames keep their ``attrs`` (JSON beside the
Parquet bytes); decoding reads Parquet only, never pickles.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from memories.json_values import json_default_or_str

DEFAULT_TTL_S = 24 * 3600.0
"""A day, seconds: how long a provider's cached result stays valid."""


class ResultCache:
    """Tabular results (pandas and GeoPandas frames) in a ``memories.cache.Cache``, as Parquet.

    A key is the provider, the source files' (path, size, mtime) and the request, so a source
    that changes is read again. Frames keep their ``attrs`` (as JSON beside the Parquet bytes).

    Args:
        cache: a ``memories.cache.Cache``; None: ``<storage root>/cache/providers`` with a day's TTL.
    """

    def __init__(self, cache: Any = None) -> None:
        if cache is None:
            from memories.cache import Cache
            from memories.config import config
            from memories.store.paths import StorageRoot

            root = StorageRoot(config.storage.root, config.storage.s3_endpoint_url)
            cache = Cache(root.cache_dir("providers"), ttl_s=DEFAULT_TTL_S)
        self.cache = cache
        self.hits = 0

    def get_or_make(self, name: str, files: Sequence[str], request: Mapping[str, Any], make: Callable[[], Any]) -> Any:
        """The cached frame of this request, or ``make()``'s, stored."""
        stamp = [(str(f), *_stat(f)) for f in files]
        key = json.dumps(
            {"provider": name, "files": stamp, "request": request}, sort_keys=True, default=json_default_or_str
        )
        hit = self.cache.get(key)
        if hit is not None:
            self.hits += 1
            return _decode(hit)
        frame = make()
        self.cache.put(key, _encode(frame))
        return frame


def stac_cache() -> Any:
    """The STAC answer cache of a configured catalog (``stac.open_client``): ``<storage root>/cache/stac``,
    a day's TTL."""
    from memories.cache import Cache
    from memories.config import config
    from memories.store.paths import StorageRoot

    root = StorageRoot(config.storage.root, config.storage.s3_endpoint_url)
    return Cache(root.cache_dir("stac"), ttl_s=DEFAULT_TTL_S)


def _stat(path: str) -> tuple[int, int]:
    """(size, mtime ns) of a file, (-1, -1) when it is not a local file."""
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def _encode(frame: Any) -> bytes:
    """``kind byte | attrs length (8 bytes) | attrs JSON | Parquet``; kind ``G`` geo, ``D`` plain."""
    buf = io.BytesIO()
    geo = hasattr(frame, "geometry") and hasattr(frame, "crs")
    frame.to_parquet(buf, index=False)
    attrs = json.dumps(dict(frame.attrs), default=json_default_or_str).encode()
    return (b"G" if geo else b"D") + len(attrs).to_bytes(8, "big") + attrs + buf.getvalue()


def _decode(data: bytes) -> Any:
    import geopandas as gpd
    import pandas as pd

    n = int.from_bytes(data[1:9], "big")
    attrs = json.loads(data[9 : 9 + n])
    body = io.BytesIO(data[9 + n :])
    frame = gpd.read_parquet(body) if data[:1] == b"G" else pd.read_parquet(body)
    frame.attrs.update(attrs)
    return frame
