"""Environmental monitoring of a tile-month: NDVI over time and vegetation loss.

``EnvironmentalMonitor.report(tile, month)`` reads the spectral indices and land
cover kept in memory and builds a report: an HTML page with PNG figures and a
JSON summary holding every number in it (with units). Figures are rendered with
matplotlib's Agg backend, so no display is needed.

Given the ``model_id`` of the land-cover model version that classified the
tile-month (``land_cover:3``, as the ``land_cover`` asset records it), the report
reads that version's sidecar from the model registry and shows what the model
looks at: the permutation importance of each band on held-out pixels
(``band_importance``, see :func:`memories.ai.explain.held_out_band_importance`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from memories.applications.vegetation import (
    LossThresholds,
    detect_vegetation_loss,
    patch_count,
    reference_month,
)
from memories.classes import CLASS_BY_NAME, LAND_COVER_CLASSES
from memories.grid import TileGrid
from memories.store.paths import StorageRoot, new_version_id
from memories.store.raster import MonthlyRasterStore

FOREST = CLASS_BY_NAME["forest"].code
REPORT_KIND = "environmental"


@dataclass
class EnvironmentalReport:
    """A built report: its summary, figures (PNG bytes) and HTML, not yet written."""

    summary: dict[str, Any]
    figures: dict[str, bytes]
    html: str
    forest_loss: np.ndarray
    files: dict[str, str] = field(default_factory=dict)
    """File name -> URI of the plain (current) file, once written."""
    version: str | None = None
    """The version id of the last write (see :meth:`write`)."""
    version_files: dict[str, str] = field(default_factory=dict)
    """File name -> URI of the immutable copy in the version written last."""

    def write(self, root: StorageRoot) -> dict[str, str]:
        """Write HTML, figures and JSON as a new version of the tile-month's report; returns name -> URI.

        The whole set of files goes under a fresh version folder
        (``StorageRoot.report_version_uri``, ``summary.json`` last), then the pointer
        (``version_pointer_uri`` of ``report.html``) is replaced atomically: the pointer
        is the commit point, so a write killed before it leaves the previous version
        current and every earlier version readable. The plain files users open
        (``report_uri(...)``, the returned URIs) are refreshed last, ``report.html``
        after the figures it shows. The version id is kept in :attr:`version`.
        """
        tile, month = self.summary["tile"], self.summary["month"]
        payload = {f"{k}.png": v for k, v in self.figures.items()}
        payload["report.html"] = self.html.encode()
        payload["summary.json"] = json.dumps(self.summary, indent=2).encode()
        now = datetime.now(UTC)
        version = new_version_id(now)
        version_files = {}
        for name, data in payload.items():  # summary.json last: its presence marks the version complete
            uri = root.report_version_uri(REPORT_KIND, tile, month, version, name)
            root.write_bytes(uri, data)
            version_files[name] = uri
        html_uri = root.report_uri(REPORT_KIND, tile, month, "report.html")
        pointer = {
            "version": version,
            "written_at": now.isoformat(),
            "files": {name: len(data) for name, data in payload.items()},
        }
        root.write_bytes(root.version_pointer_uri(html_uri), json.dumps(pointer).encode())
        files = {}
        for name in sorted(payload, key=lambda n: n == "report.html"):  # the page after its figures
            uri = root.report_uri(REPORT_KIND, tile, month, name)
            root.write_bytes(uri, payload[name])
            files[name] = uri
        self.version, self.version_files, self.files = version, version_files, files
        return self.files


class EnvironmentalMonitor:
    """Builds environmental reports from the products kept in memory.

    Args:
        root: the storage root holding the ``spectral_indices``, ``land_cover``
            and ``surface_reflectance`` stores.
        origin_month: the stores' origin month.
        thresholds: vegetation-loss thresholds.
        alert_threshold_ha: forest loss above this area raises the report's alert.
    """

    def __init__(
        self,
        root: StorageRoot,
        origin_month: str,
        thresholds: LossThresholds = LossThresholds(),
        alert_threshold_ha: float = 1.0,
    ) -> None:
        self.root = root
        self.origin_month = origin_month
        self.thresholds = thresholds
        self.alert_threshold_ha = alert_threshold_ha

    def report(
        self,
        grid: TileGrid,
        month: str,
        *,
        model: dict[str, Any] | None = None,
        model_id: str | None = None,
    ) -> EnvironmentalReport:
        """Build the report of one tile and month (``YYYY-MM``).

        Args:
            grid: The tile.
            month: ``YYYY-MM``.
            model: Land-cover model facts to show (``version``, ``val_accuracy``); they override the
                registry's.
            model_id: The land-cover model version that made the tile-month's land cover
                (``land_cover:3``); its version, validation accuracy and band importance come from the
                model registry under the storage root.

        Raises:
            ModelNotFoundError: ``model_id`` names no registered version.
        """
        indices = MonthlyRasterStore(self.root, "spectral_indices", grid, self.origin_month)
        land_cover = MonthlyRasterStore(self.root, "land_cover", grid, self.origin_month)
        months = [m for m in indices.months() if m <= month]
        stack = indices.read().sel(time=[np.datetime64(f"{m}-01", "ns") for m in months])
        ndvi_all = stack["ndvi"].values
        ndvi_now = ndvi_all[months.index(month)]
        # Open water now (NDWI > 0) is flooding or a new pond, not vegetation loss.
        water_now = stack["ndwi"].isel(time=months.index(month)).values > 0
        lc_now = land_cover.read_month(month)["land_cover"].values
        ref = reference_month(months, month)
        px_ha = grid.pixel_area_m2 / 10_000.0

        if ref is not None:
            ndvi_ref = ndvi_all[months.index(ref)]
            veg_loss = detect_vegetation_loss(ndvi_ref, ndvi_now, self.thresholds) & ~water_now
            lc_ref = land_cover.read_month(ref)["land_cover"].values if ref in land_cover.months() else lc_now
            forest_loss = veg_loss & (lc_ref == FOREST)
        else:
            veg_loss = forest_loss = np.zeros(grid.shape, dtype=bool)

        summary: dict[str, Any] = {
            "tile": grid.tile_id,
            "month": month,
            "crs": grid.crs,
            "grid": grid.to_dict(),
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "reference_month": ref,
            "thresholds": vars(self.thresholds),
            "alert_threshold_ha": self.alert_threshold_ha,
            "alert": bool(forest_loss.sum() * px_ha > self.alert_threshold_ha),
            "ndvi_mean": _nanmean(ndvi_now),
            "valid_fraction": float(np.isfinite(ndvi_now).mean()),
            "forest_loss": {
                "area_ha": float(forest_loss.sum() * px_ha) if ref else None,
                "pixels": int(forest_loss.sum()),
                "patches": patch_count(forest_loss),
                "edge_uncertainty_ha": float(_edge_pixels(forest_loss) * px_ha) if ref else None,
                "unit": "ha",
            },
            "vegetation_loss": {
                "area_ha": float(veg_loss.sum() * px_ha) if ref else None,
                "pixels": int(veg_loss.sum()),
                "unit": "ha",
            },
            "land_cover": _class_table(lc_now, ndvi_now, px_ha),
            "ndvi_series": _ndvi_series(months, ndvi_all, lc_now),
            "model": {**_model_facts(self.root, model_id), **(model or {})},
            "sources": {"indices": indices.uri, "land_cover": land_cover.uri},
        }
        summary["model_id"] = summary["model"]["id"]
        summary["band_importance"] = summary["model"].pop("band_importance")
        figures = {
            "ndvi_timeseries": _plot_series(summary["ndvi_series"], grid.tile_id),
            "vegetation_loss": _plot_loss(ndvi_now, veg_loss, forest_loss, grid, month, ref),
        }
        if summary["band_importance"]:
            from memories.ai.explain import plot_band_importance

            figures["band_importance"] = plot_band_importance(
                summary["band_importance"], title=f"What {summary['model_id']} looks at"
            )
        html = _render_html(summary, {k: f"{k}.png" for k in figures})
        return EnvironmentalReport(summary, figures, html, forest_loss)


def _model_facts(root: StorageRoot, model_id: str | None) -> dict[str, Any]:
    """Id, version, validation accuracy and band importance of a land-cover model version (None if unknown)."""
    facts: dict[str, Any] = {
        "id": None,
        "version": None,
        "val_accuracy": None,
        "band_importance": None,
        "band_importance_info": None,
    }
    if model_id is None:
        return facts
    from memories.ai.manager import ModelManager

    mv = ModelManager(root).resolve(model_id)
    accuracy = mv.metrics.get("val_accuracy")
    importance = mv.extra.get("band_importance")
    facts.update(
        id=f"{mv.name}:{mv.version}",
        version=mv.version,
        val_accuracy=None if accuracy is None or accuracy != accuracy else float(accuracy),
        band_importance={str(k): float(v) for k, v in importance.items()} if importance else None,
        band_importance_info=mv.extra.get("band_importance_info"),
    )
    return facts


def _nanmean(a: np.ndarray) -> float | None:
    return float(np.nanmean(a)) if np.isfinite(a).any() else None


def _edge_pixels(mask: np.ndarray) -> int:
    """Pixels on the outer boundary of the mask: the area uncertainty of one pixel of edge."""
    from scipy import ndimage

    return int((ndimage.binary_dilation(mask) & ~mask).sum()) if mask.any() else 0


def _class_table(lc: np.ndarray, ndvi: np.ndarray, px_ha: float) -> list[dict[str, Any]]:
    labelled = lc > 0
    total = max(int(labelled.sum()), 1)
    rows = []
    for c in LAND_COVER_CLASSES:
        m = lc == c.code
        rows.append(
            {
                "code": c.code,
                "name": c.name,
                "share": float(m.sum() / total),
                "area_ha": float(m.sum() * px_ha),
                "ndvi_mean": _nanmean(ndvi[m]) if m.any() else None,
            }
        )
    return rows


def _ndvi_series(months: list[str], ndvi: np.ndarray, lc: np.ndarray) -> dict[str, Any]:
    series: dict[str, Any] = {"months": months, "unit": "NDVI (dimensionless)", "median": {}, "p25": [], "p75": []}
    for c in LAND_COVER_CLASSES:
        m = lc == c.code
        if m.sum() < 20:
            continue
        series["median"][c.name] = [_nanmedian(ndvi[i][m]) for i in range(len(months))]
    for i in range(len(months)):
        v = ndvi[i][np.isfinite(ndvi[i])]
        series["p25"].append(float(np.percentile(v, 25)) if v.size else None)
        series["p75"].append(float(np.percentile(v, 75)) if v.size else None)
    return series


def _nanmedian(a: np.ndarray) -> float | None:
    return float(np.nanmedian(a)) if np.isfinite(a).any() else None


def _plot_series(series: dict[str, Any], tile: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    months = [np.datetime64(m) for m in series["months"]]
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    p25 = np.array([np.nan if v is None else v for v in series["p25"]], dtype=float)
    p75 = np.array([np.nan if v is None else v for v in series["p75"]], dtype=float)
    ax.fill_between(months, p25, p75, color="#bbbbbb", alpha=0.4, label="all pixels, IQR")
    for name, values in series["median"].items():
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.plot(months, y, marker="o", ms=3, color=CLASS_BY_NAME[name].color, label=name)
    ax.set_ylim(-0.4, 1.0)
    ax.set_ylabel("NDVI (median)")
    ax.set_title(f"NDVI by land-cover class, tile {tile}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=4)
    fig.autofmt_xdate()
    return _png(fig)


def _plot_loss(
    ndvi: np.ndarray, veg: np.ndarray, forest: np.ndarray, grid: TileGrid, month: str, ref: str | None
) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    x0, y0, x1, y1 = grid.bounds
    extent = ((x0 - x0) / 1000, (x1 - x0) / 1000, (y0 - y0) / 1000, (y1 - y0) / 1000)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), dpi=100)
    im = axes[0].imshow(ndvi, cmap="RdYlGn", vmin=-0.2, vmax=0.9, extent=extent)
    fig.colorbar(im, ax=axes[0], shrink=0.8, label="NDVI")
    axes[0].set_title(f"NDVI {month}")
    cls = np.zeros(grid.shape, dtype=np.uint8)
    cls[veg] = 1
    cls[forest] = 2
    axes[1].imshow(np.nan_to_num(ndvi, nan=0.0), cmap="Greys_r", vmin=-0.2, vmax=1.0, extent=extent, alpha=0.6)
    axes[1].imshow(
        np.ma.masked_equal(cls, 0), cmap=ListedColormap(["#f39c12", "#c0392b"]), vmin=1, vmax=2, extent=extent
    )
    from matplotlib.patches import Patch

    axes[1].legend(
        handles=[Patch(color="#c0392b", label="forest loss"), Patch(color="#f39c12", label="other vegetation loss")],
        loc="lower right",
        fontsize=8,
    )
    axes[1].set_title(f"vegetation loss since {ref}" if ref else "no reference month")
    for ax in axes:
        ax.set_xlabel("km east of tile origin")
        ax.set_ylabel("km north")
    fig.suptitle(f"tile {grid.tile_id} ({grid.crs})")
    return _png(fig)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _render_html(summary: dict[str, Any], figures: dict[str, str]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    return env.get_template("environmental.html.j2").render(s=summary, figures=figures)
