"""Historical reconstruction: the state of a place at a past date, with the uncertainty of each source.

``HistoricalReconstructor(view).reconstruct(tile, date)`` rebuilds a tile as it
stood at ``date`` from two kinds of source, both read through the
:class:`~memories.applications.memory_view.MemoryView` (so ``as_of`` works):

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

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from memories.applications.memory_view import MemoryView, describe
from memories.applications.report import Report, km_extent, png, pyplot, quantity
from memories.classes import CLASS_BY_CODE, CLASS_BY_NAME, LAND_COVER_CLASSES, NO_LABEL
from memories.errors import ConfigError, MissingDataError, ProcessingError
from memories.grid import TileGrid
from memories.months import month_index, month_key, month_mid, parse_month

REPORT_KIND = "historical"
LAND_COVER = "land_cover"
GIS_LAYERS = "gis_layers"
INDICES = "spectral_indices"
HISTORICAL_MAP = "historical_map"
MODEL_RECORDS = "land_cover_model"
TRUTH_MODEL_ID = "truth"
"""``model_id`` of land cover rasterized from ground truth (test memories): exact by construction."""
BUILT_UP = CLASS_BY_NAME["built-up"].code
MAP_FIGURE_MAX_PX = 64
"""Maps in ``figure_data`` are sampled down to at most this many pixels a side (every k-th pixel)."""


class HistoricalReconstructor:
    """Rebuilds the state of a tile at a past date from the memory and from historical maps.

    Args:
        view: the memory as of a transaction time (default: the configured memory, now).
        date: the date ``report`` reconstructs (``YYYY-MM-DD``, ``YYYY-MM`` = the 15th, or a
            datetime); ``None``: the middle of the earliest month of land cover in memory,
            the period the historical map is compared with.
        max_gap_months: the largest distance, in months, between the date and the month of a
            record used for it; beyond it ``reconstruct`` raises instead of guessing.
    """

    def __init__(
        self, view: MemoryView | None = None, *, date: str | datetime | None = None, max_gap_months: int = 6
    ) -> None:
        if max_gap_months < 0:
            raise ConfigError(f"max_gap_months={max_gap_months}: use 0 (exact month only) or more")
        self.view = view or MemoryView()
        self.date = as_instant(date) if date is not None else None
        self.max_gap_months = max_gap_months

    # -- the reconstruction -------------------------------------------------------------------
    def reconstruct(self, tile: str, date: str | datetime, *, as_of: datetime | str | None = None) -> dict[str, Any]:
        """The state of ``tile`` at ``date`` as the memory knew it at ``as_of``.

        Args:
            tile: MGRS tile id.
            date: the instant (``YYYY-MM-DD``, ``YYYY-MM`` = the 15th, ISO date-time or datetime; UTC).
            as_of: transaction time; ``None``: the view's own.

        Returns:
            a dict: ``date`` (ISO), ``land_cover`` (uint8 ``(y, x)`` class codes), ``confidence``
            (float32 0-1 or None), ``land_cover_month`` and ``land_cover_gap_months``,
            ``land_cover_uncertainty`` (model id, validation accuracy 0-1 overall and per class,
            mean MC-dropout confidence), ``class_area_ha`` (class name -> quantity, ha),
            ``layers`` (GIS layer -> GeoDataFrame in the tile CRS, features started after the date
            left out), ``gis`` (counts, lengths, areas, the date filter), ``indices`` (mean NDVI,
            NDWI of the composite), ``grid`` (TileGrid), ``sources`` (input -> record).

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
        period = when.date().isoformat()
        gap_note = f"from {lc_month}, {lc_gap} month(s) from {month}" if lc_gap else f"from {lc_month}"
        areas = class_areas(classes, grid, confidence=confidence, period=period, note=gap_note)

        gis_month, gis_gap = self._nearest(view, GIS_LAYERS, tile, month)
        gis_record = view.record(GIS_LAYERS, tile, gis_month)
        sources[f"GIS layers ({gis_month})"] = describe(gis_record)
        layers, gis = gis_at(view.layers(tile, gis_month), when)
        gis.update(month=gis_month, gap_months=gis_gap)

        indices: dict[str, Any] = {}
        try:
            idx_month, idx_gap = self._nearest(view, INDICES, tile, month)
        except MissingDataError:
            idx_month, idx_gap = None, None
        if idx_month is not None:
            sources[f"spectral indices ({idx_month})"] = describe(view.record(INDICES, tile, idx_month))
            ids = view.raster(INDICES, tile, idx_month)
            for name in ("ndvi", "ndwi"):
                if name in ids:
                    values = np.asarray(ids[name].values, dtype=np.float32)
                    ok = np.isfinite(values)
                    indices[name] = quantity(
                        float(values[ok].mean()) if ok.any() else None,
                        "1",
                        period=idx_month,
                        uncertainty=float(values[ok].std()) if ok.any() else None,
                        note=f"tile mean ± spatial std; {idx_gap} month(s) from {month}"
                        if idx_gap
                        else "tile mean ± spatial std",
                    )
            indices.update(month=idx_month, gap_months=idx_gap)

        return {
            "tile": tile,
            "date": when.isoformat(),
            "as_of": view.as_of.isoformat() if view.as_of else None,
            "grid": grid,
            "land_cover": classes,
            "confidence": confidence,
            "land_cover_month": lc_month,
            "land_cover_gap_months": lc_gap,
            "land_cover_version": lc_record.version,
            "land_cover_uncertainty": {
                **model,
                "mean_confidence": float(np.nanmean(confidence[classes > 0]))
                if confidence is not None and (classes > 0).any()
                else None,
                "gap_months": lc_gap,
            },
            "class_area_ha": areas,
            "layers": layers,
            "gis": gis,
            "indices": indices,
            "sources": sources,
        }

    def historical_map(self, tile: str, *, view: MemoryView | None = None) -> dict[str, Any]:
        """The tile's georeferenced historical map and its positional uncertainty.

        Returns:
            ``classes`` (uint8 ``(y, x)`` on the tile grid, 0 = not mapped), ``grid``,
            ``georeference`` (method, order, GCPs, ``rmse_m``, ``loo_rmse_m``, ``max_residual_m``),
            ``uncertainty`` (quantities: RMSE and LOO RMSE in m and px), ``mapped_fraction`` (0-1),
            ``residuals`` (per-GCP rows, metres; empty if the table is missing), ``source``.

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
        res = grid.resolution
        rmse, loo = float(geo["rmse_m"]), float(geo.get("loo_rmse_m", math.nan))
        uncertainty = {
            "georeferencing RMSE": quantity(rmse, "m", note=f"{geo.get('gcps')} GCPs, {geo.get('method')}"),
            "leave-one-out RMSE": quantity(loo, "m", note="each GCP predicted by a fit without it"),
            "georeferencing RMSE (pixels)": quantity(rmse / res, "px", note=f"{res:g} m pixels"),
            "leave-one-out RMSE (pixels)": quantity(loo / res, "px", note=f"{res:g} m pixels"),
        }
        return {
            "classes": classes,
            "grid": grid,
            "georeference": geo,
            "uncertainty": uncertainty,
            "mapped_fraction": float((classes > 0).mean()),
            "residuals": _residuals(view, tile),
            "source": describe(rec),
        }

    def compare_with_map(self, tile: str, land_cover: np.ndarray, hist: dict[str, Any]) -> dict[str, Any]:
        """Agreement of the historical map with a land-cover raster, per class (pixels both label).

        Returns:
            ``overall`` (0-1), ``overall_away_from_edges`` (0-1: pixels farther than the LOO RMSE,
            rounded up to whole pixels, from a class edge of the map), ``edge_px``,
            ``per_class`` (name -> producer's agreement of the map's class, 0-1, and its area, ha),
            ``confusion_ha`` (rows: memory class, columns: map class, ha), ``compared_ha``.
        """
        classes = hist["classes"]
        if classes.shape != land_cover.shape:
            raise ProcessingError(
                f"historical map of {tile} is {classes.shape} px, the land cover {land_cover.shape}; "
                "re-materialize historical_map on the tile's grid"
            )
        px_ha = hist["grid"].pixel_area_m2 / 10_000
        both = (classes > 0) & (land_cover > 0)
        codes = [c.code for c in LAND_COVER_CLASSES]
        confusion = np.zeros((len(codes), len(codes)))
        for i, a in enumerate(codes):
            row = both & (land_cover == a)
            for j, b in enumerate(codes):
                confusion[i, j] = float((row & (classes == b)).sum())
        agree = both & (classes == land_cover)
        loo = hist["georeference"].get("loo_rmse_m") or hist["georeference"]["rmse_m"]
        edge_px = max(1, math.ceil(float(loo) / hist["grid"].resolution))
        interior = both & ~_class_edges(classes, edge_px)
        per_class = {}
        for j, c in enumerate(LAND_COVER_CLASSES):
            n = confusion[:, j].sum()
            per_class[c.name] = {
                "agreement": float(confusion[j, j] / n) if n else None,
                "map_area_ha": float(n * px_ha),
            }
        return {
            "overall": float(agree.sum() / both.sum()) if both.any() else None,
            "overall_away_from_edges": float((agree & interior).sum() / interior.sum()) if interior.any() else None,
            "edge_px": edge_px,
            "per_class": per_class,
            "confusion_ha": (confusion * px_ha).tolist(),
            "classes": [c.name for c in LAND_COVER_CLASSES],
            "compared_ha": float(both.sum() * px_ha),
        }

    # -- the report ---------------------------------------------------------------------------
    def report(self, tile: str, month: str) -> Report:
        """The historical report of ``tile`` for ``month`` (``YYYY-MM``): the state at the reconstructed
        date (the ``date`` option, default the earliest month of land cover), the historical map and
        its agreement with the memory, and what changed between the date and ``month``."""
        view = self.view
        lc_months = view.months(LAND_COVER, tile, until=month)
        if not lc_months:
            view.record(LAND_COVER, tile, month)  # raises with the fix
        when = self.date or month_mid(lc_months[0])
        if month_key(when) > month:
            raise ConfigError(f"date {when.date()} is after the report month {month}; pick a date on or before it")
        then = self.reconstruct(tile, when)
        now = self.reconstruct(tile, month_mid(month))
        grid: TileGrid = then["grid"]
        px_ha = grid.pixel_area_m2 / 10_000
        date_txt = when.date().isoformat()

        hist: dict[str, Any] | None
        try:
            hist = self.historical_map(tile)
        except MissingDataError:
            hist = None
        earliest = self.reconstruct(tile, month_mid(lc_months[0])) if hist is not None else None
        agreement = self.compare_with_map(tile, earliest["land_cover"], hist) if hist and earliest else None

        a, b = then["land_cover"], now["land_cover"]
        changed = (a > 0) & (b > 0) & (a != b)
        transitions = _transitions(a, b, changed, px_ha)
        rows_area: list[list[Any]] = []
        area_data: dict[str, list[Any]] = {"class": [], "at_date_ha": [], "at_month_ha": [], "historical_map_ha": []}
        for c in LAND_COVER_CLASSES:
            qa, qb = then["class_area_ha"][c.name], now["class_area_ha"][c.name]
            hm = float((hist["classes"] == c.code).sum() * px_ha) if hist else None
            rows_area.append([c.name, qa["value"], qb["value"], qb["value"] - qa["value"], hm])
            area_data["class"].append(c.name)
            area_data["at_date_ha"].append(qa["value"])
            area_data["at_month_ha"].append(qb["value"])
            area_data["historical_map_ha"].append(hm)
        timeline = self._timeline(tile, lc_months)
        built_gain = float(((b == BUILT_UP) & (a != BUILT_UP) & (a > 0)).sum() * px_ha)
        built_loss = float(((a == BUILT_UP) & (b != BUILT_UP) & (b > 0)).sum() * px_ha)

        figures, captions, figure_data = {}, {}, {}
        figures["maps"], figure_data["maps"] = _maps_figure(
            grid, a, hist["classes"] if hist else None, b, changed, date_txt, month
        )
        captions["maps"] = (
            f"Left: land cover the memory holds for {date_txt} (from {then['land_cover_month']}). Middle: the "
            "georeferenced historical map (blank: outside the sheet). Right: pixels whose class changed between "
            f"{date_txt} and {month}, coloured by their class in {month}. Axes in km from the tile's SW corner."
        )
        figures["class_areas"] = _areas_figure(area_data, date_txt, month)
        figure_data["class_areas"] = area_data
        captions["class_areas"] = (
            f"Area of each land-cover class (ha) at {date_txt}, in {month} and on the historical map."
        )
        figures["timeline"] = _timeline_figure(timeline, date_txt)
        figure_data["timeline"] = timeline
        captions["timeline"] = f"Area of each land-cover class (ha) in every month the memory holds up to {month}."

        lcu = then["land_cover_uncertainty"]
        sections: list[dict[str, Any]] = [
            {
                "title": f"State at {date_txt}",
                "text": f"Rebuilt from the memory's valid time: land cover of {then['land_cover_month']}, GIS layers "
                f"of {then['gis']['month']} filtered to features started on or before {date_txt}, spectral indices "
                f"of {then['indices'].get('month', 'n/a')}.",
                "quantities": {
                    **{f"{name} area": q for name, q in then["class_area_ha"].items()},
                    "buildings": quantity(
                        then["gis"]["buildings"],
                        "count",
                        period=date_txt,
                        digits=0,
                        note="GIS, date filter on start_date",
                    ),
                    "building footprint": quantity(then["gis"]["building_area_ha"], "ha", period=date_txt),
                    "road length": quantity(then["gis"]["road_km"], "km", period=date_txt),
                    **{f"mean {k.upper()}": v for k, v in then["indices"].items() if isinstance(v, dict)},
                },
                "figures": ["maps"],
            },
            {
                "title": "Uncertainty of each source",
                "table": {
                    "columns": ["source", "record", "uncertainty"],
                    "rows": _uncertainty_rows(then, hist),
                },
                "quantities": {
                    "land-cover validation accuracy": quantity(
                        lcu.get("val_accuracy"), "1", note=lcu.get("source") or "", digits=4
                    ),
                    "land-cover mean MC-dropout confidence": quantity(
                        lcu.get("mean_confidence"), "1", digits=4, period=then["land_cover_month"]
                    ),
                    "land-cover month gap": quantity(then["land_cover_gap_months"], "months", digits=0),
                    "GIS month gap": quantity(then["gis"]["gap_months"], "months", digits=0),
                    **(hist["uncertainty"] if hist else {}),
                },
            },
        ]
        if hist and agreement:
            sections.append(
                {
                    "title": "Historical map against the memory",
                    "text": f"The historical map compared with the memory's land cover of {lc_months[0]}, the earliest "
                    f"month it holds, over the {agreement['compared_ha']:.1f} ha both label. Away from edges: pixels "
                    f"more than {agreement['edge_px']} px (the LOO RMSE, rounded up) from a class edge of the map.",
                    "quantities": {
                        "agreement": quantity(
                            agreement["overall"] * 100 if agreement["overall"] is not None else None,
                            "%",
                            period=lc_months[0],
                            digits=2,
                        ),
                        "agreement away from class edges": quantity(
                            agreement["overall_away_from_edges"] * 100
                            if agreement["overall_away_from_edges"] is not None
                            else None,
                            "%",
                            period=lc_months[0],
                            digits=2,
                        ),
                        "mapped share of the tile": quantity(hist["mapped_fraction"] * 100, "%", digits=1),
                    },
                    "table": {
                        "columns": ["class (map)", "map area ha", "agreement %"],
                        "rows": [
                            [name, v["map_area_ha"], None if v["agreement"] is None else v["agreement"] * 100]
                            for name, v in agreement["per_class"].items()
                        ],
                    },
                }
            )
        if hist and hist["residuals"]:
            cols = ["id", "dx", "dy", "residual_m", "loo_residual_m"]
            sections.append(
                {
                    "title": "Georeferencing residuals of the historical map",
                    "text": "Per ground control point: fitted minus surveyed map position (dx, dy, m), its length, and "
                    "the leave-one-out residual (the GCP predicted by a fit without it), metres.",
                    "table": {
                        "columns": ["GCP", "dx m", "dy m", "residual m", "LOO residual m"],
                        "rows": [[r.get(c) for c in cols] for r in hist["residuals"]],
                    },
                }
            )
        sections.append(
            {
                "title": f"What changed from {date_txt} to {month}",
                "quantities": {
                    "changed area": quantity(float(changed.sum() * px_ha), "ha", period=f"{date_txt}..{month}"),
                    "built-up gained": quantity(built_gain, "ha", period=f"{date_txt}..{month}"),
                    "built-up lost": quantity(built_loss, "ha", period=f"{date_txt}..{month}"),
                    "buildings added (GIS)": quantity(
                        now["gis"]["buildings"] - then["gis"]["buildings"],
                        "count",
                        digits=0,
                        period=f"{date_txt}..{month}",
                    ),
                    "roads added (GIS)": quantity(
                        now["gis"]["road_km"] - then["gis"]["road_km"], "km", period=f"{date_txt}..{month}"
                    ),
                },
                "table": {
                    "columns": ["class", f"{date_txt} ha", f"{month} ha", "change ha", "historical map ha"],
                    "rows": rows_area,
                },
                "bullets": [f"{t['from']} → {t['to']}: {t['area_ha']:.2f} ha" for t in transitions[:8]],
                "figures": ["class_areas", "timeline"],
            }
        )
        sources = {**then["sources"], **{k: v for k, v in now["sources"].items()}}
        if hist:
            sources["historical map"] = hist["source"]
        summary: dict[str, Any] = {
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "as_of": view.as_of.isoformat() if view.as_of else None,
            "crs": grid.crs,
            "sections": sections,
            "figure_data": figure_data,
            "sources": sources,
            "historical": {
                "date": then["date"],
                "land_cover_month": then["land_cover_month"],
                "land_cover_gap_months": then["land_cover_gap_months"],
                "land_cover_uncertainty": then["land_cover_uncertainty"],
                "class_area_ha": {k: q["value"] for k, q in then["class_area_ha"].items()},
                "class_area_ha_month": {k: q["value"] for k, q in now["class_area_ha"].items()},
                "built_up_gained_ha": built_gain,
                "built_up_lost_ha": built_loss,
                "changed_ha": float(changed.sum() * px_ha),
                "transitions": transitions,
                "gis": {k: v for k, v in then["gis"].items()},
                "gis_month": {k: v for k, v in now["gis"].items()},
                "historical_map": None
                if hist is None
                else {
                    "georeference": hist["georeference"],
                    "mapped_fraction": hist["mapped_fraction"],
                    "agreement": agreement,
                    "residuals": hist["residuals"],
                },
            },
        }
        return Report(
            kind=REPORT_KIND,
            tile=tile,
            month=month,
            title=f"Historical reconstruction of {tile}: {date_txt} and {month}",
            summary=summary,
            figures=figures,
            captions=captions,
            headline=["maps", "class_areas"],
        )

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

    def _model_accuracy(self, view: MemoryView, model_id: str | None) -> dict[str, Any]:
        """Validation accuracy of the land-cover model version that made a record (0-1, per class too)."""
        if not model_id:
            return {"model_id": None, "val_accuracy": None, "per_class": {}, "source": "no model id recorded"}
        if model_id == TRUTH_MODEL_ID:
            return {"model_id": model_id, "val_accuracy": 1.0, "per_class": {}, "source": "rasterized ground truth"}
        metrics: dict[str, Any] | None = None
        source = ""
        for rec in view.records(MODEL_RECORDS):
            if rec.stats.get("model_id") == model_id:
                metrics, source = rec.stats, f"model registry via {describe(rec)}"
        if metrics is None:
            from memories.ai.manager import ModelManager

            try:
                mv = ModelManager(view.root).resolve(model_id)
            except Exception as e:  # noqa: BLE001 -- the report shows why the accuracy is missing
                return {"model_id": model_id, "val_accuracy": None, "per_class": {}, "source": f"not found: {e}"}
            metrics, source = dict(mv.metrics), f"model registry {mv.name}:{mv.version}"
        per_class = {
            c.name: float(metrics[f"val_accuracy/{c.name}"])
            for c in LAND_COVER_CLASSES
            if metrics.get(f"val_accuracy/{c.name}") is not None
        }
        acc = metrics.get("val_accuracy")
        return {
            "model_id": model_id,
            "val_accuracy": float(acc) if acc is not None else None,
            "val_miou": metrics.get("val_miou"),
            "per_class": per_class,
            "source": source,
        }

    def _timeline(self, tile: str, months: list[str]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"month": list(months), **{c.name: [] for c in LAND_COVER_CLASSES}}
        for m in months:
            ds = self.view.raster(LAND_COVER, tile, m)
            px_ha = TileGrid.from_dict(ds.attrs["grid"]).pixel_area_m2 / 10_000
            counts = np.bincount(np.asarray(ds["land_cover"].values, dtype=np.uint8).ravel(), minlength=256)
            for c in LAND_COVER_CLASSES:
                out[c.name].append(float(counts[c.code] * px_ha))
        return out


# -- building blocks, public for other applications and tests ---------------------------------
def as_instant(date: str | datetime) -> datetime:
    """A UTC datetime of ``YYYY-MM-DD``, an ISO date-time, ``YYYY-MM`` (the 15th) or a datetime.

    Raises:
        ConfigError: the text is none of these.
    """
    if isinstance(date, datetime):
        return date if date.tzinfo else date.replace(tzinfo=UTC)
    text = str(date).strip()
    if len(text) == 7:
        parse_month(text)  # raises with the expected form
        return month_mid(text)
    try:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"date {date!r} is not YYYY-MM-DD, YYYY-MM or an ISO date-time, e.g. 2023-06-15") from None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


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
    px_ha = grid.pixel_area_m2 / 10_000
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


def _transitions(a: np.ndarray, b: np.ndarray, changed: np.ndarray, px_ha: float) -> list[dict[str, Any]]:
    pairs = a[changed].astype(np.int32) * 256 + b[changed].astype(np.int32)
    codes, counts = np.unique(pairs, return_counts=True)
    rows = [
        {
            "from": CLASS_BY_CODE[int(k) // 256].name if int(k) // 256 in CLASS_BY_CODE else str(int(k) // 256),
            "to": CLASS_BY_CODE[int(k) % 256].name if int(k) % 256 in CLASS_BY_CODE else str(int(k) % 256),
            "area_ha": float(n * px_ha),
        }
        for k, n in zip(codes, counts, strict=True)
    ]
    return sorted(rows, key=lambda r: -r["area_ha"])


def _residuals(view: MemoryView, tile: str) -> list[dict[str, Any]]:
    """Per-GCP residuals stored beside the map (metres); empty when missing."""
    import io

    import pandas as pd

    uri = view.root.tile_file_uri(HISTORICAL_MAP, tile, "residuals.parquet")
    if not view.root.exists(uri):
        return []
    frame = pd.read_parquet(io.BytesIO(view.root.read_bytes(uri)))
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in frame.to_dict("records")]


def _uncertainty_rows(then: dict[str, Any], hist: dict[str, Any] | None) -> list[list[Any]]:
    lcu = then["land_cover_uncertainty"]
    acc = lcu.get("val_accuracy")
    lc_text = (
        f"{lcu['model_id']}: validation accuracy {acc * 100:.2f} % ({lcu['source']})"
        if acc is not None
        else f"{lcu.get('model_id')}: accuracy unknown ({lcu['source']})"
    )
    if lcu.get("mean_confidence") is not None:
        lc_text += f"; mean MC-dropout confidence {lcu['mean_confidence']:.3f}"
    if then["land_cover_gap_months"]:
        lc_text += f"; {then['land_cover_gap_months']} month(s) from the date"
    gis = then["gis"]
    gis_text = f"{gis['date_filter']} ({sum(gis['left_out'].values())} later features left out)"
    if gis["gap_months"]:
        gis_text += f"; layers of {gis['month']}, {gis['gap_months']} month(s) from the date"
    rows = [
        ["land cover", then["land_cover_month"], lc_text],
        ["GIS layers", gis["month"], gis_text],
    ]
    idx = then["indices"]
    if idx:
        rows.append(["spectral indices", idx["month"], f"{idx['gap_months']} month(s) from the date; tile mean ± std"])
    if hist:
        g = hist["georeference"]
        res = hist["grid"].resolution
        rows.append(
            [
                "historical map",
                f"{g.get('method')} order {g.get('order')}, {g.get('gcps')} GCPs",
                f"positional: RMSE {g['rmse_m']:.2f} m ({g['rmse_m'] / res:.2f} px), LOO RMSE "
                f"{g.get('loo_rmse_m', float('nan')):.2f} m ({g.get('loo_rmse_m', float('nan')) / res:.2f} px)",
            ]
        )
    return rows


def _cmap() -> tuple[Any, Any]:
    from matplotlib.colors import BoundaryNorm, ListedColormap

    colours = ["#ffffff"] + [CLASS_BY_CODE[k].color for k in range(1, len(LAND_COVER_CLASSES) + 1)]
    cmap = ListedColormap(colours)
    return cmap, BoundaryNorm(np.arange(-0.5, len(colours) + 0.5), cmap.N)


def _maps_figure(
    grid: TileGrid,
    then: np.ndarray,
    hist: np.ndarray | None,
    now: np.ndarray,
    changed: np.ndarray,
    date_txt: str,
    month: str,
) -> tuple[bytes, dict[str, Any]]:
    plt = pyplot()
    from matplotlib.patches import Patch

    cmap, norm = _cmap()
    extent = km_extent(grid)
    panels = [
        (f"memory, {date_txt}", then),
        ("historical map", hist if hist is not None else np.zeros_like(then)),
        (f"changed {date_txt} → {month}", np.where(changed, now, NO_LABEL)),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    for ax, (title, arr) in zip(axes, panels, strict=True):
        ax.imshow(arr, cmap=cmap, norm=norm, extent=extent, interpolation="nearest")
        ax.set_title(title)
        ax.set_xlabel("km")
    axes[0].set_ylabel("km")
    handles = [Patch(color=c.color, label=c.name) for c in LAND_COVER_CLASSES]
    axes[-1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    step = max(1, math.ceil(max(then.shape) / MAP_FIGURE_MAX_PX))
    data = {
        "sampled_every_px": step,
        "class_codes": {c.name: c.code for c in LAND_COVER_CLASSES},
        "memory_at_date": then[::step, ::step].tolist(),
        "historical_map": hist[::step, ::step].tolist() if hist is not None else None,
        "changed_to": np.where(changed, now, NO_LABEL)[::step, ::step].tolist(),
    }
    buf = png(fig)
    return buf, data


def _areas_figure(data: dict[str, list[Any]], date_txt: str, month: str) -> bytes:
    plt = pyplot()
    x = np.arange(len(data["class"]))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.27, data["at_date_ha"], 0.27, label=date_txt, color="#7f8c8d")
    ax.bar(x, data["at_month_ha"], 0.27, label=month, color="#2c3e50")
    if any(v is not None for v in data["historical_map_ha"]):
        ax.bar(x + 0.27, [v or 0 for v in data["historical_map_ha"]], 0.27, label="historical map", color="#d4a373")
    ax.set_xticks(x, data["class"])
    ax.set_ylabel("area (ha)")
    ax.legend()
    return png(fig)


def _timeline_figure(data: dict[str, list[Any]], date_txt: str) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    months = data["month"]
    for c in LAND_COVER_CLASSES:
        ax.plot(months, data[c.name], marker="o", ms=3, color=c.color, label=c.name)
    if date_txt[:7] in months:
        ax.axvline(months.index(date_txt[:7]), color="#555", ls="--", lw=1)
    ax.set_ylabel("area (ha)")
    ax.tick_params(axis="x", rotation=60)
    ax.legend(fontsize=8, ncol=3)
    return png(fig)


__all__ = ["HistoricalReconstructor", "as_instant", "class_areas", "gis_at"]
