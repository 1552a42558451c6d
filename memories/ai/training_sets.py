"""Training sets of the pipeline's models, assembled from what the memory holds.

The land-cover models (``land_cover_model``, ``multimodal_model``) train on the tile-months
with both a composite and GIS layers in memory (:func:`training_tile_months`), the labels
rasterized from those layers and cleaned of what the composite contradicts
(:func:`land_cover_samples`). The change detector trains on every pair of months of a tile
with the event truth of the world as label (:func:`change_training_set`), all tiles but the
first (sorted ids) for training and that one held out for scoring.

Reflectance is float32 ``(C, H, W)`` in the order of
:data:`~memories.earth.stac_profiles.COMMON_BANDS`, 0-1, NaN where never seen clear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from memories.ai.change_maps import composite_reflectance
from memories.earth.stac_profiles import COMMON_BANDS
from memories.errors import MissingDataError
from memories.grid import TileGrid
from memories.products import GIS_LAYERS, SURFACE_REFLECTANCE
from memories.store.paths import StorageRoot
from memories.store.raster import MonthlyRasterStore

if TYPE_CHECKING:
    from memories.ai.change_maps import EventTruth

__all__ = [
    "ChangeTrainingSet",
    "LandCoverSamples",
    "TrainingTileMonths",
    "change_training_set",
    "labelled_change_pairs",
    "land_cover_samples",
    "spread_months",
    "training_tile_months",
]


@dataclass(frozen=True)
class TrainingTileMonths:
    """The tile-months a model trains on and the fingerprint of their catalog rows."""

    pairs: list[tuple[str, str]]
    """``(tile, month)``, sorted by tile then month."""
    data_version: str
    """``training_data_version`` of exactly the composite and GIS-layer rows of ``pairs``."""

    @property
    def partitions(self) -> list[str]:
        """The pairs as ``month|tile`` partition keys, in order."""
        return [f"{m}|{t}" for t, m in self.pairs]


@dataclass(frozen=True)
class LandCoverSamples:
    """Reflectance and cleaned GIS labels of the training tile-months."""

    samples: list[tuple[np.ndarray, np.ndarray]]
    """Per tile-month, (reflectance ``(C, H, W)`` float32, labels ``(H, W)`` uint8 class codes, 0 unknown)."""
    stale_labels: int
    """GIS label pixels dropped because the composite contradicts them (``memories.ai.labels``)."""


@dataclass(frozen=True)
class ChangeTrainingSet:
    """Labelled pairs of months for the change detector, split by tile."""

    training: list[Any]
    """``ChangePair`` of the training tiles."""
    validation: list[Any]
    """``ChangePair`` of the held-out tile (empty with a single tile)."""
    held_out_tile: str | None
    """The first tile (sorted ids) when there are two or more; None with one."""
    tiles: list[dict[str, Any]] = field(default_factory=list)
    """Per tile: ``tile``, ``months`` and ``role`` (``training`` or ``validation``)."""


def training_tile_months(catalog: Any, per_tile: int) -> TrainingTileMonths:
    """The (tile, month) pairs a model trains on and the data version of their catalog rows.

    Pairs are the tile-months with both a composite and GIS layers in memory, at most ``per_tile``
    per tile spread over the year; the version fingerprints exactly those catalog rows.

    Args:
        catalog: The memory catalog (``current(asset)`` gives its current rows).
        per_tile: Most months per tile.

    Raises:
        MissingDataError: no tile-month has both (the fix: materialize them first).
    """
    from memories.ai.registry import training_data_version

    sr_rows = {(m.tile, m.partition): m for m in catalog.current(SURFACE_REFLECTANCE)}
    gis_rows = {(m.tile, m.partition): m for m in catalog.current(GIS_LAYERS)}
    pairs = sorted((t, m) for t, m in sr_rows.keys() & gis_rows.keys() if t and m)
    if not pairs:
        raise MissingDataError("no tile-month has both surface_reflectance and gis_layers; materialize them first")
    chosen = spread_months(pairs, per_tile)
    return TrainingTileMonths(
        chosen, training_data_version([r for key in chosen for r in (sr_rows[key], gis_rows[key])])
    )


def spread_months(pairs: Iterable[tuple[str, str]], per_tile: int) -> list[tuple[str, str]]:
    """Up to ``per_tile`` months per tile, evenly spread over the months available (first and last kept)."""
    pairs = list(pairs)
    out: list[tuple[str, str]] = []
    for tile in sorted({t for t, _ in pairs}):
        months = sorted(m for t, m in pairs if t == tile)
        idx = np.unique(np.linspace(0, len(months) - 1, min(per_tile, len(months))).round().astype(int))
        out += [(tile, months[i]) for i in idx]
    return out


def land_cover_samples(
    root: StorageRoot, pairs: Sequence[tuple[str, str]], grid_of: Callable[[str], TileGrid], origin_month: str
) -> LandCoverSamples:
    """Composite and cleaned GIS labels of each training tile-month, in the order of ``pairs``.

    Args:
        root: The storage root holding the composites and GIS layers.
        pairs: ``(tile, month)`` pairs, e.g. ``training_tile_months(...).pairs``.
        grid_of: The declared grid of a tile id.
        origin_month: Origin of the monthly raster stores (``YYYY-MM``).
    """
    from memories.ai.labels import clean_labels
    from memories.earth.gis import GIS_LAYERS as LAYERS
    from memories.earth.gis import rasterize_labels, read_geoparquet

    samples = []
    stale = 0
    for tile, month in pairs:
        grid = grid_of(tile)
        refl = composite_reflectance(MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid, origin_month), month)
        layers = {layer: read_geoparquet(root, root.vector_uri(layer, tile, month)) for layer in LAYERS}
        labels, dropped = clean_labels(rasterize_labels(layers, grid), refl, COMMON_BANDS)
        stale += dropped
        samples.append((refl, labels))
    return LandCoverSamples(samples, stale)


def change_training_set(
    root: StorageRoot, catalog: Any, grid_of: Callable[[str], TileGrid], truth: EventTruth, origin_month: str
) -> ChangeTrainingSet:
    """Every pair of months of every tile with composites in memory, labelled by the event truth.

    The first tile (sorted ids) is held out for validation when there are two or more.

    Raises:
        MissingDataError: no tile has two months of composites, or only the held-out tile has.
    """
    have = sorted({(m.tile, m.partition) for m in catalog.current(SURFACE_REFLECTANCE) if m.tile and m.partition})
    tiles = sorted({t for t, _ in have})
    if not tiles or max(sum(1 for t, _ in have if t == tile) for tile in tiles) < 2:
        raise MissingDataError("change_model needs two months of surface_reflectance on a tile; materialize them")
    held_out = tiles[0] if len(tiles) > 1 else None
    training: list[Any] = []
    validation: list[Any] = []
    used: list[dict[str, Any]] = []
    for tile in tiles:
        months = [m for t, m in have if t == tile]
        store = MonthlyRasterStore(root, SURFACE_REFLECTANCE, grid_of(tile), origin_month)
        for pair in labelled_change_pairs(store, truth, months):
            (validation if tile == held_out else training).append(pair)
        used.append({"tile": tile, "months": months, "role": "validation" if tile == held_out else "training"})
    if not training:
        raise MissingDataError("no training tile has two months; materialize surface_reflectance of another tile")
    return ChangeTrainingSet(training, validation, held_out, used)


def labelled_change_pairs(store: MonthlyRasterStore, truth: EventTruth, months: Sequence[str]) -> list[Any]:
    """Every (earlier, later) pair of ``months`` of one tile's composites with its event-truth change label.

    Label: 1 where an event changed the ground between the two mid-months, 0 elsewhere, ``IGNORE``
    where either composite never saw the pixel clear.
    """
    from memories.ai.change import IGNORE, ChangePair
    from memories.ai.change_maps import event_truth
    from memories.months import month_mid

    grid = store.grid
    refl = {m: composite_reflectance(store, m) for m in months}
    events = truth.events(grid.tile_id)
    masks = {e.kind: truth.event_mask(grid.tile_id, e.kind) for e in events}
    pairs = []
    for i, a in enumerate(months):
        for b in months[i + 1 :]:
            label = np.zeros(grid.shape, dtype=np.uint8)
            for m in event_truth(events, masks, month_mid(a), month_mid(b)).values():
                label[m] = 1
            label[np.isnan(refl[a]).all(axis=0) | np.isnan(refl[b]).all(axis=0)] = IGNORE
            pairs.append(ChangePair(refl[a], refl[b], label))
    return pairs
