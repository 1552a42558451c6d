"""The urban report's land-use section: the multi-modal land use of the planning area, and what the models look at.

:func:`read_land_use` (called by ``UrbanPlanner.analyze``, the only reader) takes the
``multimodal_land_use`` product of the end month (the class map of the model that fuses
imagery, rasterized roads/buildings/water and map text, and its attention over them) and
gives, inside the **planning area** (the pixels of the census districts on the tile):

- the area (ha) of each class by the multi-modal model and by the image-only ``land_cover``
  of the same month, the area where both say that class, and the overall agreement (% of the
  pixels both label);
- the model's id and version (the product's record) and its validation accuracy and mean IoU
  (the registry record of that version, :meth:`MemoryView.model_metrics`);
- the share of each pixel's attention on imagery, vector layers and text
  (:func:`memories.ai.saliency.modality_shares`) and its mean over the planning area.

:func:`read_saliency` explains the image-only land-cover model of the end month: integrated
gradients (:func:`memories.ai.saliency.integrated_gradients`) on a window of at most
:data:`SALIENCY_WINDOW_PX` pixels centred on the largest new built-up patch. Land cover that is
ground truth has no model to explain.

A product that is missing leaves its part ``None`` with ``missing`` saying why; the report still builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from memories.classes import LAND_COVER_CLASSES
from memories.errors import MemoriesError
from memories.grid import TileGrid
from memories.memory.view import MemoryView, model_id_of
from memories.products import LAND_COVER, MULTIMODAL_LAND_USE, SURFACE_REFLECTANCE

SALIENCY_WINDOW_PX = 128
"""Side (pixels) of the window the land-cover saliency is computed on: integrated gradients runs the model
``SALIENCY_STEPS`` times forward and back, so a whole 10980 px tile would cost minutes; 128 px (1.28 km) shows
the new built-up patch and its surroundings."""
SALIENCY_STEPS = 16
"""Riemann steps of integrated gradients (16 to 64 is usual; completeness holds to a few % at 16)."""


@dataclass(frozen=True)
class LandUseClass:
    """One class inside the planning area (ha): by the multi-modal model, by the image-only land cover, and where
    both say it."""

    name: str
    multimodal_ha: float
    land_cover_ha: float
    both_ha: float


@dataclass(frozen=True)
class LandUse:
    """The multi-modal land use of the planning area in one month (None fields: ``missing`` says why)."""

    month: str
    missing: str | None
    """Why the section has no numbers (the product or its record is not in the memory); None when it has."""
    model_id: str | None = None
    """``multimodal_land_use:3``: the version that made the map (its record's ``model_id``)."""
    model_version: int | None = None
    val_accuracy: float | None = None
    """Held-out pixel accuracy (0-1) of that version, from its registry record."""
    val_miou: float | None = None
    """Held-out mean IoU (0-1) of that version."""
    metrics_source: str | None = None
    planning_area_ha: float = 0.0
    """Area of the census districts on the tile (ha)."""
    classes: list[LandUseClass] | None = None
    agreement_pct: float | None = None
    """Pixels of the planning area where both maps give the same class, % of those both label."""
    modality_share: dict[str, float | None] | None = None
    """Mean share (0-1) of attention on imagery, vector and text over the planning area's pixels with data."""
    source: str | None = None
    land_use: np.ndarray | None = None
    """uint8 (y, x): the multi-modal class codes (0 = no data)."""
    shares: np.ndarray | None = None
    """float32 (3, y, x): :func:`~memories.ai.saliency.modality_shares` of every pixel."""

    def to_json(self) -> dict[str, Any]:
        """The JSON numbers (no arrays)."""
        return {
            "month": self.month,
            "missing": self.missing,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "val_accuracy": self.val_accuracy,
            "val_miou": self.val_miou,
            "metrics_source": self.metrics_source,
            "planning_area_ha": self.planning_area_ha,
            "classes": [vars(c) for c in self.classes] if self.classes is not None else None,
            "agreement_pct": self.agreement_pct,
            "modality_share": self.modality_share,
        }


@dataclass(frozen=True)
class LandCoverSaliency:
    """Integrated gradients of the land-cover model on a window of the end month (None fields: see ``missing``)."""

    month: str
    missing: str | None
    model_id: str | None = None
    window: tuple[int, int, int, int] | None = None
    """Rows and columns (start, end exclusive) of the window on the tile."""
    band_share: dict[str, float] | None = None
    """Share (0-1) of the absolute attribution per band, largest first."""
    reflectance: np.ndarray | None = None
    """float32 (band, y, x) of the window."""
    saliency: Any = None
    """The :class:`~memories.ai.saliency.Saliency` of the window."""

    def to_json(self) -> dict[str, Any]:
        """The JSON numbers (no arrays)."""
        return {
            "month": self.month,
            "missing": self.missing,
            "model_id": self.model_id,
            "method": "integrated_gradients" if self.saliency is not None else None,
            "steps": SALIENCY_STEPS if self.saliency is not None else None,
            "window": list(self.window) if self.window is not None else None,
            "band_share": self.band_share,
        }


def read_land_use(
    view: MemoryView, tile: str, month: str, grid: TileGrid, land_cover: np.ndarray, planning: np.ndarray
) -> LandUse:
    """The land-use section's numbers of ``month`` (see the module docstring).

    Args:
        land_cover: uint8 (y, x) image-only land-cover codes of the month.
        planning: bool (y, x): the planning area.
    """
    try:
        rec = view.record(MULTIMODAL_LAND_USE, tile, month)
        ds = view.raster(MULTIMODAL_LAND_USE, tile, month)
    except MemoriesError as e:
        return LandUse(month, f"{e}")
    from memories.ai.saliency import MODALITY_GROUPS, modality_shares
    from memories.memory.view import describe

    mm = np.asarray(ds["land_use"].values).astype(np.uint8)
    names = [str(v)[len("attention_") :] for v in ds.data_vars if str(v).startswith("attention_")]
    shares = modality_shares(np.stack([np.asarray(ds[f"attention_{n}"].values) for n in names]), names)
    model_id = model_id_of(rec.stats)
    found = view.model_metrics(model_id) if model_id else None
    metrics, metrics_source = found if found is not None else ({}, None)
    px_ha = grid.pixel_area_m2 / 10_000.0
    both_labelled = planning & (mm > 0) & (land_cover > 0)
    classes = [
        LandUseClass(
            c.name,
            float(((mm == c.code) & planning).sum() * px_ha),
            float(((land_cover == c.code) & planning).sum() * px_ha),
            float(((mm == c.code) & (land_cover == c.code) & planning).sum() * px_ha),
        )
        for c in LAND_COVER_CLASSES
    ]
    seen = planning & np.isfinite(shares).all(axis=0)
    return LandUse(
        month=month,
        missing=None,
        model_id=model_id,
        model_version=int(model_id.split(":")[1]) if model_id and model_id.split(":")[-1].isdigit() else None,
        val_accuracy=_metric(metrics, "val_accuracy"),
        val_miou=_metric(metrics, "val_miou"),
        metrics_source=metrics_source,
        planning_area_ha=float(planning.sum() * px_ha),
        classes=classes,
        agreement_pct=100.0 * float((both_labelled & (mm == land_cover)).sum()) / int(both_labelled.sum())
        if both_labelled.any()
        else None,
        modality_share={
            g: float(shares[i][seen].mean()) if seen.any() else None for i, g in enumerate(MODALITY_GROUPS)
        },
        source=describe(rec),
        land_use=mm,
        shares=shares,
    )


def read_saliency(view: MemoryView, tile: str, month: str, centre: tuple[int, int] | None) -> LandCoverSaliency:
    """Integrated gradients of the land-cover model of ``month`` on the window around ``centre`` (row, col;
    the tile's centre if None)."""
    try:
        model_id = model_id_of(view.record(LAND_COVER, tile, month).stats)
    except MemoriesError as e:
        return LandCoverSaliency(month, f"{e}")
    if model_id in (None, "truth"):
        return LandCoverSaliency(
            month, f"the {LAND_COVER} of {month} is ground truth ({model_id=}): there is no model to explain"
        )
    from memories.ai.manager import ModelManager
    from memories.ai.saliency import integrated_gradients

    try:
        model = ModelManager(view.root).load_model(model_id, device="cpu").model
        ds = view.raster(SURFACE_REFLECTANCE, tile, month)
    except MemoriesError as e:
        return LandCoverSaliency(month, f"{e}", model_id)
    bands = list(model.hparams.get("band_names") or [])
    refl = ds["reflectance"].sel(band=bands) if bands else ds["reflectance"]
    refl = refl.isel(time=0) if "time" in refl.dims else refl
    h, w = refl.shape[-2:]
    r, c = centre if centre is not None else (h // 2, w // 2)
    half = SALIENCY_WINDOW_PX // 2
    r0, c0 = (
        min(max(0, r - half), max(0, h - SALIENCY_WINDOW_PX)),
        min(max(0, c - half), max(0, w - SALIENCY_WINDOW_PX)),
    )
    window = (r0, min(h, r0 + SALIENCY_WINDOW_PX), c0, min(w, c0 + SALIENCY_WINDOW_PX))
    x = np.asarray(refl.values[:, window[0] : window[1], window[2] : window[3]], dtype=np.float32)
    sal = integrated_gradients(model, x, steps=SALIENCY_STEPS)
    return LandCoverSaliency(month, None, model_id, window, sal.band_share, x, sal)


def _metric(metrics: dict[str, Any], key: str) -> float | None:
    v = metrics.get(key)
    return float(v) if v is not None else None
