"""The one home of the nodata and scaling policy of scene bands.

Digital numbers become reflectance as ``DN * scale + offset`` with scale, offset,
dtype and nodata read from each asset's ``raster:bands``; nodata DNs become NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from memories.earth.items import item_dict
from memories.errors import DataSourceError


@dataclass(frozen=True)
class BandInfo:
    """How to read one asset of one item.

    Attributes:
        asset_key: key of the asset in the item.
        dtype: storage dtype of the digital numbers (``uint16``).
        nodata: DN that marks missing data, or None.
        scale: reflectance per DN.
        offset: reflectance at DN 0 (Earth Search v1 L2A: -0.1).
        resolution_m: native pixel size in metres, when published.
    """

    asset_key: str
    dtype: str
    nodata: float | None
    scale: float
    offset: float
    resolution_m: float | None


def raster_band(item: Any, asset_key: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(item dict, asset dict, first ``raster:bands`` entry or {}) of an item's asset (pystac Item or dict).

    Read locally (``memories.earth.items.item_dict``): never a network request.

    Raises:
        DataSourceError: the item has no such asset (names the assets it has).
    """
    d = item_dict(item)
    asset = d.get("assets", {}).get(asset_key)
    if asset is None:
        raise DataSourceError(
            f"item {d.get('id')!r} has no asset {asset_key!r}; its assets are {sorted(d.get('assets', {}))}. "
            "Check the catalog profile's asset-key mapping."
        )
    return d, asset, (asset.get("raster:bands") or [{}])[0]


def band_info(item: Any, asset_key: str) -> BandInfo:
    """The BandInfo of an item's asset, from its ``raster:bands`` (pystac Item or dict)."""
    d, asset, rb = raster_band(item, asset_key)
    # Planetary Computer's Sentinel-2 items carry no raster:bands: their DNs are reflectance x 10000 with
    # nodata 0 (the offset of baseline 04.00+ is applied by memories.earth.quality.reflectance_offset).
    sentinel2 = "s2:processing_baseline" in d.get("properties", {})
    return BandInfo(
        asset_key=asset_key,
        dtype=str(rb.get("data_type", "uint16")),
        nodata=rb.get("nodata", 0 if sentinel2 and "raster:bands" not in asset else None),
        scale=float(rb.get("scale", 1e-4 if sentinel2 else 1.0)),
        offset=float(rb.get("offset", 0.0)),
        resolution_m=rb.get("spatial_resolution"),
    )


def to_reflectance(dn: Any, scale: Any, offset: Any, nodata: float | None) -> Any:
    """Reflectance (float32, NaN where the DN is nodata) from digital numbers.

    Works on numpy and xarray (dask-backed too); ``scale`` and ``offset`` broadcast.
    """
    refl = dn.astype(np.float32) * scale + offset  # python floats stay weak: float32 result
    if nodata is None:
        return refl
    valid = dn != nodata
    if hasattr(refl, "where"):
        return refl.where(valid)
    return np.where(valid, refl, np.float32(np.nan)).astype(np.float32)
