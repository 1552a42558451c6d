"""The one home of per-pixel quality: which observations are clear, and how DNs are harmonized.

Three ways to tell a clear pixel from a cloudy one, chosen by a catalog's mask kind:

- ``"scl"``: the Sentinel-2 L2A scene classification (``scl_clear_mask``);
- ``"qa_pixel"``: the Landsat Collection 2 ``QA_PIXEL`` bit flags (``qa_pixel_mask``);
- ``"spectral"``: for Level-1C data that carry neither, a simplified Fmask-like test on
  top-of-atmosphere reflectance (``spectral_cloud_mask``, ``spectral_shadow_mask``).

And the Sentinel-2 processing-baseline policy: from baseline 04.00 on (25 January
2022) L1C and L2A digital numbers carry a +1000 DN offset, so reflectance is
``(DN - 1000) / 10000``. Earth Search v1 already states that offset in
``raster:bands`` (``offset: -0.1``); other catalogs only give
``s2:processing_baseline``. ``reflectance_offset`` decides, per item and band:

1. the item's ``raster:bands`` declares an ``offset``: use it, never add another;
2. else the baseline is 04.00 or later: -1000 DN, i.e. ``-1000 * scale`` reflectance;
3. else (older baseline, or none given): no offset.

Every function works on numpy arrays; those without a spatial neighbourhood
(all but the shadow search) work on xarray and dask arrays too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from memories.earth.bands import raster_band
from memories.earth.items import item_dict
from memories.errors import DataSourceError, ProcessingError

MaskKind = Literal["scl", "qa_pixel", "spectral"]
MASK_KINDS: tuple[str, ...] = ("scl", "qa_pixel", "spectral")
"""How clear pixels are told apart: from SCL, from QA_PIXEL bits, or spectrally."""

# --- Sentinel-2 L2A scene classification -----------------------------------------------------------

SCL_CLEAR: tuple[int, ...] = (4, 5, 6, 7, 11)
"""SCL classes kept: 4 vegetation, 5 not vegetated, 6 water, 7 unclassified, 11 snow/ice.

Masked: 0 nodata, 1 saturated/defective, 2 dark area/topographic shadow, 3 cloud
shadow, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus.
"""
SCL_NODATA = 0


def scl_clear_mask(scl: Any) -> Any:
    """True where the Sentinel-2 scene classification says the pixel is clear (classes ``SCL_CLEAR``)."""
    return scl.isin(list(SCL_CLEAR)) if hasattr(scl, "isin") else np.isin(scl, SCL_CLEAR)


# --- Landsat Collection 2 QA_PIXEL ---------------------------------------------------------------

QA_FILL = 0
QA_DILATED_CLOUD = 1
QA_CIRRUS = 2
QA_CLOUD = 3
QA_CLOUD_SHADOW = 4
QA_SNOW = 5
QA_CLEAR = 6
QA_WATER = 7
QA_MASKED_BITS: tuple[int, ...] = (QA_FILL, QA_DILATED_CLOUD, QA_CIRRUS, QA_CLOUD, QA_CLOUD_SHADOW)
"""QA_PIXEL bits that mask a pixel: fill, dilated cloud, cirrus (high confidence), cloud, cloud shadow."""
QA_KEPT_BITS: tuple[int, ...] = (QA_SNOW, QA_CLEAR, QA_WATER)
"""QA_PIXEL bits of which one must be set for a pixel to count as clear: snow, clear, water."""

_QA_MASKED = sum(1 << b for b in QA_MASKED_BITS)
_QA_KEPT = sum(1 << b for b in QA_KEPT_BITS)


def qa_pixel_mask(qa: Any) -> Any:
    """True where a Landsat Collection 2 ``QA_PIXEL`` value marks a clear observation.

    Bits (USGS Landsat 8-9 C2 Level-2 product guide): 0 fill, 1 dilated cloud,
    2 cirrus, 3 cloud, 4 cloud shadow, 5 snow, 6 clear, 7 water; bits 8-15 hold
    confidence pairs, which are not used (the high-confidence flags above already
    summarise them). A pixel is clear when none of bits 0-4 is set and one of bits
    5, 6, 7 is. So snow and water count as clear, as SCL classes 11 and 6 do, and a
    value of 0 (what a stack fills missing pixels with) is not clear.

    Args:
        qa: unsigned integer QA_PIXEL values (numpy, xarray or dask).
    """
    if hasattr(qa, "dtype") and not np.issubdtype(qa.dtype, np.integer):
        raise ProcessingError(
            f"QA_PIXEL values must be integers, got dtype {qa.dtype}; read the qa_pixel asset without rescaling"
        )
    return ((qa & _QA_MASKED) == 0) & ((qa & _QA_KEPT) != 0)


def qa_pixel_has_data(qa: Any) -> Any:
    """True where a ``QA_PIXEL`` value is an observation: not 0 (missing) and fill bit 0 unset."""
    return (qa != 0) & ((qa & (1 << QA_FILL)) == 0)


# --- spectral test for Level-1C ------------------------------------------------------------------

SPECTRAL_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16", "swir22")
"""Bands the spectral test needs (top-of-atmosphere reflectance 0-1); ``cirrus`` (B10) is optional."""
WHITENESS_MAX = 0.7
"""Fmask whiteness limit: mean absolute deviation of blue, green, red over their mean."""
HOT_OFFSET = 0.08
"""Fmask haze-optimized transformation: blue - 0.5 red - 0.08 > 0 (reflectance)."""
SWIR22_MIN = 0.03
"""Clouds are bright in SWIR 2.2 um: reflectance above this."""
NIR_SWIR_RATIO_MIN = 0.75
"""Fmask NIR/SWIR1 test: bright rock and soil have a ratio below this, clouds above."""
CIRRUS_MIN = 0.012
"""Top-of-atmosphere reflectance of B10 (1.375 um, absorbed by water vapour below cirrus) above which a
pixel is cirrus."""
SHADOW_NIR_MAX = 0.12
SHADOW_SWIR16_MAX = 0.10
SHADOW_SEARCH_PX = 50
"""Shadows are looked for within this many pixels of a cloud (500 m at 10 m)."""


def spectral_cloud_mask(
    blue: Any,
    green: Any,
    red: Any,
    nir: Any,
    swir16: Any,
    swir22: Any,
    cirrus: Any | None = None,
) -> Any:
    """True where top-of-atmosphere reflectance looks like cloud: a simplified Fmask potential-cloud test.

    Fmask's potential cloud pixel test (Zhu & Woodcock 2012, Remote Sensing of
    Environment 118: 83-94) without its thermal band, which Sentinel-2 lacks. A
    pixel is cloud when all of these hold:

    - basic: SWIR2 > 0.03, NDSI = (green - SWIR1)/(green + SWIR1) < 0.8 (not snow),
      NDVI < 0.8 (not dense vegetation);
    - whiteness: sum |b - m| / m < 0.7 over blue, green, red with m their mean (flat, white spectrum);
    - HOT: blue - 0.5 red - 0.08 > 0 (haze and cloud scatter blue more than land does);
    - NIR / SWIR1 > 0.75 (bright rock and soil are below).

    Where B10 (cirrus, 1.375 um) is given, a pixel with B10 > 0.012 is cloud too.

    Args:
        blue, green, red, nir, swir16, swir22: top-of-atmosphere (or surface) reflectance 0-1 of
            Sentinel-2 B02, B03, B04, B08, B11, B12 (Landsat: B2, B3, B4, B5, B6, B7), on one grid.
        cirrus: reflectance of Sentinel-2 B10, or None where the product has none (L2A drops it).

    Returns:
        Boolean array, NaN inputs give False.
    """
    from memories.earth.indices import mndwi, ndvi

    ndsi = mndwi(green, swir16)  # the snow index NDSI has MNDWI's formula: (green - SWIR1) / (green + SWIR1)
    with np.errstate(divide="ignore", invalid="ignore"):
        basic = (swir22 > SWIR22_MIN) & (ndsi < 0.8) & (ndvi(nir, red) < 0.8)
        mean_vis = (blue + green + red) / 3
        whiteness = (abs(blue - mean_vis) + abs(green - mean_vis) + abs(red - mean_vis)) / mean_vis
        white = whiteness < WHITENESS_MAX
        hot = blue - 0.5 * red - HOT_OFFSET > 0
        ratio = nir / swir16 > NIR_SWIR_RATIO_MIN
    cloud = basic & white & hot & ratio
    if cirrus is not None:
        cloud = cloud | (cirrus > CIRRUS_MIN)
    return cloud


def spectral_shadow_mask(
    green: np.ndarray,
    nir: np.ndarray,
    swir16: np.ndarray,
    cloud: np.ndarray,
    *,
    search_px: int | None = SHADOW_SEARCH_PX,
) -> np.ndarray:
    """True where a pixel is dark in NIR and SWIR1, is not water, and lies near a cloud: potential cloud shadow.

    Shadow darkens the near and shortwave infrared that sunlit land reflects
    strongly (NIR < 0.12 and SWIR1 < 0.10 reflectance); water is dark there too and
    is excluded by NDWI (McFeeters) > 0. Instead of projecting each cloud along the
    sun's azimuth at an unknown height (Fmask's object matching), a dark pixel is
    a shadow only within ``search_px`` pixels of a cloud pixel: a scene without
    cloud has no shadow.

    Args:
        green, nir, swir16: reflectance 0-1, (..., y, x) numpy arrays.
        cloud: boolean cloud mask of the same shape (from ``spectral_cloud_mask``).
        search_px: search radius in pixels (square neighbourhood); None: no proximity rule.
    """
    from memories.earth.indices import ndwi

    water = np.asarray(ndwi(green, nir)) > 0
    dark = (np.asarray(nir) < SHADOW_NIR_MAX) & (np.asarray(swir16) < SHADOW_SWIR16_MAX) & ~water
    if search_px is None:
        return dark
    return np.asarray(dark & _near(np.asarray(cloud, dtype=bool), search_px))


def spectral_clear_mask(
    bands: Mapping[str, np.ndarray], *, search_px: int | None = SHADOW_SEARCH_PX, nodata_nan: bool = True
) -> np.ndarray:
    """True where the spectral test finds neither cloud nor cloud shadow and every band has data.

    Args:
        bands: reflectance 0-1 by common band name; needs ``SPECTRAL_BANDS``, uses ``cirrus`` when present.
        search_px: shadow search radius in pixels (see ``spectral_shadow_mask``).
        nodata_nan: NaN in any band marks a missing observation (never clear).
    """
    missing = [b for b in SPECTRAL_BANDS if b not in bands]
    if missing:
        raise ProcessingError(
            f"the spectral cloud test needs bands {list(SPECTRAL_BANDS)}, missing {missing}; "
            "load them or use mask_kind 'scl' / 'qa_pixel'"
        )
    b = {k: np.asarray(v, dtype=np.float32) for k, v in bands.items()}
    cloud = spectral_cloud_mask(
        b["blue"], b["green"], b["red"], b["nir"], b["swir16"], b["swir22"], cirrus=b.get("cirrus")
    )
    shadow = spectral_shadow_mask(b["green"], b["nir"], b["swir16"], cloud, search_px=search_px)
    clear = ~cloud & ~shadow
    if nodata_nan:
        for k in SPECTRAL_BANDS:
            clear &= np.isfinite(b[k])
    return np.asarray(clear)


def _near(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilation of a boolean (..., y, x) mask by a square of side 2 radius + 1 over the last two axes."""
    from scipy.ndimage import maximum_filter

    if radius <= 0 or not mask.any():
        return mask.copy()
    size = [1] * (mask.ndim - 2) + [2 * radius + 1, 2 * radius + 1]
    return np.asarray(maximum_filter(mask, size=size, mode="constant", cval=False))


# --- Sentinel-2 processing baseline --------------------------------------------------------------

BASELINE_OFFSET_FROM = (4, 0)
"""First processing baseline whose DNs carry the +1000 offset (04.00, January 2022)."""
BASELINE_OFFSET_DN = -1000
"""DN offset to add from baseline 04.00 on (radiometric offset of the L1C/L2A products)."""
_BASELINE_RE = re.compile(r"^\s*(\d{1,2})\.(\d{1,2})\s*$")


def processing_baseline(item: Any) -> tuple[int, int] | None:
    """The item's ``s2:processing_baseline`` as (major, minor), e.g. "05.09" -> (5, 9); None when absent."""
    d = item_dict(item)
    raw = d.get("properties", {}).get("s2:processing_baseline")
    if raw is None:
        return None
    m = _BASELINE_RE.match(str(raw))
    if not m:
        raise DataSourceError(
            f"item {d.get('id')!r} has s2:processing_baseline {raw!r}, not of the form 'NN.NN' (e.g. '05.09'); "
            "fix the item's metadata or remove the property"
        )
    return int(m.group(1)), int(m.group(2))


def baseline_offset_dn(baseline: tuple[int, int] | str | None) -> int:
    """DN offset of a Sentinel-2 processing baseline: -1000 from 04.00 on, 0 before or when unknown."""
    if isinstance(baseline, str):
        baseline = processing_baseline({"id": "?", "properties": {"s2:processing_baseline": baseline}})
    if baseline is None:
        return 0
    return BASELINE_OFFSET_DN if baseline >= BASELINE_OFFSET_FROM else 0


def reflectance_offset(item: Any, asset_key: str, scale: float) -> float:
    """Reflectance at DN 0 of one asset of one item, by the policy of this module's docstring.

    A declared ``raster:bands`` offset wins (Earth Search v1 states -0.1 there: adding
    the baseline's -1000 DN again would darken every pixel by 0.1); otherwise the
    ``s2:processing_baseline`` decides: 04.00 or later -> ``-1000 * scale``, else 0.

    Args:
        item: a pystac Item or its dict.
        asset_key: the asset.
        scale: reflectance per DN of that asset (1e-4 for Sentinel-2).
    """
    d, _, rb = raster_band(item, asset_key)
    if rb.get("offset") is not None:
        return float(rb["offset"])
    return float(baseline_offset_dn(processing_baseline(d)) * scale)


def harmonize_dn(dn: np.ndarray, baseline: tuple[int, int] | str | None, *, nodata: int | None = 0) -> np.ndarray:
    """Digital numbers of any baseline on the pre-04.00 scale (reflectance = DN / 10000).

    From baseline 04.00 on, 1000 is subtracted; DNs at or below the offset (dark
    water, shadow: reflectance <= 0 after the offset) become 1, the smallest valid
    DN, so they stay distinct from ``nodata``, which is kept as it is. Older
    baselines are returned unchanged. Same dtype as the input.

    Args:
        dn: uint16 digital numbers.
        baseline: (major, minor), "NN.NN", or None (unknown: unchanged).
        nodata: the DN of missing pixels, or None.
    """
    offset = -baseline_offset_dn(baseline)
    if offset == 0:
        return dn
    arr = np.asarray(dn)
    out = (np.maximum(arr.astype(np.int32) - offset, 1)).astype(arr.dtype)
    if nodata is not None:
        out[arr == nodata] = nodata
    return out
