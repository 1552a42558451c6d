"""Real-estate analysis: a property's surroundings over time, read from the memory.

``RealEstateAgent(view).analyze_property(address=..., time_range=(start, end))``
resolves the address against the places the memory knows (the ``buildings`` and
``places`` GIS layers of every tile, as recorded for the end of the time range)
and answers, for a circle of ``radius_m`` around the property:

- **timeline**: per month the memory holds, the land-cover shares in the circle
  (built-up, green space, water and every class) and the mean NDVI;
- **environmental factors**: flood exposure (distance to the nearest open water,
  NDWI > 0, each month; months with *new* water in the circle, i.e. water where
  the first month had none, say "flooded in <month>"), the vegetation trend (OLS
  slope of the monthly NDVI per year with its standard error, with an annual
  harmonic when two years or more are held) and the climate of the nearest
  weather station (``climate_series`` records, when the memory has them);
- **neighbourhood changes**: buildings and roads in the circle at the start and
  at the end (counts, new buildings by their ``start_date``, road length) and
  the land-cover transitions between the first and the last month;
- **projections**: an ARIMA forecast (:func:`memories.ai.forecast.forecast_series`)
  of the circle's monthly NDVI, 6 months ahead with 95 % intervals; a series too
  short to fit says so instead of failing.

Definitions (also in every answer under ``definitions``):

- a pixel is *in the circle* when its centre lies within ``radius_m`` of the
  property's point (the representative point of the building or place); shares
  are fractions (0–1) of the labelled pixels (class code != 0) in the circle;
- *green space* is forest + grassland (:data:`GREEN_SPACE_CLASSES`): vegetation
  people can use or see; cropland is reported apart, in the class shares;
- a building is *in the circle* when its representative point is; road length
  is the length of the road lines clipped to the circle.

``report(tile, month)`` builds the ``real_estate`` report of a tile-month for the
tile's featured properties: a configured list of addresses, or by default three
addressed buildings picked from the memory's GIS layers of that month (the one
nearest the tile centre, the one nearest the newest development, i.e. the
buildings with the latest ``start_date``, and the one nearest open water).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from memories.applications.memory_view import MemoryView, describe
from memories.applications.report import Report, km_extent, png, pyplot, quantity
from memories.classes import CLASS_BY_CODE, CLASS_BY_NAME, LAND_COVER_CLASSES, NO_LABEL
from memories.errors import ConfigError, MissingDataError, ProcessingError
from memories.grid import TileGrid
from memories.months import month_range

__all__ = [
    "DEFAULT_RADIUS_M",
    "FORECAST_HORIZON_MONTHS",
    "GREEN_SPACE_CLASSES",
    "Property",
    "RealEstateAgent",
]

REPORT_KIND = "real_estate"
DEFAULT_RADIUS_M = 500.0
"""Radius of the property's surroundings, metres."""
GREEN_SPACE_CLASSES: tuple[str, ...] = ("forest", "grassland")
"""Land-cover classes that count as green space (cropland does not: it is farmed, not open to residents)."""
FORECAST_HORIZON_MONTHS = 6
"""Months the NDVI projection reaches past the last month of the time range."""
FLOOD_MIN_AREA_M2 = 500.0
"""Least area of new open water in the circle (m², 5 pixels of 10 m) that counts as a flood, not noise."""
FORECAST_ALPHA = 0.05
"""The projection's intervals cover 1 - alpha (95 %)."""

BUILT_UP = CLASS_BY_NAME["built-up"].code
WATER = CLASS_BY_NAME["water"].code


@dataclass(frozen=True)
class Property:
    """An address resolved to a point of one tile."""

    address: str
    """The text asked for."""
    label: str
    """The feature's address (``street housenumber``) or name, as the memory holds it."""
    feature_id: str
    """``building/<osm_id>`` or ``place/<osm_id>``."""
    tile: str
    crs: str
    x: float
    y: float
    """The property's point, metres in the tile CRS."""
    lon: float
    lat: float
    """The same point, EPSG:4326 degrees."""
    score: float
    """0–1 similarity of the match."""
    candidates: int
    """Features that carry the address equally well (above 1: the text was ambiguous)."""


class RealEstateAgent:
    """Analyses of properties and their surroundings over time, from the memory.

    Args:
        view: the memory as of a transaction time (default: the configured memory, now).
        radius_m: radius of the surroundings, metres.
        properties: the featured addresses of :meth:`report` (default: picked from each tile's GIS layers).
        green_classes: land-cover class names that count as green space.
        flood_min_area_m2: least new open water in the circle (m²) that counts as flooding.
        horizon_months: months projected past the end of the time range.

    Raises:
        ConfigError: a non-positive radius or horizon, or an unknown class name.
    """

    def __init__(
        self,
        view: MemoryView | None = None,
        radius_m: float = DEFAULT_RADIUS_M,
        *,
        properties: Sequence[str] | None = None,
        green_classes: Sequence[str] = GREEN_SPACE_CLASSES,
        flood_min_area_m2: float = FLOOD_MIN_AREA_M2,
        horizon_months: int = FORECAST_HORIZON_MONTHS,
    ) -> None:
        if not radius_m > 0:
            raise ConfigError(f"radius_m={radius_m}: give the radius of the surroundings in metres, e.g. 500")
        if horizon_months < 1:
            raise ConfigError(f"horizon_months={horizon_months}: project at least one month")
        unknown = [c for c in green_classes if c not in CLASS_BY_NAME]
        if unknown:
            raise ConfigError(f"green_classes {unknown} are not land-cover classes; use some of {list(CLASS_BY_NAME)}")
        self.view = view or MemoryView()
        self.radius_m = float(radius_m)
        self.properties = list(properties) if properties else None
        self.green_classes = tuple(green_classes)
        self.flood_min_area_m2 = float(flood_min_area_m2)
        self.horizon_months = int(horizon_months)
        self._arrays: dict[tuple[str, str, str, str], np.ndarray] = {}
        self._gazetteers: dict[str, tuple[Any, dict[str, TileGrid]]] = {}

    # -- public ------------------------------------------------------------------------------
    def locate(self, address: str, month: str | None = None) -> Property:
        """Resolve ``address`` against the buildings and places the memory held at ``month`` (default: latest).

        Raises:
            MissingDataError: no feature carries the address; the message names close candidates.
        """
        from memories.ai.entities import Gazetteer

        if not isinstance(address, str) or not address.strip():
            raise ConfigError(
                f"address={address!r}: give a street and house number or a place name, e.g. 'Linden Street 4'"
            )
        gazetteer, grids = self._gazetteer(month)
        assert isinstance(gazetteer, Gazetteer)
        match = _best_address(gazetteer, address)
        if match is None:
            labels = _labels(gazetteer)
            close = difflib.get_close_matches(address, labels, n=5, cutoff=0.6) or difflib.get_close_matches(
                address.lower(), [label.lower() for label in labels], n=5, cutoff=0.5
            )
            when = f" at {month}" if month else ""
            raise MissingDataError(
                f"address {address!r} is not among the {len(labels)} addressed buildings and places the memory "
                f"holds{when}; close candidates: {close or 'none'}; check the spelling or give one of those"
            )
        from pyproj import Transformer

        best: tuple[float, str, float, float] | None = None
        for tile, grid in grids.items():
            x, y = Transformer.from_crs(4326, grid.epsg, always_xy=True).transform(match.lon, match.lat)
            x0, y0, x1, y1 = grid.bounds
            inside = min(x - x0, x1 - x, y - y0, y1 - y)  # metres to the nearest tile edge (negative outside)
            if best is None or inside > best[0]:
                best = (inside, tile, float(x), float(y))
        assert best is not None
        if best[0] < 0:
            raise MissingDataError(
                f"address {address!r} resolved to {match.label} at ({match.lon:.5f}, {match.lat:.5f}), outside every "
                f"tile the memory holds ({sorted(grids)}); add its tile to the area of interest"
            )
        _, tile, x, y = best
        return Property(
            address=address,
            label=match.label,
            feature_id=match.feature_id,
            tile=tile,
            crs=grids[tile].crs,
            x=x,
            y=y,
            lon=match.lon,
            lat=match.lat,
            score=match.score,
            candidates=match.candidates,
        )

    def analyze_property(
        self,
        address: str,
        time_range: tuple[Any, Any] | None = None,
        include_environmental: bool = True,
        include_neighborhood: bool = True,
    ) -> dict[str, Any]:
        """The property's surroundings over ``time_range``: timeline, environment, neighbourhood, projections.

        Args:
            address: ``Linden Street 4``, ``4 Linden Street``, ``Linden Street 4, Brezovica`` (a town
                disambiguates an address several tiles carry) or a place name.
            time_range: (start, end) months, as ``YYYY-MM`` strings, dates or datetimes, inclusive;
                None: every month the memory holds.
            include_environmental: add flood exposure, vegetation trend and climate.
            include_neighborhood: add buildings, roads and land-cover transitions.

        Returns:
            A JSON-able dict; every number is a :func:`~memories.applications.report.quantity` (value,
            unit, period, uncertainty) or a plain count/table with its unit in the key name.

        Raises:
            MissingDataError: unknown address, or the memory holds no month of the range.
            ConfigError: a malformed time range.
        """
        end_hint = _month(time_range[1], "time_range end") if time_range else None
        # The property is resolved against the places known at the end of the range.
        prop = self.locate(address, self._gis_month_until(end_hint))
        months = self._months(prop.tile, time_range)
        start, end = months[0], months[-1]
        grid = self.view.grid(prop.tile)
        win = _Window.around(grid, prop.x, prop.y, self.radius_m)
        period = f"{start}..{end}"
        timeline = self._timeline(prop.tile, months, win)
        out: dict[str, Any] = {
            "address": address,
            "property": asdict(prop),
            "radius_m": self.radius_m,
            "period": period,
            "months": months,
            "as_of": self.view.as_of.isoformat() if self.view.as_of else None,
            "definitions": self.definitions(win),
            "timeline": timeline,
        }
        if prop.candidates > 1:
            out["note"] = (
                f"{prop.candidates} features carry {prop.label!r}; the one nearest a place named in the address "
                "(or the first) was chosen: add the town to the address to choose"
            )
        if include_environmental:
            out["environmental"] = self._environment(prop, months, win, timeline)
        if include_neighborhood:
            out["neighborhood"] = self._neighbourhood(prop, months, win)
        out["projections"] = self._projection(timeline, end)
        out["sources"] = self._sources(prop.tile, months)
        return out

    def definitions(self, win: _Window | None = None) -> dict[str, str]:
        """What the answer's terms mean (for the reader and the JSON)."""
        out = {
            "in_radius": f"pixels whose centre lies within {self.radius_m:g} m of the property's point",
            "shares": "fractions (0-1) of the labelled land-cover pixels (class != 0) in the radius",
            "green_space": " + ".join(self.green_classes) + " (cropland is reported apart, in class_shares)",
            "built_up": "land-cover class built-up",
            "water": "land-cover class water; flood exposure uses open water from NDWI > 0 instead",
            "share_uncertainty": "expected share of the class's pixels that are misclassified: the mean of "
            "(1 - model confidence) over them, divided by the labelled pixels (commission only)",
            "ndvi_uncertainty": "standard error of the mean over the clear-sky pixels in the radius "
            "(neighbouring pixels are correlated, so it is a lower bound)",
            "flooded": f"at least {self.flood_min_area_m2:g} m2 of open water (NDWI > 0) in the radius where "
            "the first month of the period had none",
            "buildings_in_radius": "buildings whose representative point lies in the radius",
        }
        if win is not None and win.covered < 0.999:
            out["coverage"] = f"the radius reaches past the tile; {100 * win.covered:.1f} % of it lies on the tile"
        return out

    def featured_properties(self, tile: str, month: str) -> list[str]:
        """The addresses the tile-month's report analyses: the configured ones, else picked from the GIS layers.

        The default picks addressed buildings of ``month``'s layers: the one nearest the tile
        centre, the one nearest the newest development (buildings with the latest ``start_date``)
        and the one nearest open water; each address is followed by the tile's town name, which
        disambiguates streets several tiles share.
        """
        if self.properties:
            return list(self.properties)
        layers = self.view.layers(tile, month, ["buildings", "places", "water"])
        b = layers["buildings"]
        addressed = b[b["addr:street"].notna() & b["addr:housenumber"].notna()] if "addr:street" in b else b.iloc[:0]
        if addressed.empty:
            raise MissingDataError(
                f"the buildings of {month}|{tile} carry no address; pass RealEstateAgent(properties=[...]) "
                "with place names instead"
            )
        points = addressed.geometry.representative_point()
        px, py = points.x.to_numpy(), points.y.to_numpy()
        grid = self.view.grid(tile)
        x0, y0, x1, y1 = grid.bounds
        picks = [int(np.argmin(np.hypot(px - (x0 + x1) / 2, py - (y0 + y1) / 2)))]
        dated = b[b["start_date"].notna()] if "start_date" in b else b.iloc[:0]
        if not dated.empty:
            newest = dated[dated["start_date"].astype(str) == dated["start_date"].astype(str).max()]
            c = newest.geometry.representative_point()
            picks.append(int(np.argmin(np.hypot(px - c.x.mean(), py - c.y.mean()))))
        water = layers["water"]
        if len(water):
            picks.append(int(np.argmin(points.distance(water.geometry.union_all()).to_numpy())))
        places = layers["places"]
        towns = places[places["place"] == "town"]["name"].tolist() if "place" in places else []
        suffix = f", {towns[0]}" if towns else ""
        out: list[str] = []
        for i in picks:
            row = addressed.iloc[i]
            text = f"{row['addr:street']} {row['addr:housenumber']}{suffix}"
            if text not in out:
                out.append(text)
        return out

    def report(self, tile: str, month: str) -> Report:
        """The ``real_estate`` report of a tile-month: every featured property, from the first month held to ``month``.

        Raises:
            MissingDataError: the memory holds no indices of the tile up to ``month``.
        """
        held = self.view.months("spectral_indices", tile, until=month)
        if not held:
            self.view.record("spectral_indices", tile, month)  # raises with the fix
        grid = self.view.grid(tile)
        addresses = self.featured_properties(tile, self._gis_month_until(month, tile) or month)
        analyses, failures = [], []
        for address in addresses:
            try:
                analyses.append(self.analyze_property(address, (held[0], month)))
            except MissingDataError as e:
                failures.append(f"{address}: {e}")
        sections: list[dict[str, Any]] = []
        figures: dict[str, bytes] = {}
        captions: dict[str, str] = {}
        figure_data: dict[str, Any] = {}
        alerts: list[str] = []
        properties: list[dict[str, Any]] = []
        for i, a in enumerate(analyses, start=1):
            sections.append(self._section(i, a, figures, captions, figure_data))
            flooded = a.get("environmental", {}).get("flood_exposure", {}).get("flooded_months", [])
            if flooded:
                alerts.append(
                    f"{a['property']['label']}: flooded in {', '.join(flooded)} (new open water in the radius)"
                )
            properties.append(_brief(a))
        if failures:
            sections.append({"title": "Addresses not analysed", "bullets": failures})
        summary: dict[str, Any] = {
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "as_of": self.view.as_of.isoformat() if self.view.as_of else None,
            "crs": grid.crs,
            "alerts": alerts,
            "sections": sections,
            "figure_data": figure_data,
            "sources": analyses[0]["sources"] if analyses else {},
            "real_estate": {
                "radius_m": self.radius_m,
                "period": f"{held[0]}..{month}",
                "definitions": self.definitions(),
                "properties": properties,
                "analyses": analyses,
            },
        }
        return Report(
            kind=REPORT_KIND,
            tile=tile,
            month=month,
            title=f"Real estate: {len(analyses)} properties on tile {tile}, {held[0]} to {month}",
            summary=summary,
            figures=figures,
            captions=captions,
            headline=[n for n in ("map_1", "timeline_1") if n in figures],
        )

    # -- the memory, read once per agent -------------------------------------------------------
    def _array(self, asset: str, tile: str, month: str, variable: str) -> np.ndarray:
        key = (asset, tile, month, variable)
        if key not in self._arrays:
            ds = self.view.raster(asset, tile, month)
            for name in ds.data_vars:
                self._arrays[(asset, tile, month, str(name))] = np.asarray(ds[name].values)
            if key not in self._arrays:
                raise ProcessingError(
                    f"{asset} {month}|{tile} has no variable {variable!r}; it holds {list(ds.data_vars)}"
                )
        return self._arrays[key]

    def _gis_month_until(self, month: str | None, tile: str | None = None) -> str | None:
        """The latest month with GIS layers up to ``month`` (any tile, or ``tile``); None: none recorded."""
        tiles = [tile] if tile else self.view.tiles("gis_layers")
        held = sorted({m for t in tiles for m in self.view.months("gis_layers", t, until=month)})
        return held[-1] if held else None

    def _gazetteer(self, month: str | None) -> tuple[Any, dict[str, TileGrid]]:
        """The gazetteer of every tile's buildings and places at ``month`` (or each tile's latest), and the grids."""
        import geopandas as gpd
        import pandas as pd

        from memories.ai.entities import Gazetteer

        key = month or "latest"
        if key in self._gazetteers:
            return self._gazetteers[key]
        buildings, places, grids = [], [], {}
        for tile in self.view.tiles("gis_layers"):
            held = self.view.months("gis_layers", tile, until=month)
            if not held:
                continue
            layers = self.view.layers(tile, held[-1], ["buildings"])
            buildings.append(layers["buildings"].to_crs(4326))
            try:
                places.append(self.view.layers(tile, held[-1], ["places"])["places"].to_crs(4326))
            except Exception:  # noqa: BLE001 - a source without named places has no places layer
                pass
            grids[tile] = self.view.grid(tile)
        if not grids:
            when = f" up to {month}" if month else ""
            raise MissingDataError(f"the memory holds no gis_layers{when}; materialize gis_layers for the area first")

        def merged(parts: list[Any]) -> Any:
            parts = [p for p in parts if len(p)]
            return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=4326) if parts else None

        out = (Gazetteer.from_frames(merged(buildings), merged(places)), grids)
        self._gazetteers[key] = out
        return out

    def _months(self, tile: str, time_range: tuple[Any, Any] | None) -> list[str]:
        held = self.view.months("spectral_indices", tile)
        if time_range is None:
            months = held
        else:
            if len(time_range) != 2:
                raise ConfigError(f"time_range={time_range!r}: give (start, end), e.g. ('2023-01', '2024-06')")
            start, end = _month(time_range[0], "time_range start"), _month(time_range[1], "time_range end")
            if start > end:
                raise ConfigError(f"time_range starts ({start}) after it ends ({end}); swap them")
            months = [m for m in held if start <= m <= end]
        if not months:
            have = f"{held[0]}..{held[-1]}" if held else "no month"
            raise MissingDataError(
                f"the memory holds no spectral_indices of tile {tile} in {time_range} (it holds {have}); "
                "query a period it covers or materialize those months"
            )
        return months

    # -- the analyses --------------------------------------------------------------------------
    def _timeline(self, tile: str, months: list[str], win: _Window) -> list[dict[str, Any]]:
        lc_months = set(self.view.months("land_cover", tile))
        green = [CLASS_BY_NAME[c].code for c in self.green_classes]
        rows = []
        for m in months:
            row: dict[str, Any] = {"month": m}
            if m in lc_months:
                lc = win.cut(self._array("land_cover", tile, m, "land_cover"))
                conf = win.cut(self._array("land_cover", tile, m, "confidence")).astype(np.float64)
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
            ndvi = win.cut(self._array("spectral_indices", tile, m, "ndvi")).astype(np.float64)
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

    def _environment(
        self, prop: Property, months: list[str], win: _Window, timeline: list[dict[str, Any]]
    ) -> dict[str, Any]:
        grid = self.view.grid(prop.tile)
        xs, ys = grid.x, grid.y
        px_area = grid.pixel_area_m2
        first_water: np.ndarray | None = None
        first_valid: np.ndarray | None = None
        distances, new_water, flooded, at_property = [], [], [], []
        pr = int(np.clip((grid.y_max - prop.y) // grid.resolution, 0, grid.height - 1))
        pc = int(np.clip((prop.x - grid.x_min) // grid.resolution, 0, grid.width - 1))
        for m in months:
            ndwi = self._array("spectral_indices", prop.tile, m, "ndwi")
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
            if area >= self.flood_min_area_m2:
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
            "climate": self._climate(prop.tile, months),
        }

    def _climate(self, tile: str, months: list[str]) -> dict[str, Any]:
        recs = {r.partition: r for r in self.view.records("climate_series", tile) if r.partition in set(months)}
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

    def _neighbourhood(self, prop: Property, months: list[str], win: _Window) -> dict[str, Any]:
        from shapely.geometry import Point

        gis = self.view.months("gis_layers", prop.tile)
        start_gis = next((m for m in gis if m >= months[0]), None)
        end_gis = next((m for m in reversed(gis) if m <= months[-1]), None)
        out: dict[str, Any] = {}
        if start_gis is None or end_gis is None or start_gis > end_gis:
            out["gis"] = {"available": False, "reason": f"no gis_layers of {prop.tile} in {months[0]}..{months[-1]}"}
        else:
            circle = Point(prop.x, prop.y).buffer(self.radius_m, quad_segs=64)
            counts = {}
            for label, m in (("start", start_gis), ("end", end_gis)):
                layers = self.view.layers(prop.tile, m, ["buildings", "roads"])
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
                "removed": quantity(
                    int((~b0["osm_id"].isin(set(b1["osm_id"]))).sum()), "buildings", period=f"{m0}..{m1}"
                ),
                "new_by_start_date": dict(sorted(by_date.items())),
            }
            out["roads"] = {
                "start": quantity(km0, "km", period=m0),
                "end": quantity(km1, "km", period=m1),
                "change": quantity(km1 - km0, "km", period=f"{m0}..{m1}"),
            }
        out["land_cover_transitions"] = self._transitions(prop.tile, months, win)
        return out

    def _transitions(self, tile: str, months: list[str], win: _Window) -> dict[str, Any]:
        held = [m for m in months if m in set(self.view.months("land_cover", tile))]
        if len(held) < 2:
            return {"available": False, "reason": "fewer than two months of land_cover in the period"}
        a = win.cut(self._array("land_cover", tile, held[0], "land_cover"))
        b = win.cut(self._array("land_cover", tile, held[-1], "land_cover"))
        ok = win.mask & (a != NO_LABEL) & (b != NO_LABEL)
        px_area = self.view.grid(tile).pixel_area_m2
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
            "changed_share": quantity(
                changed / (max(int(ok.sum()), 1) * px_area), "1", period=f"{held[0]}..{held[-1]}"
            ),
        }

    def _projection(self, timeline: list[dict[str, Any]], end: str) -> dict[str, Any]:
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
            "horizon_months": self.horizon_months,
            "interval": f"{100 * (1 - FORECAST_ALPHA):.0f} %",
            "fitted_to": f"{timeline[0]['month']}..{end}",
        }
        import statsmodels.tsa.statespace.sarimax  # noqa: F401 - loads scipy's OpenBLAS before it is limited

        try:
            fit = forecast_series(series, self.horizon_months, step="MS", alpha=FORECAST_ALPHA)
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

    def _sources(self, tile: str, months: list[str]) -> dict[str, str]:
        out = {}
        for asset in ("spectral_indices", "land_cover", "gis_layers", "climate_series"):
            held = [m for m in self.view.months(asset, tile) if months[0] <= m <= months[-1]]
            if held:
                first, last = self.view.record(asset, tile, held[0]), self.view.record(asset, tile, held[-1])
                out[f"{asset} ({len(held)} months)"] = (
                    describe(first) if first.id == last.id else f"{describe(first)} … {describe(last)}"
                )
        return out

    # -- the report ----------------------------------------------------------------------------
    def _section(
        self,
        i: int,
        a: dict[str, Any],
        figures: dict[str, bytes],
        captions: dict[str, str],
        figure_data: dict[str, Any],
    ) -> dict[str, Any]:
        p = a["property"]
        tl = a["timeline"]
        first, last = tl[0], tl[-1]
        q: dict[str, Any] = {}
        if "built_up_share" in last:
            q["built-up share"] = last["built_up_share"]
            q["green space share"] = last["green_space_share"]
            q["water share"] = last["water_share"]
        if "built_up_share" in first and "built_up_share" in last and first["built_up_share"]["value"] is not None:
            q["built-up share change"] = quantity(
                (last["built_up_share"]["value"] or 0.0) - first["built_up_share"]["value"],
                "1",
                period=a["period"],
            )
        q["mean NDVI"] = last["ndvi_mean"]
        env = a.get("environmental", {})
        if env:
            q["NDVI trend"] = env["vegetation_trend"]["slope"]
            if env["flood_exposure"]["min_distance_to_water"]:
                q["least distance to open water"] = env["flood_exposure"]["min_distance_to_water"]
            q["distance to open water now"] = env["flood_exposure"]["distance_to_water"][-1]
            clim = env["climate"]
            if clim.get("available"):
                q["mean temperature"] = clim["temperature_mean"]
                q["precipitation"] = clim["precipitation_total"]
        nb = a.get("neighborhood", {})
        if "buildings" in nb:
            q["buildings in radius"] = nb["buildings"]["end"]
            q["new buildings"] = nb["buildings"]["new"]
            q["road length in radius"] = nb["roads"]["end"]
        proj = a["projections"]
        if proj["available"]:
            nxt = proj["forecast"][-1]
            q[f"projected NDVI ({self.horizon_months} months)"] = nxt["ndvi"]
        bullets = []
        if env:
            bullets.append(f"Flood exposure: {env['flood_exposure']['statement']}.")
        if "buildings" in nb and nb["buildings"]["new_by_start_date"]:
            dates = ", ".join(f"{n} built {d}" for d, n in nb["buildings"]["new_by_start_date"].items())
            bullets.append(f"New buildings in the radius: {dates}.")
        tr = nb.get("land_cover_transitions", {})
        for t in tr.get("transitions", [])[:4]:
            bullets.append(f"{t['from']} -> {t['to']}: {t['area_m2'] / 10_000:.2f} ha ({tr['period']}).")
        if not proj["available"]:
            bullets.append(f"No projection: {proj['reason']}")
        if a.get("note"):
            bullets.append(a["note"])
        names = [f"map_{i}", f"timeline_{i}"] + ([f"forecast_{i}"] if proj["available"] else [])
        self._figures(i, a, figures, captions, figure_data)
        return {
            "title": f"{i}. {p['label']} ({a['address']})",
            "text": (
                f"Within {self.radius_m:g} m of the property (tile {p['tile']}, {p['x']:.0f} E {p['y']:.0f} N "
                f"{p['crs']}; {p['lat']:.5f}, {p['lon']:.5f}), {a['period']}. Green space = "
                f"{' + '.join(self.green_classes)}; shares are fractions of labelled pixels."
            ),
            "quantities": q,
            "table": {
                "columns": ["month", "built-up share", "green space share", "water share", "mean NDVI"],
                "rows": [
                    [
                        r["month"],
                        r.get("built_up_share", {}).get("value"),
                        r.get("green_space_share", {}).get("value"),
                        r.get("water_share", {}).get("value"),
                        r["ndvi_mean"]["value"],
                    ]
                    for r in tl
                ],
            },
            "bullets": bullets,
            "figures": names,
        }

    def _figures(
        self, i: int, a: dict[str, Any], figures: dict[str, bytes], captions: dict[str, str], data: dict[str, Any]
    ) -> None:
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Circle, Patch

        plt = pyplot()
        p = a["property"]
        tile, end = p["tile"], a["months"][-1]
        grid = self.view.grid(tile)
        r = self.radius_m
        # Map: land cover of the last month around the property, with buildings, roads and the radius.
        lc_months = [m for m in a["months"] if m in set(self.view.months("land_cover", tile))]
        fig, ax = plt.subplots(figsize=(6, 5.4))
        x0, y0, x1, y1 = grid.bounds
        pad = 1.4 * r
        ex0, ex1 = max(x0, p["x"] - pad), min(x1, p["x"] + pad)
        ey0, ey1 = max(y0, p["y"] - pad), min(y1, p["y"] + pad)
        kx = (x0, y0)
        if lc_months:
            lc = self._array("land_cover", tile, lc_months[-1], "land_cover")
            cmap = ListedColormap(["#ffffff"] + [c.color for c in LAND_COVER_CLASSES])
            ext = km_extent(grid)
            ax.imshow(
                lc, cmap=cmap, vmin=0, vmax=len(LAND_COVER_CLASSES), extent=ext, interpolation="nearest", alpha=0.8
            )
            ax.legend(
                handles=[Patch(color=c.color, label=c.name) for c in LAND_COVER_CLASSES],
                loc="lower left",
                fontsize=7,
                framealpha=0.8,
            )
        from shapely.geometry import box

        gis_month = next((m for m in reversed(self.view.months("gis_layers", tile)) if m <= end), None)
        n_b = n_r = 0
        if gis_month:
            layers = self.view.layers(tile, gis_month, ["buildings", "roads"])
            view_box = box(ex0, ey0, ex1, ey1)
            roads = layers["roads"][layers["roads"].intersects(view_box)]
            builds = layers["buildings"][layers["buildings"].intersects(view_box)]
            n_b, n_r = len(builds), len(roads)
            if n_r:
                roads.translate(-kx[0], -kx[1]).scale(1e-3, 1e-3, origin=(0, 0)).plot(ax=ax, color="#444", lw=0.8)
            if n_b:
                builds.translate(-kx[0], -kx[1]).scale(1e-3, 1e-3, origin=(0, 0)).plot(ax=ax, color="#111", lw=0)
        cx, cy = (p["x"] - kx[0]) / 1000, (p["y"] - kx[1]) / 1000
        ax.add_patch(Circle((cx, cy), r / 1000, fill=False, ec="#ff00aa", lw=2))
        ax.plot([cx], [cy], marker="*", color="#ff00aa", ms=14, mec="k")
        ax.set_xlim((ex0 - kx[0]) / 1000, (ex1 - kx[0]) / 1000)
        ax.set_ylim((ey0 - kx[1]) / 1000, (ey1 - kx[1]) / 1000)
        ax.set_xlabel("km east of the tile's west edge")
        ax.set_ylabel("km north of the tile's south edge")
        ax.set_title(f"{p['label']}: {r:g} m radius, {lc_months[-1] if lc_months else end}")
        figures[f"map_{i}"] = png(fig)
        captions[f"map_{i}"] = (
            f"Land cover ({lc_months[-1] if lc_months else 'n/a'}) around {p['label']} with the buildings and roads "
            f"of {gis_month}; the circle is the {r:g} m radius. Axes in km from the tile's south-west corner."
        )
        data[f"map_{i}"] = {
            "property_xy_m": [p["x"], p["y"]],
            "radius_m": r,
            "land_cover_month": lc_months[-1] if lc_months else None,
            "gis_month": gis_month,
            "buildings_drawn": n_b,
            "roads_drawn": n_r,
            "extent_m": [ex0, ey0, ex1, ey1],
        }
        # Timeline: shares and NDVI per month.
        tl = a["timeline"]
        months = [t["month"] for t in tl]
        series = {
            "built_up_share": [t.get("built_up_share", {}).get("value") for t in tl],
            "green_space_share": [t.get("green_space_share", {}).get("value") for t in tl],
            "water_share": [t.get("water_share", {}).get("value") for t in tl],
            "ndvi_mean": [t["ndvi_mean"]["value"] for t in tl],
            "ndvi_se": [t["ndvi_mean"]["uncertainty"] for t in tl],
        }
        fig, ax = plt.subplots(figsize=(8, 3.8))
        xs = np.arange(len(months))
        nan = lambda v: [np.nan if x is None else x for x in v]  # noqa: E731
        ax.plot(xs, nan(series["built_up_share"]), "-o", color=CLASS_BY_NAME["built-up"].color, label="built-up share")
        ax.plot(
            xs, nan(series["green_space_share"]), "-o", color=CLASS_BY_NAME["forest"].color, label="green space share"
        )
        ax.plot(xs, nan(series["water_share"]), "-o", color=CLASS_BY_NAME["water"].color, label="water share")
        ax.plot(xs, nan(series["ndvi_mean"]), "--", color="k", label="mean NDVI")
        ax.set_ylim(min(0.0, np.nanmin(nan(series["ndvi_mean"]) + [0.0]) - 0.05), 1.0)
        step = max(1, len(months) // 12)
        ax.set_xticks(xs[::step], months[::step], rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("share of the radius (0-1) / NDVI")
        ax.legend(fontsize=8, ncols=2)
        ax.grid(alpha=0.3)
        ax.set_title(f"{p['label']}: surroundings within {r:g} m")
        figures[f"timeline_{i}"] = png(fig)
        captions[f"timeline_{i}"] = (
            f"Monthly land-cover shares (fraction of labelled pixels) and mean NDVI within {r:g} m of {p['label']}, "
            f"{a['period']}. Green space = {' + '.join(self.green_classes)}."
        )
        data[f"timeline_{i}"] = {"months": months, **series}
        # Forecast with its intervals.
        proj = a["projections"]
        if proj["available"]:
            fig, ax = plt.subplots(figsize=(8, 3.6))
            fc = proj["forecast"]
            all_months = months + [f["month"] for f in fc]
            xo = np.arange(len(months))
            xf = np.arange(len(months), len(all_months))
            ax.plot(xo, nan(series["ndvi_mean"]), "-o", color="k", label="observed mean NDVI")
            ax.plot(xf, [f["ndvi"]["value"] for f in fc], "-o", color="#1f77b4", label="forecast")
            ax.fill_between(
                xf,
                [f["lower"] for f in fc],
                [f["upper"] for f in fc],
                color="#1f77b4",
                alpha=0.25,
                label=proj["interval"] + " interval",
            )
            step = max(1, len(all_months) // 12)
            ax.set_xticks(np.arange(len(all_months))[::step], all_months[::step], rotation=45, ha="right", fontsize=8)
            ax.set_ylabel("NDVI")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
            ax.set_title(f"{p['label']}: NDVI projection, ARIMA{tuple(proj['order'])}")
            figures[f"forecast_{i}"] = png(fig)
            captions[f"forecast_{i}"] = (
                f"Mean NDVI within {r:g} m of {p['label']}, observed {proj['fitted_to']} and forecast "
                f"{proj['horizon_months']} months ahead with {proj['interval']} prediction intervals."
            )
            data[f"forecast_{i}"] = {
                "observed_months": months,
                "observed": series["ndvi_mean"],
                "months": [f["month"] for f in fc],
                "mean": [f["ndvi"]["value"] for f in fc],
                "lower": [f["lower"] for f in fc],
                "upper": [f["upper"] for f in fc],
            }


# -- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """The pixels of a tile around a point: a row/column window and the in-radius mask inside it."""

    rows: slice
    cols: slice
    mask: np.ndarray
    covered: float
    """Fraction of the circle's pixels that lie on the tile."""

    @classmethod
    def around(cls, grid: TileGrid, x: float, y: float, radius_m: float) -> _Window:
        res = grid.resolution
        c0 = max(0, int(math.floor((x - radius_m - grid.x_min) / res)))
        c1 = min(grid.width, int(math.ceil((x + radius_m - grid.x_min) / res)) + 1)
        r0 = max(0, int(math.floor((grid.y_max - (y + radius_m)) / res)))
        r1 = min(grid.height, int(math.ceil((grid.y_max - (y - radius_m)) / res)) + 1)
        if c0 >= c1 or r0 >= r1:
            raise MissingDataError(
                f"the point ({x:.0f}, {y:.0f}) and its {radius_m:g} m radius lie outside tile {grid.tile_id}"
            )
        xs, ys = grid.x[c0:c1], grid.y[r0:r1]
        mask = (xs[None, :] - x) ** 2 + (ys[:, None] - y) ** 2 <= radius_m**2
        full = math.pi * radius_m**2 / (res * res)
        return cls(slice(r0, r1), slice(c0, c1), mask, min(1.0, float(mask.sum()) / full))

    def cut(self, a: np.ndarray) -> np.ndarray:
        return a[self.rows, self.cols]


def _month(value: Any, what: str) -> str:
    if isinstance(value, datetime | date):
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, str) and len(value) >= 7:
        try:
            month_range(value[:7])
        except ConfigError:
            pass
        else:
            return value[:7]
    raise ConfigError(f"{what}={value!r} is not a month; give YYYY-MM (e.g. '2023-06'), a date or a datetime")


def _share(lc: np.ndarray, conf: np.ndarray, labelled: np.ndarray, codes: list[int], month: str) -> dict[str, Any]:
    """Share (0-1) of the labelled pixels whose class is one of ``codes``, ± its expected commission error."""
    n = int(labelled.sum())
    if n == 0:
        return quantity(None, "1", period=month, note="no labelled pixel in the radius")
    sel = labelled & np.isin(lc, codes)
    err = float(np.clip(1.0 - conf[sel], 0.0, 1.0).sum()) / n
    return quantity(float(sel.sum()) / n, "1", period=month, uncertainty=err)


def _best_address(gazetteer: Any, text: str) -> Any:
    """The best match of ``text``, an address before a place it names (``Mill Road 1, Saint-Rémy`` is the house)."""
    import string

    matches = gazetteer.resolve(text) or gazetteer.resolve(string.capwords(text))
    addresses = [m for m in matches if m.entity.kind == "address"]
    if addresses:
        return max(addresses, key=lambda m: m.score)
    return gazetteer.geocode(text)


def _labels(gazetteer: Any) -> list[str]:
    f = gazetteer.features
    out = []
    for street, number, name in zip(f["street"], f["housenumber"], f["name"], strict=True):
        if isinstance(street, str) and isinstance(number, str):
            out.append(f"{street} {number}")
        if isinstance(name, str):
            out.append(name)
    return sorted(set(out))


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


def _brief(a: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable key numbers of one analysis (for tests, the server and the preview)."""
    tl = a["timeline"]
    out: dict[str, Any] = {
        "address": a["address"],
        "label": a["property"]["label"],
        "tile": a["property"]["tile"],
        "x": a["property"]["x"],
        "y": a["property"]["y"],
        "built_up_share": [t.get("built_up_share", {}).get("value") for t in tl],
        "months": [t["month"] for t in tl],
    }
    env = a.get("environmental")
    if env:
        out["flooded_months"] = env["flood_exposure"]["flooded_months"]
        out["ndvi_trend"] = env["vegetation_trend"]["slope"]
    nb = a.get("neighborhood", {})
    if "buildings" in nb:
        out["new_buildings_by_start_date"] = nb["buildings"]["new_by_start_date"]
    return out
