"""The atmosphere of one scene: clouds, their shadows, thin cirrus and the swath edge.

Everything here lives on the 20 m grid (half the tile's pixels a side), the grid
of the SCL band, and is repeated 2 x 2 onto the 10 m bands, so the SCL of a
20 m pixel describes exactly the four 10 m pixels under it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter

# Sen2Cor scene classification codes used by the sample world.
SCL_NODATA = 0
SCL_CLOUD_SHADOW = 3
SCL_VEGETATION = 4
SCL_NOT_VEGETATED = 5
SCL_WATER = 6
SCL_CLOUD_MEDIUM = 8
SCL_CLOUD_HIGH = 9
SCL_THIN_CIRRUS = 10

CLEAR_FRACTION = 1 / 3
"""Share of scenes that are nearly clear (under 1 % cloud)."""
CLOUDY_RANGE = (0.10, 0.70)
"""Cloud fraction of the other scenes, drawn uniformly."""
NODATA_FRACTION = 1 / 8
"""Share of scenes with a no-data wedge (part of the tile outside the swath)."""
SHADOW_OFFSET_20M = (5, 8)
"""Rows and columns (20 m pixels) from a cloud to its shadow, towards the north-west
(the morning sun stands in the south-east); about 10 x 16 pixels at 10 m."""
SHADOW_DARKENING = (0.25, 0.35)
"""Range of the factor by which shadow multiplies reflectance."""
CLOUD_BRIGHTNESS = (0.35, 0.60)
"""Reflectance of cloud tops, thin edge to thick core, in the visible and NIR."""
CLOUD_BAND_FACTOR = np.array([1.0, 1.0, 1.0, 1.0, 0.8, 0.65], dtype=np.float32)
"""Cloud brightness per reflectance band relative to the visible (SWIR about 0.3)."""
CIRRUS_OPACITY = 0.2
"""Weight of cloud brightness in thin cirrus pixels."""
HIGH_PROBABILITY_THICKNESS = 0.3
"""Cloud thickness (0-1) above which SCL says high probability (9), else medium (8)."""


@dataclass(frozen=True, eq=False)
class Atmosphere:
    """Clouds and swath of one scene on the 20 m grid.

    Attributes:
        cloud_fraction: the drawn share of the tile under cloud (0-1).
        thickness: float32, 0 outside clouds, (0, 1] inside (core is 1).
        cloud: bool, opaque cloud (SCL 8 or 9).
        cirrus: bool, thin cirrus rim around clouds (SCL 10).
        shadow: bool, cloud shadow on the ground (SCL 3), outside cloud and cirrus.
        nodata: bool, outside the swath: every band 0.
        shadow_factor: multiplier of reflectance in shadow.
    """

    cloud_fraction: float
    thickness: np.ndarray
    cloud: np.ndarray
    cirrus: np.ndarray
    shadow: np.ndarray
    nodata: np.ndarray
    shadow_factor: float

    @property
    def opacity(self) -> np.ndarray:
        """float32 weight of cloud brightness in each pixel (0 where clear)."""
        alpha = np.where(self.cloud, 0.85 + 0.15 * self.thickness, 0.0)
        return np.where(self.cirrus, CIRRUS_OPACITY, alpha).astype(np.float32)

    def brightness(self, band_index: int) -> np.ndarray:
        """float32 reflectance of the cloud in a band (index into the reflectance bands)."""
        lo, hi = CLOUD_BRIGHTNESS
        return np.asarray(((lo + (hi - lo) * self.thickness) * CLOUD_BAND_FACTOR[band_index]).astype(np.float32))

    def scl(self, clear: np.ndarray) -> np.ndarray:
        """uint8 SCL: the clear-sky classes ``clear`` (4, 5, 6) overlaid by shadow,
        cirrus, cloud and no-data."""
        scl = clear.astype(np.uint8)
        scl[self.shadow] = SCL_CLOUD_SHADOW
        scl[self.cirrus] = SCL_THIN_CIRRUS
        scl[self.cloud] = SCL_CLOUD_MEDIUM
        scl[self.cloud & (self.thickness > HIGH_PROBABILITY_THICKNESS)] = SCL_CLOUD_HIGH
        scl[self.nodata] = SCL_NODATA
        return scl

    @property
    def any_cloud(self) -> bool:
        """Whether any pixel is cloud, cirrus or shadow."""
        return bool(self.cloud.any() or self.cirrus.any() or self.shadow.any())


def draw_atmosphere(rng: np.random.Generator, n: int) -> Atmosphere:
    """Draw the atmosphere of a scene on an ``n`` x ``n`` 20 m grid.

    A third of the scenes are nearly clear; the others have 10-70 % cloud. The
    cloud mask thresholds a smooth random field at the quantile of the drawn
    fraction, so the fraction is met exactly; the shadow is the mask moved by
    the sun geometry offset.
    """
    nearly_clear = rng.random() < CLEAR_FRACTION
    fraction = rng.uniform(0.0, 0.01) if nearly_clear else rng.uniform(*CLOUDY_RANGE)
    field = gaussian_filter(rng.standard_normal((n, n), dtype=np.float32), n / 14, mode="wrap")
    detail = gaussian_filter(rng.standard_normal((n, n), dtype=np.float32), n / 40, mode="wrap")
    field = field / field.std() + 0.35 * detail / detail.std()
    threshold = np.quantile(field, 1.0 - fraction)
    cloud = field > threshold
    top = float(field.max())
    thickness = np.where(cloud, np.clip((field - threshold) / max(top - threshold, 1e-6) * 2.5, 0, 1), 0)
    cirrus = binary_dilation(cloud) & ~cloud
    dy, dx = SHADOW_OFFSET_20M
    shadow = np.zeros_like(cloud)
    shadow[: n - dy, : n - dx] = cloud[dy:, dx:]
    shadow &= ~(cloud | cirrus)
    return Atmosphere(
        cloud_fraction=float(fraction),
        thickness=thickness.astype(np.float32),
        cloud=cloud,
        cirrus=cirrus,
        shadow=shadow,
        nodata=_swath_edge(rng, n),
        shadow_factor=float(rng.uniform(*SHADOW_DARKENING)),
    )


def _swath_edge(rng: np.random.Generator, n: int) -> np.ndarray:
    """No-data wedge of 1 in ``1 / NODATA_FRACTION`` scenes: a diagonal corner of
    the tile, 5-40 % of it, outside the orbit's swath."""
    if rng.random() >= NODATA_FRACTION:
        return np.zeros((n, n), dtype=bool)
    corner, reach = int(rng.integers(4)), rng.uniform(0.16, 0.45)
    u = (np.arange(n) + 0.5) / n
    u = u if corner in (0, 3) else u[::-1]
    v = (np.arange(n) + 0.5) / n
    v = v if corner in (0, 1) else v[::-1]
    return (u[None, :] + v[:, None]) / 2 < reach
