"""Garbage collection of a raster store: a killed write's orphan chunks go, every committed version stays.

A child process re-writes a month of a real Icechunk store, signals once half of
its chunks are written, and is killed with SIGKILL before its commit (as in
``tests/dagster_project/test_durability.py``). Its chunks are on disk but no
snapshot references them: ``collect_garbage`` deletes exactly those files.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from memories.errors import StorageError
from memories.grid import TileGrid
from memories.store import StorageRoot
from memories.store.raster import MonthlyRasterStore

REPO = Path(__file__).resolve().parents[3]
GRID = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=128, height=128)
CHUNK = 32

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import dask, dask.array as da, numpy as np, xarray as xr
    from memories.grid import TileGrid
    from memories.store import StorageRoot
    from memories.store.raster import MonthlyRasterStore

    root_uri, month, seed, marker = sys.argv[1:5]
    grid = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=128, height=128)
    calls = [0]

    def block(x, block_info=None):
        calls[0] += 1
        if calls[0] == 17:  # half of the 32 blocks computed, most written
            Path(marker).write_text("writing")
            time.sleep(120)  # the parent kills us here, mid-write
        return x

    values = np.random.default_rng(int(seed)).random((2, 128, 128), dtype=np.float32)
    data = da.from_array(values, chunks=(1, 32, 32)).map_blocks(block, dtype=np.float32)
    ds = xr.Dataset({"reflectance": (("band", "y", "x"), data)}, coords={"band": ["red", "nir"]})
    store = MonthlyRasterStore(StorageRoot(root_uri), "surface_reflectance", grid, "2023-01", chunk_px=32)
    with dask.config.set(scheduler="synchronous"):
        store.write_month(month, ds)
    """
)


def _values(seed: int) -> xr.Dataset:
    data = np.random.default_rng(seed).random((2, GRID.height, GRID.width), dtype=np.float32)
    return xr.Dataset({"reflectance": (("band", "y", "x"), data)}, coords={"band": ["red", "nir"]})


def _chunk_files(store: MonthlyRasterStore) -> dict[str, int]:
    """Chunk file name -> size (bytes)."""
    folder = Path(store.root.local_path(store.uri), "chunks")
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def _every_version(store: MonthlyRasterStore) -> dict[tuple[str, str], np.ndarray]:
    """(snapshot id, month) -> pixels, for every month complete in every snapshot."""
    return {
        (v.snapshot_id, m): store.read_month(m, snapshot=v.snapshot_id)["reflectance"].values
        for v in store.versions()
        for m in store.months(snapshot=v.snapshot_id)
    }


def test_collect_garbage_frees_a_killed_writes_chunks_and_keeps_every_version(tmp_path):
    root = StorageRoot((tmp_path / "store").as_uri())
    store = MonthlyRasterStore(root, "surface_reflectance", GRID, "2023-01", chunk_px=CHUNK)
    for month, seed in (("2023-05", 1), ("2023-06", 2), ("2023-05", 3)):  # 2023-05 twice: two versions
        store.write_month(month, _values(seed))
    versions_before = _every_version(store)
    snapshots_before = [v.snapshot_id for v in store.versions()]
    chunks_before = _chunk_files(store)
    assert store.collect_garbage(older_than=timedelta(0))["bytes_deleted"] == 0  # nothing orphaned yet

    marker = tmp_path / "mid-write"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, root.uri, "2023-05", "4", str(marker)],
        env=env,
        start_new_session=True,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.05)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    orphans = {k: v for k, v in _chunk_files(store).items() if k not in chunks_before}
    assert orphans, "the killed child wrote no chunks"

    # Young orphans are kept by the default age limit (a write may still be in flight).
    assert store.collect_garbage()["bytes_deleted"] == 0
    assert store.collect_garbage(older_than=timedelta(0), dry_run=True)["bytes_deleted"] == sum(orphans.values())
    assert _chunk_files(store).keys() == chunks_before.keys() | orphans.keys()

    freed = store.collect_garbage(older_than=timedelta(0))
    assert freed["bytes_deleted"] == sum(orphans.values()) > 0
    assert freed["chunks_deleted"] == len(orphans)
    assert freed["snapshots_deleted"] == 0
    assert _chunk_files(store) == chunks_before
    # Every committed version reads back identical.
    assert [v.snapshot_id for v in store.versions()] == snapshots_before
    after = _every_version(store)
    assert after.keys() == versions_before.keys() and len(after) == 5  # 1 + 2 + 2 months over 3 commits
    for key, pixels in versions_before.items():
        np.testing.assert_array_equal(after[key], pixels, err_msg=str(key))
    np.testing.assert_array_equal(store.read_month("2023-05")["reflectance"].values, _values(3)["reflectance"].values)


def test_collect_garbage_of_a_missing_store_frees_nothing_and_rejects_negative_ages(tmp_path):
    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "surface_reflectance", GRID, "2023-01")
    assert store.collect_garbage(older_than=timedelta(0)) == {
        "bytes_deleted": 0,
        "chunks_deleted": 0,
        "manifests_deleted": 0,
        "snapshots_deleted": 0,
        "attributes_deleted": 0,
        "transaction_logs_deleted": 0,
    }
    with pytest.raises(StorageError, match="negative"):
        store.collect_garbage(older_than=timedelta(hours=-1))
