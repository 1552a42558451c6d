"""The read-coarse-and-repeat shortcut of ``load_scenes`` only where it equals a nearest resampling.

A 30 m Landsat band in EPSG:32621 loaded onto a 10 m grid in EPSG:32722 whose origin
lies, in numbers, on the band's pixel corners: the coordinates align but the CRSs do
not, so the band must be warped, not read at 30 m and repeated 3 x 3. The truth is
GDAL's own nearest reprojection (``rasterio.warp.reproject``) of the same COG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.warp import Resampling, reproject, transform_bounds
from shapely.geometry import box, mapping

from memories.earth.imagery import load_scenes
from memories.earth.stac_profiles import get_profile
from memories.grid import TileGrid

SRC_EPSG, GRID_EPSG = 32621, 32722  # UTM 21N and 22S, either side of 54 deg W near the equator
SRC_RES, SRC_PX = 30.0, 160
GRID_PX = 300  # 3 km at 10 m


def _cog(path: Path, values: np.ndarray, x0: float, y0: float) -> None:
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=values.shape[1],
        height=values.shape[0],
        count=1,
        dtype="uint16",
        crs=f"EPSG:{SRC_EPSG}",
        nodata=0,
        transform=rasterio.transform.from_origin(x0, y0, SRC_RES, SRC_RES),
    ) as dst:
        dst.write(values, 1)


def _landsat_item(folder: Path) -> tuple[dict, TileGrid, Path]:
    """A Landsat-like item (red + qa_pixel, 30 m, EPSG:32621) and a 10 m EPSG:32722 grid inside its footprint
    whose origin is a whole number of 30 m pixels from the band's origin."""
    sx, sy = Transformer.from_crs(4326, SRC_EPSG, always_xy=True).transform(-54.0, -2.0)
    x0, y0 = float(sx // 30 * 30 - SRC_PX * 15), float(sy // 30 * 30 + SRC_PX * 15)
    rng = np.random.default_rng(21)
    red = rng.integers(1, 60000, (SRC_PX, SRC_PX), dtype=np.uint16)
    qa = np.full((SRC_PX, SRC_PX), 21824, np.uint16)  # QA_PIXEL clear land
    paths = {"red": folder / "red.tif", "qa_pixel": folder / "qa_pixel.tif"}
    _cog(paths["red"], red, x0, y0)
    _cog(paths["qa_pixel"], qa, x0, y0)
    fields = {
        "proj:code": f"EPSG:{SRC_EPSG}",
        "proj:shape": [SRC_PX, SRC_PX],
        "proj:transform": [SRC_RES, 0.0, x0, 0.0, -SRC_RES, y0],
        "raster:bands": [{"data_type": "uint16", "nodata": 0, "scale": 2.75e-05, "offset": -0.2}],
    }
    west, south, east, north = transform_bounds(SRC_EPSG, 4326, x0, y0 - SRC_PX * SRC_RES, x0 + SRC_PX * SRC_RES, y0)
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "LC09_L2SP_226062_20231008_02_T1",
        "bbox": [west, south, east, north],
        "geometry": mapping(box(west, south, east, north)),
        "properties": {"datetime": "2023-10-08T13:30:00Z", "proj:code": f"EPSG:{SRC_EPSG}"},
        "links": [],
        "assets": {key: {"href": str(path), "type": "image/tiff", **fields} for key, path in paths.items()},
    }
    # The grid's centre in 32722, then its origin moved onto the band's 30 m lattice in plain numbers.
    gx, gy = Transformer.from_crs(SRC_EPSG, GRID_EPSG, always_xy=True).transform(x0 + 2400.0, y0 - 2400.0)
    gx0 = x0 + round((gx - GRID_PX * 5 - x0) / 30) * 30
    gy0 = y0 - round((y0 - (gy + GRID_PX * 5)) / 30) * 30
    grid = TileGrid("22MAA", GRID_EPSG, gx0, gy0, GRID_PX, GRID_PX, 10.0)
    assert (grid.x_min - x0) % 30 == 0 and (y0 - grid.y_max) % 30 == 0  # the numbers align, the CRSs do not
    return item, grid, paths["red"]


def test_band_in_another_crs_is_warped_even_when_its_origin_aligns_with_the_grid(tmp_path: Path) -> None:
    item, grid, red_path = _landsat_item(tmp_path)
    profile = get_profile("earth-search-landsat")

    stack = load_scenes([item], profile, grid, ("red",), chunk_px=GRID_PX)
    got = stack.dn.isel(time=0, band=0).values

    truth = np.zeros(grid.shape, np.uint16)
    with rasterio.open(red_path) as src:
        reproject(
            rasterio.band(src, 1),
            truth,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=0,
            resampling=Resampling.nearest,
        )
    assert (truth != 0).all()  # the grid lies inside the band
    differ = int((got != truth).sum())
    assert differ == 0, f"{differ} of {truth.size} pixels differ from GDAL's nearest reprojection"
