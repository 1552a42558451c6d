"""Cloud-masked monthly composites of Sentinel-2 L2A (or Landsat C2, or L1C) scenes on a tile grid.

Scenes load lazily on the tile's declared grid, by default with the direct COG reader
(``cog_reader``: each block decoded once into the chunk's buffer; 3.7x stackstac's recipe end
to end in ``bench/composite_bench.py``), or with stackstac (``engine="stackstac"``, the same
digital numbers); each band becomes reflectance from its own ``raster:bands`` scale and offset (the processing-baseline
offset policy lives in ``memories.earth.quality``); pixels that the item's quality
band marks as cloud, shadow, cirrus, saturated or nodata are masked (SCL, QA_PIXEL
bits, or a spectral test, by mask kind); the composite is the per-pixel median of
the month's clear observations, with their interquartile range as its spread.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import xarray as xr

from memories.earth.bands import band_info, to_reflectance
from memories.earth.chunked_stats import exact_median, row_blocks
from memories.earth.items import item_dict
from memories.earth.order_stats import dn_median_iqr, nan_median_iqr, nanmedian_first_axis
from memories.earth.quality import (
    MASK_KINDS,
    SCL_CLEAR,
    SHADOW_SEARCH_PX,
    SPECTRAL_BANDS,
    MaskKind,
    qa_pixel_has_data,
    qa_pixel_mask,
    reflectance_offset,
    scl_clear_mask,
    spectral_clear_mask,
)
from memories.earth.stac import item_epsg
from memories.earth.stac_profiles import COMMON_BANDS, MASK_BAND, CatalogProfile
from memories.errors import ConfigError, DataSourceError, ProcessingError
from memories.grid import TileGrid

Engine = Literal["gdal", "stackstac"]
ENGINES: tuple[str, ...] = ("gdal", "stackstac")
"""The readers ``load_scenes`` offers (same values; ``gdal`` is the fast one)."""

__all__ = [
    "ENGINES",
    "SCL_CLEAR",
    "SceneStack",
    "band_medians",
    "composite_stats",
    "load_scenes",
    "monthly_composite",
    "nanmedian_first_axis",
    "scl_clear_mask",
]


@dataclass(frozen=True)
class SceneStack:
    """A tile-month's scenes on the tile grid, lazily, as the catalog stores them.

    Attributes:
        dn: (time, band, y, x) uint16 digital numbers, ``nodata`` where missing.
        scl: (time, y, x) the quality band: uint8 SCL for mask kind ``"scl"``, uint16
            QA_PIXEL for ``"qa_pixel"``, 0 where missing; None for ``"spectral"``.
        scale: (time, band) reflectance per DN, from each item's ``raster:bands``.
        offset: (time, band) reflectance at DN 0 (``quality.reflectance_offset``).
        nodata: the DN of missing data (None: none declared).
        mask_kind: how clear pixels are found: ``"scl"``, ``"qa_pixel"`` or ``"spectral"``.
    """

    dn: xr.DataArray
    scl: xr.DataArray | None
    scale: np.ndarray
    offset: np.ndarray
    nodata: float | None
    mask_kind: MaskKind = "scl"

    def __post_init__(self) -> None:
        if self.mask_kind not in MASK_KINDS:
            raise ConfigError(f"mask kind {self.mask_kind!r} is unknown; use one of {list(MASK_KINDS)}")
        if self.mask_kind != "spectral" and self.scl is None:
            raise ConfigError(f"mask kind {self.mask_kind!r} needs its quality band; pass scl= or use 'spectral'")

    def reflectance(self) -> xr.DataArray:
        """(time, band, y, x) float32 reflectance, NaN where the DN is nodata."""
        dims = ("time", "band")
        refl = to_reflectance(
            self.dn, xr.DataArray(self.scale, dims=dims), xr.DataArray(self.offset, dims=dims), self.nodata
        )
        return cast(xr.DataArray, refl.astype(np.float32))

    def clear_mask(self, *, shadow_search_px: int | None = SHADOW_SEARCH_PX) -> xr.DataArray:
        """(time, y, x) bool, lazily: True where an observation is clear by the stack's mask kind.

        ``shadow_search_px`` is the spectral test's shadow search radius (pixels); other kinds ignore it.
        """
        if self.mask_kind == "scl":
            return cast(xr.DataArray, scl_clear_mask(self.scl))
        if self.mask_kind == "qa_pixel":
            return cast(xr.DataArray, qa_pixel_mask(self.scl))
        return _spectral_clear(self.reflectance(), shadow_search_px)

    def has_data(self) -> xr.DataArray:
        """(time, y, x) bool, lazily: True where a scene observed the pixel at all."""
        if self.mask_kind == "scl":
            return self.scl != 0  # type: ignore[return-value]
        if self.mask_kind == "qa_pixel":
            return cast(xr.DataArray, qa_pixel_has_data(self.scl))
        nodata = 0 if self.nodata is None else self.nodata
        return (self.dn != nodata).all("band")

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
    mask_kind: MaskKind | None = None,
    engine: Engine = "gdal",
) -> SceneStack:
    """Lazily load scenes on the tile grid, in time order (stackstac's ``sortby_date="asc"``).

    A band whose native pixels tile the grid exactly (20 m SWIR and SCL in the
    grid's CRS, on a 10 m grid whose origin lies on their pixel corners) is read at its native
    resolution and each pixel repeated k x k: the same values as a nearest
    resampling to 10 m, without GDAL warping k^2 times the pixels (12x faster
    here). Other bands are resampled (nearest).

    ``engine``: ``"gdal"`` (``memories.earth.cog_reader``: one task per band and chunk
    reads every scene's window in parallel into one buffer; several times faster) or
    ``"stackstac"`` (one task per scene, band and chunk). Both give the same digital
    numbers: a file off the grid goes through the same nearest WarpedVRT in both.

    ``mask_kind`` picks the quality band: ``"scl"`` (the profile's SCL asset,
    uint8), ``"qa_pixel"`` (Landsat C2 QA_PIXEL, uint16) or ``"spectral"`` (none:
    the clear mask comes from the bands, which must include ``SPECTRAL_BANDS``);
    None takes the profile's ``mask_kind`` when it declares one, else ``"scl"``.
    Each band's reflectance offset follows ``quality.reflectance_offset``
    (declared ``raster:bands`` offset, else the processing baseline's).

    Items are pystac Items or their dicts; their metadata is read locally
    (``memories.earth.items.item_dict``), never through their links.

    Raises:
        DataSourceError: an item lacks one of the assets the bands and the mask kind
            need (``CatalogProfile.check_assets``: the item, the asset key, the fix),
            or the scenes cannot be stacked.
    """
    kind = resolve_mask_kind(profile, mask_kind)
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r} is unknown; use one of {list(ENGINES)}")
    if not items:
        raise ProcessingError(f"no scenes to load for tile {grid.tile_id}")
    items = [item_dict(it) for it in items]  # stackstac would call pystac's to_dict(), which resolves links
    # time order, as stackstac sorts (stable), so scale and offset rows follow the stack's time axis
    items = sorted(items, key=lambda it: it["properties"].get("datetime", "") or "")
    keys, needed, quality = _needed_assets(profile, bands, kind)
    for it in items:
        profile.check_assets(it, needed)  # before stackstac, which leaves a missing asset out silently
    try:
        stack = _stack if engine == "stackstac" else _stack_gdal
        dn = stack(items, keys, grid, "uint16", chunk_px)
        scl = None
        if quality is not None:
            scl = stack(items, [needed[quality]], grid, "uint8" if kind == "scl" else "uint16", chunk_px)
    except ValueError as e:
        raise DataSourceError(f"cannot stack the scenes of tile {grid.tile_id}: {e}") from e
    infos = [[band_info(it, k) for k in keys] for it in items]
    nodata = {i.nodata for row in infos for i in row}
    if len(nodata) > 1:
        raise DataSourceError(f"scenes of tile {grid.tile_id} disagree on the nodata value: {sorted(nodata, key=str)}")
    return SceneStack(
        dn=dn.assign_coords(band=list(bands)),
        scl=None if scl is None else scl.isel(band=0, drop=True),
        scale=np.array([[i.scale for i in row] for row in infos], dtype=np.float32),
        offset=np.array(
            [[reflectance_offset(it, i.asset_key, i.scale) for i in row] for it, row in zip(items, infos)],
            dtype=np.float32,
        ),
        nodata=nodata.pop(),
        mask_kind=kind,
    )


def _needed_assets(
    profile: CatalogProfile, bands: Sequence[str], kind: MaskKind
) -> tuple[list[str], dict[str, str], str | None]:
    """The bands' asset keys, every asset an item must have (band or quality name -> key), the quality band."""
    if kind == "spectral" and set(SPECTRAL_BANDS) - set(bands):
        raise ConfigError(
            f"mask kind 'spectral' needs bands {list(SPECTRAL_BANDS)}; "
            f"{sorted(set(SPECTRAL_BANDS) - set(bands))} are not among the loaded bands {list(bands)}"
        )
    keys = [profile.asset_key(b) for b in bands]
    needed = dict(zip(bands, keys))
    quality = None if kind == "spectral" else _quality_band(profile, kind)
    if quality is not None:
        needed[quality] = profile.asset_key(quality)
    return keys, needed, quality


def monthly_composite(
    stack: SceneStack, *, shadow_search_px: int | None = SHADOW_SEARCH_PX, clear: xr.DataArray | None = None
) -> xr.Dataset:
    """Median of clear observations per pixel and band, with their spread.

    Returns a lazy Dataset with

    - ``reflectance`` (band, y, x) float32, reflectance 0-1: the median of the
      clear observations, NaN where there is none;
    - ``spread`` (band, y, x) float32, reflectance: the interquartile range
      (75th - 25th percentile, linear interpolation as ``np.percentile``) of those
      observations, the composite's per-pixel uncertainty; 0 with one observation;
    - ``clear_count`` (y, x) uint8, the clear observations per pixel;
    - ``obs_count`` (y, x) uint8, the observations with data at all (clear or not).

    Clear means clear by the stack's mask kind (SCL, QA_PIXEL or spectral), or by ``clear``
    ((time, y, x) bool) when given: a mask computed before the stack's scaling was changed
    (``memories.earth.atmosphere.dos_correct`` keeps the spectral test on top-of-atmosphere values).

    When every scene scales a band alike (the usual case within a month) median
    and quartiles are taken on the uint16 digital numbers and scaled once: DN ->
    reflectance is increasing and affine, so the two orders give the same value,
    and the DN path moves a quarter of the bytes. Otherwise (a month that spans a
    processing-baseline change) each scene is scaled first.
    """
    if clear is None:
        clear = stack.clear_mask(shadow_search_px=shadow_search_px)
    if stack.uniform_scaling and stack.nodata == 0 and (stack.scale > 0).all():
        dn = stack.dn.chunk({"time": -1})
        mask = clear.chunk({"time": -1}).expand_dims(band=1, axis=1)
        stats = dn.data.map_blocks(_dn_median_iqr, mask.data, chunks=((2,), *dn.data.chunks[1:]), dtype=np.float32)
        scale = xr.DataArray(stack.scale[0], dims="band")
        offset = xr.DataArray(stack.offset[0], dims="band")
        coords = {k: v for k, v in dn.coords.items() if "time" not in v.dims}
        reflectance = (xr.DataArray(stats[0], dims=dn.dims[1:], coords=coords) * scale + offset).astype(np.float32)
        spread = (xr.DataArray(stats[1], dims=dn.dims[1:], coords=coords) * scale).astype(np.float32)
    else:
        masked = stack.reflectance().where(clear).chunk({"time": -1}).transpose("time", ...)
        # map_blocks keeps time as the leading, contiguous axis of each block: sorting
        # along it is several times faster than along a transposed last axis.
        stats = masked.data.map_blocks(_nan_median_iqr, chunks=((2,), *masked.data.chunks[1:]), dtype=np.float32)
        coords = {k: v for k, v in masked.coords.items() if "time" not in v.dims}
        reflectance = xr.DataArray(stats[0], dims=masked.dims[1:], coords=coords)
        spread = xr.DataArray(stats[1], dims=masked.dims[1:], coords=coords)
    composite = xr.Dataset(
        {
            "reflectance": reflectance,
            "spread": spread,
            "clear_count": clear.sum("time").astype(np.uint8),
            "obs_count": stack.has_data().sum("time").astype(np.uint8),
        }
    )
    for name, attrs in COMPOSITE_ATTRS.items():
        composite[name].attrs.update(attrs)
    if stack.uniform_scaling:
        # The per-band DN scaling the month's scenes shared, for a reader who wants the DN back (not CF
        # scale_factor: the values are already reflectance and must not be rescaled).
        composite["reflectance"].attrs["dn_scale"] = [float(v) for v in stack.scale[0]]
        composite["reflectance"].attrs["dn_offset"] = [float(v) for v in stack.offset[0]]
    return composite


COMPOSITE_ATTRS: dict[str, dict[str, str]] = {
    "reflectance": {"units": "1", "long_name": "reflectance, median of the month's clear observations"},
    "spread": {"units": "1", "long_name": "interquartile range of the month's clear reflectance"},
    "clear_count": {"units": "1", "long_name": "clear observations of the month (cloud, shadow masked)"},
    "obs_count": {"units": "1", "long_name": "observations of the month with data"},
}
"""CF attributes of each composite variable (reflectance is dimensionless, 0-1; counts are scene counts)."""


def composite_stats(composite: xr.Dataset) -> dict[str, Any]:
    """Composite-level quality figures of a (computed or lazy) ``monthly_composite`` Dataset.

    A lazy composite is read one block of chunk rows at a time (``chunked_stats``): memory
    stays bounded by a chunk at any tile size; medians are exact (``np.median``'s values).

    Returns a dict:

    - ``pixels``: pixels in the composite;
    - ``valid_pixels``: pixels with a clear median in every band;
    - ``valid_fraction``: ``valid_pixels / pixels`` (0-1);
    - ``observations``: observations with data, summed over pixels (``obs_count``);
    - ``clear_observations``: of those, the clear ones (``clear_count``);
    - ``cloud_fraction``: ``1 - clear / observations`` (0-1; None without observations):
      the share of observations masked as cloud, shadow or otherwise unusable;
    - ``mean_clear_obs``: mean clear observations per pixel;
    - ``median_spread``: per band, the median interquartile range of valid pixels (reflectance; None if none).
    """
    from memories.earth.composite_summary import summarize_composite

    return summarize_composite(composite, medians=False).stats


def band_medians(reflectance: xr.DataArray) -> dict[str, float | None]:
    """Per band, ``np.nanmedian`` of a (band, y, x) array (None where all NaN), row block by row block."""
    out: dict[str, float | None] = {}
    for i, b in enumerate(reflectance["band"].values):

        def finite(i: int = i) -> Iterator[np.ndarray]:
            for y0, y1 in row_blocks(reflectance):
                v = np.asarray(reflectance.isel(band=i, y=slice(y0, y1)).values)
                yield v[np.isfinite(v)]

        out[str(b)] = exact_median(finite)
    return out


def _dn_median_iqr(dn: np.ndarray, clear: np.ndarray) -> np.ndarray:
    """(2, ...) float32: median and interquartile range over axis 0 of the clear, non-zero DNs (NaN: none)."""
    return dn_median_iqr(dn, clear)


def _nan_median_iqr(a: np.ndarray) -> np.ndarray:
    """(2, ...) float32: median and interquartile range over axis 0 ignoring NaN."""
    return nan_median_iqr(a)


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


def _stack_gdal(items: Sequence[Any], keys: Sequence[str], grid: TileGrid, dtype: str, chunk_px: int) -> xr.DataArray:
    """``_stack`` by ``cog_reader.stack_cogs``: the same values, coordinates and chunks."""
    import pandas as pd

    from memories.earth.cog_reader import stack_cogs

    factors = [_native_factor(items, key, grid, whole=False) for key in keys]
    hrefs = [[str(it["assets"][key]["href"]) for key in keys] for it in items]
    times = pd.to_datetime([it["properties"]["datetime"] for it in items], errors="raise", format="ISO8601")
    if times.tz is not None:
        times = times.tz_convert(None)
    return xr.DataArray(
        stack_cogs(hrefs, factors, grid, dtype, chunk_px),
        dims=("time", "band", "y", "x"),
        coords={"time": times.values, "band": list(keys), "y": grid.y, "x": grid.x},
    )


def _native_factor(items: Sequence[Any], key: str, grid: TileGrid, *, whole: bool = True) -> int:
    """k when every item's asset can be read at k times the grid's pixel size and each pixel repeated k x k.

    That equals a nearest resampling only when all three hold: the asset is in the
    grid's CRS (``stac.item_epsg``; an unknown CRS does not count), its pixels are
    north-up squares of exactly k grid pixels, and its pixel corners fall on the
    grid's origin. Coordinates that merely align in numbers across two CRSs (a
    Landsat band in EPSG:32621 on a grid in EPSG:32722) must be warped. Else 1.
    ``whole``: k must also divide the grid's width and height (stackstac reads the k-grid
    whole); the direct reader crops the last native pixels instead, so passes False.
    """
    factors = set()
    for it in items:
        if item_epsg(it, key) != grid.epsg:
            return 1
        asset = item_dict(it).get("assets", {}).get(key)
        t = asset.get("proj:transform") if asset is not None else None
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
    return k if not whole or (grid.width % k == 0 and grid.height % k == 0) else 1


def resolve_mask_kind(profile: CatalogProfile, mask_kind: str | None) -> MaskKind:
    """The mask kind asked for, else the profile's, else ``"scl"``; checked."""
    kind = mask_kind or getattr(profile, "mask_kind", None) or "scl"
    if kind not in MASK_KINDS:
        raise ConfigError(f"mask kind {kind!r} is unknown; use one of {list(MASK_KINDS)}")
    return kind  # type: ignore[return-value]


def _quality_band(profile: CatalogProfile, kind: str) -> str:
    """The common name of the quality band of a mask kind in the profile's items (``scl`` or ``qa_pixel``)."""
    if kind == getattr(profile, "mask_kind", "scl"):
        return profile.mask_band
    return "qa_pixel" if kind == "qa_pixel" else MASK_BAND


def _spectral_clear(refl: xr.DataArray, search_px: int | None) -> xr.DataArray:
    """(time, y, x) spectral clear mask of a (time, band, y, x) reflectance stack, chunk-wise.

    Chunks overlap by the shadow search radius, so a cloud near a chunk edge still
    marks the dark pixels across it.
    """
    import dask.array as da

    names = [str(b) for b in refl["band"].values]
    depth = search_px or 0

    def block(a: np.ndarray) -> np.ndarray:
        bands = {name: a[:, j] for j, name in enumerate(names)}
        return spectral_clear_mask(bands, search_px=search_px)

    data = refl.data if isinstance(refl.data, da.Array) else da.from_array(refl.data, chunks=-1)
    data = data.rechunk({1: -1})
    if depth:
        depth = min(depth, *(min(c) for c in data.chunks[2:]))
        # a chunk smaller than the radius would need a deeper overlap than dask gives: one chunk then
        if depth < (search_px or 0):
            data = data.rechunk({2: -1, 3: -1})
            depth = 0
    mask = (
        da.map_overlap(
            block,
            data,
            depth={0: 0, 1: 0, 2: depth, 3: depth},
            boundary="none",
            drop_axis=1,
            dtype=bool,
            trim=True,
        )
        if depth
        else data.map_blocks(block, drop_axis=1, dtype=bool)
    )
    return xr.DataArray(
        mask, dims=("time", "y", "x"), coords={k: v for k, v in refl.coords.items() if "band" not in v.dims}
    )
