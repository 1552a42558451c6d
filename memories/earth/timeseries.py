"""Time series of cloud-masked composites under a point, and spectral indices over them.

The seed's ``SatelliteImagery.get_historical_imagery`` and ``calculate_index``
(``memories.earth.satellite``) are built from these pieces:

- ``periods``: the calendar months or years a half-open time range ``[start, end)`` overlaps;
- ``tile_at``: the declared tile under a point (and ``window``, a square of it around the point);
- ``composite_series``: per period, the scenes' cloud-masked median composite (``monthly_composite``
  works on any period), stacked along ``time``; top-of-atmosphere (L1C) scenes are corrected first
  when asked (``memories.earth.atmosphere``), surface reflectance (L2A) is left as it is and says so;
- ``calculate_index``: one index of such a series, per pixel or aggregated over space or time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

import numpy as np
import xarray as xr

from memories.earth.atmosphere import DOS_NEEDS, dark_object_haze, dos_correct, is_surface_reflectance, processing_level
from memories.earth.imagery import load_scenes, monthly_composite, resolve_mask_kind
from memories.earth.indices import INDICES, compute_indices
from memories.earth.quality import SPECTRAL_BANDS, MaskKind
from memories.earth.stac import SceneSearch
from memories.earth.stac_profiles import CatalogProfile, common_band_name
from memories.errors import ConfigError, ProcessingError
from memories.grid import TileGrid
from memories.months import add_months, parse_time

Interval = Literal["monthly", "yearly"]
INTERVALS: tuple[str, ...] = ("monthly", "yearly")
Aggregate = Literal["mean", "median", "min", "max", "std"]
AGGREGATES: tuple[str, ...] = ("mean", "median", "min", "max", "std")
"""Reductions ``calculate_index`` offers (NaN, i.e. masked pixels and empty periods, skipped)."""
Over = Literal["space", "time"]


@dataclass(frozen=True)
class Period:
    """One step of a time series.

    Attributes:
        label: ``YYYY-MM`` (monthly) or ``YYYY`` (yearly).
        start: first instant (UTC), the later of the calendar period's and the range's start.
        end: the instant it ends (exclusive), the earlier of the calendar period's and the range's end.
    """

    label: str
    start: datetime
    end: datetime


def periods(time_range: Sequence[Any], interval: str) -> list[Period]:
    """The calendar months or years that the half-open range ``[start, end)`` overlaps, clipped to it.

    ``time_range`` is ``(start, end)``: ISO dates or date-times (``"2000-01-01"``), months (``"2023-05"``:
    its first instant as a start, the next month's as an end) or datetimes; naive ones are UTC.

    Raises:
        ConfigError: not two times, end not after start, or an interval other than ``INTERVALS``.
    """
    if interval not in INTERVALS:
        raise ConfigError(f"interval={interval!r} is not one of {list(INTERVALS)}")
    if isinstance(time_range, str) or len(time_range) != 2:
        raise ConfigError(f"time_range must be (start, end), e.g. ('2023-01-01', '2024-01-01'), not {time_range!r}")
    start = parse_time(time_range[0], "time_range start")
    end = parse_time(time_range[1], "time_range end", end=True)
    if end <= start:
        raise ConfigError(f"time_range {tuple(time_range)!r} ends before it starts; swap them")
    step = 1 if interval == "monthly" else 12
    cursor = add_months(start, 0) if interval == "monthly" else start.replace(month=1, day=1, hour=0, minute=0)
    cursor = cursor.replace(second=0, microsecond=0)
    out = []
    while cursor < end:
        nxt = add_months(cursor, step)
        label = cursor.strftime("%Y-%m") if interval == "monthly" else cursor.strftime("%Y")
        out.append(Period(label, max(cursor, start), min(nxt, end)))
        cursor = nxt
    return out


def tile_at(tiles: Sequence[TileGrid], lat: float, lon: float) -> tuple[TileGrid, list[str]]:
    """(the tile whose grid holds the point, the other tiles that hold it too).

    Where tiles overlap, the one whose centre is nearest (in its own CRS) is taken.

    Raises:
        ConfigError: the point is not a (lat, lon) pair in degrees, or no declared tile holds it
            (the message lists each tile's WGS84 box).
    """
    from pyproj import Transformer

    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ConfigError(f"location=({lat}, {lon}) is not (latitude, longitude) in degrees")
    holding: list[tuple[float, TileGrid]] = []
    for t in tiles:
        x, y = Transformer.from_crs("EPSG:4326", t.crs, always_xy=True).transform(lon, lat)
        x0, y0, x1, y1 = t.bounds
        if x0 <= x <= x1 and y0 <= y <= y1:
            holding.append((float(np.hypot(x - (x0 + x1) / 2, y - (y0 + y1) / 2)), t))
    if not holding:
        boxes = {t.tile_id: tuple(round(v, 4) for v in t.bbox_wgs84) for t in tiles}
        raise ConfigError(
            f"no tile of the area of interest holds location=({lat}, {lon}); the tiles and their "
            f"(west, south, east, north) boxes are {boxes}. Pick a point inside one, or declare its tile in aoi.tiles"
        )
    holding.sort(key=lambda p: p[0])
    return holding[0][1], [t.tile_id for _, t in holding[1:]]


def window(grid: TileGrid, lat: float, lon: float, radius_km: float) -> TileGrid:
    """The square of the tile grid around a point, ``2 radius_km`` on a side, on the tile's own pixels.

    Raises:
        ConfigError: the radius is not positive.
    """
    from pyproj import Transformer

    if not radius_km > 0:
        raise ConfigError(f"radius_km={radius_km} must be a positive number of kilometres (or None: the whole tile)")
    x, y = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True).transform(lon, lat)
    r, res = radius_km * 1000.0, grid.resolution
    x0, y0, x1, y1 = grid.bounds
    col0 = int(np.clip(np.floor((x - r - x0) / res), 0, grid.width - 1))
    col1 = int(np.clip(np.ceil((x + r - x0) / res), col0 + 1, grid.width))
    row0 = int(np.clip(np.floor((y1 - (y + r)) / res), 0, grid.height - 1))
    row1 = int(np.clip(np.ceil((y1 - (y - r)) / res), row0 + 1, grid.height))
    return TileGrid(
        grid.tile_id, grid.epsg, x0 + col0 * res, y1 - row0 * res, col1 - col0, row1 - row0, grid.resolution
    )


def composite_series(
    searches: Sequence[tuple[Period, SceneSearch]],
    profile: CatalogProfile,
    grid: TileGrid,
    bands: Sequence[str],
    *,
    apply_atmospheric_correction: bool,
    mask_kind: MaskKind | None = None,
    chunk_px: int = 1024,
) -> xr.Dataset:
    """The composites of each period's scenes on the grid, stacked along ``time`` (lazily).

    Variables ``reflectance`` (time, band, y, x; reflectance 0-1), ``spread``, ``clear_count``,
    ``obs_count`` as ``monthly_composite`` makes them; ``time`` is each period's start, with
    coordinates ``period_end`` and ``scene_count``, and the labels (``2023-05``, ``2023``) in
    ``attrs["periods"]``. Bands are common names, the names as asked in ``attrs["band_names"]``
    (no string coordinates beyond ``band``: the series writes to Zarr v3 as the composites do). A
    period without scenes is left out and named in ``attrs["empty_periods"]``.

    Top-of-atmosphere (L1C) scenes are corrected by dark-object subtraction when
    ``apply_atmospheric_correction`` (``memories.earth.atmosphere``; the haze of each scene in
    ``attrs["haze"]``); surface reflectance (L2A, Landsat L2) is never corrected twice, and
    ``attrs["atmospheric_correction"]`` says what was done.

    Raises:
        ProcessingError: no period has a scene, or a correction is asked for scenes of an unknown level.
    """
    asked = list(bands)
    names = [common_band_name(b) for b in asked]
    if len(set(names)) != len(names):
        raise ConfigError(f"bands={asked} name the same band twice")
    with_items = _periods_with_scenes(searches, grid)
    level, surface, correct = _correction_plan(
        [it for _, s in with_items for it in s.items], profile, apply_atmospheric_correction
    )
    kind = resolve_mask_kind(profile, mask_kind)
    load = list(
        dict.fromkeys([*names, *(SPECTRAL_BANDS if kind == "spectral" else ()), *(DOS_NEEDS if correct else ())])
    )
    composites, haze = [], {}
    for period, found in with_items:
        stack = load_scenes(found.items, profile, grid, tuple(load), chunk_px=chunk_px, mask_kind=kind)
        clear = stack.clear_mask()
        if correct:
            estimate = dark_object_haze(stack, clear)
            stack = dos_correct(stack, estimate)
            haze[period.label] = {**estimate.to_dict(), "scenes": [it.id for it in found.items]}
        composites.append(monthly_composite(stack, clear=clear).sel(band=names))
    series = xr.concat(composites, dim="time", join="exact", combine_attrs="drop_conflicts")
    series = series.assign_coords(
        time=("time", np.array([p.start.replace(tzinfo=None) for p, _ in with_items], dtype="datetime64[ns]")),
        period_end=("time", np.array([p.end.replace(tzinfo=None) for p, _ in with_items], dtype="datetime64[ns]")),
        scene_count=("time", [len(s.items) for _, s in with_items]),
    )
    series.attrs.update(
        tile_id=grid.tile_id,
        crs=grid.crs,
        periods=[p.label for p, _ in with_items],
        band_names=asked,
        collection=profile.collection,
        processing_level=level,
        surface_reflectance=bool(surface or correct),
        atmospheric_correction=_correction_note(level, apply_atmospheric_correction, correct),
        mask_kind=kind,
        scenes={p.label: [it.id for it in s.items] for p, s in with_items},
        rejected={p.label: dict(s.rejected) for p, s in searches if s.rejected},
        empty_periods=[p.label for p, s in searches if not s.items],
    )
    if haze:
        series.attrs["haze"] = haze
    return series


def _periods_with_scenes(
    searches: Sequence[tuple[Period, SceneSearch]], grid: TileGrid
) -> list[tuple[Period, SceneSearch]]:
    """The periods whose search found scenes; ``ProcessingError`` (with what was rejected) when none did."""
    with_items = [(p, s) for p, s in searches if s.items]
    if not with_items:
        rejected = {k: v for _, s in searches for k, v in list(s.rejected.items())[:3]}
        raise ProcessingError(
            f"no scenes of tile {grid.tile_id} in any of the {len(searches)} periods "
            f"{[p.label for p, _ in searches][:6]}...; rejected, e.g.: {rejected}. Raise max_cloud_cover or "
            "move time_range onto the catalog's dates"
        )
    return with_items


def _correction_plan(items: list[Any], profile: CatalogProfile, apply: bool) -> tuple[str, bool, bool]:
    """(processing level, whether it is surface reflectance, whether to correct by dark-object subtraction)."""
    level = processing_level(items, profile.collection)
    surface = is_surface_reflectance(level)
    if apply and level == "unknown":
        raise ProcessingError(
            f"cannot tell whether the scenes of {profile.collection!r} are L1C or L2A (no processing:level or "
            "s2:product_type); pass apply_atmospheric_correction=False, or search a collection that says its level"
        )
    return level, surface, apply and not surface


def calculate_index(
    imagery: xr.Dataset | xr.DataArray, index: str = "NDVI", aggregate: str | None = None, over: str = "space"
) -> xr.DataArray:
    """One spectral index of a composite series (or of any reflectance with a ``band`` dimension).

    Args:
        imagery: ``get_historical_imagery``'s Dataset (its ``reflectance``), or a reflectance DataArray
            whose ``band`` coordinate holds common names (``red``, ``nir``...).
        index: ``NDVI``, ``NDWI``, ``EVI``, ``NBR``, ``NDMI``, ``MNDWI`` (any case; ``memories.earth.indices``).
        aggregate: None: the index per pixel (time, y, x); ``mean``, ``median``, ``min``, ``max``, ``std``:
            reduced over ``over``, masked (NaN) pixels skipped.
        over: ``space`` (default: one value per image, the seed's "mean NDVI for each image", with the
            pixels it covers in the ``valid_pixels`` coordinate) or ``time`` (one value per pixel).

    Returns:
        Dimensionless float32, named after the index; ``attrs`` say index, aggregate and axis.

    Raises:
        ConfigError: an unknown index, aggregate or axis.
        ProcessingError: the imagery lacks a band the index needs.
    """
    name = str(index).lower()
    if name not in INDICES:
        raise ConfigError(f"index={index!r} is not one of {[k.upper() for k in INDICES]}")
    if aggregate is not None and aggregate not in AGGREGATES:
        raise ConfigError(f"aggregate={aggregate!r} is not one of {list(AGGREGATES)} (or None: per pixel)")
    if over not in ("space", "time"):
        raise ConfigError(f"over={over!r} is not 'space' (one value per image) or 'time' (one value per pixel)")
    refl = imagery["reflectance"] if isinstance(imagery, xr.Dataset) else imagery
    values = compute_indices(refl, (name,))[name]
    attrs = dict(values.attrs, index=name.upper(), aggregate=aggregate or "none", over=over if aggregate else "none")
    if aggregate is not None:
        dims = [d for d in (("y", "x") if over == "space" else ("time",)) if d in values.dims]
        valid = values.notnull().sum(dims)
        reduced = getattr(values, aggregate)(dims, skipna=True)
        values = reduced.assign_coords(valid_pixels=valid) if over == "space" else reduced
    return cast(xr.DataArray, values.astype(np.float32).rename(name).assign_attrs(attrs))


def _correction_note(level: str, asked: bool, applied: bool) -> str:
    """What ``attrs["atmospheric_correction"]`` says of a series."""
    if applied:
        return (
            f"dark-object subtraction (Chavez 1988 improved DOS, DOS1) applied to the {level} top-of-atmosphere "
            "reflectance; per-scene haze in attrs['haze']"
        )
    if is_surface_reflectance(level):
        note = f"none applied: {level} scenes are surface reflectance already"
        return note + (" (the correction asked for was not repeated)" if asked else "")
    return f"none: {level} reflectance as the catalog serves it (apply_atmospheric_correction=False)"
