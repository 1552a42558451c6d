"""Maps with a place: the month's true-colour composite under every report map, with its frame.

Every map figure of the reports is drawn the same way, here:

- the base is the month's true-colour composite from the memory (``surface_reflectance``
  bands red, green, blue), stretched by one fixed rule on every page (:data:`STRETCH`:
  reflectance 0–0.3 to 0–255, linear, clipped), so a colour means the same reflectance
  on every report, tile and month;
- the axes are the tile's own CRS in metres, labelled in geographic coordinates
  (longitude and latitude, WGS 84, where the graticule crosses the map's edges), with
  a thin graticule over the map, a scale bar, a north arrow pointing to true north
  (UTM grid north differs from it by the meridian convergence) and the CRS named;
- overlays (class masks, vector layers) are drawn in the same metres, so GIS layers
  in the tile CRS need no translation.

The interactive counterpart of the same layers is :mod:`memories.applications.webmap`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from memories.errors import MissingDataError, StorageError
from memories.grid import TileGrid

__all__ = [
    "STRETCH",
    "TRUE_COLOUR_BANDS",
    "Basemap",
    "basemap",
    "class_overlay",
    "crs_name",
    "draw_map",
    "map_legend",
    "stretch",
]

TRUE_COLOUR_BANDS: tuple[str, str, str] = ("red", "green", "blue")
"""``surface_reflectance`` bands of the true-colour composite, in RGB order."""
STRETCH: tuple[float, float] = (0.0, 0.3)
"""Reflectance (0–1) mapped to black and to full brightness of a channel: one fixed stretch for every map,
so the same colour is the same reflectance on every page (no per-image percentile stretch)."""
NO_COMPOSITE_GREY = 0.85
"""Grey (0–1) of the base where the memory holds no composite of the map's month."""


@dataclass(frozen=True)
class Basemap:
    """The true-colour base of a map: RGBA (H, W, 4) uint8 on ``grid``, transparent where unobserved.

    uint8, not float: a full 10 980 px Sentinel-2 tile is 480 MB so, a quarter of float32."""

    rgba: np.ndarray
    grid: TileGrid
    month: str | None
    """Month of the composite; None when the memory holds none up to the map's month (a grey base)."""

    @property
    def label(self) -> str:
        """What the base is, for captions and the interactive map's layer list."""
        if self.month is None:
            return "no true-colour composite in the memory (grey base)"
        lo, hi = STRETCH
        return f"true-colour composite {self.month} (red, green, blue; reflectance {lo:g}–{hi:g})"


def stretch(reflectance: np.ndarray) -> np.ndarray:
    """(H, W, 4) RGBA float 0–1 of a (3, H, W) red/green/blue reflectance stack by the fixed :data:`STRETCH`;
    alpha 0 where any band is NaN (no clear observation)."""
    lo, hi = STRETCH
    refl = np.asarray(reflectance, dtype=np.float32)
    valid = np.asarray(np.isfinite(refl).all(axis=0))
    rgb = np.clip((np.nan_to_num(refl, nan=0.0) - lo) / (hi - lo), 0.0, 1.0)
    return np.concatenate([np.moveaxis(rgb, 0, -1), valid[..., None].astype(np.float32)], axis=-1)


def _to_uint8(rgba: np.ndarray) -> np.ndarray:
    return np.asarray(np.round(np.clip(rgba, 0, 1) * 255), dtype=np.uint8)


def basemap(view: Any, tile: str, month: str, grid: TileGrid) -> Basemap:
    """The true-colour base of ``tile`` for ``month``: its ``surface_reflectance`` composite, or the latest
    earlier one the memory holds (``Basemap.month`` says which), or a grey base when it holds none."""
    try:
        months = [m for m in view.months("surface_reflectance", tile) if m <= month]
    except MissingDataError:
        months = []
    for m in reversed(months):
        try:
            ds = view.raster("surface_reflectance", tile, m)
        except (MissingDataError, StorageError):  # the base is a backdrop: a month that cannot be read is skipped
            continue
        bands = [str(b) for b in ds["band"].values]
        if not set(TRUE_COLOUR_BANDS) <= set(bands):
            continue
        refl = np.stack([np.asarray(ds["reflectance"].sel(band=b).values) for b in TRUE_COLOUR_BANDS])
        if refl.shape[1:] == grid.shape:
            return Basemap(_to_uint8(stretch(refl)), grid, m)
    grey = np.full((*grid.shape, 4), round(NO_COMPOSITE_GREY * 255), dtype=np.uint8)
    grey[..., 3] = 255
    return Basemap(grey, grid, None)


def crs_name(grid: TileGrid) -> str:
    """``EPSG:32633 (WGS 84 / UTM zone 33N)``: the tile CRS by code and name."""
    return f"{grid.crs} ({_crs(grid.crs).name})"


def class_overlay(codes: np.ndarray, colours: dict[int, str], alpha: float = 0.8) -> np.ndarray:
    """(H, W, 4) RGBA uint8 of an integer class raster: each code of ``colours`` in its colour at ``alpha``
    (0–1), every other code transparent (so the composite shows through)."""
    from matplotlib.colors import to_rgba

    out = np.zeros((*codes.shape, 4), dtype=np.uint8)
    for code, colour in colours.items():
        out[codes == code] = _to_uint8(np.array([*to_rgba(colour)[:3], alpha]))
    return out


def draw_map(
    ax: Any,
    base: Basemap,
    *,
    overlays: list[np.ndarray] | tuple[np.ndarray, ...] = (),
    window: tuple[float, float, float, float] | None = None,
    title: str | None = None,
    base_alpha: float = 1.0,
) -> None:
    """Draw ``base`` and the RGBA ``overlays`` (each (H, W, 4), uint8 or float 0–1, on the base's grid) on
    ``ax`` in the tile CRS (metres), limited to ``window`` (x0, y0, x1, y1 metres; default the tile), with
    geographic axes, a graticule, a scale bar, a north arrow and the CRS. Vector layers go on afterwards in the
    same metres."""
    grid = base.grid
    x0, y0, x1, y1 = grid.bounds
    extent = (x0, x1, y0, y1)
    ax.set_facecolor("#d9d9d9")
    ax.imshow(base.rgba, extent=extent, interpolation="nearest", alpha=base_alpha, zorder=0)
    for layer in overlays:
        ax.imshow(layer, extent=extent, interpolation="nearest", zorder=1)
    wx0, wy0, wx1, wy1 = window or grid.bounds
    ax.set_xlim(wx0, wx1)
    ax.set_ylim(wy0, wy1)
    ax.set_aspect("equal")
    _geographic_axes(ax, grid, (wx0, wy0, wx1, wy1))
    _scale_bar(ax, wx1 - wx0)
    _north_arrow(ax, grid, (wx0, wy0, wx1, wy1))
    ax.set_xlabel(f"longitude · map grid {crs_name(grid)}", fontsize=8)
    ax.set_ylabel("latitude (WGS 84)", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)


def map_legend(ax: Any, handles: list[Any], *, loc: str = "lower right", outside: bool = False, **kw: Any) -> None:
    """The legend of a map: inside a corner (``loc``) with a white box, or outside on the right."""
    if outside:
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False, **kw)
    else:
        ax.legend(handles=handles, loc=loc, fontsize=7, framealpha=0.85, **kw)


# -- the frame --------------------------------------------------------------------------------------
@cache
def _crs(code: str) -> Any:
    from pyproj import CRS

    return CRS.from_user_input(code)


@cache
def _transformers(code: str) -> tuple[Any, Any]:
    """(tile CRS -> WGS 84 lon/lat, WGS 84 -> tile CRS), axis order x/lon first."""
    from pyproj import Transformer

    return (
        Transformer.from_crs(_crs(code), 4326, always_xy=True),
        Transformer.from_crs(4326, _crs(code), always_xy=True),
    )


GRATICULE_STEPS_DEG = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0)
"""Candidate graticule spacings, degrees; the smallest giving at most :data:`MAX_TICKS` lines is used."""
MAX_TICKS = 5


def _graticule_step(span_deg: float) -> float:
    return next((s for s in GRATICULE_STEPS_DEG if span_deg / s <= MAX_TICKS), GRATICULE_STEPS_DEG[-1])


def _deg_label(value: float, step: float, pos: str, neg: str) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{abs(value):.{decimals}f}°{pos if value >= 0 else neg}"


def _geographic_axes(ax: Any, grid: TileGrid, window: tuple[float, float, float, float]) -> None:
    """Ticks where meridians cross the bottom edge and parallels the left edge, labelled in degrees, and the
    graticule lines themselves (thin, white) over the map."""
    fwd, inv = _transformers(grid.crs)
    x0, y0, x1, y1 = window
    n = 64
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    lon_b, _ = fwd.transform(xs, np.full(n, y0))
    _, lat_l = fwd.transform(np.full(n, x0), ys)
    corners_lon, corners_lat = fwd.transform([x0, x1, x0, x1], [y0, y0, y1, y1])
    lon_lo, lon_hi, lat_lo, lat_hi = min(corners_lon), max(corners_lon), min(corners_lat), max(corners_lat)
    step = _graticule_step(max(lon_hi - lon_lo, lat_hi - lat_lo))
    lons = np.arange(math.ceil(lon_lo / step) * step, lon_hi + step / 2, step)
    lats = np.arange(math.ceil(lat_lo / step) * step, lat_hi + step / 2, step)
    xticks = [(float(np.interp(v, lon_b, xs)), v) for v in lons if lon_b.min() <= v <= lon_b.max()]
    yticks = [(float(np.interp(v, lat_l, ys)), v) for v in lats if lat_l.min() <= v <= lat_l.max()]
    ax.set_xticks([t for t, _ in xticks], [_deg_label(v, step, "E", "W") for _, v in xticks], fontsize=7)
    ax.set_yticks([t for t, _ in yticks], [_deg_label(v, step, "N", "S") for _, v in yticks], fontsize=7)
    line = np.linspace(0, 1, 32)
    style = {"color": "white", "lw": 0.5, "alpha": 0.6, "ls": (0, (4, 3)), "zorder": 2}
    for lon in lons:
        gx, gy = inv.transform(np.full(32, lon), lat_lo + line * (lat_hi - lat_lo))
        ax.plot(gx, gy, **style)
    for lat in lats:
        gx, gy = inv.transform(lon_lo + line * (lon_hi - lon_lo), np.full(32, lat))
        ax.plot(gx, gy, **style)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def _nice_length(width_m: float) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k metres) of at most a quarter of ``width_m``."""
    target = width_m / 4
    k = 10 ** math.floor(math.log10(target))
    return float(max(m * k for m in (1, 2, 5) if m * k <= target))


def _scale_bar(ax: Any, width_m: float) -> None:
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = _nice_length(width_m)
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    bar = AnchoredSizeBar(
        ax.transData,
        length,
        label,
        "lower left",
        pad=0.4,
        sep=3,
        frameon=True,
        size_vertical=width_m / 150,
        color="black",
        fontproperties={"size": 7},
    )
    bar.patch.set_alpha(0.8)
    bar.set_zorder(5)
    ax.add_artist(bar)


def _north_arrow(ax: Any, grid: TileGrid, window: tuple[float, float, float, float]) -> None:
    """An arrow to true north at the upper right; its tilt from the axes is the meridian convergence."""
    fwd, inv = _transformers(grid.crs)
    x0, y0, x1, y1 = window
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    lon, lat = fwd.transform(cx, cy)
    nx, ny = inv.transform(lon, lat + 0.01)
    angle = math.atan2(nx - cx, ny - cy)
    tail = (0.93, 0.78)
    head = (tail[0] + 0.1 * math.sin(angle), tail[1] + 0.1 * math.cos(angle))
    ax.annotate(
        "N",
        xy=head,
        xytext=tail,
        xycoords="axes fraction",
        textcoords="axes fraction",
        ha="center",
        va="top",
        fontsize=9,
        fontweight="bold",
        arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.5},
        bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        zorder=6,
    )
