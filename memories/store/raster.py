"""Monthly raster products in Zarr v3: one store per product and tile, one slice per month.

A store holds variables with dims ``(time, [band,] y, x)`` on the tile's declared
grid. The time axis counts months from the store's origin month; a month
partition writes only its own slice, so partitions of one tile can run at once
and a re-run replaces exactly its slice. A ``written`` flag per month is set only
after the slice is complete: readers see a month whole or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from memories.errors import ProcessingError, StorageError
from memories.grid import TileGrid
from memories.months import add_months, month_index, month_key, parse_month
from memories.store.paths import StorageRoot

WRITTEN = "written"
"""Per-month commit flag (1 = the month's slice is complete)."""


class MonthlyRasterStore:
    """One raster product of one tile.

    Args:
        root: the storage root.
        product: product name, e.g. ``surface_reflectance``.
        grid: the tile grid every slice is on.
        origin_month: the first month of the time axis (``YYYY-MM``); months
            before it cannot be written.
        chunk_px: spatial chunk side in pixels.
    """

    def __init__(
        self, root: StorageRoot, product: str, grid: TileGrid, origin_month: str, chunk_px: int = 512
    ) -> None:
        self.root = root
        self.product = product
        self.grid = grid
        self.origin_month = origin_month
        self.chunk_px = chunk_px
        self.uri = root.raster_uri(product, grid.tile_id)

    # -- writing ------------------------------------------------------------
    def write_month(self, month: str, ds: xr.Dataset) -> None:
        """Write one month's slice; variables have dims ``([band,] y, x)`` on the grid.

        The dataset may be dask-backed: it is computed while it is written, chunk by
        chunk, with whatever dask scheduler is active.
        """
        self._check_dataset(ds)
        # Readers' attrs (stackstac's RasterSpec, ...) are not part of the product.
        ds = ds.copy()
        for name in ds.variables:
            ds[name].attrs = {}
        i = month_index(month, self.origin_month)
        if i < 0:
            raise StorageError(
                f"{self.product}/{self.grid.tile_id}: month {month} is before the store's origin "
                f"{self.origin_month}; start the partitions at or after {self.origin_month}"
            )
        with self._lock():
            self._ensure_layout(ds, i + 1)
            self._set_written(i, 0)
        t = np.array([parse_month(month).replace(tzinfo=None)], dtype="datetime64[ns]")
        slice_ds = ds.drop_vars([c for c in ds.coords if c not in ds.dims or c in ("x", "y", "band")])
        slice_ds = slice_ds.expand_dims(time=t).drop_vars("time")
        slice_ds = slice_ds.chunk(self._chunks(slice_ds))
        slice_ds.attrs = self._attrs()  # a region write rewrites the group's attributes
        slice_ds.to_zarr(
            self._store(), region={"time": slice(i, i + 1)}, consolidated=False, zarr_format=3
        )
        self._set_written(i, 1)

    # -- reading ------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the store has been created."""
        return self.root.exists(self.uri + "/zarr.json")

    def months(self) -> list[str]:
        """The months whose slice is complete, oldest first."""
        if not self.exists():
            return []
        ds = self._open()
        flags = ds[WRITTEN].values
        return [month_key(pd.Timestamp(t).to_pydatetime()) for t, f in zip(ds["time"].values, flags) if f == 1]

    def read_month(self, month: str) -> xr.Dataset:
        """The slice of one month (lazy), without the time dim."""
        if month not in self.months():
            raise StorageError(
                f"{self.product} has no data for tile {self.grid.tile_id} month {month}; "
                f"materialize {self.product} for partition {month}|{self.grid.tile_id} first"
            )
        ds = self._open()
        return ds.isel(time=month_index(month, self.origin_month)).drop_vars(WRITTEN)

    def read(self) -> xr.Dataset:
        """All complete months (lazy), with a ``time`` dim."""
        if not self.exists():
            raise StorageError(f"{self.uri} does not exist; materialize {self.product} first")
        ds = self._open()
        return ds.isel(time=np.flatnonzero(ds[WRITTEN].values == 1)).drop_vars(WRITTEN)

    # -- helpers --------------------------------------------------------------
    def _store(self) -> Any:
        return self.root.zarr_store(self.uri)

    def _open(self) -> xr.Dataset:
        return xr.open_zarr(self._store(), consolidated=False, zarr_format=3)

    def _ensure_layout(self, ds: xr.Dataset, n_months: int) -> None:
        """Create the store or grow its time axis to ``n_months`` (under the lock)."""
        if not self.exists():
            self._template(ds, 0, n_months).to_zarr(
                self._store(), mode="w-", compute=False, consolidated=False, zarr_format=3
            )
            return
        current = self._open()
        missing = set(ds.data_vars) - set(current.data_vars)
        if missing:
            raise StorageError(
                f"{self.uri} has no variables {sorted(map(str, missing))}; "
                f"it holds {sorted(map(str, current.data_vars))}. "
                "A product's variables are fixed when its store is created."
            )
        have = current.sizes["time"]
        if n_months > have:
            self._template(ds, have, n_months).to_zarr(
                self._store(), append_dim="time", compute=False, consolidated=False, zarr_format=3
            )

    def _template(self, ds: xr.Dataset, first: int, stop: int) -> xr.Dataset:
        """An all-fill dataset for months [first, stop) with coordinates and attrs."""
        import dask.array as da

        origin = parse_month(self.origin_month)
        times = np.array(
            [add_months(origin, k).replace(tzinfo=None) for k in range(first, stop)], dtype="datetime64[ns]"
        )
        n = len(times)
        out: dict[str, Any] = {}
        for name, var in ds.data_vars.items():
            shape = (n, *var.shape)
            chunks = (1, *self._var_chunks(var))
            fill = _fill_value(var.dtype)
            out[str(name)] = (("time", *var.dims), da.full(shape, fill, dtype=var.dtype, chunks=chunks))
        out[WRITTEN] = (("time",), np.zeros(n, dtype=np.uint8))
        coords: dict[str, Any] = {"time": times}
        if first == 0:
            coords.update(x=("x", self.grid.x), y=("y", self.grid.y))
            if "band" in ds.dims:
                coords["band"] = ("band", np.array([str(b) for b in ds["band"].values], dtype=object))
        tmpl = xr.Dataset(out, coords=coords)
        tmpl.attrs.update(self._attrs())  # appends rewrite the group's attributes too
        encoding = {str(name): {"chunks": tmpl[name].data.chunksize} for name in ds.data_vars}
        for name in ds.data_vars:
            # Integer products keep their dtype (0 is nodata by convention, not masked).
            fill = _fill_value(ds[name].dtype)
            tmpl[name].encoding.update(encoding[str(name)], _FillValue=None if fill == 0 else fill)
        # One chunk per flag, so concurrent months never rewrite each other's flag.
        tmpl[WRITTEN].encoding.update(chunks=(1,))
        tmpl["time"].encoding.update(units="days since 1970-01-01", calendar="proleptic_gregorian", dtype="int64")
        return tmpl if first == 0 else tmpl.drop_vars([c for c in ("x", "y", "band") if c in tmpl.coords])

    def _attrs(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "tile_id": self.grid.tile_id,
            "crs": self.grid.crs,
            "grid": self.grid.to_dict(),
            "origin_month": self.origin_month,
        }

    def _var_chunks(self, var: xr.DataArray) -> tuple[int, ...]:
        return tuple(
            1 if d == "band" else min(self.chunk_px, var.sizes[d]) for d in var.dims
        )

    def _chunks(self, ds: xr.Dataset) -> dict[str, int]:
        c = {"time": 1, "y": min(self.chunk_px, self.grid.height), "x": min(self.chunk_px, self.grid.width)}
        if "band" in ds.dims:
            c["band"] = 1
        return c

    def _set_written(self, i: int, value: int) -> None:
        import zarr

        arr = zarr.open_array(self._store(), path=WRITTEN, mode="r+", zarr_format=3)
        arr[i] = value

    def _check_dataset(self, ds: xr.Dataset) -> None:
        for name, var in ds.data_vars.items():
            if var.dims[-2:] != ("y", "x"):
                raise ProcessingError(f"{self.product}.{name} has dims {var.dims}; the last two must be (y, x)")
            if var.shape[-2:] != self.grid.shape:
                raise ProcessingError(
                    f"{self.product}.{name} is {var.shape[-2:]} px but tile {self.grid.tile_id} is {self.grid.shape}"
                )

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialize layout changes (create, grow) between processes on a local root.

        S3 has no locks: on an S3 root, create a tile's store with one partition
        before running its other months at once.
        """
        if not self.root.is_local:
            yield
            return
        import os

        from filelock import FileLock

        path = self.root.local_path(self.uri) + ".lock"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with FileLock(path, timeout=120):
            yield


def _fill_value(dtype: np.dtype) -> Any:
    """The one nodata policy of stored products: NaN for floats, 0 for integers."""
    return np.nan if np.issubdtype(dtype, np.floating) else 0

