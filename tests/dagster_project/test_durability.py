"""Durability of the versioned raster store and the catalog under kill -9 and concurrent writers.

A child process starts re-writing a tile-month, signals once it has written chunks
to the store, and is killed with SIGKILL mid-write. The store must stay readable,
the previous version's pixels identical, the catalog without a new open version,
and a re-run correct. Then several processes write different months of one tile at
once, each recording its snapshot in the catalog: every month is present, correct,
and loadable at the version the catalog names.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from memories.grid import TileGrid
from memories.memory.catalog import MemoryCatalog
from memories.memory.temporal import TemporalMemory
from memories.months import month_range
from memories.store import StorageRoot
from memories.store.raster import MonthlyRasterStore

REPO = Path(__file__).resolve().parents[2]
GRID = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=128, height=128)
CHUNK = 32

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import dask, dask.array as da, numpy as np, xarray as xr
    from memories.grid import TileGrid
    from memories.memory.catalog import MemoryCatalog
    from memories.months import month_range
    from memories.store import StorageRoot
    from memories.store.raster import MonthlyRasterStore

    root_uri, catalog_path, month, seed, marker = sys.argv[1:6]
    grid = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=128, height=128)
    calls = [0]

    def block(x, block_info=None):
        calls[0] += 1
        if marker != "-" and calls[0] == 17:  # half of the 32 blocks computed, most written
            Path(marker).write_text("writing")
            time.sleep(120)  # the parent kills us here, mid-write
        return x

    values = np.random.default_rng(int(seed)).random((2, 128, 128), dtype=np.float32)
    data = da.from_array(values, chunks=(1, 32, 32)).map_blocks(block, dtype=np.float32)
    ds = xr.Dataset({"reflectance": (("band", "y", "x"), data)}, coords={"band": ["red", "nir"]})
    store = MonthlyRasterStore(StorageRoot(root_uri), "surface_reflectance", grid, "2023-01", chunk_px=32)
    with dask.config.set(scheduler="synchronous"):
        snapshot = store.write_month(month, ds, run_id=f"run-{month}-{seed}")
    start, end = month_range(month)
    MemoryCatalog.open(catalog_path).record(
        asset="surface_reflectance", uri=store.uri, tile=grid.tile_id, partition=month,
        valid_from=start, valid_to=end, version_id=snapshot, run_id=f"run-{month}-{seed}",
    )
    """
)


def _values(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((2, GRID.height, GRID.width), dtype=np.float32)


def _child(root: StorageRoot, catalog: Path, month: str, seed: int, marker: str = "-") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, root.uri, str(catalog), month, str(seed), marker],
        env=env,
        start_new_session=True,
        stderr=subprocess.PIPE,
    )


def _chunk_files(root: StorageRoot, store: MonthlyRasterStore) -> int:
    return sum(1 for _ in Path(root.local_path(store.uri), "chunks").iterdir())


def test_killed_write_leaves_previous_version_intact_and_rerun_is_correct(tmp_path):
    root = StorageRoot((tmp_path / "store").as_uri())
    catalog_path = tmp_path / "catalog.sqlite"
    store = MonthlyRasterStore(root, "surface_reflectance", GRID, "2023-01", chunk_px=CHUNK)
    first = _child(root, catalog_path, "2023-05", 1)
    assert first.wait(120) == 0, first.stderr.read().decode() if first.stderr else ""
    catalog = MemoryCatalog.open(catalog_path)
    [v1] = catalog.history("surface_reflectance", tile="33TVM", partition="2023-05")
    snapshots_before = [v.snapshot_id for v in store.versions()]
    chunks_before = _chunk_files(root, store)

    marker = tmp_path / "mid-write"
    victim = _child(root, catalog_path, "2023-05", 2, str(marker))
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert victim.poll() is None, victim.stderr.read().decode() if victim.stderr else ""
        assert time.monotonic() < deadline, "the child never started writing"
        time.sleep(0.05)
    # Mid-write: the child's first chunks are on disk, its commit is not.
    assert _chunk_files(root, store) > chunks_before
    os.killpg(victim.pid, signal.SIGKILL)
    assert victim.wait(30) == -signal.SIGKILL

    # Readable, unchanged: same snapshots, same pixels, no new catalog version.
    assert [v.snapshot_id for v in store.versions()] == snapshots_before
    assert store.months() == ["2023-05"]
    np.testing.assert_array_equal(store.read_month("2023-05")["reflectance"].values, _values(1))
    hist = catalog.history("surface_reflectance", tile="33TVM", partition="2023-05")
    assert [(h.version, h.version_id, h.transaction_to) for h in hist] == [(1, v1.version_id, None)]

    # The re-run commits a new version on top; the old one stays loadable through the memory.
    rerun = _child(root, catalog_path, "2023-05", 2)
    assert rerun.wait(120) == 0, rerun.stderr.read().decode() if rerun.stderr else ""
    np.testing.assert_array_equal(store.read_month("2023-05")["reflectance"].values, _values(2))
    old, new = catalog.history("surface_reflectance", tile="33TVM", partition="2023-05")
    assert old.transaction_to == new.transaction_from and new.transaction_to is None
    assert new.version_id == store.versions()[0].snapshot_id
    assert store.versions()[0].metadata == {
        "product": "surface_reflectance",
        "tile": "33TVM",
        "month": "2023-05",
        "run_id": "run-2023-05-2",
    }
    memory = TemporalMemory(catalog, root)
    np.testing.assert_array_equal(memory.load(old)["reflectance"].values, _values(1))
    np.testing.assert_array_equal(memory.load(new)["reflectance"].values, _values(2))


def test_concurrent_months_of_one_tile_all_land_and_match_their_catalog_versions(tmp_path):
    root = StorageRoot((tmp_path / "store").as_uri())
    catalog_path = tmp_path / "catalog.sqlite"
    MemoryCatalog.open(catalog_path)
    months = {"2023-02": 12, "2023-03": 13, "2023-07": 17, "2024-02": 24}  # 2024-02 grows the time axis
    procs = {m: _child(root, catalog_path, m, seed) for m, seed in months.items()}
    for m, p in procs.items():
        assert p.wait(180) == 0, f"{m}: {p.stderr.read().decode() if p.stderr else ''}"
    store = MonthlyRasterStore(root, "surface_reflectance", GRID, "2023-01", chunk_px=CHUNK)
    assert store.months() == sorted(months)
    memory = TemporalMemory(MemoryCatalog.open(catalog_path), root)
    records = memory.query(tile="33TVM", asset="surface_reflectance")
    assert [r.partition for r in records] == sorted(months)
    for r in records:
        np.testing.assert_array_equal(store.read_month(r.partition)["reflectance"].values, _values(months[r.partition]))
        np.testing.assert_array_equal(memory.load(r)["reflectance"].values, _values(months[r.partition]))
        assert month_range(r.partition)[0].isoformat(timespec="microseconds") == r.valid_from
    committed = [v.month for v in store.versions() if v.month]
    assert sorted(committed) == sorted(months)


@pytest.fixture(autouse=True)
def _no_stray_children():
    yield
