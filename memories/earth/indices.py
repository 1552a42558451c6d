"""Spectral indices, the one place they are defined: every asset and module calls these.

Inputs are surface (or top-of-atmosphere) reflectance, 0-1, as numpy, xarray or
dask arrays; every index is dimensionless, NaN where an input is NaN or the
denominator is zero; normalized differences are NaN where the two bands sum to
less than ``MIN_SUM`` and clipped to -1..1. Sentinel-2 bands: blue B02, green B03, red B04, NIR B08,
SWIR1 B11 (``swir16``), SWIR2 B12 (``swir22``).

Digital numbers are refused: an input whose median (of up to ``SAMPLE_SIZE``
finite, non-zero values spread over the array) exceeds ``REFLECTANCE_MAX`` raises
``ProcessingError`` naming the scale to apply. On DN, NDVI happens to come out
right but EVI is off by orders of magnitude (its ``+ 1`` assumes reflectance).
The check samples, so it costs next to nothing; on dask arrays it runs per block
inside the same computation (it raises when the index is computed), so no array
is read twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memories.errors import ProcessingError

REFLECTANCE_MAX = 2.0
"""Largest median reflectance an index input may have. Reflectance is 0-1 (bright cloud and snow reach
about 1-1.5, a saturated L2A pixel 6.5, but never the median of an image or of a block); digital numbers
(reflectance x 10000) are hundreds to thousands."""
SAMPLE_SIZE = 4096
"""Values (evenly spread over an array, or over each dask block) the reflectance check looks at."""


def ndvi(nir: Any, red: Any) -> Any:
    """Normalized Difference Vegetation Index: (NIR - red) / (NIR + red).

    Args:
        nir, red: reflectance 0-1.

    Returns:
        Dimensionless, -1..1: dense green vegetation about 0.6-0.9, bare soil 0.1-0.2, water below 0.
        Reference: Rouse et al. 1974, NASA SP-351.
    """
    return _normalized_difference(_checked(nir, "ndvi", "nir"), _checked(red, "ndvi", "red"))


def ndwi(green: Any, nir: Any) -> Any:
    """Normalized Difference Water Index (McFeeters): (green - NIR) / (green + NIR).

    Args:
        green, nir: reflectance 0-1.

    Returns:
        Dimensionless, -1..1; open water above 0. Reference: McFeeters 1996, Int. J. Remote Sens. 17(7).
    """
    return _normalized_difference(_checked(green, "ndwi", "green"), _checked(nir, "ndwi", "nir"))


def mndwi(green: Any, swir16: Any) -> Any:
    """Modified NDWI: (green - SWIR1) / (green + SWIR1), separates water from built-up better than NDWI.

    Args:
        green, swir16: reflectance 0-1 (SWIR1 at 1.6 um).

    Returns:
        Dimensionless, -1..1; water above 0. Reference: Xu 2006, Int. J. Remote Sens. 27(14).
    """
    return _normalized_difference(_checked(green, "mndwi", "green"), _checked(swir16, "mndwi", "swir16"))


def ndmi(nir: Any, swir16: Any) -> Any:
    """Normalized Difference Moisture Index: (NIR - SWIR1) / (NIR + SWIR1), canopy water content.

    Args:
        nir, swir16: reflectance 0-1.

    Returns:
        Dimensionless, -1..1; moist canopy above about 0.2. Reference: Gao 1996 (NDWI of leaves),
        Remote Sens. Environ. 58(3); Wilson & Sader 2002.
    """
    return _normalized_difference(_checked(nir, "ndmi", "nir"), _checked(swir16, "ndmi", "swir16"))


def evi(nir: Any, red: Any, blue: Any) -> Any:
    """Enhanced Vegetation Index: 2.5 (NIR - red) / (NIR + 6 red - 7.5 blue + 1).

    Args:
        nir, red, blue: reflectance 0-1 (surface reflectance: the coefficients assume atmospheric correction).

    Returns:
        Dimensionless, about -1..1 for natural surfaces (green vegetation 0.2-0.8); it can leave that range
        where blue is bright (cloud, snow). Reference: Huete et al. 2002, Remote Sens. Environ. 83.
    """
    nir, red, blue = _checked(nir, "evi", "nir"), _checked(red, "evi", "red"), _checked(blue, "evi", "blue")
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
    return _normalized_difference(_checked(nir, "nbr", "nir"), _checked(swir22, "nbr", "swir22"))


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
        ProcessingError: an unknown index name, a band it needs is missing, or a band holds digital
            numbers rather than reflectance (on a dask-backed array: when the Dataset is computed).
    """
    import xarray as xr

    out = {}
    have = {str(b) for b in reflectance["band"].values}
    for name in names:
        if name not in INDICES:
            raise ProcessingError(f"unknown index {name!r}; choose from {sorted(INDICES)}")
        bands, fn = INDICES[name]
        if set(bands) - have:
            raise ProcessingError(f"index {name} needs bands {list(bands)}; the composite has {sorted(have)}")
        out[name] = fn(*(reflectance.sel(band=b, drop=True) for b in bands)).astype(np.float32)
        out[name].attrs.update(
            units="1", long_name=INDEX_LONG_NAMES.get(name, name.upper()), formula=_formula(fn), bands=list(bands)
        )
    return xr.Dataset(out)


def index_stats(indices: Any) -> dict[str, dict[str, float | None]]:
    """Per index variable of a computed Dataset, the ``mean``, ``p10`` and ``p90`` (dimensionless)
    of its finite pixels; None where the index has none (a month never seen clear)."""
    out: dict[str, dict[str, float | None]] = {}
    for name in indices.data_vars:
        v = indices[name].values
        seen = bool(np.isfinite(v).any())
        out[str(name)] = {
            "mean": float(np.nanmean(v)) if seen else None,
            "p10": float(np.nanpercentile(v, 10)) if seen else None,
            "p90": float(np.nanpercentile(v, 90)) if seen else None,
        }
    return out


INDEX_LONG_NAMES: dict[str, str] = {
    "ndvi": "Normalized Difference Vegetation Index",
    "ndwi": "Normalized Difference Water Index (McFeeters)",
    "mndwi": "Modified Normalized Difference Water Index",
    "evi": "Enhanced Vegetation Index",
    "nbr": "Normalized Burn Ratio",
    "ndmi": "Normalized Difference Moisture Index",
}
"""CF ``long_name`` of each index variable a store keeps."""


def _formula(fn: Any) -> str:
    """The formula line of an index function's docstring (its first line after the name)."""
    first = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
    return first.split(":", 1)[1].strip().rstrip(".") if ":" in first else first


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


def _checked(x: Any, index: str, band: str) -> Any:
    """``x`` itself, once it looks like reflectance; for dask (and dask-backed xarray) lazily, block by block.

    Raises:
        ProcessingError: the median of a sample of ``x`` is above ``REFLECTANCE_MAX`` (``_check_block``).
    """
    data: Any = x.data if hasattr(x, "dims") else x
    if hasattr(data, "map_blocks") and hasattr(data, "dask"):  # a dask array: check inside its own computation
        lazy = data.map_blocks(_check_block, index=index, band=band, dtype=data.dtype)
        return x.copy(data=lazy) if hasattr(x, "dims") else lazy
    _check_block(np.asarray(x), index=index, band=band)
    return x


def _check_block(block: np.ndarray, *, index: str, band: str) -> np.ndarray:
    """The block itself, after its sampled median passed the reflectance bound."""
    picks = np.linspace(0, block.size - 1, min(block.size, SAMPLE_SIZE), dtype=np.intp)
    values = np.asarray(block.flat[picks], dtype=np.float64)  # .flat: no copy of a strided block
    values = values[np.isfinite(values) & (values != 0)]
    if values.size:
        median = float(np.median(values))
        if median > REFLECTANCE_MAX:
            raise ProcessingError(
                f"{index} input {band!r} has a median of {median:.6g} (over {values.size} sampled values), above "
                f"{REFLECTANCE_MAX}: these look like digital numbers, not reflectance 0-1. Scale them first: "
                "DN * scale + offset from the asset's raster:bands (memories.earth.bands.to_reflectance), e.g. "
                "DN / 10000 for Sentinel-2 (minus 0.1 from processing baseline 04.00 on)"
            )
    return block
