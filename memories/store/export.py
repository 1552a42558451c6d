"""Plain copies of a raster product month for GIS tools: Cloud-Optimized GeoTIFF and Zarr v3.

The stores are Icechunk repositories, which GDAL, QGIS and ``xr.open_zarr`` cannot
open. :func:`export_month` writes one month of one product and tile, as of any
version (an Icechunk snapshot id, or a transaction time: the version that was
current then), to

- a **COG** (``.tif``): one band per variable (by name), or per variable and band
  for variables with a ``band`` dim (described ``reflectance:red``), in the tile's CRS
  and grid, tiled, DEFLATE-compressed, with overviews (nearest for integer data,
  average for floats); nodata is the store's (NaN for floats, 0 for integers);
  band tags carry each variable's attributes (``units``, ``long_name``), dataset
  tags the product, tile, month and snapshot id. Variables of different types
  share the wider type (``np.result_type``: ``uint8`` with ``float32`` gives
  ``float32``, where an integer 0 stays 0, a value); export such variables one at a
  time (``variables=``) to keep each type and its nodata.
- a plain **Zarr v3** store (``.zarr``): the month's variables and coordinates
  with CF georeferencing (``spatial_ref``, ``grid_mapping``) and attributes, text in
  Zarr v3's ``string`` type, readable by ``xr.open_zarr`` and rioxarray.

The destination is a local path; it is written beside itself and renamed into
place, so a failed export leaves no half file. From the shell:
``python -m memories.store export PRODUCT TILE MONTH DEST`` (see ``__main__``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from memories.errors import ConfigError, StorageError
from memories.grid import TileGrid
from memories.store.cf import GRID_MAPPING, product_attrs, text_array
from memories.store.paths import StorageRoot
from memories.store.raster import nodata_value, open_raster_version
from memories.store.raster_versions import raster_versions, snapshot_at_time

__all__ = ["ExportFormat", "ExportedMonth", "export_month"]

ExportFormat = Literal["cog", "zarr"]

FORMAT_OF_SUFFIX: dict[str, ExportFormat] = {".tif": "cog", ".tiff": "cog", ".zarr": "zarr"}
"""The format a destination's suffix implies when none is named."""

COG_BLOCKSIZE = 512
"""Tile side of the COG in pixels (GDAL's default); overviews halve until one fits in a tile."""


@dataclass(frozen=True)
class ExportedMonth:
    """What :func:`export_month` wrote.

    Attributes:
        path: the written file (COG) or folder (Zarr).
        format: ``cog`` or ``zarr``.
        product, tile, month: what was exported (month ``YYYY-MM``).
        snapshot_id: the Icechunk snapshot (version) exported.
        bands: the COG's band descriptions in band order, or the Zarr store's variables.
    """

    path: str
    format: ExportFormat
    product: str
    tile: str
    month: str
    snapshot_id: str
    bands: tuple[str, ...]


def export_month(
    root: StorageRoot,
    product: str,
    tile: str,
    month: str,
    dest: str | os.PathLike[str],
    *,
    format: ExportFormat | None = None,
    snapshot: str | None = None,
    as_of: datetime | None = None,
    variables: list[str] | None = None,
    overwrite: bool = False,
    blocksize: int = COG_BLOCKSIZE,
) -> ExportedMonth:
    """Write one month of a raster product of one tile as a COG or a plain Zarr v3 store.

    Args:
        root: the storage root holding the product.
        product: product name, e.g. ``spectral_indices``.
        tile: MGRS tile id.
        month: ``YYYY-MM``.
        dest: local path of the file (COG) or folder (Zarr) to write.
        format: ``cog`` or ``zarr``; by default from ``dest``'s suffix (``.tif``, ``.tiff``, ``.zarr``).
        snapshot: export this version (a snapshot id the memory catalog recorded).
        as_of: instead, the version current at this instant (UTC if naive).
        variables: only these variables, in this order (default: all, by name).
        overwrite: replace an existing ``dest``.
        blocksize: COG tile side, pixels (a multiple of 16, at least 128).
    """
    fmt = _format(dest, format)
    if blocksize < 128 or blocksize % 16:
        raise ConfigError(f"COG blocksize {blocksize} px: GDAL needs a multiple of 16, at least 128 (default 512)")
    if snapshot and as_of is not None:
        raise ConfigError("pass snapshot or as_of, not both: a snapshot id already names one version")
    path = Path(dest).expanduser().resolve()
    if path.exists() and not overwrite:
        raise StorageError(f"{path} exists; choose another destination or pass overwrite=True (--overwrite)")
    uri = root.raster_uri(product, tile)
    snapshot_id = _snapshot(root, uri, product, tile, snapshot, as_of)
    ds = open_raster_version(root, uri, snapshot_id, month=month)
    unknown = [v for v in variables or [] if v not in ds.data_vars]
    if unknown:
        raise ConfigError(f"{product} has no variables {unknown}; it holds {sorted(map(str, ds.data_vars))}")
    ds = ds[variables or sorted(map(str, ds.data_vars))]
    tags = {"product": product, "tile": tile, "month": month, "snapshot_id": snapshot_id}
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if fmt == "cog":
            bands = _write_cog(ds, tmp, TileGrid.from_dict(ds.attrs["grid"]), tags, blocksize)
        else:
            bands = _write_zarr(ds, tmp, tags)
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return ExportedMonth(str(path), fmt, product, tile, month, snapshot_id, tuple(bands))


def _format(dest: str | os.PathLike[str], format: str | None) -> ExportFormat:
    if format is None:
        suffix = Path(dest).suffix.lower()
        if suffix not in FORMAT_OF_SUFFIX:
            raise ConfigError(
                f"cannot tell the format of {str(dest)!r} from its suffix; name it .tif (COG) or .zarr, "
                "or pass format='cog' or 'zarr' (--format)"
            )
        return FORMAT_OF_SUFFIX[suffix]
    if format not in ("cog", "zarr"):
        raise ConfigError(f"export format {format!r} is not one of 'cog', 'zarr'")
    return format  # type: ignore[return-value]


def _snapshot(
    root: StorageRoot, uri: str, product: str, tile: str, snapshot: str | None, as_of: datetime | None
) -> str:
    """The snapshot id to export: the one named, the one current at ``as_of``, or the branch tip."""
    versions = raster_versions(root, uri)
    if not versions:
        raise StorageError(f"{uri} does not exist; materialize {product} for tile {tile} first")
    if snapshot:
        if snapshot not in {v.snapshot_id for v in versions}:
            recent = ", ".join(v.snapshot_id for v in versions[:3])
            raise StorageError(
                f"{uri} has no snapshot {snapshot!r}; its newest are {recent} "
                f"(python -m memories.store versions {product} {tile} lists all)"
            )
        return snapshot
    if as_of is None:
        return versions[0].snapshot_id
    found = snapshot_at_time(versions, as_of)
    if found is None:
        raise StorageError(
            f"{uri} did not exist yet at {as_of.isoformat()}; its first version is of {versions[-1].written_at}"
        )
    return found


def _write_cog(ds: xr.Dataset, path: Path, grid: TileGrid, tags: dict[str, str], blocksize: int) -> list[str]:
    """One band per variable (and band); band by band, so memory holds one band at a time."""
    import rasterio
    from rasterio.crs import CRS

    layers: list[tuple[str, xr.DataArray]] = []
    for name, var in ds.data_vars.items():
        if "band" in var.dims:
            layers += [(f"{name}:{b}", var.isel(band=k)) for k, b in enumerate(var["band"].values)]
        else:
            layers.append((str(name), var))
    dtype = np.result_type(*(v.dtype for _, v in layers))
    floats = np.issubdtype(dtype, np.floating)
    profile = {
        "driver": "COG",
        "width": grid.width,
        "height": grid.height,
        "count": len(layers),
        "dtype": dtype.name,
        "crs": CRS.from_epsg(grid.epsg),
        "transform": grid.transform,
        "nodata": nodata_value(dtype),
        "BLOCKSIZE": blocksize,
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "YES",
        "OVERVIEW_RESAMPLING": "AVERAGE" if floats else "NEAREST",
        "BIGTIFF": "IF_SAFER",
        "NUM_THREADS": "ALL_CPUS",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.update_tags(**tags)
        for i, (description, var) in enumerate(layers, start=1):
            if var.dims != ("y", "x"):
                raise StorageError(f"{tags['product']}.{description} has dims {var.dims}; a COG band is (y, x)")
            dst.write(np.asarray(var.values).astype(dtype, copy=False), i)
            dst.set_band_description(i, description)
            attrs = product_attrs(var.attrs)
            attrs.pop("grid_mapping", None)
            if "units" in attrs:
                dst.set_band_unit(i, str(attrs["units"]))
            dst.update_tags(i, **{k: str(v) for k, v in attrs.items()})
    return [d for d, _ in layers]


def _write_zarr(ds: xr.Dataset, path: Path, tags: dict[str, str]) -> list[str]:
    """The month as a plain Zarr v3 store, without the source's chunk and codec encoding."""
    out = ds.drop_encoding()
    for name, var in out.variables.items():
        if var.dtype.kind in "USOT":
            out[name] = var.copy(data=text_array(var.values))
    out.attrs = {**out.attrs, **tags}
    for name in out.data_vars:
        out[name].attrs = {**product_attrs(out[name].attrs), "grid_mapping": GRID_MAPPING}
    out.to_zarr(str(path), mode="w-", zarr_format=3, consolidated=False)
    return [str(v) for v in out.data_vars]
