"""Cloud-masked monthly composites of Sentinel-2 L2A scenes on a tile grid.

Scenes load lazily with stackstac on the tile's declared grid; each band becomes
reflectance from its own ``raster:bands`` scale and offset; pixels that SCL marks
as cloud, shadow, cirrus, saturated or nodata are masked; the composite is the
per-pixel median of the clear observations of the month.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SceneStack:
    """A tile-month's scenes on the tile grid, lazily, as the catalog stores them.

    Attributes:
        dn: (time, band, y, x) uint16 digital numbers, ``nodata`` where missing.
        scl: (time, y, x) uint8 scene classification, 0 where missing.
        scale: (time, band) reflectance per DN, from each item's ``raster:bands``.
        offset: (time, band) reflectance at DN 0.
        nodata: the DN of missing data (None: none declared).
    """

    dn: xr.DataArray
    scl: xr.DataArray
    scale: np.ndarray
    offset: np.ndarray
    nodata: float | None

    def reflectance(self) -> xr.DataArray:
        """(time, band, y, x) float32 reflectance, NaN where the DN is nodata."""
        dims = ("time", "band")
        refl = to_reflectance(
            self.dn, xr.DataArray(self.scale, dims=dims), xr.DataArray(self.offset, dims=dims), self.nodata
        )
        return refl.astype(np.float32)

    @property
    def uniform_scaling(self) -> bool:
        """Whether every scene scales each band alike (then medians can be taken in DN)."""
        return bool((self.scale == self.scale[:1]).all() and (self.offset == self.offset[:1]).all())


def load_scenes(
    items: Sequence[Any],
    profile: CatalogProfile,
    grid: TileGrid,
    bands: Sequence[str] = COMMON_BANDS,
    *,
    chunk_px: int = 2048,
) -> SceneStack:
    """Lazily load scenes on the tile grid with stackstac.

    A band whose native pixels tile the grid exactly (20 m SWIR and SCL on a 10 m
    grid whose origin lies on their pixel corners) is read at its native
    resolution and each pixel repeated k x k: the same values as a nearest
    resampling to 10 m, without GDAL warping k^2 times the pixels (12x faster
    here). Other bands are resampled (nearest) by stackstac.
    """
    if not items:
        raise ProcessingError(f"no scenes to load for tile {grid.tile_id}")
    keys = [profile.asset_key(b) for b in bands]
    scl_key = profile.asset_key(MASK_BAND)
    try:
        dn = _stack(items, keys, grid, "uint16", chunk_px)
        scl = _stack(items, [scl_key], grid, "uint8", chunk_px)
    except ValueError as e:
        raise DataSourceError(f"cannot stack the scenes of tile {grid.tile_id}: {e}") from e
    infos = [[band_info(it, k) for k in keys] for it in items]
    nodata = {i.nodata for row in infos for i in row}
    if len(nodata) > 1:
        raise DataSourceError(f"scenes of tile {grid.tile_id} disagree on the nodata value: {sorted(nodata, key=str)}")
    return SceneStack(
        dn=dn.assign_coords(band=list(bands)),
        scl=scl.isel(band=0, drop=True),
        scale=np.array([[i.scale for i in row] for row in infos], dtype=np.float32),
        offset=np.array([[i.offset for i in row] for row in infos], dtype=np.float32),
        nodata=nodata.pop(),
    )


def monthly_composite(stack: SceneStack) -> xr.Dataset:
    """Median of clear observations per pixel and band.

    Returns a lazy Dataset with ``reflectance`` (band, y, x) float32 (NaN where no
    clear observation), ``clear_count`` (y, x) uint8, the clear observations per
    pixel, and ``obs_count`` (y, x) uint8, the observations with data at all.

    When every scene scales a band alike (the usual case within a month) the
    median is taken on the uint16 digital numbers and scaled once: DN ->
    reflectance is increasing and affine, so the two orders give the same value,
    and the DN path moves a quarter of the bytes. Otherwise (a month that spans a
    processing-baseline change) each scene is scaled first.
    """
    clear = scl_clear_mask(stack.scl)
    if stack.uniform_scaling and stack.nodata == 0 and (stack.scale > 0).all():
        dn = stack.dn.chunk({"time": -1})
        mask = clear.chunk({"time": -1}).expand_dims(band=1, axis=1)
        med = dn.data.map_blocks(_dn_median, mask.data, drop_axis=0, dtype=np.float32)
        scale = xr.DataArray(stack.scale[0], dims="band")
        offset = xr.DataArray(stack.offset[0], dims="band")
        coords = {k: v for k, v in dn.coords.items() if "time" not in v.dims}
        reflectance = (xr.DataArray(med, dims=dn.dims[1:], coords=coords) * scale + offset).astype(np.float32)
    else:
        masked = stack.reflectance().where(clear).chunk({"time": -1}).transpose("time", ...)
        # map_blocks keeps time as the leading, contiguous axis of each block: sorting
        # along it is several times faster than along a transposed last axis.
        reflectance = xr.DataArray(
            masked.data.map_blocks(nanmedian_first_axis, drop_axis=0, dtype=np.float32),
            dims=masked.dims[1:],
            coords={k: v for k, v in masked.coords.items() if "time" not in v.dims},
        )
    return xr.Dataset(
        {
            "reflectance": reflectance,
            "clear_count": clear.sum("time").astype(np.uint8),
            "obs_count": (stack.scl != 0).sum("time").astype(np.uint8),
        }
    )


def _dn_median(dn: np.ndarray, clear: np.ndarray) -> np.ndarray:
    """Median DN over axis 0 of the clear, non-zero DNs; NaN where there is none.

    Masked DNs become 0 and sort first, so the n valid values of a pixel are the
    last n of its sorted column.
    """
    valid = clear & (dn != 0)
    s = np.sort(np.where(valid, dn, np.uint16(0)), axis=0)
    n = np.count_nonzero(valid, axis=0)[None]
    t = dn.shape[0]
    lo = np.take_along_axis(s, np.clip(t - n + (n - 1) // 2, 0, t - 1), 0)[0]
    hi = np.take_along_axis(s, np.clip(t - n + n // 2, 0, t - 1), 0)[0]
    out = (lo.astype(np.float32) + hi.astype(np.float32)) / 2
    out[n[0] == 0] = np.nan
    return out


def nanmedian_first_axis(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """Median along ``axis`` ignoring NaN, as ``np.nanmedian`` computes it, about 8x faster.

    A month has few observations per pixel (6 to 30), so one sort along that axis
    (NaN sorts last) and a pick of the middle of the valid values beats
    ``np.nanmedian``'s per-slice partitioning. All-NaN positions give NaN.
    """
    s = np.sort(a, axis=axis)
    n = np.expand_dims(np.count_nonzero(~np.isnan(a), axis=axis), axis)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0), axis)
    hi = np.take_along_axis(s, np.maximum(n // 2, 0), axis)
    out = ((lo + hi) / 2).astype(a.dtype, copy=False)
    out[n == 0] = np.nan
    return np.squeeze(out, axis)


def _stack(items: Sequence[Any], keys: Sequence[str], grid: TileGrid, dtype: str, chunk_px: int) -> xr.DataArray:
    """(time, band, y, x) DNs of ``keys`` on the grid, 0 where missing."""
    import dask.array as da
    import stackstac

    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(_native_factor(items, key, grid), []).append(key)
    parts: dict[str, Any] = {}
    times = None
    for k, group in groups.items():
        arr = stackstac.stack(
            list(items),
            assets=group,
            epsg=grid.epsg,
            resolution=grid.resolution * k,
            bounds=grid.bounds,
            snap_bounds=False,
            chunksize=max(chunk_px // k, 1),
            dtype=dtype,
            fill_value=np.dtype(dtype).type(0),
            rescale=False,
            xy_coords="center",
            properties=False,
            band_coords=False,
        )
        if arr.sizes["y"] * k != grid.height or arr.sizes["x"] * k != grid.width:
            raise ProcessingError(
                f"stacked scenes are {arr.sizes['y'] * k} x {arr.sizes['x'] * k} px but tile {grid.tile_id} "
                f"is declared {grid.height} x {grid.width}; the grid bounds and resolution disagree"
            )
        if k == 1 and (not np.allclose(arr["x"].values, grid.x) or not np.allclose(arr["y"].values, grid.y)):
            raise ProcessingError(f"stacked scenes are not on the declared grid of tile {grid.tile_id}")
        times = arr["time"].values
        data = arr.data if k == 1 else da.repeat(da.repeat(arr.data, k, axis=2), k, axis=3)
        for j, key in enumerate(group):
            parts[key] = data[:, j : j + 1]
    stacked = da.concatenate([parts[key] for key in keys], axis=1).rechunk({1: 1, 2: chunk_px, 3: chunk_px})
    return xr.DataArray(
        stacked,
        dims=("time", "band", "y", "x"),
        coords={"time": times, "band": list(keys), "y": grid.y, "x": grid.x},
    )


def _native_factor(items: Sequence[Any], key: str, grid: TileGrid) -> int:
    """k when every item's asset has pixels k times the grid's, aligned on the grid origin; else 1."""
    factors = set()
    for it in items:
        asset = it.assets.get(key)
        t = asset.extra_fields.get("proj:transform") if asset is not None else None
        if not t or t[1] != 0 or t[3] != 0 or t[0] != -t[4]:
            return 1
        k = t[0] / grid.resolution
        if k < 1 or k != int(k):
            return 1
        cell = t[0]
        if (grid.x_min - t[2]) % cell or (t[5] - grid.y_max) % cell:
            return 1
        factors.add(int(k))
    if len(factors) != 1:
        return 1
    k = factors.pop()
    return k if grid.width % k == 0 and grid.height % k == 0 else 1
