"""Real-estate analysis: a property's surroundings over time, read from the memory.

``await RealEstateAgent().analyze_property(address=..., time_range=(start, end))``
(``analyze_property_sync`` outside an event loop) resolves the address against the
places the memory knows (the ``buildings`` and ``places`` GIS layers of every tile,
as recorded for the end of the time range) and answers a :class:`PropertyAnalysis`
for a circle of ``radius_m`` around the property:

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

import asyncio
import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np

from memories.applications.awaitable import AwaitableReport
from memories.applications.common import RadiusWindow, as_month
from memories.applications.property_analysis import Property, PropertyAnalysis
from memories.applications.real_estate_report import REPORT_KIND, RealEstateReportConfig, build_report
from memories.applications.real_estate_surroundings import (
    environment,
    ndvi_projection,
    neighbourhood,
    property_map,
    record_sources,
    report_webmap,
    surroundings_timeline,
)
from memories.applications.report import Report
from memories.classes import CLASS_BY_NAME
from memories.errors import ConfigError, MissingDataError, ProcessingError
from memories.grid import TileGrid
from memories.memory.view import MemoryView
from memories.products import GIS_LAYERS, SPECTRAL_INDICES

__all__ = [
    "DEFAULT_RADIUS_M",
    "FORECAST_HORIZON_MONTHS",
    "GREEN_SPACE_CLASSES",
    "Property",
    "PropertyAnalysis",
    "RealEstateAgent",
]

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


class RealEstateAgent(AwaitableReport):
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

    kind = REPORT_KIND

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

    async def analyze_property(
        self,
        address: str,
        time_range: tuple[Any, Any] | None = None,
        include_environmental: bool = True,
        include_neighborhood: bool = True,
    ) -> PropertyAnalysis:
        """The property's surroundings over ``time_range`` (the seed's call, awaitable).

        :meth:`analyze_property_sync` run in a worker thread; the arguments, answer and errors are its.
        """
        return await asyncio.to_thread(
            self.analyze_property_sync, address, time_range, include_environmental, include_neighborhood
        )

    def analyze_property_sync(
        self,
        address: str,
        time_range: tuple[Any, Any] | None = None,
        include_environmental: bool = True,
        include_neighborhood: bool = True,
    ) -> PropertyAnalysis:
        """The property's surroundings over ``time_range``: timeline, environment, neighbourhood, projections.

        Args:
            address: ``Linden Street 4``, ``4 Linden Street``, ``Linden Street 4, Brezovica`` (a town
                disambiguates an address several tiles carry) or a place name.
            time_range: (start, end) months, as ``YYYY-MM`` strings, dates or datetimes, inclusive;
                None: every month the memory holds.
            include_environmental: add flood exposure, vegetation trend and climate.
            include_neighborhood: add buildings, roads and land-cover transitions.

        Returns:
            A :class:`PropertyAnalysis` (typed: ``.surroundings``, ``.environment``, ``.neighbourhood``,
            ``.projection``; the seed's ``.timeline``, ``.environmental_factors``, ``.neighborhood_changes``,
            ``.future_projections`` are their JSON views); its ``to_dict()`` is JSON-able, every
            number a :func:`~memories.applications.report.quantity` (value, unit, period, uncertainty)
            or a plain count/table with its unit in the key name.

        Raises:
            MissingDataError: unknown address, or the memory holds no month of the range.
            ConfigError: a malformed time range.
        """
        end_hint = as_month(time_range[1], "time_range end") if time_range else None
        # The property is resolved against the places known at the end of the range.
        prop = self.locate(address, self._gis_month_until(end_hint))
        months = self._months(prop.tile, time_range)
        start, end = months[0], months[-1]
        grid = self.view.grid(prop.tile)
        win = RadiusWindow.around(grid, prop.x, prop.y, self.radius_m)
        timeline = surroundings_timeline(self, prop.tile, months, win, self.green_classes)
        note = None
        if prop.candidates > 1:
            note = (
                f"{prop.candidates} features carry {prop.label!r}; the one nearest a place named in the address "
                "(or the first) was chosen: add the town to the address to choose"
            )
        return PropertyAnalysis(
            address=address,
            property=prop,
            radius_m=self.radius_m,
            period=f"{start}..{end}",
            months=months,
            as_of=self.view.as_of.isoformat() if self.view.as_of else None,
            definitions=self.definitions(win),
            surroundings=timeline,
            environment=(
                environment(self, prop, months, win, timeline, self.flood_min_area_m2)
                if include_environmental
                else None
            ),
            neighbourhood=neighbourhood(self, prop, months, win, self.radius_m) if include_neighborhood else None,
            projection=ndvi_projection(timeline, end, self.horizon_months, FORECAST_ALPHA),
            sources=record_sources(self, prop.tile, months),
            note=note,
        )

    def definitions(self, win: RadiusWindow | None = None) -> dict[str, str]:
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
        held = self.view.months(SPECTRAL_INDICES, tile, until=month)
        if not held:
            self.view.record(SPECTRAL_INDICES, tile, month)  # raises with the fix
        grid = self.view.grid(tile)
        addresses = self.featured_properties(tile, self._gis_month_until(month, tile) or month)
        analyses: list[PropertyAnalysis] = []
        failures = []
        for address in addresses:
            try:
                analyses.append(self.analyze_property_sync(address, (held[0], month)))
            except MissingDataError as e:
                failures.append(f"{address}: {e}")
        maps = [property_map(self, a.property, a.months, self.radius_m) for a in analyses]
        config = RealEstateReportConfig(
            radius_m=self.radius_m,
            green_classes=self.green_classes,
            horizon_months=self.horizon_months,
            definitions=self.definitions(),
            as_of=self.view.as_of.isoformat() if self.view.as_of else None,
        )
        webmap = report_webmap(self, tile, month, grid, [a.property for a in analyses], self.radius_m)
        return build_report(tile, month, (held[0], month), grid.crs, analyses, maps, failures, config, webmap)

    # -- the memory, read once per agent -------------------------------------------------------
    def array(self, asset: str, tile: str, month: str, variable: str) -> np.ndarray:
        """A variable of a raster record as an array, read once per agent (all the record's variables are kept).

        Raises:
            ProcessingError: the record has no such variable.
        """
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
        tiles = [tile] if tile else self.view.tiles(GIS_LAYERS)
        held = sorted({m for t in tiles for m in self.view.months(GIS_LAYERS, t, until=month)})
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
        for tile in self.view.tiles(GIS_LAYERS):
            held = self.view.months(GIS_LAYERS, tile, until=month)
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
        held = self.view.months(SPECTRAL_INDICES, tile)
        if time_range is None:
            months = held
        else:
            if len(time_range) != 2:
                raise ConfigError(f"time_range={time_range!r}: give (start, end), e.g. ('2023-01', '2024-06')")
            start, end = as_month(time_range[0], "time_range start"), as_month(time_range[1], "time_range end")
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


# -- helpers ---------------------------------------------------------------------------------
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
