import multiprocessing as mp

import numpy as np
import pytest
import xarray as xr

from memories.errors import StorageError
from memories.grid import TileGrid
from memories.store import StorageRoot
from memories.store.raster import MonthlyRasterStore

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


def _write(uri: str, month: str, value: float) -> None:
    MonthlyRasterStore(StorageRoot(uri), "sr", GRID, "2023-01", chunk_px=32).write_month(month, _month(value))


def test_concurrent_months_of_one_tile_from_separate_processes(tmp_path):
    uri = tmp_path.as_uri()
    months = [f"2023-{m:02d}" for m in range(1, 9)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write, args=(uri, m, i / 10)) for i, m in enumerate(months)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = MonthlyRasterStore(StorageRoot(uri), "sr", GRID, "2023-01")
    assert store.months() == months
    means = store.read()["reflectance"].mean(["band", "y", "x"]).values
    np.testing.assert_allclose(means, [i / 10 for i in range(8)], atol=1e-6)
