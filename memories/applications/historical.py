"""Historical reconstruction: the state of a place at a past date, with the uncertainty of each source.

``HistoricalReconstructor(view).reconstruct(tile, date)`` rebuilds a tile as it
stood at ``date`` from two kinds of source, both read through the
:class:`~memories.memory.view.MemoryView` (so ``as_of`` works):

- the memory's **valid time**: the land cover of the month the date falls in
  (its uncertainty: the validation accuracy of the model version that made it,
  and the per-pixel MC-dropout confidence stored with it), the GIS layers as
  they stood (the month's ``gis_layers``, filtered again on ``start_date`` to the
  day), and the composite's spectral indices of that month. When the memory
  holds no record of that month, the nearest month is used and the gap in
  months is stated as the uncertainty;
- the **georeferenced historical map** (``historical_map`` of the tile: a GeoTIFF
  on the tile grid): its land use, with its positional uncertainty (the
  georeferencing RMSE and leave-one-out RMSE, in metres and in pixels).

``report(tile, month)`` compares the sources (the map against the land cover of
the earliest month in memory, class by class) and shows what changed between the
reconstructed date and the report month (class areas, transitions), with side by
side maps, a class-area chart and the class areas month by month.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime
from typing import Any

import numpy as np

from memories.applications.awaitable import AwaitableReport
from memories.applications.common import as_instant, pixel_ha, plain
from memories.applications.historical_analysis import (
    REPORT_KIND,
    ClassAgreement,
    GisState,
    HistoricalAnalysis,
    HistoricalMap,
    HistoricalState,
    IndexMeans,
    LandCoverUncertainty,
    MapAgreement,
    ModelAccuracy,
)
from memories.applications.historical_report import build_report
from memories.applications.maps import basemap
from memories.applications.report import Report, quantity
from memories.applications.webmap import add_gis_layers
from memories.classes import LAND_COVER_CLASSES
from memories.errors import ConfigError, MissingDataError, ProcessingError
from memories.grid import TileGrid
from memories.memory.view import MemoryView, describe
from memories.months import month_index, month_key, month_mid
from memories.products import GIS_LAYERS, HISTORICAL_MAP, LAND_COVER, SPECTRAL_INDICES

__all__ = [
    "REPORT_KIND",
    "HistoricalAnalysis",
    "HistoricalMap",
    "HistoricalReconstructor",
    "HistoricalState",
    "MapAgreement",
    "as_instant",
    "class_areas",
    "gis_at",
]

TRUTH_MODEL_ID = "truth"
"""``model_id`` of land cover rasterized from ground truth (test memories): exact by construction."""


class HistoricalReconstructor(AwaitableReport):
    """Rebuilds the state of a tile at a past date from the memory and from historical maps.

    Args:
        view: the memory as of a transaction time (default: the configured memory, now).
        date: the date ``report`` reconstructs (``YYYY-MM-DD``, ``YYYY-MM`` = the 15th, or a
            datetime); ``None``: the middle of the earliest month of land cover in memory,
            the period the historical map is compared with.
        max_gap_months: the largest distance, in months, between the date and the month of a
            record used for it; beyond it ``reconstruct`` raises instead of guessing.
    """

    kind = REPORT_KIND

    def __init__(
        self, view: MemoryView | None = None, *, date: str | datetime | None = None, max_gap_months: int = 6
    ) -> None:
        if max_gap_months < 0:
            raise ConfigError(f"max_gap_months={max_gap_months}: use 0 (exact month only) or more")
        self.view = view or MemoryView()
        self.date = as_instant(date) if date is not None else None
        self.max_gap_months = max_gap_months

    # -- the reconstruction -------------------------------------------------------------------
    def reconstruct(self, tile: str, date: str | datetime, *, as_of: datetime | str | None = None) -> HistoricalState:
        """The state of ``tile`` at ``date`` as the memory knew it at ``as_of``.

        Args:
            tile: MGRS tile id.
            date: the instant (``YYYY-MM-DD``, ``YYYY-MM`` = the 15th, ISO date-time or datetime; UTC).
            as_of: transaction time; ``None``: the view's own.

        Returns:
            The :class:`~memories.applications.historical_analysis.HistoricalState`: land cover of the
            nearest month with its uncertainty and class areas, the GIS layers at the date, the
            composite's mean indices, and the records read.

        Raises:
            MissingDataError: the memory holds no land cover within ``max_gap_months`` of the date.
        """
        view = self.view if as_of is None else MemoryView(self.view.memory, as_of=as_of)
        when = as_instant(date)
        month = month_key(when)
        sources: dict[str, str] = {}

        lc_month, lc_gap = self._nearest(view, LAND_COVER, tile, month)
        lc_record = view.record(LAND_COVER, tile, lc_month)
        ds = view.raster(LAND_COVER, tile, lc_month)
        grid = TileGrid.from_dict(ds.attrs["grid"])
        classes = np.asarray(ds["land_cover"].values, dtype=np.uint8)
        confidence = np.asarray(ds["confidence"].values, dtype=np.float32) if "confidence" in ds else None
        sources[f"land cover ({lc_month})"] = describe(lc_record)
        model = self._model_accuracy(view, lc_record.stats.get("model_id"))
        gap_note = f"from {lc_month}, {lc_gap} month(s) from {month}" if lc_gap else f"from {lc_month}"
        areas = class_areas(classes, grid, confidence=confidence, period=when.date().isoformat(), note=gap_note)

        gis_month, gis_gap = self._nearest(view, GIS_LAYERS, tile, month)
        sources[f"GIS layers ({gis_month})"] = describe(view.record(GIS_LAYERS, tile, gis_month))
        layers, gis = gis_at(view.layers(tile, gis_month), when)
        indices = self._indices(view, tile, month, sources)
        mean_confidence = (
            float(np.nanmean(confidence[classes > 0])) if confidence is not None and (classes > 0).any() else None
        )
        return HistoricalState(
            tile=tile,
            date=when.isoformat(),
            as_of=view.as_of.isoformat() if view.as_of else None,
            grid=grid,
            land_cover=classes,
            confidence=confidence,
            land_cover_month=lc_month,
            land_cover_gap_months=lc_gap,
            land_cover_version=lc_record.version,
            land_cover_uncertainty=LandCoverUncertainty(model, mean_confidence, lc_gap),
            class_area_ha=areas,
            layers=layers,
            gis=GisState(**gis, month=gis_month, gap_months=gis_gap),
            indices=indices,
            sources=sources,
        )

    def historical_map(self, tile: str, *, view: MemoryView | None = None) -> HistoricalMap:
        """The tile's georeferenced historical map and its positional uncertainty.

        Returns:
            The :class:`~memories.applications.historical_analysis.HistoricalMap`: classes on the tile
            grid (0 = not mapped), the georeferencing record, its uncertainty (RMSE and LOO RMSE in m and
            px), the mapped share of the tile, the per-GCP residuals (metres) and the record read.

        Raises:
            MissingDataError: the memory holds no historical map of the tile.
            ProcessingError: the GeoTIFF is not on a north-up 10 m-like grid the memory knows.
        """
        from rasterio.io import MemoryFile

        view = view or self.view
        rec = view.record(HISTORICAL_MAP, tile)
        data = view.load(rec)
        if not isinstance(data, bytes | bytearray):
            raise ProcessingError(f"historical_map of {tile} ({rec.uri}) did not load as a GeoTIFF; re-materialize it")
        with MemoryFile(bytes(data)) as mem, mem.open() as ds:
            classes = ds.read(1).astype(np.uint8)
            tags = ds.tags()
            transform, crs = ds.transform, ds.crs.to_string() if ds.crs else None
        if crs is None or abs(transform.a + transform.e) > 1e-9 or transform.b or transform.d:
            raise ProcessingError(
                f"historical map {rec.uri} is not on a north-up grid of square pixels with a CRS ({transform}, "
                f"{crs}); re-materialize historical_map, which resamples it onto the tile grid"
            )
        grid = TileGrid(
            tile,
            int(str(crs).split(":")[-1]),
            transform.c,
            transform.f,
            classes.shape[1],
            classes.shape[0],
            abs(transform.a),
        )
        geo = dict(rec.stats) if rec.stats.get("rmse_m") is not None else json.loads(tags.get("georeference", "{}"))
        if geo.get("rmse_m") is None:
            raise ProcessingError(f"historical map {rec.uri} records no georeferencing error; re-materialize it")
        return HistoricalMap(
            classes=classes,
            grid=grid,
            georeference=geo,
            uncertainty=_positional_uncertainty(geo, grid.resolution),
            mapped_fraction=float((classes > 0).mean()),
            residuals=_residuals(view, tile),
            source=describe(rec),
        )

    def compare_with_map(self, tile: str, land_cover: np.ndarray, hist: HistoricalMap) -> MapAgreement:
        """Agreement of the historical map with a land-cover raster, per class (pixels both label).

        Returns:
            The :class:`~memories.applications.historical_analysis.MapAgreement`: overall (0-1), away from
            edges (0-1: pixels farther than the LOO RMSE, rounded up to whole pixels, from a class edge of
            the map), the producer's agreement of each map class (0-1) and its area (ha), the confusion
            matrix (rows: memory class, columns: map class, ha) and the area compared (ha).
        """
        classes = hist.classes
        if classes.shape != land_cover.shape:
            raise ProcessingError(
                f"historical map of {tile} is {classes.shape} px, the land cover {land_cover.shape}; "
                "re-materialize historical_map on the tile's grid"
            )
        px_ha = pixel_ha(hist.grid)
        both = (classes > 0) & (land_cover > 0)
        codes = [c.code for c in LAND_COVER_CLASSES]
        confusion = np.zeros((len(codes), len(codes)))
        for i, a in enumerate(codes):
            row = both & (land_cover == a)
            for j, b in enumerate(codes):
                confusion[i, j] = float((row & (classes == b)).sum())
        agree = both & (classes == land_cover)
        loo = hist.georeference.get("loo_rmse_m") or hist.georeference["rmse_m"]
        edge_px = max(1, math.ceil(float(loo) / hist.grid.resolution))
        interior = both & ~_class_edges(classes, edge_px)
        per_class = {}
        for j, c in enumerate(LAND_COVER_CLASSES):
            n = confusion[:, j].sum()
            per_class[c.name] = ClassAgreement(float(confusion[j, j] / n) if n else None, float(n * px_ha))
        return MapAgreement(
            overall=float(agree.sum() / both.sum()) if both.any() else None,
            overall_away_from_edges=float((agree & interior).sum() / interior.sum()) if interior.any() else None,
            edge_px=edge_px,
            per_class=per_class,
            confusion_ha=(confusion * px_ha).tolist(),
            classes=[c.name for c in LAND_COVER_CLASSES],
            compared_ha=float(both.sum() * px_ha),
        )

    # -- the report ---------------------------------------------------------------------------
    async def areconstruct(
        self, tile: str, date: str | datetime, *, as_of: datetime | str | None = None
    ) -> HistoricalState:
        """:meth:`reconstruct`, awaitable (run in a worker thread)."""
        return await asyncio.to_thread(self.reconstruct, tile, date, as_of=as_of)

    def analyze(self, tile: str, month: str) -> HistoricalAnalysis:
        """What the historical report of ``tile`` for ``month`` (``YYYY-MM``) states: the state at the
        reconstructed date (the ``date`` option, default the earliest month of land cover) and in ``month``,
        the historical map and its agreement with the memory, the class areas of every month, the map base.

        Raises:
            MissingDataError: the memory holds no land cover up to ``month``.
            ConfigError: the date is after ``month``.
        """
        view = self.view
        lc_months = view.months(LAND_COVER, tile, until=month)
        if not lc_months:
            view.record(LAND_COVER, tile, month)  # raises with the fix
        when = self.date or month_mid(lc_months[0])
        if month_key(when) > month:
            raise ConfigError(f"date {when.date()} is after the report month {month}; pick a date on or before it")
        then = self.reconstruct(tile, when)
        now = self.reconstruct(tile, month_mid(month))
        hist: HistoricalMap | None
        try:
            hist = self.historical_map(tile)
        except MissingDataError:
            hist = None
        earliest = self.reconstruct(tile, month_mid(lc_months[0])) if hist is not None else None
        agreement = self.compare_with_map(tile, earliest.land_cover, hist) if hist and earliest else None
        return HistoricalAnalysis(
            tile=tile,
            month=month,
            date=when.date().isoformat(),
            lc_months=lc_months,
            then=then,
            now=now,
            hist=hist,
            agreement=agreement,
            timeline=self._timeline(tile, lc_months),
            as_of=view.as_of.isoformat() if view.as_of else None,
            basemap=basemap(view, tile, month, then.grid),
        )

    def report(self, tile: str, month: str) -> Report:
        """The historical report of ``tile`` for ``month`` (``YYYY-MM``): the state at the reconstructed
        date (the ``date`` option, default the earliest month of land cover), the historical map and
        its agreement with the memory, and what changed between the date and ``month``."""
        report = build_report(self.analyze(tile, month))
        if report.webmap is not None:  # the GIS layers decorate the map; no number depends on them
            add_gis_layers(report.webmap, self.view, tile, month)
        return report

    # -- helpers ------------------------------------------------------------------------------
    def _nearest(self, view: MemoryView, asset: str, tile: str, month: str) -> tuple[str, int]:
        """The month of ``asset`` nearest ``month`` (ties: the earlier) and the gap in months."""
        have = view.months(asset, tile)
        if not have:
            view.record(asset, tile, month)  # raises with the fix
        best = min(have, key=lambda m: (abs(month_index(m, month)), m))
        gap = abs(month_index(best, month))
        if gap > self.max_gap_months:
            raise MissingDataError(
                f"the memory holds no {asset} of {tile} within {self.max_gap_months} months of {month} "
                f"(nearest: {best}); materialize {asset} for {month}|{tile} or raise max_gap_months"
            )
        return best, gap

    def _indices(self, view: MemoryView, tile: str, month: str, sources: dict[str, str]) -> IndexMeans | None:
        """Tile means ± spatial std of NDVI and NDWI of the nearest composite (its record added to
        ``sources``); None when the memory holds none within ``max_gap_months``."""
        try:
            idx_month, idx_gap = self._nearest(view, SPECTRAL_INDICES, tile, month)
        except MissingDataError:
            return None
        sources[f"spectral indices ({idx_month})"] = describe(view.record(SPECTRAL_INDICES, tile, idx_month))
        ids = view.raster(SPECTRAL_INDICES, tile, idx_month)
        means = {}
        for name in ("ndvi", "ndwi"):
            if name in ids:
                values = np.asarray(ids[name].values, dtype=np.float32)
                ok = np.isfinite(values)
                means[name] = quantity(
                    float(values[ok].mean()) if ok.any() else None,
                    "1",
                    period=idx_month,
                    uncertainty=float(values[ok].std()) if ok.any() else None,
                    note=f"tile mean ± spatial std; {idx_gap} month(s) from {month}"
                    if idx_gap
                    else "tile mean ± spatial std",
                )
        return IndexMeans(means, idx_month, idx_gap)

    def _model_accuracy(self, view: MemoryView, model_id: str | None) -> ModelAccuracy:
        """Validation accuracy of the land-cover model version that made a record (0-1, per class too)."""
        if not model_id:
            return ModelAccuracy(None, None, {}, "no model id recorded")
        if model_id == TRUTH_MODEL_ID:
            return ModelAccuracy(model_id, 1.0, {}, "rasterized ground truth")
        found = view.model_metrics(model_id)
        if found is None:
            return ModelAccuracy(model_id, None, {}, "not found in the catalog or the model registry")
        metrics, source = found
        per_class = {
            c.name: float(metrics[f"val_accuracy/{c.name}"])
            for c in LAND_COVER_CLASSES
            if metrics.get(f"val_accuracy/{c.name}") is not None
        }
        acc = metrics.get("val_accuracy")
        return ModelAccuracy(
            model_id,
            float(acc) if acc is not None else None,
            per_class,
            source,
            val_miou=metrics.get("val_miou"),
            metrics_found=True,
        )

    def _timeline(self, tile: str, months: list[str]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"month": list(months), **{c.name: [] for c in LAND_COVER_CLASSES}}
        for m in months:
            ds = self.view.raster(LAND_COVER, tile, m)
            px_ha = pixel_ha(TileGrid.from_dict(ds.attrs["grid"]))
            counts = np.bincount(np.asarray(ds["land_cover"].values, dtype=np.uint8).ravel(), minlength=256)
            for c in LAND_COVER_CLASSES:
                out[c.name].append(float(counts[c.code] * px_ha))
        return out


# -- building blocks, public for other applications and tests ---------------------------------
def class_areas(
    classes: np.ndarray,
    grid: TileGrid,
    *,
    confidence: np.ndarray | None = None,
    period: str | None = None,
    note: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Area of each land-cover class (ha), ± the expected misclassified area of that class.

    The uncertainty is the sum of ``1 - confidence`` over the class's pixels times the
    pixel area (the area MC-dropout expects to belong to another class); None without
    a confidence raster.
    """
    px_ha = pixel_ha(grid)
    out = {}
    for c in LAND_COVER_CLASSES:
        mask = classes == c.code
        u = float(np.nansum(1.0 - confidence[mask]) * px_ha) if confidence is not None else None
        out[c.name] = quantity(float(mask.sum() * px_ha), "ha", period=period, uncertainty=u, note=note, digits=2)
    return out


def gis_at(layers: dict[str, Any], when: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """GIS layers as they stood at ``when``: features whose ``start_date`` is after it are left out.

    Same policy as :func:`memories.earth.gis.read_layer`: a missing ``start_date`` means the
    feature always existed; dates compare as ``YYYY-MM-DD`` text.

    Returns:
        (layer -> GeoDataFrame, summary: ``buildings`` count, ``building_area_ha``, ``road_km``,
        ``landuse_ha`` by tag, ``left_out`` features per layer, ``date_filter``).
    """
    day = when.strftime("%Y-%m-%d")
    out, left_out = {}, {}
    for name, gdf in layers.items():
        if "start_date" in gdf.columns:
            start = gdf["start_date"].astype("string").str.slice(0, 10)
            keep = (start.isna() | (start <= day)).to_numpy(dtype=bool)
            left_out[name] = int((~keep).sum())
            gdf = gdf[keep]
        out[name] = gdf
    buildings, roads, landuse = out.get("buildings"), out.get("roads"), out.get("landuse")
    summary: dict[str, Any] = {
        "buildings": int(len(buildings)) if buildings is not None else 0,
        "building_area_ha": float(buildings.geometry.area.sum() / 10_000) if buildings is not None else 0.0,
        "road_km": float(roads.geometry.length.sum() / 1000) if roads is not None else 0.0,
        "landuse_ha": {
            str(k): float(v)
            for k, v in landuse.groupby("landuse").geometry.apply(lambda g: g.area.sum() / 10_000).items()
        }
        if landuse is not None and len(landuse)
        else {},
        "left_out": left_out,
        "date_filter": f"start_date <= {day}",
    }
    return out, summary


def _class_edges(classes: np.ndarray, radius_px: int) -> np.ndarray:
    """Pixels within ``radius_px`` of a change of class (or of the map's edge)."""
    from scipy import ndimage

    size = 2 * radius_px + 1
    return np.asarray(
        ndimage.maximum_filter(classes, size=size, mode="nearest")
        != ndimage.minimum_filter(classes, size=size, mode="nearest")
    )


def _residuals(view: MemoryView, tile: str) -> list[dict[str, Any]]:
    """Per-GCP residuals stored beside the map (metres); empty when missing."""
    import io

    import pandas as pd

    uri = view.root.tile_file_uri(HISTORICAL_MAP, tile, "residuals.parquet")
    if not view.root.exists(uri):
        return []
    frame = pd.read_parquet(io.BytesIO(view.root.read_bytes(uri)))
    return [{k: plain(v) for k, v in r.items()} for r in frame.to_dict("records")]


def _positional_uncertainty(geo: dict[str, Any], res: float) -> dict[str, dict[str, Any]]:
    """The historical map's positional uncertainty as quantities: RMSE and LOO RMSE, in m and in pixels."""
    rmse, loo = float(geo["rmse_m"]), float(geo.get("loo_rmse_m", math.nan))
    return {
        "georeferencing RMSE": quantity(rmse, "m", note=f"{geo.get('gcps')} GCPs, {geo.get('method')}"),
        "leave-one-out RMSE": quantity(loo, "m", note="each GCP predicted by a fit without it"),
        "georeferencing RMSE (pixels)": quantity(rmse / res, "px", note=f"{res:g} m pixels"),
        "leave-one-out RMSE (pixels)": quantity(loo / res, "px", note=f"{res:g} m pixels"),
    }
