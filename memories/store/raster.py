"""Monthly raster products in versioned Zarr v3 (Icechunk): one repository per product and tile.

A store holds variables with dims ``(time, [band,] y, x)`` on the tile's declared
grid. The time axis counts months from the store's origin month; a month
partition writes only its own slice, so partitions of one tile can run at once
and a re-run replaces exactly its slice.

Each :meth:`MonthlyRasterStore.write_month` is one Icechunk commit (a snapshot)
carrying the product, tile, month and run id in its metadata: readers see a month
whole or not at all, a killed write commits nothing (the previous snapshot stays
the branch tip, its pixels untouched), and every earlier version stays readable by
snapshot id or by time (``as_of``). A ``written`` flag per month (1 = complete) is
set in the same commit as the month's pixels.

Concurrency: months of one tile write disjoint chunks, so concurrent commits are
rebased onto each other (``ConflictDetector``). Layout changes (create the store,
grow the time axis, a year at a time) are their own commits; a write that raced
a layout change is redone on the new layout. On a local root, Icechunk's file
storage is not safe for concurrent commits, so commits are serialized with a file
lock; on S3, Icechunk's conditional writes make the branch update atomic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from memories.errors import ProcessingError, StorageError
from memories.grid import TileGrid
from memories.months import add_months, month_index, month_key, parse_month
from memories.store.cf import GRID_MAPPING, georeference, product_attrs, text_array
from memories.store.migrate import current_raster_uri
from memories.store.paths import StorageRoot
from memories.store.raster_versions import BRANCH, RasterVersion, ancestry, snapshot_at_time
from memories.store.repository import commit_lock, quiet_local_storage_warning
from memories.store.slice_write import open_array, write_slice

WRITTEN = "written"
"""Per-month completeness flag (1 = the month's slice is complete)."""

GROW_MONTHS = 12
"""The time axis grows in steps of this many months, so layout commits are rare."""

WRITE_TRIES = 5
"""How often a write is redone when it raced a layout change of another writer."""

IN_MEMORY_BYTES = 128 * 2**20
"""A month slice up to this size is read whole by :func:`in_memory_if_small` (a 512 px composite is 14 MB)."""


def in_memory_if_small(ds: xr.Dataset, max_bytes: int = IN_MEMORY_BYTES) -> xr.Dataset:
    """``ds`` loaded into memory (one read of each chunk) when it holds at most ``max_bytes``, else as it is.

    The statistics and quality suites of a lazy slice read it one row block and band at a time, each
    read a new dask computation of the store's chunks: bounded memory at 10980 px, but at a few
    hundred pixels a partition's hundred small computations cost seconds where one read costs
    milliseconds. The values are the same either way; a larger slice stays lazy.
    """
    return ds.load() if ds.nbytes <= max_bytes else ds


class MonthlyRasterStore:
    """One raster product of one tile, versioned.

    Args:
        root: the storage root.
        product: product name, e.g. ``surface_reflectance``.
        grid: the tile grid every slice is on.
        origin_month: the first month of the time axis (``YYYY-MM``); months
            before it cannot be written.
        chunk_px: spatial chunk side in pixels.
    """

    def __init__(self, root: StorageRoot, product: str, grid: TileGrid, origin_month: str, chunk_px: int = 512) -> None:
        self.root = root
        self.product = product
        self.grid = grid
        self.origin_month = origin_month
        self.chunk_px = chunk_px
        self.uri = root.raster_uri(product, grid.tile_id)
        self.last_snapshot: str | None = None
        """The snapshot id of this object's last successful ``write_month``."""
        self._migrated = False

    # -- writing ------------------------------------------------------------
    def write_month(self, month: str, ds: xr.Dataset, *, run_id: str | None = None) -> str:
        """Write one month's slice as one commit; returns the new snapshot id.

        Variables have dims ``([band,] y, x)`` on the grid. The dataset may be
        dask-backed: it is computed while it is written, chunk by chunk, with
        whatever dask scheduler is active (each task writes its own chunks into a
        fork of the session, merged before the commit).
        """
        return self._commit_month(month, ds, lambda session, i: write_slice(session, i, ds, self.product), run_id)

    def write_month_rows(
        self,
        month: str,
        template: xr.Dataset,
        strips: Callable[[], Iterable[tuple[int, Mapping[str, np.ndarray]]]],
        *,
        run_id: str | None = None,
    ) -> str:
        """Write one month's slice strip of rows by strip of rows, as one commit; returns the new snapshot id.

        For a month too large to hold whole, or made strip by strip (a model's tiles): each strip is
        written as it comes and can be dropped after.

        Args:
            month: ``YYYY-MM``.
            template: the variables with their dims ``([band,] y, x)`` on the grid, dtypes and attrs; its
                values are not read (:func:`row_template` makes one that holds no pixels).
            strips: called to iterate ``(r0, {variable: values})``, each ``values`` ``([band,] rows, x)``
                for rows ``r0 .. r0 + rows`` across the whole width; together they cover the tile. Strips
                of a multiple of ``chunk_px`` rows write whole chunks. It is called once more if the commit
                has to be redone on a new layout (another writer grew the time axis meanwhile).
            run_id: recorded in the commit's metadata.
        """

        def write(session: Any, i: int) -> None:
            arrays = {name: open_array(session.store, str(name), "r+") for name in template.data_vars}
            for r0, block in strips():
                for name, values in block.items():
                    if name not in arrays:
                        raise ProcessingError(
                            f"{self.product}: a strip has {name!r}, not among {sorted(map(str, arrays))}"
                        )
                    n = values.shape[-2]
                    if values.shape[-1] != self.grid.shape[1] or not 0 <= r0 <= r0 + n <= self.grid.shape[0]:
                        raise ProcessingError(
                            f"{self.product}.{name}: a strip of shape {values.shape} at row {r0} does not fit "
                            f"the tile's {self.grid.shape} px; strips span the width"
                        )
                    lead = (slice(None),) * (values.ndim - 2)
                    arrays[name][(i, *lead, slice(r0, r0 + n), slice(None))] = values

        return self._commit_month(month, template, write, run_id)

    def _commit_month(self, month: str, ds: xr.Dataset, write: Callable[[Any, int], None], run_id: str | None) -> str:
        """Create or grow the layout for ``ds``'s variables, ``write(session, i)`` month ``i``, then commit."""
        self._check_dataset(ds)
        i = month_index(month, self.origin_month)
        if i < 0:
            raise StorageError(
                f"{self.product}/{self.grid.tile_id}: month {month} is before the store's origin "
                f"{self.origin_month}; start the partitions at or after {self.origin_month}"
            )
        # Variable attrs (units, long names) are the product's, fixed when its store is created;
        # readers' attrs (stackstac's RasterSpec, ...) are not (see memories.store.cf).
        ds = ds.copy()
        for name in ds.variables:
            ds[name].attrs = product_attrs(ds[name].attrs) if name in ds.data_vars else {}
        metadata = {"product": self.product, "tile": self.grid.tile_id, "month": month}
        if run_id:
            metadata["run_id"] = run_id
        import icechunk

        conflicts: list[str] = []
        for _ in range(WRITE_TRIES):
            repo = self._repo(create=True)
            with self._lock():
                self._ensure_layout(repo, ds, i + 1)
            session = repo.writable_session(BRANCH)
            write(session, i)
            open_array(session.store, WRITTEN, "r+")[i] = 1
            try:
                with self._lock():
                    snapshot = session.commit(
                        f"{self.product} {self.grid.tile_id} {month}",
                        metadata=metadata,
                        rebase_with=icechunk.ConflictDetector(),
                        rebase_tries=100,
                    )
            except icechunk.RebaseFailedError as e:
                # Another writer changed the layout (grew the time axis) meanwhile: redo on the new one.
                conflicts = [f"{c.conflict_type} at {c.path}" for c in e.conflicts]
                continue
            self.last_snapshot = str(snapshot)
            return self.last_snapshot
        raise StorageError(
            f"{self.uri}: month {month} could not be committed after {WRITE_TRIES} tries; conflicts: {conflicts}. "
            "Another writer is rewriting the same month or the layout; run the partition again."
        )

    # -- reading ------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the store has been created (its layout committed)."""
        import icechunk

        if not icechunk.Repository.exists(self._storage()):
            return False
        return _has_layout(self._repo().readonly_session(branch=BRANCH).store)

    def months(self, *, snapshot: str | None = None, as_of: datetime | None = None) -> list[str]:
        """The months whose slice is complete, oldest first (now, at a snapshot, or as of a time)."""
        if not self.exists():
            return []
        ds = self._open(snapshot=snapshot, as_of=as_of)
        if ds is None:
            return []
        flags = ds[WRITTEN].values
        return [month_key(pd.Timestamp(t).to_pydatetime()) for t, f in zip(ds["time"].values, flags) if f == 1]

    def read_month(self, month: str, *, snapshot: str | None = None, as_of: datetime | None = None) -> xr.Dataset:
        """The slice of one month (lazy), without the time dim.

        Args:
            month: ``YYYY-MM``.
            snapshot: read this snapshot id (a version recorded in the memory catalog).
            as_of: read the store as it stood at this instant (UTC if naive).
        """
        store = self._session_store(snapshot=snapshot, as_of=as_of) if self.exists() else None
        ds = (
            None if store is None else _month_slice(_open_lazy(store), month_index(month, self.origin_month), self.grid)
        )
        if ds is None:
            when = f" at snapshot {snapshot}" if snapshot else (f" as of {as_of.isoformat()}" if as_of else "")
            raise StorageError(
                f"{self.product} has no data for tile {self.grid.tile_id} month {month}{when}; "
                f"materialize {self.product} for partition {month}|{self.grid.tile_id} first"
            )
        return ds

    def read(self, *, snapshot: str | None = None, as_of: datetime | None = None) -> xr.Dataset:
        """All complete months (lazy), with a ``time`` dim."""
        ds = self._open(snapshot=snapshot, as_of=as_of) if self.exists() else None
        if ds is None:
            raise StorageError(f"{self.uri} does not exist; materialize {self.product} first")
        return ds.isel(time=np.flatnonzero(ds[WRITTEN].values == 1)).drop_vars(WRITTEN)

    def versions(self, month: str | None = None) -> list[RasterVersion]:
        """The snapshots of the store, newest first; only those that wrote ``month`` if given."""
        if not self.exists():
            return []
        out = ancestry(self._repo())
        return [v for v in out if v.month == month] if month else out

    def snapshot_at(self, as_of: datetime) -> str | None:
        """The snapshot id that was the branch tip at ``as_of`` (``None`` before the first commit)."""
        return snapshot_at_time(self.versions(), as_of)

    # -- maintenance ----------------------------------------------------------
    def collect_garbage(self, older_than: timedelta = timedelta(days=1), *, dry_run: bool = False) -> dict[str, int]:
        """Delete what no snapshot of this store references; see ``memories.store.maintenance``."""
        from memories.store.maintenance import collect_raster_garbage

        self._storage()  # a store still at its legacy name is moved first
        return collect_raster_garbage(self.root, self.uri, older_than, dry_run=dry_run)

    # -- helpers --------------------------------------------------------------
    def _storage(self) -> Any:
        """The store's Icechunk storage; a store still at its legacy name is moved first (once per object)."""
        quiet_local_storage_warning()
        if not self._migrated:
            current_raster_uri(self.root, self.uri)
            self._migrated = True
        return self.root.icechunk_storage(self.uri)

    def _repo(self, *, create: bool = False) -> Any:
        import icechunk

        storage = self._storage()
        if not create:
            try:
                return icechunk.Repository.open(storage)
            except icechunk.IcechunkError as e:
                raise StorageError(f"{self.uri} is not a readable raster store: {e}") from None
        with self._lock():
            try:
                return icechunk.Repository.open_or_create(storage)
            except icechunk.IcechunkError:
                # S3: another writer created it at the same moment.
                return icechunk.Repository.open(storage)

    def _open(self, *, snapshot: str | None = None, as_of: datetime | None = None) -> xr.Dataset | None:
        """The dataset at the branch tip, a snapshot, or as of a time; ``None`` if it did not exist then."""
        store = self._session_store(snapshot=snapshot, as_of=as_of)
        if store is None:
            return None
        return _georeferenced(xr.open_zarr(store, consolidated=False, zarr_format=3), self.grid)

    def _session_store(self, *, snapshot: str | None = None, as_of: datetime | None = None) -> Any:
        """The read-only Zarr store at the branch tip, a snapshot, or as of a time; ``None`` if it had no layout."""
        import icechunk

        repo = self._repo()
        try:
            if snapshot:
                session = repo.readonly_session(snapshot_id=snapshot)
            elif as_of is not None:
                sid = self.snapshot_at(as_of)
                if sid is None:
                    return None
                session = repo.readonly_session(snapshot_id=sid)
            else:
                session = repo.readonly_session(branch=BRANCH)
        except icechunk.IcechunkError as e:
            raise StorageError(f"{self.uri} has no snapshot {snapshot!r}; pick one of store.versions() ({e})") from None
        return session.store if _has_layout(session.store) else None

    def _ensure_layout(self, repo: Any, ds: xr.Dataset, n_months: int) -> None:
        """Create the store or grow its time axis to cover ``n_months`` (one layout commit)."""
        import icechunk

        stop = -(-n_months // GROW_MONTHS) * GROW_MONTHS
        for _ in range(WRITE_TRIES):
            session = repo.writable_session(BRANCH)
            if not _has_layout(session.store):
                self._template(ds, 0, stop).to_zarr(
                    session.store, mode="w-", compute=False, consolidated=False, zarr_format=3
                )
                message = f"layout {self.product} {self.grid.tile_id}: create, {stop} months"
            else:
                current = xr.open_zarr(session.store, consolidated=False, zarr_format=3)
                missing = set(ds.data_vars) - set(current.data_vars)
                if missing:
                    raise StorageError(
                        f"{self.uri} has no variables {sorted(map(str, missing))}; "
                        f"it holds {sorted(map(str, current.data_vars))}. "
                        "A product's variables are fixed when its store is created."
                    )
                have = current.sizes["time"]
                if n_months <= have:
                    return
                self._template(ds, have, stop).to_zarr(
                    session.store, append_dim="time", compute=False, consolidated=False, zarr_format=3
                )
                message = f"layout {self.product} {self.grid.tile_id}: grow to {stop} months"
            try:
                session.commit(message, metadata={"product": self.product, "tile": self.grid.tile_id, "layout": stop})
                return
            except (icechunk.ConflictError, icechunk.RebaseFailedError):
                continue  # another writer changed the layout first (S3 without lock): look again
        raise StorageError(f"{self.uri}: could not commit its layout; another writer keeps changing it")

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
            data = da.full(shape, nodata_value(var.dtype), dtype=var.dtype, chunks=chunks)
            out[str(name)] = (("time", *var.dims), data, var.attrs)
        coords: dict[str, Any] = {"time": times}
        if first == 0:
            coords.update(x=("x", self.grid.x), y=("y", self.grid.y))
            if "band" in ds.dims:
                coords["band"] = ("band", text_array(ds["band"].values))
        tmpl = georeference(xr.Dataset(out, coords=coords), self.grid)
        tmpl[WRITTEN] = (("time",), np.zeros(n, dtype=np.uint8))
        tmpl.attrs.update(self._attrs())
        encoding = {str(name): {"chunks": tmpl[name].data.chunksize} for name in ds.data_vars}
        for name in ds.data_vars:
            # Integer products keep their dtype (0 is nodata by convention, not masked).
            fill = nodata_value(ds[name].dtype)
            tmpl[name].encoding.update(encoding[str(name)], _FillValue=None if fill == 0 else fill)
        # One chunk per flag, so concurrent months never rewrite each other's flag.
        tmpl[WRITTEN].encoding.update(chunks=(1,))
        tmpl["time"].encoding.update(
            units="days since 1970-01-01", calendar="proleptic_gregorian", dtype="int64", chunks=(GROW_MONTHS,)
        )
        return tmpl if first == 0 else tmpl.drop_vars([c for c in ("x", "y", "band", GRID_MAPPING) if c in tmpl.coords])

    def _attrs(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "tile_id": self.grid.tile_id,
            "crs": self.grid.crs,
            "grid": self.grid.to_dict(),
            "origin_month": self.origin_month,
        }

    def _var_chunks(self, var: xr.DataArray) -> tuple[int, ...]:
        return tuple(1 if d == "band" else min(self.chunk_px, var.sizes[d]) for d in var.dims)

    def _check_dataset(self, ds: xr.Dataset) -> None:
        for name, var in ds.data_vars.items():
            if var.dims[-2:] != ("y", "x"):
                raise ProcessingError(f"{self.product}.{name} has dims {var.dims}; the last two must be (y, x)")
            if var.shape[-2:] != self.grid.shape:
                raise ProcessingError(
                    f"{self.product}.{name} is {var.shape[-2:]} px but tile {self.grid.tile_id} is {self.grid.shape}"
                )

    def _lock(self) -> contextlib.AbstractContextManager[Any]:
        """Serialize layout changes and commits between processes (see :func:`commit_lock`)."""
        return commit_lock(self.root, self.uri)


def row_template(grid: TileGrid, dtypes: Mapping[str, Any]) -> xr.Dataset:
    """``(y, x)`` variables on ``grid`` of these dtypes holding no pixels (zero strides): a template for
    :meth:`MonthlyRasterStore.write_month_rows`."""
    return xr.Dataset(
        {name: (("y", "x"), np.broadcast_to(np.zeros((), dtype=dtype), grid.shape)) for name, dtype in dtypes.items()}
    )


def open_raster_version(
    root: StorageRoot, uri: str, snapshot: str | None = None, month: str | None = None
) -> xr.Dataset:
    """A raster store at ``uri`` exactly as committed in ``snapshot`` (lazy); the branch tip if ``None``.

    With ``month`` (``YYYY-MM``), only that month's slice, without the time dim; an
    error if the month was not complete in that snapshot. No grid is needed: the
    store's own attributes and time coordinate describe it. A legacy ``.zarr`` URI
    (as the catalog recorded it) is read where the store is now.
    """
    import icechunk

    quiet_local_storage_warning()
    uri = current_raster_uri(root, uri)
    try:
        repo = icechunk.Repository.open(root.icechunk_storage(uri))
        session = repo.readonly_session(snapshot_id=snapshot) if snapshot else repo.readonly_session(branch=BRANCH)
    except icechunk.IcechunkError as e:
        raise StorageError(
            f"{uri} has no readable snapshot {snapshot!r} ({e}); use a version the catalog recorded"
        ) from None
    if not _has_layout(session.store):
        raise StorageError(f"{uri} has no raster layout in snapshot {snapshot}")
    if month is None:
        ds = xr.open_zarr(session.store, consolidated=False, zarr_format=3)
        ds = _georeferenced(ds, TileGrid.from_dict(ds.attrs["grid"]))
        return ds.isel(time=np.flatnonzero(ds[WRITTEN].values == 1)).drop_vars(WRITTEN)
    lazy = _open_lazy(session.store)
    keys = [month_key(pd.Timestamp(t).to_pydatetime()) for t in lazy["time"].values]
    ds = _month_slice(lazy, keys.index(month), None) if month in keys else None
    if ds is None:
        raise StorageError(f"{uri} holds no complete month {month} in snapshot {snapshot}")
    return ds


def _open_lazy(store: Any) -> xr.Dataset:
    """A store's dataset on xarray's lazy backend arrays (no dask): indexing it reads only the chunks it selects."""
    ds: xr.Dataset = xr.open_zarr(store, consolidated=False, zarr_format=3, chunks=None)
    return ds


def _month_slice(lazy: xr.Dataset, i: int, grid: TileGrid | None) -> xr.Dataset | None:
    """Month ``i`` of a store opened by :func:`_open_lazy` (lazy, without the time dim); ``None`` unless complete.

    The month is selected on the lazy backend arrays and only then chunked as stored, so its dask graph holds
    that month's chunks only, and only its own ``written`` flag is read: opened with dask first, every read built
    and culled a graph over all the months and read every month's flag, a cost that grew with the history.
    """
    if not 0 <= i < lazy.sizes["time"] or int(lazy[WRITTEN][i].values) != 1:
        return None
    ds = lazy.isel(time=i).drop_vars(WRITTEN)
    ds = ds.chunk({d: c for v in ds.data_vars.values() for d, c in _stored_chunks(v).items()})
    return _georeferenced(ds, grid or TileGrid.from_dict(ds.attrs["grid"]))


def _stored_chunks(var: xr.DataArray) -> dict[str, int]:
    """Chunk side per dim of a variable as its store encodes it (the time dim, when selected away, left out)."""
    chunks = var.encoding.get("preferred_chunks") or {}
    return {str(d): int(c) for d, c in chunks.items() if d in var.dims}


def _georeferenced(ds: xr.Dataset, grid: TileGrid) -> xr.Dataset:
    """A store's dataset with its grid mapping; stores written before it was stored get it from their grid."""
    return ds if GRID_MAPPING in ds.coords else georeference(ds, grid)


def _has_layout(store: Any) -> bool:
    import zarr

    try:
        group = zarr.open_group(store, mode="r", zarr_format=3)
    except (FileNotFoundError, KeyError, ValueError, zarr.errors.GroupNotFoundError):
        return False
    return WRITTEN in group


def nodata_value(dtype: np.dtype) -> Any:
    """The one nodata policy of stored products: NaN for floats, 0 for integers."""
    return np.nan if np.issubdtype(dtype, np.floating) else 0
