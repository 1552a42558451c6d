"""What applications read: the memory as it stood at one transaction time.

Every application reads through a :class:`MemoryView`, never from the stores'
paths: each read finds the catalog record in force at ``as_of`` (default: now)
for an asset, tile and month, and loads exactly that record's version (an
Icechunk snapshot, a GeoParquet version, a report version). So an analysis run
"as of 1 March 2024" sees what the memory knew then, even after later
re-materializations, and never a half-written product.

    view = MemoryView(as_of="2024-03-01")
    ndvi = view.raster("spectral_indices", "33TVM", "2023-06")["ndvi"].values
    layers = view.layers("33TVM", "2023-06", ["buildings", "roads"])
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np

from memories.errors import MemoriesError, MissingDataError
from memories.grid import TileGrid
from memories.memory.catalog import Materialization
from memories.memory.temporal import TemporalMemory
from memories.months import parse_instant
from memories.products import GIS_LAYERS, SPECTRAL_INDICES


class MemoryView:
    """The memory as of one transaction time, for applications.

    Args:
        memory: the temporal memory (catalog + storage root); default: the configured one.
        as_of: transaction time (datetime, ISO string or ``YYYY-MM-DD``); ``None``: now.
    """

    def __init__(self, memory: TemporalMemory | None = None, *, as_of: datetime | str | None = None) -> None:
        self.memory = memory or TemporalMemory()
        self.root = self.memory.root
        self.as_of = _as_datetime(as_of) if as_of is not None else None
        self._load = lru_cache(maxsize=64)(self._load_uncached)

    def __repr__(self) -> str:
        return f"MemoryView({self.memory.catalog!r}, as_of={self.as_of.isoformat() if self.as_of else 'now'})"

    # -- what the memory holds ---------------------------------------------------------------
    def records(self, asset: str, tile: str | None = None, month: str | None = None) -> list[Materialization]:
        """Records of an asset (of one month's partition if given) in force at ``as_of``, by tile and partition."""
        return self.memory.catalog.query(asset, tile=tile, partition=month, as_of=self.as_of)

    def tiles(self, asset: str = SPECTRAL_INDICES) -> list[str]:
        """Tiles with at least one record of ``asset``."""
        return sorted({r.tile for r in self.records(asset) if r.tile})

    def months(self, asset: str, tile: str, *, until: str | None = None) -> list[str]:
        """Months (``YYYY-MM``) of ``asset`` on ``tile`` the memory holds, up to ``until`` inclusive."""
        out = sorted({r.partition for r in self.records(asset, tile) if r.partition})
        return [m for m in out if until is None or m <= until]

    def record(self, asset: str, tile: str, month: str | None = None) -> Materialization:
        """The record of one asset partition (``month=None``: the tile's unpartitioned or latest record).

        Raises:
            MissingDataError: the memory held no such record at ``as_of``; the message
                says which partition to materialize.
        """
        rows = self.records(asset, tile, month)  # one partition from the index: flat in the history
        if not rows:
            when = f" as of {self.as_of.isoformat()}" if self.as_of else ""
            have = self.months(asset, tile)
            hint = f"; it holds {have[0]}..{have[-1]}" if have else ""
            part = f"{month}|{tile}" if month else tile
            raise MissingDataError(
                f"the memory holds no {asset} for {part}{when}{hint}; materialize {asset} for that partition "
                "(Dagster UI or `dagster asset materialize`) or query a period it covers"
            )
        return max(rows, key=lambda r: (r.partition or "", r.transaction_from))

    # -- loads of exact versions -------------------------------------------------------------
    def raster(self, asset: str, tile: str, month: str) -> Any:
        """The ``xarray.Dataset`` of one month of a raster product, loaded into memory."""
        return self._load(self.record(asset, tile, month).id, None)

    def grid(self, tile: str, asset: str = SPECTRAL_INDICES) -> TileGrid:
        """The tile's grid, as its raster product records it."""
        month = self.months(asset, tile)
        if not month:
            self.record(asset, tile)  # raises with the fix
        ds = self.raster(asset, tile, month[-1])
        return TileGrid.from_dict(ds.attrs["grid"])

    def stack(self, asset: str, tile: str, variable: str, months: list[str]) -> np.ndarray:
        """(T, H, W) float array of one variable over ``months``; a month the memory lacks raises."""
        return np.stack([np.asarray(self.raster(asset, tile, m)[variable].values, dtype=np.float32) for m in months])

    def layers(self, tile: str, month: str, names: list[str] | None = None) -> dict[str, Any]:
        """GIS layers (name -> GeoDataFrame in the tile CRS) of one tile-month, at their recorded versions."""
        rec = self.record(GIS_LAYERS, tile, month)
        if names is None:
            return dict(self._load(rec.id, None))
        return {n: self._load(rec.id, n) for n in names}

    def table(self, asset: str, tile: str, month: str | None = None) -> Any:
        """A tabular product (GeoParquet / Parquet) at its recorded version."""
        return self._load(self.record(asset, tile, month).id, None)

    def load(self, record: Materialization, layer: str | None = None) -> Any:
        """Any record's data (see :meth:`TemporalMemory.load`)."""
        return self._load(record.id, layer)

    def model_metrics(self, model_id: str) -> tuple[dict[str, Any], str] | None:
        """Validation metrics of a model version (``land_cover:3``) and where they came from.

        The catalog's record of the version's training (``<name>_model`` asset, in force at
        ``as_of``) first, else the model registry's sidecar; None when neither knows it.
        """
        asset = model_id.split(":")[0].split("@")[0] + "_model"
        found = [r for r in self.records(asset) if r.stats.get("model_id") == model_id]
        if found:
            return dict(found[-1].stats), f"model registry via {describe(found[-1])}"
        from memories.ai.manager import ModelManager

        try:
            mv = ModelManager(self.root).resolve(model_id)
        except MemoriesError:
            return None
        return dict(mv.metrics), f"model registry {mv.name}:{mv.version}"

    def _load_uncached(self, record_id: int, layer: str | None) -> Any:
        rec = self.memory.catalog.get(record_id)
        data = self.memory.load(rec, layer=layer)
        return data.load() if hasattr(data, "load") and hasattr(data, "data_vars") else data


def _as_datetime(t: datetime | str) -> datetime:
    return parse_instant(t, "as_of")


def model_id_of(stats: dict[str, Any]) -> str | None:
    """The model id a product record names (``land_cover:3``); records written before model ids were
    recorded carry the land-cover version number only."""
    if stats.get("model_id"):
        return str(stats["model_id"])
    return f"land_cover:{stats['model_version']}" if stats.get("model_version") is not None else None


def describe(record: Materialization) -> str:
    """How a report names an input: ``spectral_indices 2024-07|33TVM v2 (snapshot 1a2b…), recorded 2024-08-01``."""
    part = f"{record.partition}|{record.tile}" if record.partition else (record.tile or "")
    vid = (
        f" ({record.version_id[:16]}…)"
        if record.version_id and len(record.version_id) > 16
        else (f" ({record.version_id})" if record.version_id else "")
    )
    return f"{record.asset} {part} v{record.version}{vid}, recorded {record.transaction_from[:19]}Z"
