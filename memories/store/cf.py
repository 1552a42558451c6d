"""CF / GeoZarr georeferencing and attributes of stored raster products.

Every stored dataset carries a scalar ``spatial_ref`` coordinate, the CF grid-mapping
variable of its tile (``crs_wkt``, ``spatial_ref``, ``GeoTransform``: see
:meth:`TileGrid.cf_grid_mapping`), and each data variable names it in
``grid_mapping``; GDAL, rioxarray and QGIS find CRS and transform there. Variable
attributes (units, long names, band metadata) are kept; those that are not part of
the product are dropped (see :func:`product_attrs`). Text is stored as Zarr v3's
variable-length ``string`` data type, never as numpy's fixed-length ``<U``, which
the Zarr v3 specification does not define.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from memories.grid import TileGrid

__all__ = ["GRID_MAPPING", "georeference", "product_attrs", "text_array"]

GRID_MAPPING = "spatial_ref"
"""The name of the grid-mapping coordinate (rioxarray's and GDAL's default)."""

READER_ATTRS = frozenset({"spec", "crs", "transform", "resolution", "res", "grid_mapping", "coordinates"})
"""Attributes readers attach (stackstac's ``RasterSpec``, a CRS, an affine) that the grid mapping replaces."""

PACKING_ATTRS = frozenset({"_FillValue", "missing_value", "scale_factor", "add_offset", "_Unsigned", "dtype"})
"""CF packing attributes: stored products hold physical values, so these would make readers rescale them."""


def georeference(ds: xr.Dataset, grid: TileGrid) -> xr.Dataset:
    """``ds`` with the tile's ``spatial_ref`` coordinate and ``grid_mapping`` on every data variable (a copy)."""
    out = ds.assign_coords({GRID_MAPPING: xr.DataArray(np.int32(0), attrs=grid.cf_grid_mapping())})
    for name, var in out.data_vars.items():
        if {"y", "x"} <= set(var.dims):
            out[name].attrs["grid_mapping"] = GRID_MAPPING
    return out


def product_attrs(attrs: Mapping[Any, Any]) -> dict[str, Any]:
    """The attributes of a variable worth storing: JSON values other than reader and packing attributes.

    Numpy scalars and small arrays become plain JSON values; anything else that
    is not JSON (a ``RasterSpec``, an ``Affine``) is dropped, not stringified.
    """
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if key in READER_ATTRS or key in PACKING_ATTRS:
            continue
        plain = value.tolist() if isinstance(value, np.ndarray | np.generic) else value
        try:
            json.dumps(plain, allow_nan=True)
        except (TypeError, ValueError):
            continue
        out[str(key)] = plain
    return out


def text_array(values: Any) -> np.ndarray:
    """Strings as numpy's variable-length ``StringDType``, which Zarr v3 stores as its ``string`` data type."""
    return np.array([str(v) for v in np.asarray(values).ravel()], dtype=np.dtypes.StringDType()).reshape(
        np.shape(values)
    )
