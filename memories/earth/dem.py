"""DEM sources: GeoTIFF files or a STAC collection (Copernicus DEM GLO-30), resampled onto a tile's grid.

A DEM arrives in its own CRS and cell size (GLO-30: 1 x 1 degree COGs in EPSG:4326, about 30 m); the
terrain of a tile is computed on the tile's declared 10 m grid, so every source goes through
:func:`dem_on_grid`: each file is reprojected onto the grid with bilinear resampling and the files are
mosaicked, the first file that covers a cell winning. Cells no file covers are NaN (and reported).

STAC: :func:`dem_items` searches the profile's collection (``cop-dem-glo-30`` on Earth Search and
Planetary Computer, asset key ``data`` as the ``elevation`` band of the profile) over the tile's bbox,
without a datetime (a DEM has one epoch); Planetary Computer hrefs are signed like imagery's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memories.earth.stac_profiles import CatalogProfile, signer_for
from memories.errors import DataSourceError
from memories.grid import TileGrid

ELEVATION_BAND = "elevation"
"""The common band name of a DEM profile's elevation asset."""
EARTH_RADIUS_M = 6371008.8
"""Mean Earth radius (metres) for the cell size of geographic DEMs."""


@dataclass(frozen=True)
class DemRaster:
    """A DEM on its own grid.

    Attributes:
        elevation: float64 (rows, cols) metres, NaN where the file has no data.
        transform: the affine transform (pixel corner to CRS units).
        crs: the CRS as rasterio reads it.
    """

    elevation: np.ndarray
    transform: Any
    crs: Any

    def cell_size_m(self) -> tuple[float, float]:
        """(dx, dy) of a cell in metres: the transform's for a projected CRS; for a geographic one, the arc
        lengths at the grid's centre latitude (the north-south spread of a tile changes them by well under 1 %)."""
        dx, dy = abs(self.transform.a), abs(self.transform.e)
        if not self.crs.is_geographic:
            return float(dx), float(dy)
        lat = self.transform.f + self.transform.e * self.elevation.shape[0] / 2
        deg = math.pi / 180 * EARTH_RADIUS_M
        return float(dx * deg * math.cos(math.radians(lat))), float(dy * deg)


def read_dem(path: str) -> DemRaster:
    """Band 1 of a GeoTIFF as a :class:`DemRaster` (its nodata value becomes NaN).

    Raises:
        DataSourceError: the file cannot be read (names it).
    """
    import rasterio

    try:
        with rasterio.open(path) as src:
            z = src.read(1, masked=True).astype(np.float64).filled(np.nan)
            return DemRaster(z, src.transform, src.crs)
    except rasterio.errors.RasterioIOError as e:
        raise DataSourceError(f"cannot read the DEM {path}: {e}; give a GeoTIFF path or URL GDAL can open") from e


def dem_on_grid(hrefs: Sequence[str], grid: TileGrid) -> np.ndarray:
    """The DEM files ``hrefs`` (paths or URLs GDAL opens) reprojected onto ``grid``, bilinear, float32 metres.

    Raises:
        DataSourceError: no href given, a file is unreadable, or none covers any cell of the tile.
    """
    import rasterio
    from rasterio.warp import Resampling, reproject

    if not hrefs:
        raise DataSourceError(f"no DEM file covers tile {grid.tile_id}; configure a DEM path or STAC collection")
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    for href in hrefs:
        part = np.full(grid.shape, np.nan, dtype=np.float32)
        try:
            with rasterio.open(href) as src:
                reproject(
                    rasterio.band(src, 1),
                    part,
                    src_nodata=src.nodata,
                    dst_transform=grid.transform,
                    dst_crs=grid.crs,
                    dst_nodata=np.nan,
                    resampling=Resampling.bilinear,
                )
        except rasterio.errors.RasterioIOError as e:
            raise DataSourceError(f"cannot read the DEM {href}: {e}") from e
        fill = np.isnan(out) & ~np.isnan(part)
        out[fill] = part[fill]
    if np.isnan(out).all():
        raise DataSourceError(
            f"the DEM files {list(hrefs)} do not cover tile {grid.tile_id} (bounds {grid.bounds} in {grid.crs}); "
            "choose files or a collection that cover it"
        )
    return out


def dem_items(client: Any, profile: CatalogProfile, grid: TileGrid) -> list[Any]:
    """The items of the profile's DEM collection that intersect the tile, sorted by id.

    Raises:
        DataSourceError: the search fails or finds no item.
    """
    try:
        items = list(client.search(collections=[profile.collection], bbox=list(grid.bbox_wgs84)).items())
    except Exception as e:
        raise DataSourceError(f"STAC search of {profile.collection} for tile {grid.tile_id} failed: {e}") from e
    if not items:
        raise DataSourceError(
            f"{profile.collection} at {profile.url} has no item over tile {grid.tile_id} "
            f"(bbox {grid.bbox_wgs84}); check the collection id and the tile"
        )
    for item in items:
        profile.check_assets(item, {ELEVATION_BAND: profile.asset_key(ELEVATION_BAND)})
    return sorted(items, key=lambda it: it.id)


def dem_hrefs(items: Sequence[Any], profile: CatalogProfile) -> list[str]:
    """The elevation asset hrefs of DEM items, signed when the profile asks for it."""
    key = profile.asset_key(ELEVATION_BAND)
    signer = signer_for(profile)
    hrefs = [it.assets[key].href for it in items]
    if signer is not None:
        hrefs = [signer.sign_href(h, profile.collection) for h in hrefs]
    return [h[7:] if h.startswith("file://") else h for h in hrefs]


def find_dem(
    source: str,
    grid: TileGrid,
    *,
    sample_path: str | None = None,
    paths: Sequence[str] = (),
    profile: str = "planetary-computer-dem",
    url: str | None = None,
) -> tuple[list[str], list[str]]:
    """The DEM files covering the tile, and the ids of the STAC items they came from (none for files).

    Args:
        source: ``sample`` (the sample world's analytic DEM at ``sample_path``), ``files`` (``paths``) or
            ``stac`` (a DEM collection searched through the catalog ``profile``, at ``url`` or its own).
        grid: the tile.

    Raises:
        ConfigError: an unknown source, or a source without what it reads (no ``sample_path``, no ``paths``).
    """
    from memories.errors import ConfigError

    if source == "sample":
        if not sample_path:
            raise ConfigError("source='sample' needs the sample world's DEM; the catalog serves no sample world")
        return [sample_path], []
    if source == "files":
        if not paths:
            raise ConfigError("source='files' needs paths=[...] of DEM files (GeoTIFF/COG) covering the tile")
        return list(paths), []
    if source != "stac":
        raise ConfigError(f"DEM source {source!r} is unknown; use 'sample', 'files' or 'stac'")
    from memories.earth.stac import open_client
    from memories.earth.stac_profiles import get_profile

    found_profile = get_profile(profile, url=url)
    found = dem_items(open_client(found_profile.url or ""), found_profile, grid)
    return dem_hrefs(found, found_profile), [it.id for it in found]
