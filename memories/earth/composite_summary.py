"""A monthly composite's statistics, band medians and quality-suite sample in two reads of each variable.

``composite_stats``, ``band_medians`` and ``validate_composite`` each need whole-tile figures of
a composite that may be lazy (a 10980 px tile is read from its store one row block of chunks at
a time). Asked separately they read each reflectance band five times and each spread band three
times; :func:`summarize_composite` reads each variable twice, whatever is asked:

- pass 1, per row block: each reflectance band (its finite values counted for its median, its
  first minimum and maximum, the block's valid mask: finite in every band), the counts, then each
  spread band (its valid values counted for its median);
- pass 2, per row block: the same reads again, refining the medians and taking the values of the
  sampled pixels (a seeded sample plus each band's first minimum and maximum).

The figures are those of the separate functions, bit for bit: medians are exact
(:class:`~memories.earth.chunked_stats.TwoPassMedian`), the sample picks the same pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from memories.earth.chunked_stats import TwoPassMedian, row_blocks

__all__ = ["CompositeSummary", "summarize_composite"]


@dataclass(frozen=True)
class CompositeSummary:
    """What :func:`summarize_composite` found.

    Attributes:
        stats: ``composite_stats``' figures (pixels, valid pixels and fraction, observations, cloud
            fraction, mean clear observations, per-band median spread when asked).
        medians: per band, the median of the finite reflectance (``band_medians``); None when not asked.
        sample: the quality suite's frame of sampled pixels; None when not asked.
        sample_px: the random sample's size the frame was drawn with (its extremes come on top).
        seed: the sample's seed.
    """

    stats: dict[str, Any]
    medians: dict[str, float | None] | None
    sample: pd.DataFrame | None
    sample_px: int
    seed: int


def summarize_composite(
    composite: xr.Dataset,
    *,
    medians: bool = True,
    spread_medians: bool = True,
    sample_px: int | None = None,
    seed: int = 0,
) -> CompositeSummary:
    """Statistics of a (computed or lazy) ``monthly_composite`` Dataset, read row block by row block.

    Args:
        composite: ``reflectance`` (band, y, x), ``clear_count`` and ``obs_count`` (y, x), optional ``spread``.
        medians: also the per-band median of the finite reflectance.
        spread_medians: also the per-band median spread of the valid pixels (``stats["median_spread"]``).
        sample_px: also the suite's frame of this many sampled pixels (None: no frame).
        seed: the sample's seed.
    """
    refl = composite["reflectance"]
    n_bands, height, width = refl.shape
    bands = [str(b) for b in composite["band"].values] if "band" in composite.coords else list(map(str, range(n_bands)))
    spread = composite["spread"] if "spread" in composite else None
    spread_median = [TwoPassMedian() for _ in range(n_bands)] if spread is not None and spread_medians else []
    blocks = list(row_blocks(refl))
    band_median = [TwoPassMedian() for _ in range(n_bands)] if medians else []
    masks: list[np.ndarray] = []  # each block's valid mask, packed at 1 bit a pixel
    extremes: list[list[tuple[float, int]]] = [[] for _ in range(n_bands)]
    pixels = n_valid = obs = clear = 0

    def band(var: xr.DataArray, i: int, y0: int, y1: int) -> np.ndarray:
        return np.asarray(var.isel(band=i, y=slice(y0, y1)).values)

    def rows(name: str, y0: int, y1: int) -> np.ndarray:
        return np.asarray(composite[name].isel(y=slice(y0, y1)).values)

    @lru_cache(maxsize=1)  # each block's mask is unpacked once in pass 2, for all its spread bands
    def unpack(k: int) -> np.ndarray:
        y0, y1 = blocks[k]
        return np.unpackbits(masks[k], count=(y1 - y0) * width).reshape(y1 - y0, width).view(bool)

    for y0, y1 in blocks:  # pass 1
        valid = np.ones((y1 - y0, width), dtype=bool)
        for i in range(n_bands):
            v = band(refl, i, y0, y1)
            finite = np.isfinite(v)
            valid &= finite
            if medians:
                band_median[i].count(v[finite])
            if sample_px is not None and finite.any():
                flat = v.astype(np.float32, copy=False).reshape(-1)
                lo, hi = int(np.nanargmin(flat)), int(np.nanargmax(flat))
                extremes[i] += [(float(flat[lo]), y0 * width + lo), (-float(flat[hi]), y0 * width + hi)]
        masks.append(np.packbits(valid))
        pixels += int(valid.size)
        n_valid += int(valid.sum())
        obs += int(rows("obs_count", y0, y1).astype(np.int64).sum())
        clear += int(rows("clear_count", y0, y1).astype(np.int64).sum())
        if spread is not None:
            for i, median in enumerate(spread_median):
                median.count(band(spread, i, y0, y1)[valid])

    picks = _picks(height * width, extremes, sample_px, seed) if sample_px is not None else None
    parts: dict[str, list[np.ndarray]] = {"reflectance": [], "spread": [], "clear_count": [], "obs_count": []}
    # each variable read again for its medians' second pass (over the values pass 1 counted) or for the sample
    again: list[tuple[str, xr.DataArray, list[TwoPassMedian], Callable[[np.ndarray, int], np.ndarray]]] = [
        ("reflectance", refl, band_median, lambda v, k: v[np.isfinite(v)])
    ]
    if spread is not None:
        again.append(("spread", spread, spread_median, lambda v, k: v[unpack(k)]))
    for k, (y0, y1) in enumerate(blocks):  # pass 2
        inside = None if picks is None else picks[(picks >= y0 * width) & (picks < y1 * width)] - y0 * width
        for name, var, var_medians, counted in again:
            if not var_medians and inside is None:
                continue
            taken = []
            for i in range(n_bands):
                v = band(var, i, y0, y1)
                if var_medians:
                    var_medians[i].refine(counted(v, k))
                if inside is not None:
                    taken.append(v.reshape(-1)[inside])
            if inside is not None:
                parts[name].append(np.stack(taken))
        if inside is not None:
            for name in ("clear_count", "obs_count"):
                parts[name].append(rows(name, y0, y1).reshape(-1)[inside])

    stats: dict[str, Any] = {
        "pixels": pixels,
        "valid_pixels": n_valid,
        "valid_fraction": n_valid / pixels if pixels else 0.0,
        "observations": obs,
        "clear_observations": clear,
        "cloud_fraction": 1.0 - clear / obs if obs else None,
        "mean_clear_obs": clear / pixels if pixels else 0.0,
    }
    if spread_median:
        stats["median_spread"] = {b: m.value() for b, m in zip(bands, spread_median, strict=True)}
    return CompositeSummary(
        stats=stats,
        medians={b: m.value() for b, m in zip(bands, band_median, strict=True)} if medians else None,
        sample=None if picks is None else _frame({k: v for k, v in parts.items() if v}, bands),
        sample_px=sample_px or 0,
        seed=seed,
    )


def _picks(n: int, extremes: list[list[tuple[float, int]]], sample_px: int, seed: int) -> np.ndarray:
    """Flat indices of the sampled pixels: all of them when few, else a seeded sample plus each band's first
    minimum and maximum (``extremes``: per band, (value, index) and (-value, index) pairs of each block)."""
    if n <= sample_px:
        return np.arange(n)
    chosen = []
    for found in extremes:  # the first occurrence of the band's min and max, as nanargmin/nanargmax
        if found:
            chosen += [min(found[0::2])[1], min(found[1::2])[1]]
    picks = np.random.default_rng(seed).choice(n, size=sample_px, replace=False)
    return np.unique(np.concatenate([picks, np.array(chosen, dtype=np.int64)]))


def _frame(parts: dict[str, list[np.ndarray]], bands: list[str]) -> pd.DataFrame:
    """The suite's frame of the sampled values."""
    got = {name: np.concatenate(v, axis=-1) for name, v in parts.items()}
    # float64 columns: great-expectations compares only int and float64 columns vectorized; a float32 column
    # goes through a Python call per value (about 2 s per 50 000-pixel sample). The values are the same.
    frame = pd.DataFrame({f"reflectance_{b}": got["reflectance"][i].astype(np.float64) for i, b in enumerate(bands)})
    frame["valid"] = np.isfinite(got["reflectance"]).all(axis=0)
    for name in ("clear_count", "obs_count"):
        frame[name] = got[name].astype(np.int64)
    if "spread" in got:
        for i, b in enumerate(bands):
            frame[f"spread_{b}"] = got["spread"][i].astype(np.float64)
    return frame
