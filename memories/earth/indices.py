"""Spectral indices, the one place they are defined. Inputs are reflectance 0–1.

Each function works on numpy, xarray and dask arrays alike and returns a
dimensionless index, NaN where an input is NaN or the denominator is zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def ndvi(nir: Any, red: Any) -> Any:
    """Normalized Difference Vegetation Index, (NIR − red) / (NIR + red), −1..1."""
    return _normalized_difference(nir, red)


def ndwi(green: Any, nir: Any) -> Any:
    """Normalized Difference Water Index (McFeeters 1996), (green − NIR) / (green + NIR), −1..1.

    Open water is above 0.
    """
    return _normalized_difference(green, nir)


def evi(nir: Any, red: Any, blue: Any) -> Any:
    """Enhanced Vegetation Index, 2.5 (NIR − red) / (NIR + 6 red − 7.5 blue + 1), about −1..1."""
    den = nir + 6.0 * red - 7.5 * blue + 1.0
    return _safe_div(2.5 * (nir - red), den)


def nbr(nir: Any, swir22: Any) -> Any:
    """Normalized Burn Ratio, (NIR − SWIR2) / (NIR + SWIR2), −1..1."""
    return _normalized_difference(nir, swir22)


INDICES: dict[str, tuple[tuple[str, ...], Any]] = {
    "ndvi": (("nir", "red"), ndvi),
    "ndwi": (("green", "nir"), ndwi),
    "evi": (("nir", "red", "blue"), evi),
    "nbr": (("nir", "swir22"), nbr),
}
"""Index name -> (bands it needs, in argument order; function)."""


def compute_indices(reflectance: Any, names: tuple[str, ...] = tuple(INDICES)) -> Any:
    """All requested indices of a reflectance DataArray with a ``band`` dim, as a Dataset."""
    import xarray as xr

    out = {}
    for name in names:
        bands, fn = INDICES[name]
        out[name] = fn(*(reflectance.sel(band=b, drop=True) for b in bands)).astype(np.float32)
    return xr.Dataset(out)


def _normalized_difference(a: Any, b: Any) -> Any:
    return _safe_div(a - b, a + b)


def _safe_div(num: Any, den: Any) -> Any:
    if hasattr(num, "where"):
        return (num / den).where(den != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / den, np.nan)
