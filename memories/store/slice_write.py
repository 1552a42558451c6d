"""Writing one month's slice of a :class:`~memories.store.raster.MonthlyRasterStore` into an Icechunk session.

Eager (numpy) variables are assigned whole. Lazy (dask) variables are computed while they are written: each
dask block becomes a task that writes its chunk into a fork of the session, the forks are merged into the
session, and the store commits once (the store's caller does). The tasks run a few rows of chunks at a time,
in row order, with enough chunks per group to keep every scheduler thread busy: computed all at once, the
threaded scheduler starts reads all over the tile and holds their scenes (at 10980 px, twice the memory).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import xarray as xr

from memories.errors import ProcessingError


def write_slice(session: Any, i: int, ds: xr.Dataset, product: str) -> None:
    """Write each variable of ``ds`` (``product``'s) into month ``i`` of the session's arrays (dask: through
    a fork per task)."""
    import dask

    store = session.store
    lazy: list[tuple[str, Any]] = []
    for name, var in ds.data_vars.items():
        arr = open_array(store, str(name), "r+")
        stored_dims = tuple(arr.metadata.dimension_names or ())[1:]
        if stored_dims and set(stored_dims) == set(var.dims):
            var = var.transpose(*stored_dims)
        if var.shape != tuple(arr.shape[1:]):
            raise ProcessingError(f"{product}.{name} has shape {var.shape}; the store holds {tuple(arr.shape[1:])}")
        if dask.is_dask_collection(var.data):
            lazy.append((str(name), var.data.rechunk(tuple(arr.chunks[1:]))))
        else:
            arr[i] = np.asarray(var.values)
    if not lazy:
        return
    if session.has_uncommitted_changes:
        # A fork needs a clean session: write the numpy variables after the dask ones.
        raise ProcessingError(f"{product}: mix of numpy and dask variables; pass all lazy or all eager")
    fork = session.fork()
    # Optimize the variables together, then compute without re-optimizing: blockwise fusion per
    # write task would otherwise give each variable its own copy of shared work (a composite's
    # median and spread come from one sort) and compute it twice.
    rows: dict[int, list[Any]] = {}
    for name, data in lazy:
        # Blocks as delayed objects of the unoptimized graph: passing ``data.blocks[idx]`` to
        # ``dask.delayed`` optimizes each block's graph on its own, and work shared by several
        # variables (a composite's median and spread come from one sort) would run once per variable.
        blocks = data.to_delayed(optimize_graph=False)
        for idx in itertools.product(*(range(len(c)) for c in data.chunks)):
            starts = [sum(c[:k]) for c, k in zip(data.chunks, idx)]
            sel = (i, *(slice(s, s + c[k]) for s, c, k in zip(starts, data.chunks, idx)))
            rows.setdefault(starts[-2], []).append(dask.delayed(_write_block)(fork, name, sel, blocks[idx]))
    # Every variable's blocks of a row are in one group, so work they share still runs once; only a
    # map_overlap's halo (terrain's 1 px) is computed again by the next group that needs it.
    forks = []
    for group in row_groups(rows, per_row=len(lazy[0][1].chunks[-1]), threads=compute_threads()):
        forks += dask.compute(*group)
    session.merge(*{id(f): f for f in forks}.values())


def row_groups(rows: Mapping[int, list[Any]], per_row: int, threads: int) -> Iterator[list[Any]]:
    """The write tasks by row of chunks (``rows``: first pixel row -> tasks), in row order, grouped so each
    group spans at least ``2 * threads`` chunks (``per_row`` chunks to a row)."""
    group: list[Any] = []
    spanned = 0
    for r in sorted(rows):
        group += rows[r]
        spanned += per_row
        if spanned >= 2 * threads:
            yield group
            group, spanned = [], 0
    if group:
        yield group


def compute_threads() -> int:
    """Threads of the active dask scheduler: a distributed client's workers' together, else the local pool's."""
    import dask

    if "distributed" in sys.modules:
        from distributed import default_client

        try:
            return max(1, sum(default_client().nthreads().values()))  # type: ignore[no-untyped-call]
        except ValueError:  # no client: the local scheduler computes
            pass
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def _write_block(fork: Any, path: str, sel: tuple[Any, ...], block: np.ndarray) -> Any:
    """Write one dask block into a fork of the session; returns the fork to merge."""
    open_array(fork.store, path, "r+")[sel] = block
    return fork


def open_array(store: Any, path: str, mode: str) -> Any:
    """The Zarr v3 array at ``path`` of an Icechunk store."""
    import zarr

    return zarr.open_array(store, path=path, mode=mode, zarr_format=3)
