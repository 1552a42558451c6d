"""Spectral indices, the one place they are defined: every asset and module calls these.

Inputs are surface (or top-of-atmosphere) reflectance, 0-1, as numpy, xarray or
dask arrays; every index is dimensionless, NaN where an input is NaN or the
denominator is zero; normalized differences are NaN where the two bands sum to
less than ``MIN_SUM`` and clipped to -1..1. Sentinel-2 bands: blue B02, green B03, red B04, NIR B08,
SWIR1 B11 (``swir16``), SWIR2 B12 (``swir22``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def ndvi(nir: Any, red: Any) -> Any:
    """Normalized Difference Vegetation Index: (NIR - red) / (NIR + red).

    Args:
        nir, red: reflectance 0-1.

    Returns:
        Dimensionless, -1..1: dense green vegetation about 0.6-0.9, bare soil 0.1-0.2, water below 0.
        Reference: Rouse et al. 1974, NASA SP-351.
    """
    return _normalized_difference(nir, red)


def ndwi(green: Any, nir: Any) -> Any:
    """Normalized Difference Water Index (McFeeters): (green - NIR) / (green + NIR).

    Args:
        green, nir: reflectance 0-1.

    Returns:
        Dimensionless, -1..1; open water above 0. Reference: McFeeters 1996, Int. J. Remote Sens. 17(7).
    """
    return _normalized_difference(green, nir)


def mndwi(green: Any, swir16: Any) -> Any:
    """Modified NDWI: (green - SWIR1) / (green + SWIR1), separates water from built-up better than NDWI.

    Args:
        green, swir16: reflectance 0-1 (SWIR1 at 1.6 um).

    Returns:
        Dimensionless, -1..1; water above 0. Reference: Xu 2006, Int. J. Remote Sens. 27(14).
    """
    return _normalized_difference(green, swir16)


def ndmi(nir: Any, swir16: Any) -> Any:
    """Normalized Difference Moisture Index: (NIR - SWIR1) / (NIR + SWIR1), canopy water content.

    Args:
        nir, swir16: reflectance 0-1.

    Returns:
        Dimensionless, -1..1; moist canopy above about 0.2. Reference: Gao 1996 (NDWI of leaves),
        Remote Sens. Environ. 58(3); Wilson & Sader 2002.
    """
    return _normalized_difference(nir, swir16)


def evi(nir: Any, red: Any, blue: Any) -> Any:
    """Enhanced Vegetation Index: 2.5 (NIR - red) / (NIR + 6 red - 7.5 blue + 1).

    Args:
        nir, red, blue: reflectance 0-1 (surface reflectance: the coefficients assume atmospheric correction).

    Returns:
        Dimensionless, about -1..1 for natural surfaces (green vegetation 0.2-0.8); it can leave that range
        where blue is bright (cloud, snow). Reference: Huete et al. 2002, Remote Sens. Environ. 83.
    """
    den = nir + 6.0 * red - 7.5 * blue + 1.0
    return _safe_div(2.5 * (nir - red), den)


def nbr(nir: Any, swir22: Any) -> Any:
    """Normalized Burn Ratio: (NIR - SWIR2) / (NIR + SWIR2).

    Args:
        nir, swir22: reflectance 0-1 (SWIR2 at 2.2 um).

    Returns:
        Dimensionless, -1..1; healthy vegetation high, fresh burn scars and bare soil low; the drop
        before/after (dNBR) measures burn severity. Reference: Key & Benson 2006, FIREMON LA.
    """
    return _normalized_difference(nir, swir22)


INDICES: dict[str, tuple[tuple[str, ...], Any]] = {
    "ndvi": (("nir", "red"), ndvi),
    "ndwi": (("green", "nir"), ndwi),
    "evi": (("nir", "red", "blue"), evi),
    "nbr": (("nir", "swir22"), nbr),
    "ndmi": (("nir", "swir16"), ndmi),
    "mndwi": (("green", "swir16"), mndwi),
}
"""Index name -> (bands it needs, in argument order; function)."""


DEFAULT_INDICES: tuple[str, ...] = ("ndvi", "ndwi", "evi", "nbr")
"""The indices the ``spectral_indices`` product carries."""


def compute_indices(reflectance: Any, names: tuple[str, ...] = DEFAULT_INDICES) -> Any:
    """The requested indices (float32, dimensionless) of a reflectance DataArray with a ``band`` dim, as a Dataset.

    Raises:
        ProcessingError: an unknown index name, or a band it needs is missing.
    """
    import xarray as xr

    from memories.errors import ProcessingError

    out = {}
    have = {str(b) for b in reflectance["band"].values}
    for name in names:
        if name not in INDICES:
            raise ProcessingError(f"unknown index {name!r}; choose from {sorted(INDICES)}")
        bands, fn = INDICES[name]
        if set(bands) - have:
            raise ProcessingError(f"index {name} needs bands {list(bands)}; the composite has {sorted(have)}")
        out[name] = fn(*(reflectance.sel(band=b, drop=True) for b in bands)).astype(np.float32)
    return xr.Dataset(out)


MIN_SUM = 1e-4
"""Smallest ``a + b`` (reflectance) a normalized difference is computed for: below it (dark pixels whose
reflectance the -0.1 offset made zero or negative) the ratio is noise and the index is NaN."""


def _normalized_difference(a: Any, b: Any) -> Any:
    """(a - b) / (a + b), NaN where ``a + b < MIN_SUM``, clipped to -1..1 (a slightly negative reflectance,
    e.g. NIR over dark water, would otherwise push it past the range)."""
    den = a + b
    if hasattr(den, "where"):
        return ((a - b) / den).where(den >= MIN_SUM).clip(-1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.where(den >= MIN_SUM, (a - b) / den, np.nan), -1.0, 1.0)


def _safe_div(num: Any, den: Any) -> Any:
    if hasattr(num, "where"):
        return (num / den).where(den != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / den, np.nan)
