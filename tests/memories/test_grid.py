import numpy as np
import pytest

from memories.errors import ConfigError
from memories.grid import TileGrid
from memories.months import add_months, month_index, month_range, months_between, parse_month


def test_grid_bounds_coords_and_transform_agree():
    g = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=300, height=200)
    assert g.bounds == (460000.0, 5098000.0, 463000.0, 5100000.0)
    assert g.x[0] == 460005.0 and g.x[-1] == 462995.0
    assert g.y[0] == 5099995.0 and g.y[-1] == 5098005.0
    # pixel centre (row 10, col 20) through the affine transform
    x, y = g.transform @ (20.5, 10.5)
    assert (x, y) == (g.x[20], g.y[10])


def test_grid_wgs84_bbox_is_near_ljubljana():
    g = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=512, height=512)
    w, s, e, n = g.bbox_wgs84
    assert 14.4 < w < e < 14.6 and 46.0 < s < n < 46.1


def test_grid_rejects_a_crs_that_is_not_the_tiles_utm_zone():
    with pytest.raises(ConfigError, match="EPSG:32633"):
        TileGrid("33TVM", 32632, 0, 0, 10, 10)
    with pytest.raises(ConfigError, match="MGRS"):
        TileGrid("not-a-tile", 32633, 0, 0, 10, 10)


def test_grid_round_trips_through_dict():
    g = TileGrid("31UDQ", 32631, 440000.0, 5420000.0, 64, 32)
    assert TileGrid.from_dict(g.to_dict()) == g


def test_months_arithmetic():
    assert months_between("2023-11", "2024-02") == ["2023-11", "2023-12", "2024-01", "2024-02"]
    assert month_index("2024-02", "2023-11") == 3
    start, end = month_range("2024-02")
    assert start.isoformat() == "2024-02-01T00:00:00+00:00"
    assert (end - start).days == 28  # leap year: 29 days minus one microsecond
    assert add_months(parse_month("2023-12"), 1).month == 1
    assert np.isclose((add_months(parse_month("2023-01"), 24) - parse_month("2023-01")).days, 731)


def test_mask_polygon_is_the_union_of_the_mask_pixels_in_the_grid_crs():
    grid = TileGrid(tile_id="33TVM", epsg=32633, x_min=460000.0, y_max=5100000.0, width=8, height=8)
    mask = np.zeros(grid.shape, dtype=bool)
    mask[1:3, 2:4] = True  # 2 x 2 pixels, rows 1-2, columns 2-3
    mask[6, 6] = True
    geom = grid.mask_polygon(mask)
    assert geom.area == 5 * grid.pixel_area_m2
    assert (460020.0, 5099970.0, 460040.0, 5099990.0) in [g.bounds for g in geom.geoms]
    assert grid.mask_polygon(np.zeros(grid.shape, dtype=bool)).is_empty
