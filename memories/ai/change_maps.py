"""Change maps made, scored and vectorized: the change of a tile-month, the truth of events, IoU, polygons.

:func:`change_map` is the ``change_map`` product of one tile-month: the difference rule and the
learned detector against the month before it in memory, their polygons and changed areas, and,
when the world's event truth is known (the sample world), their IoU against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from memories.earth.stac_profiles import COMMON_BANDS
from memories.errors import ProcessingError
from memories.grid import TileGrid

if TYPE_CHECKING:
    import xarray as xr

    from memories.store.raster import MonthlyRasterStore

__all__ = [
    "ChangeMap",
    "EventTruth",
    "composite_reflectance",
    "change_iou",
    "change_map",
    "change_polygons",
    "change_scores",
    "event_truth",
    "rounded_scores",
]

LEARNED_THRESHOLD = 0.5
"""Probability of change (0-1) from which the learned detector's pixel has changed."""


class EventTruth(Protocol):
    """The events of a world with their true extents (``memories.sample.SampleWorld`` is one)."""

    def events(self, tile_id: str) -> Sequence[Any]:
        """The tile's events (each with ``kind`` and ``active(when)``)."""
        ...

    def event_mask(self, tile_id: str, kind: str) -> np.ndarray:
        """Bool ``(H, W)``: the pixels of the tile the event of ``kind`` covers."""
        ...


@dataclass(frozen=True)
class ChangeMap:
    """The change of one tile-month since the month before it in memory."""

    reference_month: str
    """The month compared with (``YYYY-MM``): the latest one in memory before the month."""
    dataset: xr.Dataset
    """``change_baseline`` and ``change_learned`` (uint8 0/1), ``change_probability`` (float32 0-1),
    ``difference_score`` (float32), each ``(y, x)`` on the tile grid."""
    polygons: Any
    """GeoDataFrame of the changed patches in the tile CRS: ``method`` (``difference``/``learned``),
    ``month``, ``reference_month``, ``area_m2``, ``geometry``."""
    stats: dict[str, Any]
    """``reference_month``, ``changed_ha_difference``/``_learned`` (hectares, 2 decimals),
    ``polygons_difference``/``_learned`` (counts)."""
    scores: dict[str, Any] = field(default_factory=dict)
    """``iou_difference`` and ``iou_learned`` (:func:`rounded_scores` of :func:`change_iou`) when the
    event truth is known and an event changed the ground between the two months; else empty."""


def composite_reflectance(store: MonthlyRasterStore, month: str) -> np.ndarray:
    """A month's composite as float32 ``(C, H, W)`` in the order of ``COMMON_BANDS``."""
    return np.asarray(store.read_month(month)["reflectance"].sel(band=list(COMMON_BANDS)).values, dtype=np.float32)


def change_map(store: MonthlyRasterStore, month: str, model: Any, truth: EventTruth | None = None) -> ChangeMap | None:
    """The change of ``month`` since the latest earlier month of the composite ``store``.

    Args:
        store: The tile's ``surface_reflectance`` store.
        month: The month (``YYYY-MM``).
        model: A trained :class:`~memories.ai.change.ChangeDetector`.
        truth: The world's event truth, to score against; None: not scored (a real catalog).

    Returns:
        None when the store holds no month before ``month`` (nothing to compare with).
    """
    import pandas as pd
    import xarray as xr

    from memories.ai.change import difference_change, predict_change

    earlier = [m for m in store.months() if m < month]
    if not earlier:
        return None
    grid = store.grid
    reference = earlier[-1]
    before = composite_reflectance(store, reference)
    after = composite_reflectance(store, month)
    baseline, score = difference_change(before, after)
    probability = predict_change(model, before, after)
    learned = np.nan_to_num(probability, nan=0.0) >= LEARNED_THRESHOLD
    dataset = xr.Dataset(
        {
            "change_baseline": (("y", "x"), baseline.astype(np.uint8)),
            "change_learned": (("y", "x"), learned.astype(np.uint8)),
            "change_probability": (("y", "x"), probability.astype(np.float32)),
            "difference_score": (("y", "x"), score.astype(np.float32)),
        }
    )
    polygons = pd.concat(
        [
            change_polygons(baseline, grid, method="difference", month=month, reference_month=reference),
            change_polygons(learned, grid, method="learned", month=month, reference_month=reference),
        ],
        ignore_index=True,
    )
    pixel_ha = grid.pixel_area_ha
    stats: dict[str, Any] = {
        "reference_month": reference,
        "changed_ha_difference": round(float(baseline.sum() * pixel_ha), 2),
        "changed_ha_learned": round(float(learned.sum() * pixel_ha), 2),
        "polygons_difference": int((polygons["method"] == "difference").sum()),
        "polygons_learned": int((polygons["method"] == "learned").sum()),
    }
    scores = change_scores(baseline, learned, truth, grid.tile_id, reference, month) if truth is not None else {}
    return ChangeMap(reference, dataset, polygons, stats, scores)


def change_scores(
    baseline: np.ndarray, learned: np.ndarray, truth: EventTruth, tile_id: str, reference_month: str, month: str
) -> dict[str, dict[str, float | None]]:
    """IoU of the difference rule's and the learned detector's change against the event truth between the
    two mid-months: ``{"iou_difference": ..., "iou_learned": ...}``, empty when no event changed the ground."""
    from memories.months import month_mid

    events = truth.events(tile_id)
    changed = event_truth(
        events,
        {e.kind: truth.event_mask(tile_id, e.kind) for e in events},
        month_mid(reference_month),
        month_mid(month),
    )
    if not changed:
        return {}
    return {
        "iou_difference": rounded_scores(change_iou(baseline, changed)),
        "iou_learned": rounded_scores(change_iou(learned, changed)),
    }


def rounded_scores(scores: Mapping[str, float]) -> dict[str, float | None]:
    """Scores rounded to 4 decimals, NaN (no truth to score against) as None so JSON holds them."""
    return {k: (round(v, 4) if v == v else None) for k, v in scores.items()}


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
