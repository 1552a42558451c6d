"""One acquisition of a tile: clear-sky reflectance, atmosphere, noise, digital numbers.

``clear_sky`` is the one home of the noise-free, cloud-free surface reflectance:
the generator renders scenes from it and the ground-truth API returns it, so
the two agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from memories.sample.clouds import (
    SCL_CLOUD_HIGH,
    SCL_CLOUD_MEDIUM,
    SCL_CLOUD_SHADOW,
    SCL_NODATA,
    SCL_NOT_VEGETATED,
    SCL_THIN_CIRRUS,
    SCL_VEGETATION,
    SCL_WATER,
    draw_atmosphere,
)
from memories.sample.landscape import WATER, Landscape
from memories.sample.spec import SampleWorldSpec
from memories.sample.spectra import BAND_INFO, REFLECTANCE_BANDS, day_of_year, to_dn, zone_table

NOISE_SIGMA = 0.004
"""Standard deviation of per-scene sensor noise, reflectance units."""
VEGETATION_NDVI = 0.4
"""NDVI above which a clear pixel is SCL vegetation (4) rather than not vegetated (5)."""

_ATMOSPHERE_KEY = 2  # random-stream keys, beside the landscape's
_NOISE_KEY = 3


@dataclass(frozen=True, eq=False)
class Scene:
    """A rendered scene: digital numbers per asset and its SCL statistics.

    Attributes:
        tile_id: MGRS id.
        index: position of the scene in the tile's acquisition list.
        datetime: acquisition time, UTC.
        arrays: asset key -> uint16 DN array (10 m or 20 m), ``scl`` -> uint8 (20 m).
        stats: percentages of the SCL classes over the tile (``eo:cloud_cover``
            and the ``s2:*_percentage`` properties).
    """

    tile_id: str
    index: int
    datetime: datetime
    arrays: dict[str, np.ndarray]
    stats: dict[str, float]

    @property
    def item_id(self) -> str:
        """Earth Search v1 item id, e.g. ``S2A_33TVM_20230105_0_L2A``."""
        return f"{self.platform_code}_{self.tile_id}_{self.datetime:%Y%m%d}_0_L2A"

    @property
    def platform_code(self) -> str:
        """``S2A`` or ``S2B``: the two satellites alternate."""
        return "S2A" if self.index % 2 == 0 else "S2B"


def clear_sky(landscape: Landscape, when: datetime, band: str, zones: np.ndarray | None = None) -> np.ndarray:
    """Noise-free, cloud-free surface reflectance (0-1) of one band at ``when``.

    float32 on the band's own grid: 10 m, or for 20 m bands the 2 x 2 mean of
    the 10 m model. ``zones`` saves recomputing ``landscape.zones_at(when)``.
    """
    b = REFLECTANCE_BANDS.index(band)
    zones = landscape.zones_at(when) if zones is None else zones
    table = zone_table(landscape.zone_class, landscape.zone_shift, day_of_year(when))
    reflectance = table[:, b][zones] * landscape.texture
    return _block_mean(reflectance) if BAND_INFO[band].resolution == 20 else reflectance


def render_scene(spec: SampleWorldSpec, landscape: Landscape, index: int, when: datetime) -> Scene:
    """Render scene ``index`` of a tile, acquired at ``when``: clear sky, then
    clouds, cirrus and shadow, then sensor noise, then DN (0 outside the swath)."""
    tile_index = spec.tile_ids().index(landscape.tile.tile_id)
    atmosphere = draw_atmosphere(spec.rng(tile_index, _ATMOSPHERE_KEY, index), landscape.tile.width // 2)
    noise_rng = spec.rng(tile_index, _NOISE_KEY, index)
    zones = landscape.zones_at(when)
    table = zone_table(landscape.zone_class, landscape.zone_shift, day_of_year(when))

    masks20 = {"nodata": atmosphere.nodata, "shadow": atmosphere.shadow}
    masks10 = {k: repeat_to_10m(m) for k, m in masks20.items()}
    cloudy = atmosphere.any_cloud
    opacity20 = atmosphere.opacity
    opacity10 = repeat_to_10m(opacity20)

    arrays: dict[str, np.ndarray] = {}
    for b, band in enumerate(REFLECTANCE_BANDS):
        fine = BAND_INFO[band].resolution == 10
        r = table[:, b][zones] * landscape.texture
        if not fine:
            r = _block_mean(r)
        if cloudy:
            bright = atmosphere.brightness(b)
            alpha = opacity10 if fine else opacity20
            r += alpha * ((repeat_to_10m(bright) if fine else bright) - r)
            r[(masks10 if fine else masks20)["shadow"]] *= np.float32(atmosphere.shadow_factor)
        r += noise_rng.standard_normal(r.shape, dtype=np.float32) * np.float32(NOISE_SIGMA)
        dn = to_dn(r)
        dn[(masks10 if fine else masks20)["nodata"]] = 0
        arrays[band] = dn

    # Clear-sky classes by zone: water, or vegetation by the zone's NDVI.
    red, nir = table[:, REFLECTANCE_BANDS.index("red")], table[:, REFLECTANCE_BANDS.index("nir")]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    clear_code = np.where(
        landscape.zone_class == WATER, SCL_WATER, np.where(ndvi > VEGETATION_NDVI, SCL_VEGETATION, SCL_NOT_VEGETATED)
    ).astype(np.uint8)
    scl = atmosphere.scl(clear_code[zones[::2, ::2]])
    arrays["scl"] = scl
    return Scene(landscape.tile.tile_id, index, when, arrays, _scl_stats(scl))


def _scl_stats(scl: np.ndarray) -> dict[str, Any]:
    """Percentages of SCL classes: of the tile for no-data, of valid pixels otherwise."""
    counts = np.bincount(scl.ravel(), minlength=12)
    valid = max(int(counts[1:].sum()), 1)

    def pct(*codes: int) -> float:
        return round(100.0 * float(sum(counts[c] for c in codes)) / valid, 6)

    return {
        "eo:cloud_cover": pct(SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_THIN_CIRRUS, SCL_CLOUD_SHADOW),
        "s2:nodata_pixel_percentage": round(100.0 * float(counts[SCL_NODATA]) / scl.size, 6),
        "s2:cloud_shadow_percentage": pct(SCL_CLOUD_SHADOW),
        "s2:vegetation_percentage": pct(SCL_VEGETATION),
        "s2:not_vegetated_percentage": pct(SCL_NOT_VEGETATED),
        "s2:water_percentage": pct(SCL_WATER),
        "s2:medium_proba_clouds_percentage": pct(SCL_CLOUD_MEDIUM),
        "s2:high_proba_clouds_percentage": pct(SCL_CLOUD_HIGH),
        "s2:thin_cirrus_percentage": pct(SCL_THIN_CIRRUS),
    }


def _block_mean(a: np.ndarray) -> np.ndarray:
    """2 x 2 block mean: a 10 m array onto the 20 m grid."""
    h, w = a.shape
    return np.asarray(a.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3), dtype=np.float32))


def repeat_to_10m(a: np.ndarray) -> np.ndarray:
    """Repeat each 20 m pixel 2 x 2 onto the 10 m grid."""
    return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)
