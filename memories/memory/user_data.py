"""Versioned stores for the data a user keeps in the temporal memory (``TemporalMemoryManager.store``).

Each stored item lives under ``StorageRoot.memory_uri("temporal", ...)`` and every
version of it stays readable by the version id the catalog records:

- numpy arrays and xarray ``DataArray``/``Dataset``: an Icechunk repository of their
  own (``<item>.zarr``, Zarr v3); each version is one commit and its snapshot id is
  the version id. Dask-backed data is computed while it is written.
- pandas ``DataFrame``: Parquet; ``GeoDataFrame``: GeoParquet 1.1 with a bbox
  covering (``<item>.parquet``); each version an immutable copy
  (:func:`memories.earth.gis.write_geoparquet`).
- mappings (and lists) of JSON values: JSON (``<item>.json``), one immutable copy per version.

Anything else is refused with the list of what is accepted. The kind written is
returned and recorded, so :func:`read_user_data` gives back the same type.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal

import numpy as np

from memories.errors import ConfigError, StorageError
from memories.store.paths import StorageRoot, new_version_id

__all__ = ["MEMORY_KIND", "DataKind", "jsonable", "read_user_data", "user_data_kind", "write_user_data"]

MEMORY_KIND = "temporal"
"""The ``StorageRoot.memory_uri`` kind of user data."""

DataKind = Literal["array", "dataarray", "dataset", "dataframe", "geodataframe", "json"]

_ARRAY_VAR = "data"
"""The variable name a plain numpy array is stored under."""


def user_data_kind(data: Any) -> DataKind:
    """Which store ``data`` goes to.

    Raises:
        ConfigError: a type the temporal memory does not store (the message lists those it does).
    """
    import pandas as pd
    import xarray as xr

    if isinstance(data, np.ndarray):
        if data.dtype.kind in "OV":
            raise ConfigError(
                f"data is a numpy array of dtype {data.dtype}; store numeric, boolean or datetime arrays "
                "(strings and objects: put them in a mapping or a DataFrame)"
            )
        return "array"
    if isinstance(data, xr.DataArray):
        return "dataarray"
    if isinstance(data, xr.Dataset):
        return "dataset"
    if isinstance(data, pd.DataFrame):
        import geopandas as gpd

        return "geodataframe" if isinstance(data, gpd.GeoDataFrame) else "dataframe"
    if isinstance(data, Mapping | list | tuple):
        return "json"
    raise ConfigError(
        f"data of type {type(data).__name__} cannot be stored in the temporal memory; store a numpy array, "
        "an xarray DataArray or Dataset, a pandas DataFrame or GeoDataFrame, or a mapping of JSON values"
    )


def write_user_data(root: StorageRoot, item: str, data: Any) -> tuple[DataKind, str, str]:
    """Write ``data`` as a new version of ``item``; returns (kind, URI of the item's store, version id)."""
    kind = user_data_kind(data)
    if kind in ("array", "dataarray", "dataset"):
        uri = root.memory_uri(MEMORY_KIND, f"{item}.zarr")
        return kind, uri, _write_zarr(root, uri, _as_dataset(data, kind), item)
    if kind in ("dataframe", "geodataframe"):
        uri = root.memory_uri(MEMORY_KIND, f"{item}.parquet")
        return kind, uri, _write_table(root, uri, data, kind)
    uri = root.memory_uri(MEMORY_KIND, f"{item}.json")
    version = new_version_id()
    root.write_bytes(root.version_uri(uri, version), json.dumps(jsonable(data, "data"), allow_nan=False).encode())
    return kind, uri, version


def read_user_data(root: StorageRoot, kind: str, uri: str, version: str) -> Any:
    """The data of one version, of the type it was stored as (xarray objects lazily, Zarr-backed)."""
    if kind in ("array", "dataarray", "dataset"):
        ds = _open_zarr(root, uri, version)
        if kind == "array":
            return np.asarray(ds[_ARRAY_VAR].values)
        if kind == "dataarray":
            name = ds.attrs.get("_dataarray_name")
            da = ds[_ARRAY_VAR]
            da.name = name
            return da
        return ds
    if kind in ("dataframe", "geodataframe"):
        raw = root.read_bytes(root.version_uri(uri, version))
        if kind == "geodataframe":
            import geopandas as gpd

            return gpd.read_parquet(io.BytesIO(raw))
        import pandas as pd

        return pd.read_parquet(io.BytesIO(raw))
    if kind == "json":
        return json.loads(root.read_bytes(root.version_uri(uri, version)))
    raise StorageError(f"{uri}: unknown stored kind {kind!r}; the record was written by a newer version of the code")


def jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON values: numpy scalars and arrays become numbers and lists, dates ISO strings.

    Raises:
        ConfigError: a value JSON cannot hold (NaN, an object); the message names where it is.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | np.integer | np.floating | np.bool_):
        v = value.item() if isinstance(value, np.generic) else value
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where} is {v}; JSON holds finite numbers only (use None for 'unknown')")
        return v
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value.tolist())]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ConfigError(f"{where} is a {type(value).__name__}; metadata and mappings hold JSON values only")


# -- helpers ---------------------------------------------------------------------


def _as_dataset(data: Any, kind: str) -> Any:
    import xarray as xr

    if kind == "array":
        return xr.Dataset({_ARRAY_VAR: xr.DataArray(data, dims=[f"dim_{i}" for i in range(data.ndim)])})
    if kind == "dataarray":
        ds = data.to_dataset(name=_ARRAY_VAR)
        ds.attrs["_dataarray_name"] = None if data.name is None else str(data.name)
    else:
        ds = data.copy()
    # Fixed-width unicode has no Zarr v3 data type; variable-length strings do (as the raster store writes bands).
    for name, var in ds.variables.items():
        if var.dtype.kind == "U":
            ds[name] = var.astype(object)
    return ds


def _write_zarr(root: StorageRoot, uri: str, ds: Any, item: str) -> str:
    import icechunk

    from memories.store.raster_versions import BRANCH
    from memories.store.repository import commit_lock, quiet_local_storage_warning

    quiet_local_storage_warning()
    ds = ds.compute()
    try:
        json.dumps({**ds.attrs, **{f"{k}": v.attrs for k, v in ds.variables.items()}}, default=_attr_default)
    except TypeError as e:
        raise ConfigError(f"attributes of the data are not JSON values ({e}); keep numbers, strings and lists") from e
    with commit_lock(root, uri):
        storage = root.icechunk_storage(uri)
        repo = icechunk.Repository.open_or_create(storage)
        session = repo.writable_session(BRANCH)
        # Every version replaces the whole item; earlier snapshots keep the earlier versions.
        ds.to_zarr(session.store, mode="w", consolidated=False, zarr_format=3)
        return str(session.commit(f"temporal memory item {item}", metadata={"item": item}))


def _open_zarr(root: StorageRoot, uri: str, version: str) -> Any:
    import icechunk
    import xarray as xr

    from memories.store.repository import quiet_local_storage_warning

    quiet_local_storage_warning()
    try:
        session = icechunk.Repository.open(root.icechunk_storage(uri)).readonly_session(snapshot_id=version)
    except icechunk.IcechunkError as e:
        raise StorageError(
            f"{uri} has no readable version {version!r} ({e}); use a record the catalog returns"
        ) from None
    return xr.open_zarr(session.store, consolidated=False, zarr_format=3)


def _write_table(root: StorageRoot, uri: str, frame: Any, kind: str) -> str:
    if kind == "geodataframe":
        from memories.earth.gis import write_geoparquet

        write_geoparquet(root, uri, frame)
        version = root.current_version(uri)
        assert version is not None
        return version
    buf = io.BytesIO()
    frame.to_parquet(buf)
    version = new_version_id()
    root.write_bytes(root.version_uri(uri, version), buf.getvalue())
    return version


def _attr_default(o: Any) -> Any:
    if isinstance(o, np.generic | np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} {o!r}")
