"""The land cover of a lazy composite, written strip by strip: the values of the map in memory, in bounded reads."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from memories.ai.land_cover import TrainingResult
from memories.ai.land_cover_maps import land_cover_map, write_land_cover_month
from memories.ai.tiling import RowStrips
from memories.grid import TileGrid
from memories.store.paths import StorageRoot
from memories.store.raster import MonthlyRasterStore

from .conftest import BANDS

ROWS, COLS = 600, 600
"""Two rows and two columns of 512 px model tiles (448 px cores); store chunks of 256 px (a strip of 448 rows
is written as 256, the rest with the next)."""
GRID = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=COLS, height=ROWS)


class CountingSource:
    """A lazy (C, H, W) source that counts the rows it is asked for; optionally fails at one strip."""

    def __init__(self, data: xr.DataArray, fail_at: int | None = None) -> None:
        self.data, self.shape, self.dtype = data, data.shape, data.dtype
        self.reads: list[tuple[int, int]] = []
        self.fail_at = fail_at

    def __getitem__(self, key: tuple[slice, slice, slice]) -> xr.DataArray:
        rows = key[1]
        if len(self.reads) == self.fail_at:
            raise OSError("the store went away")
        self.reads.append((rows.start, rows.stop))
        return self.data[key]


@pytest.fixture(scope="module")
def composite(tmp_path_factory: pytest.TempPathFactory, scene_factory) -> tuple[np.ndarray, xr.DataArray]:  # type: ignore[no-untyped-def]
    """A 600 x 600 px scene in memory and as the lazy composite a store reads back."""
    scene = scene_factory(ROWS, COLS, seed=31, n_regions=8)
    root = StorageRoot(tmp_path_factory.mktemp("sr").as_uri())
    store = MonthlyRasterStore(root, "surface_reflectance", GRID, "2024-01", chunk_px=256)
    ds = xr.Dataset({"reflectance": (("band", "y", "x"), scene.reflectance)}, coords={"band": list(BANDS)})
    store.write_month("2024-03", ds)
    return scene.reflectance, store.read_month("2024-03")["reflectance"]


def test_written_strip_by_strip_equals_the_map_in_memory(
    trained: TrainingResult, composite: tuple[np.ndarray, xr.DataArray], tmp_path
) -> None:
    reflectance, lazy = composite
    whole = land_cover_map(trained.model, reflectance, passes=3, seed=4)

    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "land_cover", GRID, "2024-01", chunk_px=256)
    source = CountingSource(lazy)
    month = write_land_cover_month(trained.model, source, store, "2024-03", passes=3, seed=4, run_id="r1")

    stored = store.read_month("2024-03").load()
    for name in ("land_cover", "confidence", "variance", "entropy"):
        assert stored[name].dtype == whole.dataset[name].dtype
        np.testing.assert_array_equal(stored[name].values, whole.dataset[name].values, err_msg=name)
    assert float(np.nanmax(stored["variance"].values)) > 0  # the dropout masks were drawn, and drawn alike
    assert month.class_share == whole.class_share and month.passes == 3
    assert month.mean_confidence == pytest.approx(float(np.nanmean(whole.dataset["confidence"].values)), rel=1e-6)
    assert month.mean_variance == pytest.approx(float(np.nanmean(whole.dataset["variance"].values)), rel=1e-5)
    # One read per row of model tiles (its core and 32 px of context each side), never the tile whole.
    assert source.reads == [(0, 512), (416, 600)]
    assert store.versions()[0].metadata["run_id"] == "r1"


def test_a_failed_strip_leaves_the_previous_version_readable(
    trained: TrainingResult, composite: tuple[np.ndarray, xr.DataArray], tmp_path
) -> None:
    _, lazy = composite
    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "land_cover", GRID, "2024-01", chunk_px=256)
    write_land_cover_month(trained.model, lazy, store, "2024-03", passes=1, seed=0)
    before = store.read_month("2024-03").load()
    versions = len(store.versions())

    with pytest.raises(OSError, match="went away"):
        write_land_cover_month(trained.model, CountingSource(lazy, fail_at=1), store, "2024-03", passes=3, seed=9)

    assert len(store.versions()) == versions
    after = store.read_month("2024-03").load()
    xr.testing.assert_identical(after, before)


def test_row_strips_reads_each_row_of_tiles_once_and_keeps_two() -> None:
    data = xr.DataArray(np.arange(2 * 10 * 6, dtype=np.float64).reshape(2, 10, 6), dims=("band", "y", "x"))
    source = CountingSource(data)
    strips = RowStrips(source)
    assert strips.shape == (2, 10, 6) and strips.dtype == np.float32
    np.testing.assert_array_equal(strips[:, 0:4, 0:3], data.values[:, 0:4, 0:3])
    np.testing.assert_array_equal(strips[:, 0:4, 3:6], data.values[:, 0:4, 3:6])
    strips[:, 3:8, 0:3]
    strips[:, 7:10, 0:3]
    strips[:, 0:4, 1:2]  # dropped after two newer strips: read again
    assert source.reads == [(0, 4), (3, 8), (7, 10), (0, 4)]
