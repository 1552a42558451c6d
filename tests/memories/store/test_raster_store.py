import numpy as np
import pytest
import xarray as xr

from memories.errors import StorageError
from memories.grid import TileGrid
from memories.store import StorageRoot
from memories.store.raster import MonthlyRasterStore
from memories.store.slice_write import compute_threads, row_groups

GRID = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=96, height=64)


def _month(value: float) -> xr.Dataset:
    refl = np.full((2, GRID.height, GRID.width), value, dtype=np.float32)
    refl[:, :4, :4] = np.nan
    return xr.Dataset(
        {
            "reflectance": (("band", "y", "x"), refl),
            "clear_count": (("y", "x"), np.full(GRID.shape, int(value * 10), dtype=np.uint8)),
        },
        coords={"band": ["red", "nir"]},
    )


def test_months_written_out_of_order_read_back_exactly(tmp_path):
    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "sr", GRID, "2023-01", chunk_px=32)
    store.write_month("2023-04", _month(0.4))
    store.write_month("2023-02", _month(0.2))
    assert store.months() == ["2023-02", "2023-04"]
    ds = store.read()
    assert ds["reflectance"].dtype == np.float32 and ds["clear_count"].dtype == np.uint8
    assert list(ds["band"].values) == ["red", "nir"]
    np.testing.assert_array_equal(ds["x"].values, GRID.x)
    assert float(ds["reflectance"].isel(time=1).mean()) == pytest.approx(0.4)
    assert np.isnan(ds["reflectance"].isel(time=0).values[0, 0, 0])
    assert int(store.read_month("2023-02")["clear_count"].values.max()) == 2


def test_rewritten_month_replaces_only_its_slice(tmp_path):
    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "sr", GRID, "2023-01")
    store.write_month("2023-01", _month(0.1))
    store.write_month("2023-02", _month(0.2))
    store.write_month("2023-01", _month(0.7))
    assert float(store.read_month("2023-01")["reflectance"].mean()) == pytest.approx(0.7)
    assert float(store.read_month("2023-02")["reflectance"].mean()) == pytest.approx(0.2)


def test_unwritten_month_and_month_before_origin_are_clear_errors(tmp_path):
    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "sr", GRID, "2023-03")
    store.write_month("2023-03", _month(0.1))
    with pytest.raises(StorageError, match="materialize sr"):
        store.read_month("2023-05")
    with pytest.raises(StorageError, match="before the store's origin"):
        store.write_month("2023-01", _month(0.1))


def test_each_write_is_one_commit_with_its_metadata_and_old_versions_stay_readable(tmp_path):
    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "sr", GRID, "2023-01", chunk_px=32)
    s1 = store.write_month("2023-02", _month(0.2), run_id="run-a")
    s2 = store.write_month("2023-02", _month(0.6))
    assert s1 != s2 and store.last_snapshot == s2
    mine = store.versions("2023-02")
    assert [v.snapshot_id for v in mine] == [s2, s1]  # newest first
    assert mine[1].metadata == {"product": "sr", "tile": "33TVM", "month": "2023-02", "run_id": "run-a"}
    assert float(store.read_month("2023-02", snapshot=s1)["reflectance"].mean()) == pytest.approx(0.2)
    assert float(store.read_month("2023-02", as_of=mine[1].written_at)["reflectance"].mean()) == pytest.approx(0.2)
    assert float(store.read_month("2023-02")["reflectance"].mean()) == pytest.approx(0.6)
    # Layout commits (create, grow by a year) are not month versions.
    store.write_month("2024-03", _month(0.3))
    layout = [v for v in store.versions() if "layout" in v.message]
    assert len(layout) == 2 and all(v.month is None for v in layout)
    assert store.months() == ["2023-02", "2024-03"]


@pytest.mark.filterwarnings("ignore:Couldn't detect a suitable IP address")  # in-process cluster, no network
def test_dask_backed_month_is_written_through_a_distributed_client(tmp_path):
    import dask
    from distributed import Client, LocalCluster

    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "sr", GRID, "2023-01", chunk_px=32)
    lazy = _month(0.5).chunk({"y": 16, "x": 48})  # misaligned with the store's chunks: rechunked before writing
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
        dask.config.set(scheduler=client),
    ):
        assert compute_threads() == 2  # the cluster's threads, not this machine's cores
        store.write_month("2023-01", lazy)
    got = store.read_month("2023-01").compute()
    np.testing.assert_array_equal(got["reflectance"].values, _month(0.5)["reflectance"].values)
    np.testing.assert_array_equal(got["clear_count"].values, _month(0.5)["clear_count"].values)


def test_a_lazy_month_is_written_a_few_rows_of_chunks_at_a_time_with_the_same_values(tmp_path):
    """Each compute spans at least two chunks per thread, in row order, and every chunk is written once."""
    import dask

    rows = {0: ["a0", "a1"], 32: ["b0", "b1"], 64: ["c0", "c1"]}
    assert list(row_groups(rows, per_row=2, threads=1)) == [["a0", "a1"], ["b0", "b1"], ["c0", "c1"]]
    assert list(row_groups(rows, per_row=2, threads=2)) == [["a0", "a1", "b0", "b1"], ["c0", "c1"]]
    assert list(row_groups(rows, per_row=3, threads=64)) == [["a0", "a1", "b0", "b1", "c0", "c1"]]

    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "sr", GRID, "2023-01", chunk_px=16)
    rng = np.random.default_rng(3)
    month = _month(0.5)
    month["reflectance"].values[:] = rng.random(month["reflectance"].shape, dtype=np.float32)
    computes = []
    real_compute = dask.compute

    def counting(*args, **kw):
        computes.append(len(args))
        return real_compute(*args, **kw)

    with dask.config.set(scheduler="threads", num_workers=1), pytest.MonkeyPatch.context() as mp:
        mp.setattr(dask, "compute", counting)
        store.write_month("2023-01", month.chunk({"y": 16, "x": 16}))
    # 4 rows of 6 chunks, 2 bands of reflectance + clear_count: 18 writes a row, one row per compute
    assert computes == [18, 18, 18, 18]
    got = store.read_month("2023-01").compute()
    np.testing.assert_array_equal(got["reflectance"].values, month["reflectance"].values)
    np.testing.assert_array_equal(got["clear_count"].values, month["clear_count"].values)
