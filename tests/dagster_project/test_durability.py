"""Durability of the versioned raster store and the catalog under kill -9 and concurrent writers.

A child process starts re-writing a tile-month, signals once it has written chunks
to the store, and is killed with SIGKILL mid-write. The store must stay readable,
the previous version's pixels identical, the catalog without a new open version,
and a re-run correct. Then several processes write different months of one tile at
once, each recording its snapshot in the catalog: every month is present, correct,
and loadable at the version the catalog names.

The same through Dagster: a child process runs the code location's ``ingest_job``
(``stac_items`` and ``surface_reflectance`` of one tile-month, on a persistent
instance) and is killed with SIGKILL after its first block is in the store (see
``_dagster_run_child.py``); two Dagster runs of two months of one tile create and
fill a fresh store at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import xarray as xr
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus

from assets.partitions import FIRST_MONTH, TILES, partition_key
from dagster_project.definitions import defs
from memories.earth.gis import read_geoparquet
from memories.earth.imagery import load_scenes, monthly_composite
from memories.earth.stac import items_from_table
from memories.earth.stac_profiles import COMMON_BANDS
from memories.grid import TileGrid
from memories.memory.catalog import MemoryCatalog
from memories.memory.temporal import TemporalMemory
from memories.months import add_months, month_key, month_range, parse_month
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
    from memories.months import add_months, month_key, month_range, parse_month
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
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, root.uri, str(catalog), month, str(seed), marker],
        env=env,
        start_new_session=True,
        stderr=subprocess.PIPE,
    )
    _STARTED.append(proc)
    return proc


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


# -- through Dagster --------------------------------------------------------------------------------

DAGSTER_CHILD = Path(__file__).with_name("_dagster_run_child.py")
TILE = "33TVM"
FIRST_CLOUD_COVER = 20.0
"""Scene filter (percent) of version 1: fewer scenes than the default, so recognisably different pixels."""
CLOUD_COVER = 80.0
"""Scene filter (percent) of the killed run and the re-run (the pipeline's default)."""
COMPOSITE_MAE = 0.01
"""Mean absolute error (reflectance) allowed between a composite and the clear-sky truth (as the pipeline test)."""
RUN_TIMEOUT_S = 240


@pytest.fixture
def dagster_world(tmp_path):
    """A persistent Dagster instance in ``tmp_path/dagster_home`` with the test world's tile, and fresh stores."""
    world = defs.resources["stac"].sample_world.ensure()  # generated once here, not by racing children
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = DagsterInstance.local_temp(str(home))
    instance.add_dynamic_partitions(TILES, [TILE])
    return {
        "world": world,
        "home": home,
        "instance": instance,
        "root": StorageRoot((tmp_path / "store").as_uri()),
        "catalog": tmp_path / "catalog.sqlite",
    }


def _dagster_run(
    dw: dict, month: str, max_cloud_cover: float, pause_marker: Path | None = None
) -> tuple[str, subprocess.Popen]:
    """Start the code location's ingest_job for (month, TILE) in a child process of its own session."""
    run_id = str(uuid.uuid4())
    spec = {
        "run_id": run_id,
        "month": month,
        "tile": TILE,
        "root": dw["root"].uri,
        "catalog": str(dw["catalog"]),
        "max_cloud_cover": max_cloud_cover,
        "pause_marker": str(pause_marker) if pause_marker else None,
    }
    # MEMORIES_CONFIG (the test world, written by conftest) is inherited with the rest of the environment.
    env = {**os.environ, "DAGSTER_HOME": str(dw["home"]), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(DAGSTER_CHILD), json.dumps(spec)],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _STARTED.append(proc)
    return run_id, proc


def _finish(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, out.decode()[-6000:]


def _sr_store(dw: dict) -> MonthlyRasterStore:
    return MonthlyRasterStore(dw["root"], "surface_reflectance", dw["world"].tile(TILE), FIRST_MONTH)


def _materialized_by(instance: DagsterInstance, month: str) -> list[str]:
    """Run ids of the surface_reflectance materializations Dagster recorded for (month, TILE), oldest first."""
    key = str(partition_key(month, TILE))
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("surface_reflectance"), asset_partitions=[key]), limit=100
    ).records
    return [r.run_id for r in reversed(records)]


def _assert_same_pixels(got: xr.Dataset, want: xr.Dataset) -> None:
    assert sorted(map(str, got.data_vars)) == sorted(map(str, want.data_vars))
    for name in want.data_vars:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=str(name))


def _assert_matches_clear_sky_truth(dw: dict, month: str, ds: xr.Dataset) -> None:
    world = dw["world"]
    start, end = month_range(month)
    dates = [d for d in world.scene_datetimes(TILE) if start <= d <= end]
    for band in ("red", "nir", "swir16"):
        truth = np.median([world.clear_sky_reflectance(TILE, d, band) for d in dates], axis=0)
        got = ds["reflectance"].sel(band=band).values
        ok = np.isfinite(got)
        assert ok.mean() > 0.9, f"{month} {band}: only {ok.mean():.1%} of pixels seen clear"
        mae = float(np.abs(got[ok] - truth[ok]).mean())
        assert mae < COMPOSITE_MAE, f"{month} {band}: MAE {mae:.4f} vs the clear-sky truth"


def _clean_composite(dw: dict, month: str) -> xr.Dataset:
    """The composite computed directly by the library from the scenes the run's stac_items recorded."""
    root = dw["root"]
    items = items_from_table(read_geoparquet(root, root.table_uri("stac_items", TILE, month)))
    resources: dict[str, Any] = dict(defs.resources or {})
    stac, chunk_px = resources["stac"], resources["dask_cluster"].chunk_px
    scenes = load_scenes(items, stac.catalog_profile(), dw["world"].tile(TILE), COMMON_BANDS, chunk_px=chunk_px)
    with dask.config.set(scheduler="threads"):
        return monthly_composite(scenes).compute()


@pytest.mark.slow
def test_killed_dagster_run_leaves_previous_version_and_rerun_is_correct(dagster_world, record_property):
    dw, month = dagster_world, FIRST_MONTH
    instance, store = dw["instance"], _sr_store(dw)
    t0 = time.monotonic()

    # Version 1: a complete Dagster run with a stricter scene filter.
    v1_run, first = _dagster_run(dw, month, FIRST_CLOUD_COVER)
    _finish(first)
    assert instance.get_run_by_id(v1_run).status == DagsterRunStatus.SUCCESS
    catalog = MemoryCatalog.open(dw["catalog"])
    [v1] = catalog.history("surface_reflectance", tile=TILE, partition=month)
    assert v1.run_id == v1_run and v1.version_id == store.versions()[0].snapshot_id
    v1_pixels = store.read_month(month).compute()
    snapshots_before = [v.snapshot_id for v in store.versions()]
    chunks_before = _chunk_files(dw["root"], store)
    t_first = time.monotonic()

    # Version 2 is killed (SIGKILL to the run's process group) after its first block is in the store.
    marker = dw["home"].parent / "mid-write"
    killed_run, victim = _dagster_run(dw, month, CLOUD_COVER, pause_marker=marker)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not marker.exists():
        assert victim.poll() is None, victim.communicate()[0].decode()[-6000:]
        assert time.monotonic() < deadline, "the Dagster run never started writing"
        time.sleep(0.05)
    # Mid-write: its first reflectance chunks are on disk, its commit is not.
    assert _chunk_files(dw["root"], store) > chunks_before, marker.read_text()
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    t_killed = time.monotonic()

    # The store opens and reads version 1, byte for byte; the catalog has no new version.
    assert [v.snapshot_id for v in store.versions()] == snapshots_before
    assert store.months() == [month]
    _assert_same_pixels(store.read_month(month).compute(), v1_pixels)
    hist = catalog.history("surface_reflectance", tile=TILE, partition=month)
    assert [(h.id, h.version, h.transaction_to) for h in hist] == [(v1.id, 1, None)]
    assert [c.id for c in catalog.query("surface_reflectance", tile=TILE, partition=month)] == [v1.id]
    # Dagster: the killed run was never closed (nothing was alive to mark it failed); no materialization.
    killed_status = instance.get_run_by_id(killed_run).status
    record_property("killed_run_status", killed_status.value)
    assert killed_status == DagsterRunStatus.STARTED
    assert _materialized_by(instance, month) == [v1_run]

    # The re-run through Dagster commits version 2 with the pixels of a clean computation.
    before_rerun = datetime.now(UTC)
    rerun, proc = _dagster_run(dw, month, CLOUD_COVER)
    _finish(proc)
    t_rerun = time.monotonic()
    assert instance.get_run_by_id(rerun).status == DagsterRunStatus.SUCCESS
    assert _materialized_by(instance, month) == [v1_run, rerun]
    old, new = catalog.history("surface_reflectance", tile=TILE, partition=month)
    assert old.id == v1.id and old.transaction_to == new.transaction_from and new.transaction_to is None
    assert (new.version, new.run_id, new.version_id) == (2, rerun, store.versions()[0].snapshot_id)
    v2_pixels = store.read_month(month).compute()
    assert not np.array_equal(v2_pixels["obs_count"].values, v1_pixels["obs_count"].values)  # other scenes
    clean = _clean_composite(dw, month)
    for name in ("reflectance", "spread", "clear_count", "obs_count"):
        np.testing.assert_allclose(v2_pixels[name].values, clean[name].values, rtol=1e-6, atol=1e-7, err_msg=name)
    _assert_matches_clear_sky_truth(dw, month, v2_pixels)

    # The memory as it stood before the re-run still holds version 1's pixels.
    memory = TemporalMemory(catalog, dw["root"])
    [then] = memory.query(tile=TILE, asset="surface_reflectance", time_point=month, as_of=before_rerun)
    assert then.id == v1.id
    _assert_same_pixels(memory.load(then).compute(), v1_pixels)
    [now] = memory.query(tile=TILE, asset="surface_reflectance", time_point=month)
    _assert_same_pixels(memory.load(now).compute(), v2_pixels)
    record_property("first_run_s", round(t_first - t0, 1))
    record_property("start_to_kill_s", round(t_killed - t_first, 1))
    record_property("rerun_s", round(t_rerun - t_killed, 1))
    print(
        f"killed Dagster run status: {killed_status.value}; first run {t_first - t0:.1f} s, "
        f"start to kill {t_killed - t_first:.1f} s, re-run {t_rerun - t_killed:.1f} s"
    )


@pytest.mark.slow
def test_concurrent_dagster_runs_of_two_months_create_and_fill_one_store(dagster_world):
    dw = dagster_world
    store = _sr_store(dw)
    assert not store.exists()
    months = [FIRST_MONTH, month_key(add_months(parse_month(FIRST_MONTH), 1))]
    runs = [_dagster_run(dw, m, CLOUD_COVER) for m in months]  # both start before either has written
    for _, proc in runs:
        _finish(proc)
    records = [dw["instance"].get_run_record_by_id(run_id) for run_id, _ in runs]
    assert [r.dagster_run.status for r in records] == [DagsterRunStatus.SUCCESS] * 2
    (start_a, end_a), (start_b, end_b) = ((r.start_time, r.end_time) for r in records)
    assert start_a < end_b and start_b < end_a  # the two runs overlapped in time

    assert store.months() == months
    layouts = [v for v in store.versions() if "layout" in v.metadata]
    assert len(layouts) == 1 and "create" in layouts[0].message  # one of them created the store
    assert sorted(v.month for v in store.versions() if v.month) == months
    catalog = MemoryCatalog.open(dw["catalog"])
    memory = TemporalMemory(catalog, dw["root"])
    records = memory.query(tile=TILE, asset="surface_reflectance")
    assert [(r.partition, r.version) for r in records] == [(m, 1) for m in months]
    for (run_id, _), r in zip(runs, records):
        assert r.run_id == run_id
        ds = store.read_month(r.partition).compute()
        _assert_same_pixels(memory.load(r).compute(), ds)  # the catalog's snapshot holds the month as it is now
        _assert_matches_clear_sky_truth(dw, r.partition, ds)
    a, b = (store.read_month(m)["reflectance"].values for m in months)
    assert not np.array_equal(a, b, equal_nan=True)  # each month its own slice


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_stray_children():
    """Kill the process group of any child a failed test left running (a paused writer sleeps for minutes)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
