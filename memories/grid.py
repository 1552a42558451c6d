"""The one home of the tile grid: CRS, origin, resolution and shape travel together.

A tile is a Sentinel-2 MGRS id (``33TVM``) with one declared UTM CRS and one
10 m grid. Nothing in the project guesses a grid from data: every raster product
of a tile is written on the ``TileGrid`` declared for it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from memories.errors import ConfigError

_MGRS_RE = re.compile(r"^(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z]{2})$")
_EPSG_RE = re.compile(r"^\s*(?:EPSG\s*:\s*)?(\d{4,6})\s*$", re.IGNORECASE)

M2_PER_HA = 10_000.0
"""Square metres in a hectare: the one conversion of areas the memory reports in hectares."""

GRID_KEYS = ("tile_id", "epsg", "x_min", "y_max", "width", "height", "resolution")
"""The keys of a tile mapping (``TileGrid.from_dict``, ``aoi.tiles`` entries); ``resolution`` is optional."""


@dataclass(frozen=True)
class TileGrid:
    """A tile's pixel grid: north-up, square pixels, in one projected CRS.

    Attributes:
        tile_id: MGRS tile id, e.g. ``33TVM``.
        epsg: EPSG code of the tile's UTM CRS (326xx north, 327xx south).
        x_min: west edge of the grid, metres in the tile CRS.
        y_max: north edge of the grid, metres in the tile CRS.
        width: number of columns.
        height: number of rows.
        resolution: pixel size in metres.
    """

    tile_id: str
    epsg: int
    x_min: float
    y_max: float
    width: int
    height: int
    resolution: float = 10.0

    def __post_init__(self) -> None:
        m = _MGRS_RE.match(self.tile_id)
        if not m:
            raise ConfigError(
                f"tile id {self.tile_id!r} is not an MGRS tile id; use the form '33TVM' "
                "(UTM zone, latitude band, 100 km square)"
            )
        zone = int(m.group(1))
        north = m.group(2) >= "N"
        expected = (32600 if north else 32700) + zone
        if self.epsg != expected:
            raise ConfigError(
                f"tile {self.tile_id} lies in UTM zone {zone}{'N' if north else 'S'}, "
                f"so its CRS is EPSG:{expected}, but EPSG:{self.epsg} was declared; fix the tile's epsg"
            )
        if self.width <= 0 or self.height <= 0 or self.resolution <= 0:
            raise ConfigError(
                f"tile {self.tile_id}: width, height and resolution must be positive, "
                f"got {self.width} x {self.height} px at {self.resolution} m"
            )

    @property
    def crs(self) -> str:
        """The CRS as an ``EPSG:xxxx`` string."""
        return f"EPSG:{self.epsg}"

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) in metres in the tile CRS."""
        return (
            self.x_min,
            self.y_max - self.height * self.resolution,
            self.x_min + self.width * self.resolution,
            self.y_max,
        )

    @property
    def transform(self) -> Any:
        """The affine transform of the grid (pixel corner to CRS metres)."""
        from affine import Affine

        return Affine(self.resolution, 0.0, self.x_min, 0.0, -self.resolution, self.y_max)

    @property
    def geotransform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL's geotransform of the grid: (x_min, pixel width, 0, y_max, 0, -pixel height), metres."""
        return (self.x_min, self.resolution, 0.0, self.y_max, 0.0, -self.resolution)

    def cf_grid_mapping(self) -> dict[str, Any]:
        """The attributes of the CF grid-mapping variable (``spatial_ref``) that georeferences the grid.

        CF's own parameters (``grid_mapping_name``, ...) and ``crs_wkt`` from pyproj, plus
        what GDAL and rioxarray read: ``spatial_ref`` (the same WKT) and ``GeoTransform``
        (:attr:`geotransform` as GDAL's space-separated six numbers).
        """
        from pyproj import CRS

        attrs: dict[str, Any] = dict(CRS.from_epsg(self.epsg).to_cf())
        attrs["spatial_ref"] = attrs["crs_wkt"]
        attrs["GeoTransform"] = " ".join(repr(float(v)) for v in self.geotransform)
        return attrs

    @property
    def x(self) -> np.ndarray:
        """Pixel-centre x coordinates, metres."""
        return self.x_min + (np.arange(self.width) + 0.5) * self.resolution

    @property
    def y(self) -> np.ndarray:
        """Pixel-centre y coordinates, metres (north to south)."""
        return self.y_max - (np.arange(self.height) + 0.5) * self.resolution

    @property
    def pixel_area_m2(self) -> float:
        """Area of one pixel in square metres."""
        return self.resolution * self.resolution

    @property
    def pixel_area_ha(self) -> float:
        """Area of one pixel in hectares (0.01 for 10 m pixels)."""
        return float(self.pixel_area_m2) / M2_PER_HA

    @cached_property
    def bbox_wgs84(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees, densified so it covers the tile."""
        from pyproj import Transformer

        t = Transformer.from_crs(self.epsg, 4326, always_xy=True)
        w, s, e, n = t.transform_bounds(*self.bounds, densify_pts=21)
        return (float(w), float(s), float(e), float(n))

    def mask_polygon(self, mask: np.ndarray) -> Any:
        """The pixels of a boolean (H, W) mask on this grid as one shapely (Multi)Polygon in the grid CRS
        (metres); an empty geometry when the mask is empty."""
        import shapely
        from rasterio.features import shapes
        from shapely.geometry import shape

        m = np.asarray(mask, dtype=bool)
        polys = [shape(g) for g, v in shapes(m.astype(np.uint8), mask=m, transform=self.transform) if v == 1]
        return shapely.union_all(polys)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the grid."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "tile grid") -> TileGrid:
        """Build a grid from ``to_dict`` output or a config mapping, every key and value checked.

        ``epsg`` may be ``32633``, ``"32633"`` or ``"EPSG:32633"``; ``width`` and ``height``
        must be whole numbers of pixels (``128`` or ``128.0``, never ``128.7``); ``x_min``,
        ``y_max`` and ``resolution`` are metres. ``where`` names the mapping in errors
        (e.g. ``aoi.tiles[0]``).

        Raises:
            ConfigError: a key is unknown or missing, or a value is not of its kind; the
                message names the key, the value and the fix.
        """
        if not isinstance(d, dict):
            raise ConfigError(f"{where} must be a mapping with keys {', '.join(GRID_KEYS)}, got {d!r}")
        for key in d:
            if key not in GRID_KEYS:
                close = difflib.get_close_matches(str(key), GRID_KEYS, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(
                    f"{where}: unknown key {key!r} (value {d[key]!r}); {hint}a tile's keys are {', '.join(GRID_KEYS)}"
                )
        for key in GRID_KEYS[:-1]:
            if key not in d:
                raise ConfigError(
                    f"{where} lacks {key!r}; a tile needs tile_id, epsg, x_min, y_max, width, height "
                    "(resolution is optional, 10 m)"
                )
        try:
            return cls(
                tile_id=str(d["tile_id"]),
                epsg=parse_epsg(d["epsg"], f"{where}.epsg"),
                x_min=_metres(d["x_min"], f"{where}.x_min"),
                y_max=_metres(d["y_max"], f"{where}.y_max"),
                width=_pixels(d["width"], f"{where}.width"),
                height=_pixels(d["height"], f"{where}.height"),
                resolution=_metres(d.get("resolution", 10.0), f"{where}.resolution"),
            )
        except ConfigError as e:
            if str(e).startswith(where):
                raise
            raise ConfigError(f"{where}: {e}") from None


def parse_epsg(value: Any, key: str = "epsg") -> int:
    """An EPSG code from ``32633``, ``"32633"`` or ``"EPSG:32633"`` (any case); ``key`` names it in errors.

    Raises:
        ConfigError: the value is none of these forms.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _EPSG_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise ConfigError(f"{key}: {value!r} is not an EPSG code; write the number, e.g. 32633, or 'EPSG:32633'")
    return int(m.group(1))


def _pixels(value: Any, key: str) -> int:
    """A whole number of pixels: an int, or a float or string holding one (``128.0``); never rounded."""
    number = _number(value, key, "a number of pixels, e.g. 1024")
    if not number.is_integer():
        raise ConfigError(
            f"{key}: {value!r} is not a whole number of pixels; a tile has whole pixels: "
            f"use {int(number // 1)} or {int(number // 1) + 1}"
        )
    return int(number)


def _metres(value: Any, key: str) -> float:
    """A number of metres (in the tile CRS), from an int, float or numeric string."""
    return _number(value, key, "metres, e.g. 460000")


def _number(value: Any, key: str, example: str) -> float:
    """A finite number from an int, float or numeric string; ``example`` shows the expected value in errors."""
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            pass
        else:
            if number == number and abs(number) != float("inf"):
                return number
    raise ConfigError(f"{key}: {value!r} is not a finite number; write {example}")
