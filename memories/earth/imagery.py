"""Cloud-masked monthly composites of Sentinel-2 L2A scenes on a tile grid.

Scenes load lazily with stackstac on the tile's declared grid; each band becomes
reflectance from its own ``raster:bands`` scale and offset; pixels that SCL marks
as cloud, shadow, cirrus, saturated or nodata are masked; the composite is the
per-pixel median of the clear observations of the month.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from memories.earth.bands import band_info, to_reflectance
from memories.earth.catalogs import COMMON_BANDS, MASK_BAND, CatalogProfile
from memories.errors import DataSourceError, ProcessingError
from memories.grid import TileGrid

SCL_CLEAR: tuple[int, ...] = (4, 5, 6, 7, 11)
"""SCL classes kept: vegetation, not vegetated, water, unclassified, snow/ice.

Masked: 0 nodata, 1 saturated/defective, 2 dark area/topographic shadow, 3 cloud
shadow, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus.
"""


def scl_clear_mask(scl: Any) -> Any:
    """True where the Sentinel-2 scene classification says the pixel is clear."""
    return scl.isin(list(SCL_CLEAR)) if hasattr(scl, "isin") else np.isin(scl, SCL_CLEAR)


def load_scenes(
    items: Sequence[Any],
    profile: CatalogProfile,
    grid: TileGrid,
    bands: Sequence[str] = COMMON_BANDS,
    *,
    chunk_px: int = 512,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Lazily load scenes on the tile grid.

    Returns:
        (reflectance (time, band, y, x) float32 with NaN for nodata,
         scl (time, y, x) uint8, 0 for nodata).
    """
    import stackstac

    if not items:
        raise ProcessingError(f"no scenes to load for tile {grid.tile_id}")
    keys = [profile.asset_key(b) for b in bands]
    scl_key = profile.asset_key(MASK_BAND)
    common = dict(
        epsg=grid.epsg,
        resolution=grid.resolution,
        bounds=grid.bounds,
        snap_bounds=False,
        chunksize=chunk_px,
        rescale=False,
        xy_coords="center",
        properties=False,
        band_coords=False,
    )
    try:
        dn = stackstac.stack(list(items), assets=keys, dtype="uint16", fill_value=np.uint16(0), **common)
        scl = stackstac.stack(list(items), assets=[scl_key], dtype="uint8", fill_value=np.uint8(0), **common)
    except ValueError as e:
        raise DataSourceError(f"cannot stack the scenes of tile {grid.tile_id}: {e}") from e
    _check_grid(dn, grid)
    infos = [[band_info(it, k) for k in keys] for it in items]
    scale = np.array([[i.scale for i in row] for row in infos], dtype=np.float32)
    offset = np.array([[i.offset for i in row] for row in infos], dtype=np.float32)
    nodata = {i.nodata for row in infos for i in row}
    if len(nodata) > 1:
        raise DataSourceError(f"scenes of tile {grid.tile_id} disagree on the nodata value: {sorted(nodata, key=str)}")
    dims = ("time", "band")
    refl = to_reflectance(
        dn,
        xr.DataArray(scale, dims=dims),
        xr.DataArray(offset, dims=dims),
        nodata.pop(),
    )
    refl = refl.assign_coords(band=list(bands), time=dn["time"].values)
    scl2d = scl.isel(band=0, drop=True).assign_coords(time=dn["time"].values)
    return refl.astype(np.float32), scl2d


def monthly_composite(refl: xr.DataArray, scl: xr.DataArray) -> xr.Dataset:
    """Median of clear observations per pixel and band.

    Returns a lazy Dataset with ``reflectance`` (band, y, x) float32 (NaN where no
    clear observation), ``clear_count`` (y, x) uint8, the clear observations per
    pixel, and ``obs_count`` (y, x) uint8, the observations with data at all.
    """
    clear = scl_clear_mask(scl)
    masked = refl.where(clear)
    masked = masked.chunk({"time": -1})
    median = masked.median(dim="time", skipna=True).astype(np.float32)
    return xr.Dataset(
        {
            "reflectance": median,
            "clear_count": clear.sum("time").astype(np.uint8),
            "obs_count": (scl != 0).sum("time").astype(np.uint8),
        }
    )


def _check_grid(arr: xr.DataArray, grid: TileGrid) -> None:
    if arr.sizes["y"] != grid.height or arr.sizes["x"] != grid.width:
        raise ProcessingError(
            f"stacked scenes are {arr.sizes['y']} x {arr.sizes['x']} px but tile {grid.tile_id} "
            f"is declared {grid.height} x {grid.width}; the grid bounds and resolution disagree"
        )
    if not np.allclose(arr["x"].values, grid.x) or not np.allclose(arr["y"].values, grid.y):
        raise ProcessingError(f"stacked scenes are not on the declared grid of tile {grid.tile_id}")
