"""Change maps scored and vectorized: the truth of events between two dates, IoU, change polygons."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from memories.errors import ProcessingError
from memories.grid import TileGrid

__all__ = ["change_iou", "change_polygons", "event_truth"]


def event_truth(
    events: Sequence[Any], masks: Mapping[str, np.ndarray], before: datetime, after: datetime
) -> dict[str, np.ndarray]:
    """Per event kind, bool ``(H, W)``: the pixels the event changed between ``before`` and ``after``.

    An event changes its pixels between two instants when it is on the ground at
    one and not at the other (a flood that came and went between them changed
    nothing that the two dates can see).

    Args:
        events: The tile's events (``kind`` and ``active(when)``), e.g. ``SampleWorld.events(tile)``.
        masks: Per kind, the event's rasterized area (``SampleWorld.event_mask(tile, kind)``).
        before: The earlier instant (timezone-aware UTC).
        after: The later instant.
    """
    return {e.kind: np.asarray(masks[e.kind], dtype=bool) for e in events if e.active(before) != e.active(after)}


def change_iou(predicted: np.ndarray, truth: Mapping[str, np.ndarray]) -> dict[str, float]:
    """IoU (0–1) of a change mask against the truth of each event and of all of them.

    ``all``: IoU with the union of the event masks. Per event kind: IoU with that
    event's mask, leaving out predicted pixels inside the other events' masks (they
    are right, just not this event's). ``all`` is NaN when there is no truth (an
    IoU of an empty truth would flatter any map).
    """
    pred = np.asarray(predicted, dtype=bool)
    scores: dict[str, float] = {}
    union = np.zeros(pred.shape, dtype=bool)
    for m in truth.values():
        union |= m
    for kind, m in truth.items():
        others = union & ~m
        p = pred & ~others
        denom = int((p | m).sum())
        scores[kind] = int((p & m).sum()) / denom if denom else math.nan
    denom = int((pred | union).sum())
    scores["all"] = int((pred & union).sum()) / denom if denom and union.any() else math.nan
    return scores


def change_polygons(mask: np.ndarray, grid: TileGrid, *, min_area_m2: float = 0.0, **columns: Any) -> Any:
    """Polygons of the changed pixels in the tile CRS, as a GeoDataFrame.

    Columns: ``area_m2`` (square metres) and ``geometry``, plus any constant
    ``columns`` given (``method="learned"``, ``month="2023-08"``...).
    """
    import geopandas as gpd
    import shapely
    from rasterio.features import shapes

    m = np.asarray(mask, dtype=bool)
    if m.shape != grid.shape:
        raise ProcessingError(f"change mask of {m.shape} px is not on tile {grid.tile_id} ({grid.shape})")
    geoms = [
        shapely.geometry.shape(g)
        for g, v in shapes(m.astype(np.uint8), mask=m, transform=grid.transform, connectivity=8)
        if v == 1
    ]
    gdf = gpd.GeoDataFrame({"geometry": geoms}, geometry="geometry", crs=grid.crs)
    gdf["area_m2"] = gdf.geometry.area.astype(float)
    gdf = gdf[gdf["area_m2"] >= min_area_m2].reset_index(drop=True)
    for k, v in columns.items():
        gdf[k] = v
    return gdf[[*columns, "area_m2", "geometry"]]
