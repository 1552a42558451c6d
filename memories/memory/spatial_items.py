"""The seed's spatial memory: store any data at a geometry, find it again by place and by its metadata.

    spatial_memory = SpatialMemoryManager()      # the configured storage root
    spatial_memory.store(data=building, geometry=building.geometry, metadata={"type": "building", "height": 62})
    spatial_memory.query(location=(46.05, 14.50), radius_km=2,
                         filter=lambda x: x.metadata["type"] == "building" and x.metadata["height"] > 50)

Items are indexed by :class:`~memories.memory.spatial.SpatialMemory` (H3 partitions
and STRtrees, geodesic radius) and persist as GeoParquet 1.1 under
``StorageRoot.memory_uri("spatial", "<name>/...")``: each :meth:`store` writes one
small immutable part (a whole file or nothing), and once there are more than
:data:`COMPACT_PARTS` parts they are merged into one. A new manager on the same root
and name finds every item stored before, and a query first reads parts that other
managers wrote since.

``data`` is kept as JSON: mappings and JSON values, pandas Series (a GeoDataFrame
row; geometries in it as WKT), numpy arrays and shapely geometries come back as
the same type.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from memories.errors import ConfigError
from memories.memory.spatial import DEFAULT_RESOLUTION, DISTANCE_KM, FEATURE_ID, MEMORY_KIND, WGS84, SpatialMemory
from memories.memory.user_data import jsonable
from memories.store.paths import StorageRoot, new_version_id

__all__ = ["COMPACT_PARTS", "SpatialItem", "SpatialMemoryManager"]

COMPACT_PARTS = 64
"""Parts of a memory after which a ``store`` merges them into one file."""

ITEM_LAYER = "items"


@dataclass(frozen=True)
class SpatialItem:
    """One stored item as a query returns it."""

    id: str
    data: Any
    geometry: Any
    """A shapely geometry in EPSG:4326 (longitude, latitude)."""
    metadata: dict[str, Any]
    distance_km: float | None = None
    """Geodesic distance to the query point, km (radius queries)."""


class SpatialMemoryManager:
    """Data of any kind at geometries, persisted under the storage root and indexed by place.

    Args:
        root: The storage root; the configured one if None.
        name: Which memory under the root (one folder of parts).
        h3_resolution: H3 resolution of the index partitions.
    """

    def __init__(
        self, root: StorageRoot | str | None = None, name: str = "items", h3_resolution: int = DEFAULT_RESOLUTION
    ) -> None:
        if root is None:
            from memories.config import config

            root = StorageRoot(config.storage.root, config.storage.s3_endpoint_url)
        self.root = root if isinstance(root, StorageRoot) else StorageRoot(root)
        self.name = name
        self.index = SpatialMemory(h3_resolution)
        self._parts: set[str] = set()
        self._refresh()

    def __len__(self) -> int:
        self._refresh()
        return len(self.index)

    @staticmethod
    def load(root: StorageRoot, name: str = "default") -> SpatialMemory:
        """The pipeline's spatial index (the ``spatial_index`` asset's features): :meth:`SpatialMemory.load`."""
        return SpatialMemory.load(root, name)

    @staticmethod
    def from_pipeline(root: StorageRoot, tiles: Any, month: str, **kwargs: Any) -> SpatialMemory:
        """The GIS layers of ``tiles`` for ``month`` as written by the pipeline: :meth:`SpatialMemory.from_pipeline`."""
        return SpatialMemory.from_pipeline(root, tiles, month, **kwargs)

    def store(self, data: Any, geometry: Any, metadata: Mapping[str, Any] | None = None, *, crs: str = WGS84) -> str:
        """Keep ``data`` at ``geometry`` (in ``crs``, EPSG:4326 by default); returns the item id.

        Raises:
            ConfigError: the geometry is not a shapely geometry or is empty; data or
                metadata hold values JSON cannot (the message names where).
        """
        import geopandas as gpd
        import shapely

        if not isinstance(geometry, shapely.Geometry) or geometry.is_empty:
            raise ConfigError(f"geometry must be a non-empty shapely geometry, got {type(geometry).__name__}")
        item_id = f"item:{uuid.uuid4().hex[:16]}"
        kind, value = _encode(data)
        row = {
            FEATURE_ID: [item_id],
            "layer": [ITEM_LAYER],
            "tile": [None],
            "metadata": [json.dumps(jsonable(dict(metadata or {}), "metadata"))],
            "data_kind": [kind],
            "data": [json.dumps(value)],
        }
        frame = gpd.GeoDataFrame(row, geometry=[geometry], crs=crs).to_crs(WGS84)
        self._write_part(frame)
        self._refresh()
        if len(self._parts) > COMPACT_PARTS:
            self.compact()
        return item_id

    def query(
        self,
        location: tuple[float, float] | None = None,
        radius_km: float | None = None,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        polygon: Any = None,
        crs: str = WGS84,
        filter: Callable[[SpatialItem], Any] | Mapping[str, Any] | None = None,  # noqa: A002 - the seed's keyword
    ) -> list[SpatialItem]:
        """Items near a point (by distance), in a bbox or in a polygon, that pass ``filter``.

        Args:
            location: (latitude, longitude), degrees; with ``radius_km`` (geodesic, km).
            bbox: (west, south, east, north) in ``crs``.
            polygon: a shapely geometry in ``crs``.
            filter: ``lambda x: ...`` called with each :class:`SpatialItem` (``x.data``,
                ``x.geometry``, ``x.metadata``), or ``{"key": value}`` on the metadata.

        Raises:
            ConfigError: as :meth:`SpatialMemory.query`; a filter of another type.
        """
        if filter is not None and not (callable(filter) or isinstance(filter, Mapping)):
            raise ConfigError(f"filter must be a function of an item or a mapping, got {type(filter).__name__}")
        self._refresh()
        if len(self.index) == 0:
            return []
        found = self.index.query(location, radius_km, bbox=bbox, polygon=polygon, crs=crs)
        items = [_item(r, DISTANCE_KM in found.columns) for r in found.itertuples(index=False)]
        if filter is None:
            return items
        if isinstance(filter, Mapping):
            return [x for x in items if all(_matches(x.metadata.get(k), v) for k, v in filter.items())]
        return [x for x in items if filter(x)]

    def compact(self) -> str:
        """Merge every part into one; returns the new part's URI (readers see all items throughout)."""
        self._refresh()
        old = sorted(self._parts)
        frame = self.index.frame[self.index.frame["layer"] == ITEM_LAYER]
        uri = self._write_part(frame.drop(columns=[c for c in ("h3_cell",) if c in frame.columns]))
        for name in old:
            self.root.fs.rm_file(self.root.path(self._part_uri(name)))
        self._parts = {uri.rpartition("/")[2]}
        return uri

    # -- parts ------------------------------------------------------------------------
    def _folder(self) -> str:
        return self.root.memory_uri(MEMORY_KIND, self.name)

    def _part_uri(self, name: str) -> str:
        return f"{self._folder()}/{name}"

    def _write_part(self, frame: Any) -> str:
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False, schema_version="1.1.0", write_covering_bbox=True)
        uri = self._part_uri(f"part-{new_version_id()}.parquet")
        self.root.write_bytes(uri, buf.getvalue())
        return uri

    def _refresh(self) -> None:
        """Read the parts written since the last look (by any manager), merged parts counted once."""
        import geopandas as gpd

        folder = self.root.path(self._folder())
        fs = self.root.fs
        fs.invalidate_cache(folder)
        try:
            names = {str(p).rpartition("/")[2] for p in fs.ls(folder, detail=False)}
        except FileNotFoundError:
            return
        names = {n for n in names if n.startswith("part-") and n.endswith(".parquet")}
        new = sorted(names - self._parts)
        if not new:
            self._parts &= names
            return
        have = set(self.index.frame[FEATURE_ID]) if len(self.index) else set()
        for name in new:
            try:
                part = gpd.read_parquet(io.BytesIO(self.root.read_bytes(self._part_uri(name))))
            except Exception:  # noqa: BLE001 - merged away by a compaction meanwhile
                continue
            part = part[~part[FEATURE_ID].isin(have)].drop(columns=[c for c in ("bbox",) if c in part.columns])
            if len(part):
                self.index.add(part)
                have |= set(part[FEATURE_ID])
        self._parts = names


# -- helpers ---------------------------------------------------------------------


def _item(r: Any, with_distance: bool) -> SpatialItem:
    return SpatialItem(
        id=str(getattr(r, FEATURE_ID)),
        data=_decode(str(r.data_kind), json.loads(r.data)),
        geometry=r.geometry,
        metadata=json.loads(r.metadata),
        distance_km=float(getattr(r, DISTANCE_KM)) if with_distance else None,
    )


def _matches(have: Any, want: Any) -> bool:
    if isinstance(want, list | tuple | set | frozenset):
        return have in want
    return bool(have == want)


def _encode(data: Any) -> tuple[str, Any]:
    import pandas as pd
    import shapely

    if data is None:
        return "none", None
    if isinstance(data, shapely.Geometry):
        return "geometry", data.wkt
    if isinstance(data, pd.Series):
        return "series", {str(k): _encode(v) for k, v in data.items()}
    if isinstance(data, np.ndarray):
        return "array", {"dtype": str(data.dtype), "shape": list(data.shape), "values": jsonable(data.ravel(), "data")}
    return "json", jsonable(data, "data")


def _decode(kind: str, value: Any) -> Any:
    import pandas as pd
    import shapely

    if kind == "none":
        return None
    if kind == "geometry":
        return shapely.from_wkt(value)
    if kind == "series":
        return pd.Series({k: _decode(*v) for k, v in value.items()}, dtype=object)
    if kind == "array":
        return np.asarray(value["values"], dtype=value["dtype"]).reshape(value["shape"])
    return value
