"""The numbers of a property's surroundings, read from the memory (the reading half of
:meth:`~memories.applications.real_estate.RealEstateAgent.analyze_property_sync`).

Per month the land-cover shares and mean NDVI within the radius; flood exposure,
vegetation trend and climate; buildings, roads and land-cover transitions; the NDVI
projection; the records they came from; what the property's map shows. Each function
takes a :class:`MemoryReader` (the agent: its memory view and its array cache) and the
configuration values it needs, and answers the typed values of
:mod:`memories.applications.property_analysis`. Definitions are in the agent's ``definitions``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from memories.applications.common import RadiusWindow
from memories.applications.maps import basemap, class_overlay
from memories.applications.property_analysis import (
    BuildingChanges,
    Climate,
    ClimateMonth,
    Environment,
    FloodExposure,
    ForecastMonth,
    LandCoverTransition,
    LandCoverTransitions,
    MonthSurroundings,
    NdviProjection,
    Neighbourhood,
    Property,
    PropertyMap,
    RoadChanges,
    VegetationTrend,
)
from memories.applications.report import quantity
from memories.applications.webmap import WebMap, add_gis_layers
from memories.classes import CLASS_BY_CODE, CLASS_BY_NAME, LAND_COVER_CLASSES, NO_LABEL
from memories.errors import ProcessingError
from memories.grid import TileGrid
from memories.memory.view import MemoryView, describe
from memories.products import CLIMATE_SERIES, GIS_LAYERS, LAND_COVER, SPECTRAL_INDICES

BUILT_UP = CLASS_BY_NAME["built-up"].code
WATER = CLASS_BY_NAME["water"].code
MAP_PAD_RADII = 1.4
"""The property's map reaches this many radii from its point (clipped to the tile)."""


class MemoryReader(Protocol):
    """What the surroundings read through: the memory view and a cached array reader (the agent)."""

    view: MemoryView

    def array(self, asset: str, tile: str, month: str, variable: str) -> np.ndarray:
        """A variable of a raster record as an array."""
        ...


def surroundings_timeline(
    reader: MemoryReader, tile: str, months: list[str], win: RadiusWindow, green_classes: Sequence[str]
) -> list[MonthSurroundings]:
    """Per month of ``months``: land-cover shares (months with land cover) and mean NDVI within ``win``."""
    lc_months = set(reader.view.months(LAND_COVER, tile))
    green = [CLASS_BY_NAME[c].code for c in green_classes]
    rows = []
    for m in months:
        shares: dict[str, Any] = {}
        if m in lc_months:
            lc = win.cut(reader.array(LAND_COVER, tile, m, "land_cover"))
            conf = win.cut(reader.array(LAND_COVER, tile, m, "confidence")).astype(np.float64)
            labelled = win.mask & (lc != NO_LABEL)
            n = int(labelled.sum())
            shares = {
                "built_up_share": _share(lc, conf, labelled, [BUILT_UP], m),
                "green_space_share": _share(lc, conf, labelled, green, m),
                "water_share": _share(lc, conf, labelled, [WATER], m),
                "class_shares": {
                    c.name: (float((labelled & (lc == c.code)).sum()) / n if n else None) for c in LAND_COVER_CLASSES
                },
                "labelled_pixels": n,
            }
        ndvi = win.cut(reader.array(SPECTRAL_INDICES, tile, m, "ndvi")).astype(np.float64)
        ok = win.mask & np.isfinite(ndvi)
        k = int(ok.sum())
        if k:
            v = ndvi[ok]
            se = float(v.std(ddof=1) / math.sqrt(k)) if k > 1 else None
            ndvi_mean = quantity(float(v.mean()), "NDVI (-1..1)", period=m, uncertainty=se)
        else:
            ndvi_mean = quantity(None, "NDVI (-1..1)", period=m, note="no clear-sky pixel in the radius")
        rows.append(
            MonthSurroundings(
                month=m, ndvi_mean=ndvi_mean, ndvi_valid_fraction=k / max(int(win.mask.sum()), 1), **shares
            )
        )
    return rows


def environment(
    reader: MemoryReader,
    prop: Property,
    months: list[str],
    win: RadiusWindow,
    timeline: list[MonthSurroundings],
    flood_min_area_m2: float,
) -> Environment:
    """Flood exposure (new open water of at least ``flood_min_area_m2`` m² in the circle), trend and climate."""
    return Environment(
        flood_exposure=flood_exposure(reader, prop, months, win, flood_min_area_m2),
        vegetation_trend=_vegetation_trend(timeline),
        climate=climate(reader, prop.tile, months),
    )


def flood_exposure(
    reader: MemoryReader, prop: Property, months: list[str], win: RadiusWindow, flood_min_area_m2: float
) -> FloodExposure:
    """Distance to open water (NDWI > 0) and new water in the circle, per month."""
    grid = reader.view.grid(prop.tile)
    xs, ys = grid.x, grid.y
    px_area = grid.pixel_area_m2
    first_water: np.ndarray | None = None
    first_valid: np.ndarray | None = None
    distances, new_water, flooded, at_property = [], [], [], {}
    pr = int(np.clip((grid.y_max - prop.y) // grid.resolution, 0, grid.height - 1))
    pc = int(np.clip((prop.x - grid.x_min) // grid.resolution, 0, grid.width - 1))
    for m in months:
        ndwi = reader.array(SPECTRAL_INDICES, prop.tile, m, "ndwi")
        valid = np.isfinite(ndwi)
        water = valid & (ndwi > 0)
        rr, cc = np.nonzero(water)
        if rr.size:
            d = float(np.sqrt(((xs[cc] - prop.x) ** 2 + (ys[rr] - prop.y) ** 2).min()))
            distances.append(quantity(d, "m", period=m, uncertainty=grid.resolution / 2, note="to a pixel centre"))
        else:
            distances.append(quantity(None, "m", period=m, note="no open water on the tile"))
        at_property[m] = bool(water[pr, pc])
        w_in, v_in = win.cut(water), win.cut(valid)
        if first_water is None:
            first_water, first_valid = w_in, v_in
            new = np.zeros_like(w_in)
        else:
            assert first_valid is not None
            new = win.mask & w_in & ~first_water & first_valid
        area = float(new.sum()) * px_area
        new_water.append(quantity(area, "m2", period=m, note=f"vs {months[0]}"))
        if area >= flood_min_area_m2:
            flooded.append(m)
    statement = (
        f"flooded in {', '.join(flooded)}"
        if flooded
        else f"no new open water in the radius in {months[0]}..{months[-1]}"
    )
    return FloodExposure(
        distance_to_water=distances,
        min_distance_to_water=min(
            (q for q in distances if q["value"] is not None), key=lambda q: q["value"], default=None
        ),
        new_water_area=new_water,
        flooded_months=flooded,
        statement=statement,
        water_at_property=at_property,
    )


def climate(reader: MemoryReader, tile: str, months: list[str]) -> Climate:
    """The period's climate from the tile's ``climate_series`` records (``available`` False: none)."""
    recs = {r.partition: r for r in reader.view.records(CLIMATE_SERIES, tile) if r.partition in set(months)}
    if not recs:
        return Climate(available=False, reason=f"the memory holds no climate_series of tile {tile} in this period")
    rows: list[ClimateMonth] = []
    for m in sorted(recs):
        s = recs[m].stats or {}
        rows.append(
            ClimateMonth(
                month=m,
                temperature_mean_c=s.get("temperature_mean_c"),
                precipitation_mm=s.get("precipitation_mm"),
                ghi_kwh_m2=s.get("ghi_kwh_m2"),
                station_id=s.get("station_id"),
                station_distance_km=s.get("distance_km"),
            )
        )
    period = f"{rows[0].month}..{rows[-1].month}"
    temps = [float(r.temperature_mean_c) for r in rows if r.temperature_mean_c is not None]
    rain = [float(r.precipitation_mm) for r in rows if r.precipitation_mm is not None]
    last = rows[-1]
    return Climate(
        available=True,
        months=rows,
        temperature_mean=quantity(
            float(np.mean(temps)) if temps else None,
            "degC",
            period=period,
            uncertainty=float(np.std(temps, ddof=1) / math.sqrt(len(temps))) if len(temps) > 1 else None,
            note="mean of monthly means; ± standard error",
        ),
        precipitation_total=quantity(float(np.sum(rain)) if rain else None, "mm", period=period),
        station_distance=quantity(
            None if last.station_distance_km is None else float(last.station_distance_km),
            "km",
            note=f"station {last.station_id}",
        ),
        kind=(recs[max(recs)].stats or {}).get("kind"),
    )


def neighbourhood(
    reader: MemoryReader, prop: Property, months: list[str], win: RadiusWindow, radius_m: float
) -> Neighbourhood:
    """Buildings and roads in the circle at the first and last GIS month of the period; land-cover transitions."""
    from shapely.geometry import Point

    gis = reader.view.months(GIS_LAYERS, prop.tile)
    start_gis = next((m for m in gis if m >= months[0]), None)
    end_gis = next((m for m in reversed(gis) if m <= months[-1]), None)
    transitions = land_cover_transitions(reader, prop.tile, months, win)
    if start_gis is None or end_gis is None or start_gis > end_gis:
        reason = f"no gis_layers of {prop.tile} in {months[0]}..{months[-1]}"
        return Neighbourhood(land_cover_transitions=transitions, gis_reason=reason)
    circle = Point(prop.x, prop.y).buffer(radius_m, quad_segs=64)
    counts = {}
    for label, m in (("start", start_gis), ("end", end_gis)):
        layers = reader.view.layers(prop.tile, m, ["buildings", "roads"])
        b = layers["buildings"]
        inside = b[b.geometry.representative_point().within(circle).to_numpy()]
        roads = layers["roads"]
        km = float(roads.geometry.intersection(circle).length.sum()) / 1000.0
        counts[label] = (m, inside, km)
    (m0, b0, km0), (m1, b1, km1) = counts["start"], counts["end"]
    new = b1[~b1["osm_id"].isin(set(b0["osm_id"]))] if "osm_id" in b1 else b1.iloc[:0]
    by_date: dict[str, int] = {}
    for d in new["start_date"] if "start_date" in new else []:
        key = str(d)[:10] if d is not None and str(d) not in ("None", "nan", "NaT") else "undated"
        by_date[key] = by_date.get(key, 0) + 1
    buildings = BuildingChanges(
        start=quantity(len(b0), "buildings", period=m0),
        end=quantity(len(b1), "buildings", period=m1),
        new=quantity(len(new), "buildings", period=f"{m0}..{m1}"),
        removed=quantity(int((~b0["osm_id"].isin(set(b1["osm_id"]))).sum()), "buildings", period=f"{m0}..{m1}"),
        new_by_start_date=dict(sorted(by_date.items())),
    )
    roads = RoadChanges(
        start=quantity(km0, "km", period=m0),
        end=quantity(km1, "km", period=m1),
        change=quantity(km1 - km0, "km", period=f"{m0}..{m1}"),
    )
    return Neighbourhood(land_cover_transitions=transitions, buildings=buildings, roads=roads)


def land_cover_transitions(
    reader: MemoryReader, tile: str, months: list[str], win: RadiusWindow
) -> LandCoverTransitions:
    """Class changes in the circle between the first and the last month of ``months`` with land cover."""
    held = [m for m in months if m in set(reader.view.months(LAND_COVER, tile))]
    if len(held) < 2:
        return LandCoverTransitions(available=False, reason="fewer than two months of land_cover in the period")
    a = win.cut(reader.array(LAND_COVER, tile, held[0], "land_cover"))
    b = win.cut(reader.array(LAND_COVER, tile, held[-1], "land_cover"))
    ok = win.mask & (a != NO_LABEL) & (b != NO_LABEL)
    px_area = reader.view.grid(tile).pixel_area_m2
    rows: list[LandCoverTransition] = []
    pairs, counts = np.unique(np.stack([a[ok], b[ok]]), axis=1, return_counts=True)
    for (f, t), n in zip(pairs.T, counts, strict=True):
        if f != t:
            rows.append(
                LandCoverTransition(
                    from_class=CLASS_BY_CODE[int(f)].name,
                    to_class=CLASS_BY_CODE[int(t)].name,
                    area_m2=float(n) * px_area,
                    share=float(n) / max(int(ok.sum()), 1),
                )
            )
    rows.sort(key=lambda r: -r.area_m2)
    changed = sum(r.area_m2 for r in rows)
    period = f"{held[0]}..{held[-1]}"
    return LandCoverTransitions(
        available=True,
        period=period,
        transitions=rows,
        changed_area=quantity(changed, "m2", period=period),
        changed_share=quantity(changed / (max(int(ok.sum()), 1) * px_area), "1", period=period),
    )


def ndvi_projection(timeline: list[MonthSurroundings], end: str, horizon_months: int, alpha: float) -> NdviProjection:
    """ARIMA forecast of the monthly mean NDVI ``horizon_months`` past ``end``, with ``1 - alpha`` intervals."""
    import pandas as pd

    from memories.ai.forecast import forecast_series

    values = [r.ndvi_mean["value"] for r in timeline]
    series = pd.Series(
        [np.nan if v is None else v for v in values],
        index=pd.DatetimeIndex([pd.Timestamp(f"{r.month}-01") for r in timeline]),
        dtype=float,
    )
    base: dict[str, Any] = {
        "horizon_months": horizon_months,
        "interval": f"{100 * (1 - alpha):.0f} %",
        "fitted_to": f"{timeline[0].month}..{end}",
    }
    import statsmodels.tsa.statespace.sarimax  # noqa: F401 - loads scipy's OpenBLAS before it is limited

    try:
        fit = forecast_series(series, horizon_months, step="MS", alpha=alpha)
    except ProcessingError as e:
        return NdviProjection(**base, available=False, reason=str(e))
    return NdviProjection(
        **base,
        available=True,
        order=tuple(fit.order),
        harmonics=fit.harmonics,
        aic=fit.aic,
        forecast=[
            ForecastMonth(
                month=t.strftime("%Y-%m"),
                ndvi=quantity(
                    float(row["mean"]),
                    "NDVI (-1..1)",
                    period=t.strftime("%Y-%m"),
                    uncertainty=float(row["upper"] - row["lower"]) / 2,
                    note="± half the 95 % interval",
                ),
                lower=float(row["lower"]),
                upper=float(row["upper"]),
            )
            for t, row in fit.forecast.iterrows()
        ],
    )


def property_map(reader: MemoryReader, prop: Property, months: list[str], radius_m: float) -> PropertyMap:
    """What the property's map shows: the base and land cover of the period's last land-cover month, and the
    buildings and roads of the latest GIS month up to its end, in a window of 1.4 radii around the point."""
    from shapely.geometry import box

    tile, end = prop.tile, months[-1]
    grid = reader.view.grid(tile)
    held_lc = set(reader.view.months(LAND_COVER, tile))
    lc_months = [m for m in months if m in held_lc]
    lc_month = lc_months[-1] if lc_months else None
    x0, y0, x1, y1 = grid.bounds
    pad = MAP_PAD_RADII * radius_m
    extent = (max(x0, prop.x - pad), max(y0, prop.y - pad), min(x1, prop.x + pad), min(y1, prop.y + pad))
    base = basemap(reader.view, tile, lc_month or end, grid)
    land_cover = reader.array(LAND_COVER, tile, lc_month, "land_cover") if lc_month else None
    gis_month = next((m for m in reversed(reader.view.months(GIS_LAYERS, tile)) if m <= end), None)
    buildings = roads = None
    if gis_month:
        layers = reader.view.layers(tile, gis_month, ["buildings", "roads"])
        view_box = box(*extent)
        roads = layers["roads"][layers["roads"].intersects(view_box)]
        buildings = layers["buildings"][layers["buildings"].intersects(view_box)]
    return PropertyMap(
        base=base,
        grid=grid,
        extent_m=extent,
        land_cover_month=lc_month,
        land_cover=land_cover,
        gis_month=gis_month,
        buildings=buildings,
        roads=roads,
    )


def report_webmap(
    reader: MemoryReader, tile: str, month: str, grid: TileGrid, props: list[Property], radius_m: float
) -> WebMap:
    """The report page's interactive map: the composite, the month's land cover, buildings and roads, and each
    featured property of ``tile`` with its radius."""
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import Point

    web = WebMap(grid)
    base = basemap(reader.view, tile, month, grid)
    web.add_raster("composite", base.label, base.rgba)
    lc_months = [m for m in reader.view.months(LAND_COVER, tile) if m <= month]
    if lc_months:
        lc = reader.array(LAND_COVER, tile, lc_months[-1], "land_cover")
        colours = {c.code: c.color for c in LAND_COVER_CLASSES}
        web.add_raster("land_cover", f"land cover {lc_months[-1]}", class_overlay(lc, colours, 0.5), visible=False)
    add_gis_layers(web, reader.view, tile, month)
    here = [p for p in props if p.tile == tile]
    if here:
        # the address column lists every property (all are on the report's tile: its featured properties)
        labels = pd.DataFrame({"property": [p.label for p in here], "address": [p.address for p in props]})
        web.add_vectors(
            "radius",
            f"{radius_m:g} m radius",
            gpd.GeoSeries([Point(p.x, p.y).buffer(radius_m) for p in here]),
            style={"color": "#ff00aa", "weight": 2, "fill": False},
        )
        web.add_vectors(
            "properties",
            "featured properties",
            gpd.GeoSeries([Point(p.x, p.y) for p in here]),
            style={"color": "#000", "weight": 1, "fillColor": "#ff00aa", "fillOpacity": 1, "radius": 7},
            props=labels,
        )
    return web


def record_sources(reader: MemoryReader, tile: str, months: list[str]) -> dict[str, str]:
    """``<product> (<n> months)`` -> the first and last record of the period read (:func:`describe`)."""
    out = {}
    for asset in (SPECTRAL_INDICES, LAND_COVER, GIS_LAYERS, CLIMATE_SERIES):
        held = [m for m in reader.view.months(asset, tile) if months[0] <= m <= months[-1]]
        if held:
            first, last = reader.view.record(asset, tile, held[0]), reader.view.record(asset, tile, held[-1])
            out[f"{asset} ({len(held)} months)"] = (
                describe(first) if first.id == last.id else f"{describe(first)} … {describe(last)}"
            )
    return out


def _share(lc: np.ndarray, conf: np.ndarray, labelled: np.ndarray, codes: list[int], month: str) -> dict[str, Any]:
    """Share (0-1) of the labelled pixels whose class is one of ``codes``, ± its expected commission error."""
    n = int(labelled.sum())
    if n == 0:
        return quantity(None, "1", period=month, note="no labelled pixel in the radius")
    sel = labelled & np.isin(lc, codes)
    err = float(np.clip(1.0 - conf[sel], 0.0, 1.0).sum()) / n
    return quantity(float(sel.sum()) / n, "1", period=month, uncertainty=err)


def _vegetation_trend(timeline: list[MonthSurroundings]) -> VegetationTrend:
    """OLS slope of the monthly mean NDVI per year, with an annual harmonic once two years are held."""
    import statsmodels.api as sm

    pts = [(r.month, r.ndvi_mean["value"]) for r in timeline if r.ndvi_mean["value"] is not None]
    period = f"{timeline[0].month}..{timeline[-1].month}"
    if len(pts) < 3:
        return VegetationTrend(
            slope=quantity(None, "NDVI/yr", period=period, note="fewer than 3 months with NDVI"),
            method="OLS",
            n_months=len(pts),
        )
    t = np.array([int(m[:4]) + (int(m[5:7]) - 0.5) / 12 for m, _ in pts])
    y = np.array([v for _, v in pts], dtype=np.float64)
    seasonal = len(pts) >= 24
    cols = [np.ones_like(t), t - t.mean()]
    if seasonal:
        cols += [np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)]
    fit = sm.OLS(y, np.column_stack(cols)).fit()
    slope, se = float(fit.params[1]), float(fit.bse[1])
    note = (
        "OLS with an annual harmonic (seasonality removed); ± standard error"
        if seasonal
        else "OLS on fewer than 24 months: includes the seasonal cycle; ± standard error"
    )
    return VegetationTrend(
        slope=quantity(slope, "NDVI/yr", period=period, uncertainty=se, note=note),
        method="OLS + annual harmonic" if seasonal else "OLS",
        n_months=len(pts),
        fitted=True,
        p_value=float(fit.pvalues[1]) if np.isfinite(fit.pvalues[1]) else None,
    )
