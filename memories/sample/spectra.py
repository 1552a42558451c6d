"""The reflectance model: bands, class spectra and seasonal phenology.

Surface reflectance (0-1) of a vegetated class is a linear mix of soil and green
vegetation, ``soil * (1 - g) + vegetation * g``, where ``g`` is the class's
fractional green cover as a function of day of year (northern hemisphere).
Built-up land, water and bare soil have fixed spectra. A static per-pixel
texture multiplies all bands alike, so indices such as NDVI keep their class
values. NDVI comes out near 0.8 for summer forest, 0.1-0.2 for bare soil and
built-up land, and below 0 for water.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from memories.sample.landscape import BARE_SOIL, BUILT_UP, CROPLAND, FOREST, GRASSLAND, WATER


@dataclass(frozen=True)
class BandInfo:
    """One Sentinel-2 L2A asset as Earth Search v1 publishes it.

    Attributes:
        key: asset key (Earth Search v1 common name, e.g. ``red``).
        s2_name: Sentinel-2 band name (``B04``) or ``SCL``.
        resolution: pixel size, metres.
        center_wavelength: micrometres; None for SCL.
        full_width_half_max: micrometres; None for SCL.
        title: the asset title.
    """

    key: str
    s2_name: str
    resolution: int
    center_wavelength: float | None
    full_width_half_max: float | None
    title: str


BAND_INFO: dict[str, BandInfo] = {
    b.key: b
    for b in (
        BandInfo("blue", "B02", 10, 0.49, 0.098, "Blue (band 2) - 10m"),
        BandInfo("green", "B03", 10, 0.56, 0.045, "Green (band 3) - 10m"),
        BandInfo("red", "B04", 10, 0.665, 0.038, "Red (band 4) - 10m"),
        BandInfo("nir", "B08", 10, 0.842, 0.145, "NIR 1 (band 8) - 10m"),
        BandInfo("swir16", "B11", 20, 1.61, 0.143, "SWIR 1 (band 11) - 20m"),
        BandInfo("swir22", "B12", 20, 2.19, 0.242, "SWIR 2 (band 12) - 20m"),
        BandInfo("scl", "SCL", 20, None, None, "Scene classification map (SCL)"),
    )
}

BANDS: tuple[str, ...] = tuple(BAND_INFO)
"""Asset keys of a sample scene: six reflectance bands and ``scl``."""
REFLECTANCE_BANDS: tuple[str, ...] = BANDS[:6]
"""Asset keys of the reflectance bands, in the column order of the spectra below."""

DN_SCALE = 0.0001
DN_OFFSET = -0.1
"""reflectance = DN * DN_SCALE + DN_OFFSET (Earth Search v1, baseline 04.00 and later)."""

# Spectra, in the order of REFLECTANCE_BANDS (blue, green, red, nir, swir16, swir22).
VEGETATION = np.array([0.03, 0.07, 0.03, 0.40, 0.18, 0.08], dtype=np.float32)
# Green canopies differ by class as they do on real Sentinel-2 scenes: a forest
# canopy is darker in NIR and SWIR (shadowing in the crown, more water), a crop
# canopy is bright in NIR; so forest and crops at peak green-up are separable by
# their spectra, not only by their seasonal course.
CANOPY: dict[int, np.ndarray] = {
    FOREST: np.array([0.020, 0.045, 0.022, 0.28, 0.13, 0.055], dtype=np.float32),
    CROPLAND: np.array([0.035, 0.085, 0.035, 0.46, 0.22, 0.10], dtype=np.float32),
    GRASSLAND: np.array([0.035, 0.075, 0.040, 0.36, 0.21, 0.11], dtype=np.float32),
}
UNDERSTOREY_SHADE = {FOREST: 0.6}
"""Soil seen through a canopy is shaded: forest floor reflects 60 % of open soil."""
SOIL = np.array([0.08, 0.11, 0.14, 0.22, 0.30, 0.24], dtype=np.float32)
BUILT = np.array([0.10, 0.12, 0.14, 0.20, 0.24, 0.21], dtype=np.float32)
WATER_SPECTRUM = np.array([0.06, 0.05, 0.03, 0.015, 0.008, 0.005], dtype=np.float32)

FIXED_SPECTRA: dict[int, np.ndarray] = {WATER: WATER_SPECTRUM, BUILT_UP: BUILT, BARE_SOIL: SOIL}


def green_cover(class_code: int, doy: np.ndarray | float) -> np.ndarray:
    """Fractional green vegetation cover (0-1) of a class on day of year ``doy``.

    Forest stays high all year with a modest summer peak; cropland is near bare
    in winter, dense in June-July and harvested in August; grassland is
    moderate with a spring-summer peak; other classes have none.
    """
    d = np.asarray(doy, dtype=np.float64)
    if class_code == FOREST:
        return 0.72 + 0.20 * _bump(d, 195.0, 55.0)
    if class_code == CROPLAND:
        return np.asarray(0.08 + 0.84 * _sigmoid((d - 125.0) / 10.0) * _sigmoid((222.0 - d) / 4.0))
    if class_code == GRASSLAND:
        return 0.45 + 0.35 * _bump(d, 160.0, 60.0)
    return np.zeros_like(d)


def class_spectrum(class_code: int, doy: float) -> np.ndarray:
    """Reflectance (0-1) of a class on day of year ``doy``, one value per band."""
    if class_code in FIXED_SPECTRA:
        return FIXED_SPECTRA[class_code].copy()
    g = float(green_cover(class_code, doy))
    soil = SOIL * UNDERSTOREY_SHADE.get(class_code, 1.0)
    return (soil * (1.0 - g) + CANOPY.get(class_code, VEGETATION) * g).astype(np.float32)


def zone_table(zone_class: np.ndarray, zone_shift: np.ndarray, doy: float) -> np.ndarray:
    """Reflectance of every zone on day of year ``doy``: float32 (n_zones, 6).

    A zone's phenology runs ``zone_shift`` days late (early when negative).
    """
    table = np.zeros((len(zone_class), len(REFLECTANCE_BANDS)), dtype=np.float32)
    for z, (code, shift) in enumerate(zip(zone_class, zone_shift)):
        if code:
            table[z] = class_spectrum(int(code), (doy - float(shift)) % 365.25)
    return table


def to_dn(reflectance: np.ndarray) -> np.ndarray:
    """uint16 digital numbers of reflectance, 1..65535 (0 is kept for nodata)."""
    dn = np.rint((reflectance - DN_OFFSET) / DN_SCALE)
    return np.clip(dn, 1, 65535).astype(np.uint16)


def from_dn(dn: np.ndarray) -> np.ndarray:
    """float32 reflectance of uint16 digital numbers; NaN where DN is 0 (nodata)."""
    r = dn.astype(np.float32) * np.float32(DN_SCALE) + np.float32(DN_OFFSET)
    return np.where(dn == 0, np.float32(np.nan), r)


def day_of_year(when: datetime) -> float:
    """Fractional day of year (0 = 1 January 00:00) of a datetime."""
    tt = when.timetuple()
    return tt.tm_yday - 1 + (tt.tm_hour * 3600 + tt.tm_min * 60 + tt.tm_sec) / 86400.0


def _bump(d: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A Gaussian bump in day of year, wrapping around the year end."""
    delta = (d - centre + 182.625) % 365.25 - 182.625
    return np.exp(-0.5 * (delta / width) ** 2)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))
