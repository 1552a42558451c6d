"""The land-cover map of one tile-month: class per pixel with its Monte-Carlo dropout uncertainty.

:func:`land_cover_map` is the ``land_cover`` product of a composite in memory: the class codes of
:mod:`memories.classes`, the confidence, variance and entropy of
:class:`~memories.ai.uncertainty.UncertaintyEstimator`, and the statistics recorded with it.
:func:`write_land_cover_month` makes the same product from a lazy composite straight into its store,
one strip of rows at a time, so a full Sentinel-2 tile (10980 x 10980 px) runs in the memory of a few
strips: the same tiles, dropout masks and values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from memories.classes import LAND_COVER_CLASSES

if TYPE_CHECKING:
    import xarray as xr

    from memories.store.raster import MonthlyRasterStore

__all__ = ["LandCoverMap", "LandCoverMonth", "class_shares", "land_cover_map", "write_land_cover_month"]

VARIABLES = {"land_cover": np.uint8, "confidence": np.float32, "variance": np.float32, "entropy": np.float32}
"""The product's variables, each ``(y, x)``, and their dtypes."""


@dataclass(frozen=True)
class LandCoverMonth:
    """What is recorded of a tile-month's land cover."""

    class_share: dict[str, float]
    """Per class name, its share (0-1) of the labelled pixels."""
    mean_confidence: float | None
    """Mean probability (0-1) of the predicted class; None when no pixel is labelled."""
    mean_variance: float | None
    """Mean variance over the passes of the predicted class's probability; None when no pixel is labelled."""
    passes: int
    """Monte-Carlo dropout passes run."""


@dataclass(frozen=True)
class LandCoverMap(LandCoverMonth):
    """A tile-month's land cover in memory and what is recorded of it."""

    dataset: xr.Dataset
    """``land_cover`` (uint8 class codes, 0 no data), ``confidence``, ``variance``, ``entropy``
    (float32), each ``(y, x)``."""


def land_cover_map(model: Any, reflectance: np.ndarray, *, passes: int, seed: int) -> LandCoverMap:
    """Classify one composite with ``passes`` Monte-Carlo dropout passes of ``model``.

    Args:
        model: A trained :class:`~memories.ai.land_cover.LandCoverUNet`.
        reflectance: float32 ``(C, H, W)`` in the model's band order, 0-1, NaN for no data.
        passes: Monte-Carlo dropout passes (1: one deterministic pass).
        seed: Seed of the dropout masks.
    """
    import xarray as xr

    from memories.ai.uncertainty import UncertaintyEstimator

    maps = UncertaintyEstimator(model, passes=passes, seed=seed).predict(reflectance)
    values = {
        "land_cover": maps.classes,
        "confidence": maps.confidence,
        "variance": maps.variance,
        "entropy": maps.entropy,
    }
    tally = _Tally()
    tally.add(values)
    dataset = xr.Dataset({k: (("y", "x"), np.asarray(v, dtype=VARIABLES[k])) for k, v in values.items()})
    return LandCoverMap(**vars(tally.month(maps.passes)), dataset=dataset)


def write_land_cover_month(
    model: Any,
    composite: Any,
    store: MonthlyRasterStore,
    month: str,
    *,
    passes: int,
    seed: int,
    run_id: str | None = None,
) -> LandCoverMonth:
    """Classify a lazy composite into ``store``'s ``month``, strip of rows by strip of rows, as one commit.

    The composite is read one row of model tiles at a time (:class:`~memories.ai.tiling.RowStrips`),
    and the maps are written in strips of whole store chunks as the tiles come: memory holds a few
    strips, never the tile. Tiles, batches and dropout masks are those of :func:`land_cover_map`, so
    the stored maps are the same; the recorded means are summed in float64, strip by strip.

    Args:
        model: A trained :class:`~memories.ai.land_cover.LandCoverUNet`.
        composite: ``(band, y, x)`` reflectance in the model's band order (an xarray ``DataArray``,
            dask-backed as :meth:`MonthlyRasterStore.read_month` gives it), 0-1, NaN for no data.
        store: the ``land_cover`` store of the tile.
        month: ``YYYY-MM``.
        passes: Monte-Carlo dropout passes (1: one deterministic pass).
        seed: Seed of the dropout masks.
        run_id: recorded in the commit.
    """
    from memories.ai.mc_dropout import iter_land_cover_uncertainty
    from memories.ai.tiling import RowStrips
    from memories.store.raster import row_template

    rows, cols = store.grid.shape
    chunk = store.chunk_px
    tally = _Tally()

    def strips() -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        tally.reset()  # called again when the commit is redone
        start, held = 0, {k: np.empty((0, cols), dtype=d) for k, d in VARIABLES.items()}
        row: dict[str, np.ndarray] = {}
        tiles = iter_land_cover_uncertainty(model, RowStrips(composite, dtype=np.float32), passes=passes, seed=seed)
        for r0, r1, c0, c1, maps in tiles:
            if c0 == 0:
                row = {k: np.empty((r1 - r0, cols), dtype=d) for k, d in VARIABLES.items()}
            for k, v in (
                ("land_cover", maps.classes),
                ("confidence", maps.confidence),
                ("variance", maps.variance),
                ("entropy", maps.entropy),
            ):
                row[k][:, c0:c1] = v
            if c1 < cols:
                continue
            tally.add(row)  # a row of tiles is complete
            held = {k: np.concatenate([held[k], row[k]]) for k in VARIABLES}
            done = start + len(held["land_cover"])
            cut = done if done == rows else done // chunk * chunk
            if cut > start:
                yield start, {k: v[: cut - start] for k, v in held.items()}
                held = {k: v[cut - start :].copy() for k, v in held.items()}
                start = cut

    store.write_month_rows(month, row_template(store.grid, VARIABLES), strips, run_id=run_id)
    return tally.month(passes)


def class_shares(classes: np.ndarray) -> dict[str, float]:
    """Per land-cover class name, its share (0-1) of the labelled (non-zero) pixels of a class map."""
    tally = _Tally()
    tally.add({"land_cover": classes})
    return tally.shares()


class _Tally:
    """Class counts and the sums of confidence and variance, added strip by strip."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.counts = np.zeros(256, dtype=np.int64)
        self.sums = {"confidence": 0.0, "variance": 0.0}
        self.finite = {"confidence": 0, "variance": 0}

    def add(self, values: dict[str, np.ndarray]) -> None:
        self.counts += np.bincount(np.asarray(values["land_cover"], dtype=np.uint8).ravel(), minlength=256)
        for k in self.sums:
            if k in values:
                v = np.asarray(values[k])
                ok = np.isfinite(v)
                self.sums[k] += float(v[ok].sum(dtype=np.float64))
                self.finite[k] += int(ok.sum())

    def shares(self) -> dict[str, float]:
        labelled = int(self.counts[1:].sum())
        return {c.name: float(self.counts[c.code] / max(labelled, 1)) for c in LAND_COVER_CLASSES}

    def mean(self, name: str) -> float | None:
        return self.sums[name] / self.finite[name] if self.counts[1:].any() and self.finite[name] else None

    def month(self, passes: int) -> LandCoverMonth:
        return LandCoverMonth(
            class_share=self.shares(),
            mean_confidence=self.mean("confidence"),
            mean_variance=self.mean("variance"),
            passes=passes,
        )
