"""Loading scenes on the tile grid: native-resolution reads equal stackstac's resampling."""

from __future__ import annotations

import json

import numpy as np
import pystac
import pytest
import stackstac

from memories.earth.imagery import _native_factor, load_scenes
from memories.earth.stac_profiles import COMMON_BANDS, get_profile
from memories.sample import SampleWorld, SampleWorldSpec


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    spec = SampleWorldSpec(seed=3, n_tiles=1, start_month="2023-06", n_months=2, size_px=96)
    return SampleWorld.ensure(spec, tmp_path_factory.mktemp("world"))


def test_20m_bands_read_natively_equal_a_nearest_resampling(world):
    grid = world.tiles[0]
    fc = json.loads(world.items_path.read_text())
    items = [pystac.Item.from_dict(f) for f in fc["features"]][:4]
    assert _native_factor(items, "swir16", grid) == 2 and _native_factor(items, "red", grid) == 1
    stack = load_scenes(items, get_profile("embedded"), grid, COMMON_BANDS, chunk_px=64)
    direct = stackstac.stack(
        items,
        assets=[*COMMON_BANDS, "scl"],
        epsg=grid.epsg,
        resolution=10,
        bounds=grid.bounds,
        snap_bounds=False,
        dtype="uint16",
        fill_value=np.uint16(0),
        rescale=False,
        xy_coords="center",
    ).compute()
    assert stack.dn.dtype == np.uint16 and stack.dn.shape == (4, 6, 96, 96)
    np.testing.assert_array_equal(stack.dn.values, direct.sel(band=list(COMMON_BANDS)).values)
    np.testing.assert_array_equal(stack.scl.values, direct.sel(band="scl").values.astype(np.uint8))
    np.testing.assert_array_equal(stack.dn["x"].values, grid.x)
    assert (stack.scale == np.float32(1e-4)).all() and (stack.offset == np.float32(-0.1)).all()


def test_a_grid_off_the_20m_pixel_corners_falls_back_to_resampling(world):
    from dataclasses import replace

    grid = replace(world.tiles[0], x_min=world.tiles[0].x_min + 10)  # shifted by half a 20 m pixel
    fc = json.loads(world.items_path.read_text())
    items = [pystac.Item.from_dict(f) for f in fc["features"]][:2]
    assert _native_factor(items, "swir16", grid) == 1
