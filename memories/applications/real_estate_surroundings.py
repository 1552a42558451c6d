"""The numbers of a property's surroundings, read from the memory for a
:class:`~memories.applications.real_estate.RealEstateAgent`.

Per month the land-cover shares and mean NDVI within the radius; flood exposure,
vegetation trend and climate; buildings, roads and land-cover transitions; the NDVI
projection; the records they came from. Definitions are in the agent's ``definitions``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from memories.applications.common import RadiusWindow
from memories.applications.report import quantity
from memories.classes import CLASS_BY_CODE, CLASS_BY_NAME, LAND_COVER_CLASSES, NO_LABEL
from memories.errors import ProcessingError
from memories.memory.view import describe

if TYPE_CHECKING:
    from memories.applications.real_estate import Property, RealEstateAgent

BUILT_UP = CLASS_BY_NAME["built-up"].code
WATER = CLASS_BY_NAME["water"].code


def surroundings_timeline(
    agent: RealEstateAgent, tile: str, months: list[str], win: RadiusWindow
) -> list[dict[str, Any]]:
    lc_months = set(agent.view.months("land_cover", tile))
    green = [CLASS_BY_NAME[c].code for c in agent.green_classes]
    rows = []
    for m in months:
        row: dict[str, Any] = {"month": m}
        if m in lc_months:
            lc = win.cut(agent.array("land_cover", tile, m, "land_cover"))
            conf = win.cut(agent.array("land_cover", tile, m, "confidence")).astype(np.float64)
            labelled = win.mask & (lc != NO_LABEL)
            n = int(labelled.sum())

            row["built_up_share"] = _share(lc, conf, labelled, [BUILT_UP], m)
            row["green_space_share"] = _share(lc, conf, labelled, green, m)
            row["water_share"] = _share(lc, conf, labelled, [WATER], m)
            row["class_shares"] = {
                c.name: (float((labelled & (lc == c.code)).sum()) / n if n else None) for c in LAND_COVER_CLASSES
            }
            row["labelled_pixels"] = n
        else:
            row["note"] = "no land_cover in memory for this month"
        ndvi = win.cut(agent.array("spectral_indices", tile, m, "ndvi")).astype(np.float64)
        ok = win.mask & np.isfinite(ndvi)
        k = int(ok.sum())
        if k:
            v = ndvi[ok]
            se = float(v.std(ddof=1) / math.sqrt(k)) if k > 1 else None
            row["ndvi_mean"] = quantity(float(v.mean()), "NDVI (-1..1)", period=m, uncertainty=se)
        else:
            row["ndvi_mean"] = quantity(None, "NDVI (-1..1)", period=m, note="no clear-sky pixel in the radius")
        row["ndvi_valid_fraction"] = k / max(int(win.mask.sum()), 1)
        rows.append(row)
    return rows


def environment(
    agent: RealEstateAgent, prop: Property, months: list[str], win: RadiusWindow, timeline: list[dict[str, Any]]
) -> dict[str, Any]:
    grid = agent.view.grid(prop.tile)
    xs, ys = grid.x, grid.y
    px_area = grid.pixel_area_m2
    first_water: np.ndarray | None = None
    first_valid: np.ndarray | None = None
    distances, new_water, flooded, at_property = [], [], [], []
    pr = int(np.clip((grid.y_max - prop.y) // grid.resolution, 0, grid.height - 1))
    pc = int(np.clip((prop.x - grid.x_min) // grid.resolution, 0, grid.width - 1))
    for m in months:
        ndwi = agent.array("spectral_indices", prop.tile, m, "ndwi")
        valid = np.isfinite(ndwi)
        water = valid & (ndwi > 0)
        rr, cc = np.nonzero(water)
        if rr.size:
            d = float(np.sqrt(((xs[cc] - prop.x) ** 2 + (ys[rr] - prop.y) ** 2).min()))
            distances.append(quantity(d, "m", period=m, uncertainty=grid.resolution / 2, note="to a pixel centre"))
        else:
            distances.append(quantity(None, "m", period=m, note="no open water on the tile"))
        at_property.append({"month": m, "water_at_property": bool(water[pr, pc])})
        w_in, v_in = win.cut(water), win.cut(valid)
        if first_water is None:
            first_water, first_valid = w_in, v_in
            new = np.zeros_like(w_in)
        else:
            assert first_valid is not None
            new = win.mask & w_in & ~first_water & first_valid
        area = float(new.sum()) * px_area
        new_water.append(quantity(area, "m2", period=m, note=f"vs {months[0]}"))
        if area >= agent.flood_min_area_m2:
            flooded.append(m)
    trend = _vegetation_trend(timeline)
    statement = (
        f"flooded in {', '.join(flooded)}"
        if flooded
        else f"no new open water in the radius in {months[0]}..{months[-1]}"
    )
    return {
        "flood_exposure": {
            "distance_to_water": distances,
            "min_distance_to_water": min(
                (q for q in distances if q["value"] is not None), key=lambda q: q["value"], default=None
            ),
            "new_water_area": new_water,
            "flooded_months": flooded,
            "statement": statement,
            "water_at_property": at_property,
        },
        "vegetation_trend": trend,
        "climate": climate(agent, prop.tile, months),
    }


def climate(agent: RealEstateAgent, tile: str, months: list[str]) -> dict[str, Any]:
    recs = {r.partition: r for r in agent.view.records("climate_series", tile) if r.partition in set(months)}
    if not recs:
        return {"available": False, "reason": f"the memory holds no climate_series of tile {tile} in this period"}
    rows: list[dict[str, Any]] = []
    for m in sorted(recs):
        s = recs[m].stats or {}
        rows.append(
            {
                "month": m,
                "temperature_mean_c": s.get("temperature_mean_c"),
                "precipitation_mm": s.get("precipitation_mm"),
                "ghi_kwh_m2": s.get("ghi_kwh_m2"),
                "station_id": s.get("station_id"),
                "station_distance_km": s.get("distance_km"),
            }
        )
    period = f"{rows[0]['month']}..{rows[-1]['month']}"
    temps = [float(r["temperature_mean_c"]) for r in rows if r["temperature_mean_c"] is not None]
    rain = [float(r["precipitation_mm"]) for r in rows if r["precipitation_mm"] is not None]
    last = rows[-1]
    return {
        "available": True,
        "months": rows,
        "temperature_mean": quantity(
            float(np.mean(temps)) if temps else None,
            "degC",
            period=period,
            uncertainty=float(np.std(temps, ddof=1) / math.sqrt(len(temps))) if len(temps) > 1 else None,
            note="mean of monthly means; ± standard error",
        ),
        "precipitation_total": quantity(float(np.sum(rain)) if rain else None, "mm", period=period),
        "station_distance": quantity(
            None if last["station_distance_km"] is None else float(last["station_distance_km"]),
            "km",
            note=f"station {last['station_id']}",
        ),
        "kind": (recs[max(recs)].stats or {}).get("kind"),
    }


def neighbourhood(agent: RealEstateAgent, prop: Property, months: list[str], win: RadiusWindow) -> dict[str, Any]:
    from shapely.geometry import Point

    gis = agent.view.months("gis_layers", prop.tile)
    start_gis = next((m for m in gis if m >= months[0]), None)
    end_gis = next((m for m in reversed(gis) if m <= months[-1]), None)
    out: dict[str, Any] = {}
    if start_gis is None or end_gis is None or start_gis > end_gis:
        out["gis"] = {"available": False, "reason": f"no gis_layers of {prop.tile} in {months[0]}..{months[-1]}"}
    else:
        circle = Point(prop.x, prop.y).buffer(agent.radius_m, quad_segs=64)
        counts = {}
        for label, m in (("start", start_gis), ("end", end_gis)):
            layers = agent.view.layers(prop.tile, m, ["buildings", "roads"])
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
        out["buildings"] = {
            "start": quantity(len(b0), "buildings", period=m0),
            "end": quantity(len(b1), "buildings", period=m1),
            "new": quantity(len(new), "buildings", period=f"{m0}..{m1}"),
            "removed": quantity(int((~b0["osm_id"].isin(set(b1["osm_id"]))).sum()), "buildings", period=f"{m0}..{m1}"),
            "new_by_start_date": dict(sorted(by_date.items())),
        }
        out["roads"] = {
            "start": quantity(km0, "km", period=m0),
            "end": quantity(km1, "km", period=m1),
            "change": quantity(km1 - km0, "km", period=f"{m0}..{m1}"),
        }
    out["land_cover_transitions"] = land_cover_transitions(agent, prop.tile, months, win)
    return out


def land_cover_transitions(agent: RealEstateAgent, tile: str, months: list[str], win: RadiusWindow) -> dict[str, Any]:
    held = [m for m in months if m in set(agent.view.months("land_cover", tile))]
    if len(held) < 2:
        return {"available": False, "reason": "fewer than two months of land_cover in the period"}
    a = win.cut(agent.array("land_cover", tile, held[0], "land_cover"))
    b = win.cut(agent.array("land_cover", tile, held[-1], "land_cover"))
    ok = win.mask & (a != NO_LABEL) & (b != NO_LABEL)
    px_area = agent.view.grid(tile).pixel_area_m2
    rows: list[dict[str, Any]] = []
    pairs, counts = np.unique(np.stack([a[ok], b[ok]]), axis=1, return_counts=True)
    for (f, t), n in zip(pairs.T, counts, strict=True):
        if f != t:
            rows.append(
                {
                    "from": CLASS_BY_CODE[int(f)].name,
                    "to": CLASS_BY_CODE[int(t)].name,
                    "area_m2": float(n) * px_area,
                    "share": float(n) / max(int(ok.sum()), 1),
                }
            )
    rows.sort(key=lambda r: -r["area_m2"])
    changed = sum(r["area_m2"] for r in rows)
    return {
        "available": True,
        "period": f"{held[0]}..{held[-1]}",
        "transitions": rows,
        "changed_area": quantity(changed, "m2", period=f"{held[0]}..{held[-1]}"),
        "changed_share": quantity(changed / (max(int(ok.sum()), 1) * px_area), "1", period=f"{held[0]}..{held[-1]}"),
    }


def ndvi_projection(timeline: list[dict[str, Any]], end: str, horizon_months: int, alpha: float) -> dict[str, Any]:
    import pandas as pd

    from memories.ai.forecast import forecast_series

    values = [r["ndvi_mean"]["value"] for r in timeline]
    series = pd.Series(
        [np.nan if v is None else v for v in values],
        index=pd.DatetimeIndex([pd.Timestamp(f"{r['month']}-01") for r in timeline]),
        dtype=float,
    )
    base: dict[str, Any] = {
        "variable": "ndvi_mean",
        "unit": "NDVI (-1..1)",
        "horizon_months": horizon_months,
        "interval": f"{100 * (1 - alpha):.0f} %",
        "fitted_to": f"{timeline[0]['month']}..{end}",
    }
    import statsmodels.tsa.statespace.sarimax  # noqa: F401 - loads scipy's OpenBLAS before it is limited

    try:
        fit = forecast_series(series, horizon_months, step="MS", alpha=alpha)
    except ProcessingError as e:
        return {**base, "available": False, "reason": str(e)}
    f = fit.forecast
    return {
        **base,
        "available": True,
        "order": list(fit.order),
        "harmonics": fit.harmonics,
        "aic": fit.aic,
        "forecast": [
            {
                "month": t.strftime("%Y-%m"),
                "ndvi": quantity(
                    float(row["mean"]),
                    "NDVI (-1..1)",
                    period=t.strftime("%Y-%m"),
                    uncertainty=float(row["upper"] - row["lower"]) / 2,
                    note="± half the 95 % interval",
                ),
                "lower": float(row["lower"]),
                "upper": float(row["upper"]),
            }
            for t, row in f.iterrows()
        ],
    }


def record_sources(agent: RealEstateAgent, tile: str, months: list[str]) -> dict[str, str]:
    out = {}
    for asset in ("spectral_indices", "land_cover", "gis_layers", "climate_series"):
        held = [m for m in agent.view.months(asset, tile) if months[0] <= m <= months[-1]]
        if held:
            first, last = agent.view.record(asset, tile, held[0]), agent.view.record(asset, tile, held[-1])
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


def _vegetation_trend(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """OLS slope of the monthly mean NDVI per year, with an annual harmonic once two years are held."""
    import statsmodels.api as sm

    pts = [(r["month"], r["ndvi_mean"]["value"]) for r in timeline if r["ndvi_mean"]["value"] is not None]
    period = f"{timeline[0]['month']}..{timeline[-1]['month']}"
    if len(pts) < 3:
        return {
            "slope": quantity(None, "NDVI/yr", period=period, note="fewer than 3 months with NDVI"),
            "method": "OLS",
            "n_months": len(pts),
        }
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
    return {
        "slope": quantity(slope, "NDVI/yr", period=period, uncertainty=se, note=note),
        "method": "OLS + annual harmonic" if seasonal else "OLS",
        "n_months": len(pts),
        "p_value": float(fit.pvalues[1]) if np.isfinite(fit.pvalues[1]) else None,
    }
