"""The upsampled bench world: the small world's pixels repeated k x k, same pixel size, a k x wider tile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from memories.sample import SampleWorldSpec
from memories.sample.upsampled import upsampled_items


def test_upsampled_cogs_repeat_the_small_worlds_pixels(tmp_path: Path) -> None:
    spec = SampleWorldSpec(seed=2, n_tiles=1, start_month="2023-06", n_months=1, size_px=64)
    grid, items = upsampled_items(spec, 3, tmp_path, month="2023-06", max_scenes=2)
    assert (grid.width, grid.height, grid.resolution) == (192, 192, 10.0)
    assert len(items) == 2
    small = sorted((tmp_path / "small").rglob(f"{items[0]['id']}/red.tif"))[0]
    with rasterio.open(small) as s, rasterio.open(items[0]["assets"]["red"]["href"]) as b:
        assert b.res == s.res and (b.transform.c, b.transform.f) == (s.transform.c, s.transform.f)
        np.testing.assert_array_equal(b.read(1), np.repeat(np.repeat(s.read(1), 3, 0), 3, 1))
    with rasterio.open(items[0]["assets"]["scl"]["href"]) as scl:
        assert scl.width == 96 and scl.res == (20.0, 20.0)
    again = upsampled_items(spec, 3, tmp_path, month="2023-06", max_scenes=2)
    assert again[1] == items  # written once
