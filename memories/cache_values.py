"""Typed, safe files for the values :meth:`memories.cache.Cache.set` keeps: nothing is ever unpickled.

Each value is written in an open format of its own type, and its kind is recorded
beside it, so :meth:`~memories.cache.Cache.get` reads it back as the same type:

=====================  ===============================  =====================================
kind                   value                            file
=====================  ===============================  =====================================
``ndarray``            ``numpy.ndarray``                ``.npy``, written and read with
                                                        ``allow_pickle=False`` (no object dtype)
``geodataframe``       ``geopandas.GeoDataFrame``       GeoParquet
``dataframe``          ``pandas.DataFrame``             Parquet
``xarray.Dataset``     ``xarray.Dataset``               Zarr v3 in a zip file
``xarray.DataArray``   ``xarray.DataArray``             the same, one variable
``json``               dict / list / str / number /     JSON (tuples come back as lists)
                       bool / None
``bytes``              ``bytes``                        as is
=====================  ===============================  =====================================

Anything else is refused with the kinds it could be turned into.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from memories.errors import ConfigError, StorageError

__all__ = ["KINDS", "read_value", "write_value"]

KINDS = ("ndarray", "geodataframe", "dataframe", "xarray.Dataset", "xarray.DataArray", "json", "bytes")
"""The kinds of value a cache keeps."""
_DATAARRAY_VAR = "__dataarray__"


def write_value(value: Any, path: Path) -> tuple[str, dict[str, Any]]:
    """Write ``value`` to the new file ``path``; returns (kind, extra metadata to keep beside it).

    Raises:
        ConfigError: a value of no supported kind (or a NumPy array of objects, which needs pickle).
    """
    kind = kind_of(value)
    extra: dict[str, Any] = {}
    if kind == "bytes":
        path.write_bytes(value)
    elif kind == "ndarray":
        try:
            with path.open("wb") as f:
                _numpy().save(f, value, allow_pickle=False)
        except ValueError:
            raise ConfigError(
                f"a NumPy array of dtype {value.dtype} needs pickle to be stored; cache a numeric or string "
                "array, or a DataFrame"
            ) from None
    elif kind in ("geodataframe", "dataframe"):
        value.to_parquet(path)
    elif kind == "json":
        try:
            path.write_bytes(json.dumps(value, allow_nan=True).encode())
        except (TypeError, ValueError) as e:
            raise ConfigError(f"cannot store this {type(value).__name__} as JSON ({e}); {_choices()}") from None
    else:
        if kind == "xarray.DataArray":
            extra["name"] = value.name
            value = value.to_dataset(name=_DATAARRAY_VAR)
        _write_zarr_zip(value, path)
    return kind, extra


def read_value(kind: str, path: Path, extra: dict[str, Any]) -> Any:
    """The value of kind ``kind`` that :func:`write_value` wrote to ``path``.

    Raises:
        StorageError: an unknown kind (a cache written by a newer version).
    """
    if kind == "bytes":
        return path.read_bytes()
    if kind == "ndarray":
        with path.open("rb") as f:
            return _numpy().load(f, allow_pickle=False)
    if kind == "geodataframe":
        import geopandas as gpd

        return gpd.read_parquet(path)
    if kind == "dataframe":
        import pandas as pd

        return pd.read_parquet(path)
    if kind == "json":
        return json.loads(path.read_bytes())
    if kind in ("xarray.Dataset", "xarray.DataArray"):
        ds = _read_zarr_zip(path)
        if kind == "xarray.Dataset":
            return ds
        return ds[_DATAARRAY_VAR].rename(extra.get("name"))
    raise StorageError(f"cache entry {path} has kind {kind!r}, which this version cannot read; clear the cache")


def kind_of(value: Any) -> str:
    """The kind of ``value`` (see the module table).

    Raises:
        ConfigError: no supported kind.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    if value is None or isinstance(value, dict | list | tuple | str | int | float | bool):
        return "json"
    module = type(value).__module__.split(".")[0]
    if module == "numpy" and type(value).__name__ == "ndarray":
        return "ndarray"
    if module == "geopandas" and type(value).__name__ == "GeoDataFrame":
        return "geodataframe"
    if module == "pandas" and type(value).__name__ == "DataFrame":
        return "dataframe"
    if module == "xarray" and type(value).__name__ in ("Dataset", "DataArray"):
        return f"xarray.{type(value).__name__}"
    raise ConfigError(f"a cache cannot store a {type(value).__module__}.{type(value).__name__}; {_choices()}")


def _choices() -> str:
    return (
        "store a NumPy array, a (Geo)DataFrame, an xarray Dataset or DataArray, bytes, or JSON-able "
        "dicts, lists, strings and numbers"
    )


def _numpy() -> Any:
    import numpy as np

    return np


def _write_zarr_zip(ds: Any, path: Path) -> None:
    """The dataset as a Zarr v3 store, zipped (one file, so the cache's size and eviction see it whole)."""
    folder = Path(tempfile.mkdtemp(prefix="memories-cache-zarr-"))
    try:
        ds.to_zarr(str(folder / "store"), mode="w", consolidated=False, zarr_format=3)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
            for f in sorted((folder / "store").rglob("*")):
                if f.is_file():
                    z.write(f, f.relative_to(folder / "store").as_posix())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read_zarr_zip(path: Path) -> Any:
    import xarray as xr
    import zarr

    store = zarr.storage.ZipStore(os.fspath(path), mode="r")
    try:
        return xr.open_zarr(store, consolidated=False).load()
    finally:
        store.close()
