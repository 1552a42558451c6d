"""Historical maps: scanned sheets georeferenced from ground control points.

A GCP ties a scan pixel position (``col``, ``row``; GDAL's convention: from the
top-left corner of the image, so the centre of the first pixel is 0.5, 0.5) to
a map position (``x``, ``y``, metres in a projected CRS). ``fit_transform``
fits, by least squares, an affine transform (6 parameters, 3+ GCPs) or a
polynomial of order 2 or 3 (6 or 10 parameters per axis). Its residual error is
the map's uncertainty and is kept with it: RMSE in metres, per-GCP residuals,
and the leave-one-out RMSE (each GCP predicted by a fit without it), which
unlike the RMSE does not flatter a transform with many parameters.

``georeference`` then resamples the scan onto a tile grid (nearest neighbour,
classes stay classes) with the fitted inverse (map to pixel) transform, and
``write_geotiff`` writes it as a GeoTIFF with the tile's CRS and transform.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from memories.errors import ConfigError, DataSourceError, ProcessingError
from memories.grid import TileGrid

Method = Literal["affine", "polynomial"]


@dataclass(frozen=True)
class GroundControlPoint:
    """A scan pixel position and its map position.

    Attributes:
        id: the point's name.
        col: column, pixels from the left edge of the scan.
        row: row, pixels from the top edge.
        x: easting, metres in the map CRS.
        y: northing, metres in the map CRS.
    """

    id: str
    col: float
    row: float
    x: float
    y: float


@dataclass(frozen=True)
class PixelTransform:
    """A fitted pixel-to-map (or map-to-pixel) polynomial.

    Attributes:
        order: 1 (affine) to 3.
        coef_x: coefficients of the first output, one per ``_terms`` column.
        coef_y: coefficients of the second output.
        centre: (a, b) subtracted from the inputs before the terms, for conditioning.
        scale: divisor of the centred inputs.
    """

    order: int
    coef_x: np.ndarray
    coef_y: np.ndarray
    centre: tuple[float, float]
    scale: float

    def __call__(self, a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
        """Apply to arrays of inputs."""
        terms = _terms(np.asarray(a, float), np.asarray(b, float), self.order, self.centre, self.scale)
        return terms @ self.coef_x, terms @ self.coef_y

    def affine(self) -> Any:
        """The ``affine.Affine`` of an order-1 pixel-to-map transform (for rasterio)."""
        from affine import Affine

        if self.order != 1:
            raise ConfigError("only an affine (order 1) transform has an Affine; this one is a polynomial")
        # x = c0 + c1 (col - a)/s + c2 (row - b)/s
        (a, b), s = self.centre, self.scale
        cx, cy = self.coef_x, self.coef_y
        return Affine(
            cx[1] / s,
            cx[2] / s,
            cx[0] - (cx[1] * a + cx[2] * b) / s,
            cy[1] / s,
            cy[2] / s,
            cy[0] - (cy[1] * a + cy[2] * b) / s,
        )


@dataclass(frozen=True)
class Georeference:
    """A fitted georeference and its error.

    Attributes:
        method: ``affine`` or ``polynomial``.
        order: polynomial order (1 for affine).
        crs: the map CRS.
        forward: pixel (col, row) to map (x, y).
        inverse: map (x, y) to pixel (col, row).
        residuals: per GCP: ``id, col, row, x, y, dx, dy, residual_m, loo_residual_m``
            (dx, dy = fitted minus given map position, metres).
        rmse_m: root mean square of the residuals, metres.
        loo_rmse_m: leave-one-out RMSE, metres.
    """

    method: Method
    order: int
    crs: str
    forward: PixelTransform
    inverse: PixelTransform
    residuals: Any
    rmse_m: float
    loo_rmse_m: float

    def summary(self) -> dict[str, Any]:
        """JSON-ready: method, order, crs, RMSE, LOO RMSE, max residual, GCP count."""
        return {
            "method": self.method,
            "order": self.order,
            "crs": self.crs,
            "gcps": len(self.residuals),
            "rmse_m": round(self.rmse_m, 3),
            "loo_rmse_m": round(self.loo_rmse_m, 3),
            "max_residual_m": round(float(self.residuals["residual_m"].max()), 3),
        }


def read_gcps(path: str | Path) -> tuple[list[GroundControlPoint], str]:
    """GCPs and their CRS from a JSON file ``{"crs": ..., "gcps": [{id, col, row, x, y}, ...]}``
    or a CSV with columns ``id,col,row,x,y`` (and a ``crs`` column)."""
    import pandas as pd

    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(path.read_text())
            rows, crs = doc["gcps"], doc["crs"]
        else:
            frame = pd.read_csv(path)
            crs = str(frame["crs"].iloc[0])
            rows = frame.to_dict("records")
        return [
            GroundControlPoint(str(r["id"]), float(r["col"]), float(r["row"]), float(r["x"]), float(r["y"]))
            for r in rows
        ], crs
    except (OSError, KeyError, ValueError, IndexError) as e:
        raise DataSourceError(
            f"cannot read GCPs from {path}: {e}; expected JSON {{crs, gcps: [{{id, col, row, x, y}}]}} "
            "or CSV id,col,row,x,y,crs"
        ) from e


def fit_transform(
    gcps: Sequence[GroundControlPoint], method: Method = "affine", order: int = 2, crs: str = ""
) -> Georeference:
    """Fit pixel-to-map by least squares and measure its error.

    Args:
        gcps: ground control points; at least 3 for affine, 6 for order 2, 10 for order 3
            (one more for the leave-one-out error).
        method: ``affine`` or ``polynomial``.
        order: polynomial order, 2 or 3 (ignored for affine).
        crs: the map CRS, kept with the result.
    """
    import pandas as pd

    if method not in ("affine", "polynomial"):
        raise ConfigError(f"georeferencing method {method!r}: use 'affine' or 'polynomial'")
    k = 1 if method == "affine" else order
    if k not in (1, 2, 3):
        raise ConfigError(f"polynomial order {order}: use 2 or 3 (1 is 'affine')")
    n_terms = (k + 1) * (k + 2) // 2
    if len(gcps) < n_terms + 1:
        raise ConfigError(
            f"{method} order {k} needs at least {n_terms + 1} GCPs ({n_terms} to fit, one more to check); "
            f"got {len(gcps)}; add GCPs or use a lower order"
        )
    col = np.array([g.col for g in gcps])
    row = np.array([g.row for g in gcps])
    x = np.array([g.x for g in gcps])
    y = np.array([g.y for g in gcps])
    forward = _fit(col, row, x, y, k)
    inverse = _fit(x, y, col, row, k)
    fx, fy = forward(col, row)
    dx, dy = fx - x, fy - y
    loo = np.empty(len(gcps))
    for i in range(len(gcps)):
        keep = np.arange(len(gcps)) != i
        t = _fit(col[keep], row[keep], x[keep], y[keep], k)
        px, py = t(col[i : i + 1], row[i : i + 1])
        loo[i] = float(np.hypot(px[0] - x[i], py[0] - y[i]))
    residuals = pd.DataFrame(
        {
            "id": [g.id for g in gcps],
            "col": col,
            "row": row,
            "x": x,
            "y": y,
            "dx": dx,
            "dy": dy,
            "residual_m": np.hypot(dx, dy),
            "loo_residual_m": loo,
        }
    )
    return Georeference(
        method=method,
        order=k,
        crs=crs,
        forward=forward,
        inverse=inverse,
        residuals=residuals,
        rmse_m=float(np.sqrt(np.mean(dx**2 + dy**2))),
        loo_rmse_m=float(np.sqrt(np.mean(loo**2))),
    )


def georeference(
    image: np.ndarray,
    gcps: Sequence[GroundControlPoint],
    grid: TileGrid,
    *,
    method: Method = "affine",
    order: int = 2,
    nodata: int = 0,
) -> tuple[np.ndarray, Georeference]:
    """Fit a transform from GCPs (in ``grid``'s CRS) and resample the scan onto the grid.

    Nearest neighbour: each grid pixel centre goes through the inverse transform to
    a scan pixel; grid pixels outside the scan get ``nodata``.

    Returns:
        (array on the grid, the fitted ``Georeference``).
    """
    if image.ndim != 2:
        raise ConfigError(f"scan image has shape {image.shape}; pass one band (rows, cols)")
    geo = fit_transform(gcps, method, order, crs=grid.crs)
    gx, gy = np.meshgrid(grid.x, grid.y)
    col, row = geo.inverse(gx.ravel(), gy.ravel())
    c = np.floor(col).astype(int).reshape(grid.shape)
    r = np.floor(row).astype(int).reshape(grid.shape)
    inside = (c >= 0) & (c < image.shape[1]) & (r >= 0) & (r < image.shape[0])
    out = np.full(grid.shape, nodata, dtype=image.dtype)
    out[inside] = image[r[inside], c[inside]]
    return out, geo


def geotiff_bytes(array: np.ndarray, grid: TileGrid, *, nodata: int = 0, colormap: dict[int, Any] | None = None,
                  tags: dict[str, str] | None = None) -> bytes:  # fmt: skip
    """A GeoTIFF (deflate, tiled) of one band on the tile grid, as bytes (for ``StorageRoot.write_bytes``)."""
    from rasterio.io import MemoryFile

    if array.shape != grid.shape:
        raise ProcessingError(f"array of shape {array.shape} is not on the {grid.tile_id} grid {grid.shape}")
    with MemoryFile() as mem:
        with mem.open(
            driver="GTiff", width=grid.width, height=grid.height, count=1, dtype=array.dtype, crs=grid.crs,
            transform=grid.transform, nodata=nodata, compress="deflate", tiled=True, blockxsize=256, blockysize=256,
        ) as ds:  # fmt: skip
            ds.write(array, 1)
            if colormap:
                ds.write_colormap(1, colormap)
            if tags:
                ds.update_tags(**tags)
        return bytes(mem.read())


class HistoricalMaps:
    """Scanned maps georeferenced onto tiles (the seed's name).

    Example::

        maps = HistoricalMaps()
        array, geo = maps.georeference_scan("scan.tif", "gcps.json", grid, method="polynomial")
        print(geo.rmse_m, geo.residuals)
    """

    def read_scan(self, path: str | Path) -> tuple[np.ndarray, dict[int, Any] | None]:
        """The first band of a scan and its colour table (None if it has none)."""
        import warnings

        import rasterio
        from rasterio.errors import NotGeoreferencedWarning

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(path) as ds:
                    band = ds.read(1)
                    try:
                        cmap = ds.colormap(1)
                    except ValueError:
                        cmap = None
        except rasterio.errors.RasterioIOError as e:
            raise DataSourceError(f"cannot read scan {path}: {e}") from e
        return band, cmap

    def georeference_scan(
        self, scan: str | Path, gcps: str | Path, grid: TileGrid, *, method: Method = "affine", order: int = 2
    ) -> tuple[np.ndarray, Georeference]:
        """Read a scan and its GCP file and put the scan on the tile grid."""
        image, _ = self.read_scan(scan)
        points, crs = read_gcps(gcps)
        if crs.upper() != grid.crs.upper():
            raise ConfigError(f"GCPs of {gcps} are in {crs}, the tile {grid.tile_id} in {grid.crs}; reproject the GCPs")
        return georeference(image, points, grid, method=method, order=order)

    def best_fit(self, gcps: Sequence[GroundControlPoint], crs: str = "") -> Georeference:
        """Affine or polynomial order 2, whichever has the lower leave-one-out RMSE
        (a polynomial must earn its extra parameters)."""
        candidates = [fit_transform(gcps, "affine", crs=crs)]
        if len(gcps) >= 7:
            candidates.append(fit_transform(gcps, "polynomial", 2, crs=crs))
        return min(candidates, key=lambda g: g.loo_rmse_m)


def residuals_markdown(geo: Georeference) -> str:
    """The per-GCP residuals as a Markdown table (metres), for the Dagster UI."""
    lines = ["| GCP | col | row | dx m | dy m | residual m | LOO m |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in geo.residuals.itertuples():
        cells = [r.id, f"{r.col:.1f}", f"{r.row:.1f}", f"{r.dx:.2f}", f"{r.dy:.2f}", f"{r.residual_m:.2f}"]
        lines.append("| " + " | ".join([*cells, f"{r.loo_residual_m:.2f}"]) + " |")
    return "\n".join(lines)


def _terms(a: np.ndarray, b: np.ndarray, order: int, centre: tuple[float, float], scale: float) -> np.ndarray:
    u, v = (a - centre[0]) / scale, (b - centre[1]) / scale
    cols = [u ** (i - j) * v**j for i in range(order + 1) for j in range(i + 1)]
    return np.column_stack(cols)


def _fit(a: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, order: int) -> PixelTransform:
    centre = (float(a.mean()), float(b.mean()))
    scale = float(max(np.ptp(a), np.ptp(b), 1e-9))
    terms = _terms(a, b, order, centre, scale)
    if np.linalg.matrix_rank(terms) < terms.shape[1]:
        raise ProcessingError(
            f"the GCPs do not determine an order-{order} transform (they lie on a line or repeat); "
            "spread GCPs over the whole sheet"
        )
    coef_x = np.linalg.lstsq(terms, x, rcond=None)[0]
    coef_y = np.linalg.lstsq(terms, y, rcond=None)[0]
    return PixelTransform(order, coef_x, coef_y, centre, scale)


__all__ = [
    "Georeference",
    "GroundControlPoint",
    "HistoricalMaps",
    "PixelTransform",
    "fit_transform",
    "georeference",
    "geotiff_bytes",
    "read_gcps",
    "residuals_markdown",
]
