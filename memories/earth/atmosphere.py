"""Processing level of scenes, and the atmospheric correction of top-of-atmosphere (Level-1C) scenes.

Level-2A Sentinel-2 (Sen2Cor) and Landsat Collection 2 Level-2 items are surface
reflectance already: nothing is corrected, and the imagery says so. Level-1C
items are top-of-atmosphere reflectance; the atmosphere adds a path reflectance
(haze) that is largest in the blue and falls with wavelength. ``dark_object_haze``
estimates it per scene and band by the improved dark-object subtraction of
Chavez (1988), with transmittances taken as 1 (DOS1, Chavez 1996):

1. The dark object of the blue and the red band is the ``DARK_PERCENTILE``-th
   percentile of the scene's clear pixels; its surface reflectance is taken to
   be ``DARK_OBJECT_REFLECTANCE`` (1 %), so the haze there is ``dark - 0.01``.
2. Haze follows a relative scattering model ``haze(l) ~ l^-n``; ``n`` is fitted
   from the blue and red haze, ``n = ln(h_blue / h_red) / ln(l_red / l_blue)``,
   and kept within ``EXPONENT_RANGE`` (4: Rayleigh, a very clear sky; 0.5: very
   hazy, Chavez's model table).
3. Every band's haze is ``h_blue (l_blue / l)^n``, never more than that band's
   own dark object holds above 1 %: a NIR or SWIR band has no dark object in a
   vegetated scene, so its haze comes from the model, not from its darkest pixel.

The correction subtracts the haze of each scene and band: ``dos_correct`` moves
it into the scene stack's reflectance offset, so compositing reads it as any
other scaling. References: Chavez, P. S. (1988), Remote Sens. Environ. 24,
459-479; Chavez, P. S. (1996), Photogramm. Eng. Remote Sens. 62(9), 1025-1036.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from memories.earth.imagery import SceneStack
from memories.earth.items import item_dict
from memories.errors import ProcessingError

ProcessingLevel = Literal["L1C", "L2A", "L2", "unknown"]
SURFACE_REFLECTANCE_LEVELS: tuple[str, ...] = ("L2A", "L2")
"""Levels whose reflectance is at the surface already (Sen2Cor L2A, Landsat C2 L2)."""

DARK_PERCENTILE = 1.0
"""Percentile of a scene's clear pixels taken as its dark object (robust to a few dead or shadowed pixels)."""
DARK_OBJECT_REFLECTANCE = 0.01
"""Surface reflectance assumed for the dark object (Chavez 1996: 1 %)."""
EXPONENT_RANGE: tuple[float, float] = (0.5, 4.0)
"""Bounds of the scattering exponent n of haze ~ wavelength^-n (very hazy .. Rayleigh)."""
MAX_SAMPLE_PX = 1_000_000
"""Most pixels per scene the dark-object percentile looks at (an even subsample of larger scenes)."""

CENTER_WAVELENGTH_UM: dict[str, float] = {
    "coastal": 0.443,
    "blue": 0.492,
    "green": 0.560,
    "red": 0.665,
    "rededge1": 0.704,
    "rededge2": 0.740,
    "rededge3": 0.783,
    "nir": 0.833,
    "nir08": 0.865,
    "nir09": 0.945,
    "cirrus": 1.374,
    "swir16": 1.614,
    "swir22": 2.202,
}
"""Sentinel-2 MSI centre wavelengths, micrometres, by common band name (ESA S2 MSI spectral response)."""

DOS_NEEDS: tuple[str, ...] = ("blue", "red")
"""The bands whose dark objects fix the haze model."""


def processing_level(items: Sequence[Any], collection: str = "") -> ProcessingLevel:
    """The processing level of a set of scenes: ``L1C``, ``L2A``, ``L2`` (Landsat C2 L2) or ``unknown``.

    Read from each item's ``processing:level``, ``s2:product_type`` (``S2MSI1C``,
    ``S2MSI2A``) or id (``..._L1C``, ``MSIL2A``), else from the collection id
    (``sentinel-2-l1c``, ``landsat-c2-l2``).

    Raises:
        ProcessingError: the items disagree (a search that mixes L1C and L2A scenes).
    """
    levels = {_item_level(item_dict(it)) for it in items}
    levels.discard("unknown")
    if len(levels) > 1:
        raise ProcessingError(
            f"the scenes mix processing levels {sorted(levels)}; search one collection (L1C or L2A) at a time"
        )
    if levels:
        return levels.pop()  # type: ignore[return-value]
    return _text_level(collection)


def is_surface_reflectance(level: str) -> bool:
    """Whether scenes of this processing level are surface (bottom-of-atmosphere) reflectance."""
    return level in SURFACE_REFLECTANCE_LEVELS


@dataclass(frozen=True)
class HazeEstimate:
    """The path reflectance a dark-object subtraction removes from each scene.

    Attributes:
        bands: common band names, the order of ``haze``'s second axis.
        haze: (time, band) float32, reflectance 0-1 subtracted from each scene and band.
        exponent: (time,) the fitted scattering exponent n (haze ~ wavelength^-n).
        dark: (time, band) float32, each band's dark-object reflectance (TOA); NaN without clear pixels.
        clear_pixels: (time,) clear pixels the percentiles were taken over (0: nothing corrected).
    """

    bands: tuple[str, ...]
    haze: np.ndarray
    exponent: np.ndarray
    dark: np.ndarray
    clear_pixels: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """Plain values per scene: haze and dark object by band (reflectance), exponent, clear pixels."""
        return {
            "bands": list(self.bands),
            "haze": [[round(float(v), 5) for v in row] for row in self.haze],
            "dark_object": [[None if v != v else round(float(v), 5) for v in row] for row in self.dark],
            "exponent": [round(float(v), 3) for v in self.exponent],
            "clear_pixels": [int(v) for v in self.clear_pixels],
        }


def dark_object_haze(stack: SceneStack, clear: Any) -> HazeEstimate:
    """The haze of every scene and band of a top-of-atmosphere stack (the module's method).

    Args:
        stack: the scenes, with their reflectance scaling; must hold ``DOS_NEEDS``.
        clear: (time, y, x) bool, lazily or not: the pixels the dark objects are looked for in.

    Raises:
        ProcessingError: the stack lacks the blue or red band.
    """
    bands = tuple(str(b) for b in stack.dn["band"].values)
    missing = [b for b in DOS_NEEDS if b not in bands]
    if missing:
        raise ProcessingError(
            f"dark-object subtraction needs bands {list(DOS_NEEDS)}; the scenes were loaded without {missing}"
        )
    refl = stack.reflectance()
    step = max(1, math.ceil(math.sqrt(refl.sizes["y"] * refl.sizes["x"] / MAX_SAMPLE_PX)))
    sample = refl.isel(y=slice(None, None, step), x=slice(None, None, step))
    ok = clear.isel(y=slice(None, None, step), x=slice(None, None, step))
    values = np.asarray(sample.where(ok).values, dtype=np.float64)  # (time, band, y, x)
    n_time = values.shape[0]
    dark = np.full((n_time, len(bands)), np.nan)
    counts = np.zeros(n_time, dtype=np.int64)
    for t in range(n_time):
        flat = values[t].reshape(len(bands), -1)
        good = np.isfinite(flat).all(axis=0)
        counts[t] = int(good.sum())
        if counts[t]:
            dark[t] = np.percentile(flat[:, good], DARK_PERCENTILE, axis=1)
    haze, exponent = _haze_model(dark, bands)
    return HazeEstimate(bands, haze.astype(np.float32), exponent, dark.astype(np.float32), counts)


def dos_correct(stack: SceneStack, haze: HazeEstimate) -> SceneStack:
    """The stack with each scene's haze subtracted (through its reflectance offset)."""
    bands = tuple(str(b) for b in stack.dn["band"].values)
    if bands != haze.bands:
        raise ProcessingError(f"the haze was estimated for bands {list(haze.bands)}, the stack holds {list(bands)}")
    return replace(stack, offset=(stack.offset - haze.haze).astype(np.float32))


def _haze_model(dark: np.ndarray, bands: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(haze (time, band), exponent (time,)) from the dark objects (steps 2-3 of the module docstring)."""
    wl = np.array([CENTER_WAVELENGTH_UM.get(b, np.nan) for b in bands])
    ib, ir = bands.index("blue"), bands.index("red")
    own = np.clip(dark - DARK_OBJECT_REFLECTANCE, 0.0, None)
    haze = np.zeros_like(dark)
    exponent = np.full(dark.shape[0], np.nan)
    lo, hi = EXPONENT_RANGE
    for t in range(dark.shape[0]):
        hb, hr = own[t, ib], own[t, ir]
        if not (np.isfinite(hb) and hb > 0):
            continue  # no clear pixel, or no haze above the dark object: nothing to subtract
        n = math.log(hb / hr) / math.log(wl[ir] / wl[ib]) if hr > 0 else hi
        exponent[t] = min(max(n, lo), hi)
        model = hb * (wl[ib] / wl) ** exponent[t]
        haze[t] = np.where(np.isfinite(model), np.minimum(model, own[t]), 0.0)
    return np.nan_to_num(haze), exponent


def _item_level(d: dict[str, Any]) -> str:
    props = d.get("properties", {})
    for key in ("processing:level", "s2:product_type", "s2:processing_level"):
        if props.get(key):
            level = _text_level(str(props[key]))
            if level != "unknown":
                return level
    return _text_level(str(d.get("id", "")))


def _text_level(text: str) -> ProcessingLevel:
    t = text.upper().replace("-", "").replace("_", "")
    if "L1C" in t or "MSI1C" in t:
        return "L1C"
    if "L2A" in t or "MSI2A" in t:
        return "L2A"
    if "C2L2" in t or t.endswith("L2SP") or t == "L2":
        return "L2"
    return "unknown"
