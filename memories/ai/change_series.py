"""Change through a series of images, with Monte-Carlo dropout uncertainty: the seed's change analysis.

:func:`analyze_changes` runs the learned :class:`~memories.ai.change.ChangeDetector`
on each consecutive pair of a time series of images (records of the temporal
memory, as ``TemporalMemoryManager.query`` returns them, or arrays), ``samples``
times with dropout active (Gal & Ghahramani 2016):

- per pixel, the mean probability of change over the samples is the prediction and a
  pixel has changed where it reaches ``threshold`` (0–1); changed patches smaller than
  ``min_area`` (m²) are dropped;
- the uncertainty is the standard deviation of the probability over the samples and
  the share of samples that call the pixel changed; the changed area is bracketed by
  the pixels that at least 95 % and at least 5 % of the samples call changed.

Images are ``(band, y, x)`` reflectance 0–1 (NaN = no data): an ``xarray.DataArray``
with a ``band`` coordinate (common names ``blue, green, red, nir, swir16, swir22`` or
Sentinel-2 numbers ``B2``/``B02``...), or a plain array with the bands in the model's
order. The pixel area comes from the ``x``/``y`` coordinates (metres) when present,
else 10 m Sentinel-2 pixels are assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import torch

from memories.ai.change import ChangeDetector, drop_small_patches
from memories.ai.mc_dropout import dropout_active
from memories.ai.tiling import tiled_inference
from memories.earth.stac_profiles import S2_BAND_NUMBER_KEYS
from memories.errors import ConfigError, ProcessingError

__all__ = ["ChangeSeries", "ChangeStep", "ChangeUncertainty", "analyze_changes", "plot_changes"]

DEFAULT_PIXEL_AREA_M2 = 100.0
"""Area of a pixel when the images carry no x/y coordinates: 10 m Sentinel-2 pixels."""

SURE_SHARE = 0.95
"""Share of samples above which a pixel counts as surely changed (lower bound of the area)."""


@dataclass(frozen=True)
class ChangeStep:
    """The change between two consecutive images."""

    before: datetime | None
    after: datetime | None
    """Valid start of the two images (``None`` for plain arrays)."""
    probability: np.ndarray
    """float32 ``(H, W)``: mean probability of change over the samples, NaN where either image has no data."""
    changed: np.ndarray
    """bool ``(H, W)``: probability at or above the threshold, small patches dropped."""
    area_m2: float
    """Changed area, square metres."""
    intensity: float
    """Mean probability over the changed pixels (0–1; 0 when nothing changed)."""


@dataclass(frozen=True)
class ChangeSeries:
    """What :func:`analyze_changes` found: one step per consecutive pair of images."""

    steps: list[ChangeStep]
    threshold: float
    min_area_m2: float
    pixel_area_m2: float

    @property
    def table(self) -> pd.DataFrame:
        """``area`` (m²) and ``intensity`` (0–1) per step, indexed by the later image's time."""
        index = pd.DatetimeIndex([pd.Timestamp(s.after).tz_convert(None) if s.after else pd.NaT for s in self.steps])
        return pd.DataFrame(
            {"area": [s.area_m2 for s in self.steps], "intensity": [s.intensity for s in self.steps]}, index=index
        )


@dataclass(frozen=True)
class ChangeUncertainty:
    """Monte-Carlo dropout spread of each step of a :class:`ChangeSeries`."""

    std: list[np.ndarray]
    """float32 ``(H, W)`` per step: standard deviation of the probability over the samples."""
    changed_share: list[np.ndarray]
    """float32 ``(H, W)`` per step: share of samples whose probability reaches the threshold (0–1)."""
    area_interval_m2: list[tuple[float, float]]
    """Per step: area changed in at least 95 % of the samples, and in at least 5 % (m²)."""
    samples: int


def analyze_changes(
    model: ChangeDetector,
    imagery: Sequence[Any],
    *,
    threshold: float = 0.5,
    min_area: float = 0.0,
    samples: int = 30,
    seed: int = 0,
    tiles_per_batch: int = 8,
) -> tuple[ChangeSeries, ChangeUncertainty]:
    """Change between each pair of consecutive images, with Monte-Carlo dropout uncertainty.

    Args:
        model: A trained change detector (its ``band_names`` say which bands it reads).
        imagery: Two or more images of one grid: temporal-memory records (sorted by valid
            time here) or arrays/DataArrays (taken in the order given).
        threshold: Probability of change (0–1) at which a pixel has changed.
        min_area: Smallest changed patch kept, square metres.
        samples: Stochastic passes T (1: the plain prediction, spread 0).
        seed: Seed of the dropout masks.
        tiles_per_batch: Tiles per forward pass (the seed's ``batch_size``).

    Raises:
        ConfigError: a threshold outside 0–1, a negative area, fewer than one sample.
        ProcessingError: fewer than two images, bands the model needs are missing, grids differ.
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold={threshold}: a probability of change in (0, 1), e.g. 0.3 or 0.5")
    if min_area < 0:
        raise ConfigError(f"min_area={min_area}: an area in square metres, 0 or more")
    if samples < 1:
        raise ConfigError(f"samples={samples}: Monte-Carlo dropout needs at least 1 sample; 10–30 is usual")
    images = _ordered(imagery)
    if len(images) < 2:
        raise ProcessingError(f"{len(images)} image(s): change needs at least two images of one place")
    names = [str(b) for b in (model.hparams.get("band_names") or [])]
    arrays = [image_bands(data, names, int(model.hparams["in_channels"])) for _, data in images]
    pixel_area = pixel_area_m2(images[-1][1])
    min_px = int(np.ceil(min_area / pixel_area)) if min_area > 0 else 0
    steps, stds, shares, bounds = [], [], [], []
    for (t0, _), (t1, _), a, b in zip(images[:-1], images[1:], arrays[:-1], arrays[1:]):
        if a.shape != b.shape:
            raise ProcessingError(f"images of {t0} {a.shape} and {t1} {b.shape} differ; put both on one grid")
        mean, std, share = _sample(model, a, b, threshold, samples, seed, tiles_per_batch)
        with np.errstate(invalid="ignore"):
            changed = drop_small_patches(mean >= threshold, min_px)
            sure = drop_small_patches(share >= SURE_SHARE, min_px)
            maybe = drop_small_patches(share >= 1.0 - SURE_SHARE, min_px)
        area = float(changed.sum()) * pixel_area
        intensity = float(np.nanmean(mean[changed])) if changed.any() else 0.0
        steps.append(ChangeStep(t0, t1, mean, changed, area, intensity))
        stds.append(std)
        shares.append(share)
        bounds.append((float(sure.sum()) * pixel_area, float(maybe.sum()) * pixel_area))
    return (
        ChangeSeries(steps, float(threshold), float(min_area), pixel_area),
        ChangeUncertainty(stds, shares, bounds, int(samples)),
    )


def image_bands(data: Any, band_names: Sequence[str], n_bands: int) -> np.ndarray:
    """float32 ``(n_bands, H, W)`` of one image, its bands in the order of ``band_names``.

    Raises:
        ProcessingError: bands are missing, or a plain array has the wrong number of bands.
    """
    import xarray as xr

    if isinstance(data, xr.Dataset):
        arrays = [v for v in data.data_vars.values() if "band" in v.dims]
        if len(arrays) != 1:
            raise ProcessingError(f"a Dataset image needs one variable with a band dim; it has {list(data.data_vars)}")
        data = arrays[0]
    if isinstance(data, xr.DataArray) and "band" in data.dims:
        have = {common_band_name(str(b)): i for i, b in enumerate(data["band"].values)}
        missing = [b for b in band_names if b not in have]
        if missing:
            raise ProcessingError(
                f"the image has bands {list(map(str, data['band'].values))}; the model reads {list(band_names)}, "
                f"missing {missing}. Acquire those bands, or use a model trained on these."
            )
        order = [have[b] for b in band_names]
        data = data.transpose("band", ...).isel(band=order)
    out = np.asarray(getattr(data, "values", data), dtype=np.float32)
    if out.ndim != 3 or out.shape[0] != n_bands:
        raise ProcessingError(f"an image of shape {out.shape}; the model wants ({n_bands}, H, W) reflectance")
    return out


def common_band_name(name: str) -> str:
    """The common name of a Sentinel-2 band: ``B4``, ``B04`` and ``red`` are all ``red``."""
    by_number = {v: k for k, v in S2_BAND_NUMBER_KEYS.items()}
    text = name.strip()
    if text.upper().startswith("B") and text[1:].isdigit():
        return by_number.get(f"B{int(text[1:]):02d}", text)
    return by_number.get(text.upper(), text)


def pixel_area_m2(data: Any) -> float:
    """Pixel area of an image from its ``x``/``y`` coordinate spacing (metres), else 100 m²."""
    coords = getattr(data, "coords", None)
    if coords is not None and "x" in coords and "y" in coords and coords["x"].size > 1 and coords["y"].size > 1:
        dx = float(np.abs(np.diff(coords["x"].values[:2]))[0])
        dy = float(np.abs(np.diff(coords["y"].values[:2]))[0])
        if dx > 0 and dy > 0:
            return dx * dy
    return DEFAULT_PIXEL_AREA_M2


def plot_changes(
    changes: ChangeSeries,
    uncertainty: ChangeUncertainty | None = None,
    base_imagery: Any = None,
    *,
    step: int = -1,
    color_map: str = "viridis",
    overlay_opacity: float = 0.7,
) -> Any:
    """A matplotlib Figure: the changed pixels of one step over the image, and their uncertainty.

    Left: ``base_imagery`` (a record or image; true colour from red, green, blue,
    2–98 % stretch) with the probability of the changed pixels drawn in ``color_map``
    at ``overlay_opacity`` (0–1). Right, with ``uncertainty``: the standard
    deviation of the probability over the samples.
    """
    from matplotlib.figure import Figure

    if not 0.0 <= overlay_opacity <= 1.0:
        raise ConfigError(f"overlay_opacity={overlay_opacity}: an opacity in [0, 1]")
    if not changes.steps:
        raise ProcessingError("no change step to draw")
    s = changes.steps[step]
    panels = 2 if uncertainty is not None else 1
    fig = Figure(figsize=(5 * panels, 4.6), layout="constrained")
    ax = fig.add_subplot(1, panels, 1)
    if base_imagery is not None:
        ax.imshow(_true_colour(base_imagery))
    overlay = np.ma.masked_where(~s.changed, s.probability)
    im = ax.imshow(overlay, cmap=color_map, alpha=overlay_opacity, vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="probability of change")
    ax.set_title(f"change {_day(s.before)} → {_day(s.after)}: {s.area_m2 / 10_000:.2f} ha")
    ax.set_axis_off()
    if uncertainty is not None:
        ux = fig.add_subplot(1, panels, 2)
        um = ux.imshow(uncertainty.std[step], cmap="magma", vmin=0.0, interpolation="nearest")
        fig.colorbar(um, ax=ux, shrink=0.8, label="std of probability")
        lo, hi = uncertainty.area_interval_m2[step]
        ux.set_title(f"uncertainty ({uncertainty.samples} samples): {lo / 1e4:.2f}–{hi / 1e4:.2f} ha")
        ux.set_axis_off()
    return fig


# -- helpers ---------------------------------------------------------------------


def _ordered(imagery: Sequence[Any]) -> list[tuple[datetime | None, Any]]:
    """(valid start, data) of each image; records sorted by valid time, arrays as given."""
    out = []
    for item in imagery:
        valid = getattr(item, "valid_time", None)
        if valid is not None and hasattr(item, "data"):
            out.append((valid[0], item.data))
        else:
            out.append((None, item))
    if all(t is not None for t, _ in out):
        out.sort(key=lambda p: p[0])
    return out


def _sample(
    model: ChangeDetector, a: np.ndarray, b: np.ndarray, threshold: float, samples: int, seed: int, tiles: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        dropout_active(model, samples > 1)
        try:
            runs = torch.stack([model.change_probability(x) for _ in range(samples)])
        finally:
            dropout_active(model, False)
        mean = runs.mean(dim=0)
        std = runs.std(dim=0, unbiased=False) if samples > 1 else torch.zeros_like(mean)
        share = (runs >= threshold).float().mean(dim=0).masked_fill(torch.isnan(mean), float("nan"))
        return torch.cat([mean, std, share], dim=1)

    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        out = tiled_inference(model, fn, np.concatenate([a, b], axis=0), n_out=3, tiles_per_batch=tiles)
    return out[0], out[1], np.nan_to_num(out[2], nan=0.0)


def _true_colour(image: Any) -> np.ndarray:
    data = image.data if hasattr(image, "valid_time") and hasattr(image, "data") else image
    rgb = image_bands(data, ["red", "green", "blue"], 3) if hasattr(data, "dims") else np.asarray(data)[[2, 1, 0]]
    lo, hi = np.nanpercentile(rgb, 2), np.nanpercentile(rgb, 98)
    out = np.clip((rgb - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return np.asarray(np.nan_to_num(out.transpose(1, 2, 0), nan=0.0))


def _day(t: datetime | None) -> str:
    return t.date().isoformat() if t is not None else "?"
