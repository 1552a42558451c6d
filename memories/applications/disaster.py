"""Disaster analysis of a tile: a flood (or a burn) before, during and after, from the memory only.

``DisasterAnalyzer(view).analyze("33TVM")`` finds the month of the largest event
the memory shows (new open water for a flood, a drop of NBR for a burn), maps its
footprint, counts the buildings and road length it touches in the GIS layers of
that month, and follows it month by month afterwards (area still under water,
recovered fraction). ``report(tile, month)`` turns that into a report of kind
``disaster`` (HTML + PNG + JSON).

Inputs, all read through the :class:`~memories.memory.view.MemoryView`
(so ``as_of`` works): ``spectral_indices`` (NDWI, NBR), ``surface_reflectance``
(clear/total observation counts and the NIR interquartile range of the monthly
composite), ``gis_layers`` (buildings, roads).

Why the flood needs more than "NDWI > 0 in the event month": the monthly
composite is the *median* of the month's clear observations. A flood that lasts
three weeks of a month, under clouds on its cloudy days and followed by clear
days after the water went, leaves the median dry in every pixel where fewer
flooded than dry observations were clear. On the demo world's 33TVM (July 2024:
four scenes during the flood with 22-40 % cloud, two clear scenes after it) only
3,466 of the 7,854 flooded pixels have NDWI > 0 in the median; the others show
the flood only in the spread of their observations: the composite's NIR
interquartile range there is 0.09-0.44 reflectance against 0.002-0.009 in the
months before (water has NIR ~0.015, land 0.2-0.45). So the footprint is grown,
hysteresis-style, from the pixels that are water in the median ("visible") into
connected pixels whose NDWI rose clearly above their baseline or whose NIR spread
jumped ("partly visible": water in only part of the month's clear observations).
A spread jump alone is not water (harvests raise it too), which is why it only
counts next to visible water. Pixels with no clear observation at all next to
the footprint are counted in the uncertainty, as are half of its edge pixels.

A burn is found with the same machinery on NBR: a drop from the previous month
above ``burn_dnbr`` (0.27, the USGS "moderate severity" dNBR) that is also a drop
against the same month a year earlier when the memory holds it (autumn senescence
and harvests drop NBR every year; a fire does not recur seasonally). A clear-cut
drops NBR just like a fire: the index cannot tell them apart.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import numpy as np

from memories.applications.awaitable import AwaitableReport
from memories.applications.common import dilate, erode, nanmedian, patch_count, pixel_ha, plain, polygonize, sieve, text
from memories.applications.disaster_analysis import (
    HAZARD_INDEX,
    HAZARDS,
    REPORT_KIND,
    AffectedBuilding,
    AffectedBuildings,
    AffectedRoads,
    AfterMonth,
    Before,
    Coverage,
    DisasterAnalysis,
    DisasterMasks,
    DisasterThresholds,
    During,
    EventCandidate,
    EventLayers,
    Hazard,
    MapBases,
)
from memories.applications.disaster_report import build_report
from memories.applications.maps import basemap
from memories.applications.report import Report
from memories.applications.terrain_exposure import flood_terrain, read_terrain
from memories.errors import ConfigError, MissingDataError
from memories.grid import TileGrid
from memories.memory.view import MemoryView, describe
from memories.products import GIS_LAYERS, SPECTRAL_INDICES, SURFACE_REFLECTANCE

__all__ = [
    "HAZARDS",
    "REPORT_KIND",
    "DisasterAnalysis",
    "DisasterAnalyzer",
    "DisasterThresholds",
    "Hazard",
]


class DisasterAnalyzer(AwaitableReport):
    """Flood (or burn) extent before, during and after an event, with the buildings and roads it touched.

    Args:
        view: the memory to read (default: the configured memory, now).
        hazard: ``flood`` (new open water, NDWI) or ``burn`` (NBR drop).
        thresholds: a full set of thresholds; single ones can be given as keywords
            (``alert_ha=10``), overriding it.

    Raises:
        ConfigError: an unknown hazard or threshold name.
    """

    kind = REPORT_KIND

    def __init__(
        self,
        view: MemoryView | None = None,
        *,
        hazard: str = "flood",
        thresholds: DisasterThresholds | None = None,
        **overrides: Any,
    ) -> None:
        if hazard not in HAZARDS:
            raise ConfigError(f"hazard {hazard!r} is not supported; use one of {list(HAZARDS)}")
        known = set(DisasterThresholds.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown disaster threshold(s) {unknown}; the thresholds are {sorted(known)}")
        self.view = view or MemoryView()
        self.hazard: str = hazard
        self.thresholds = replace(thresholds or DisasterThresholds(), **overrides)

    # -- the analysis --------------------------------------------------------------------------
    def analyze(
        self, tile: str, event_month: str | None = None, until: str | None = None, *, maps: bool = False
    ) -> DisasterAnalysis:
        """The event's extent before, during and after, and what it touched.

        Args:
            tile: MGRS tile id.
            event_month: ``YYYY-MM`` of the event; None: the month with the largest new
                footprint above ``min_event_ha`` (the others are in ``others``).
            until: last month (``YYYY-MM``) read; None: every month the memory holds.
            maps: also read the true-colour bases of the report's maps (``bases``).

        Returns:
            The :class:`~memories.applications.disaster_analysis.DisasterAnalysis` (``event_month``
            None: no event found; then ``during`` is None and nothing is affected).

        Raises:
            MissingDataError: the memory holds no ``spectral_indices`` for the tile (up to ``until``),
                or not for ``event_month``.
        """
        months = self._months(tile, until)
        grid = self.view.grid(tile)
        stack = self.view.stack(SPECTRAL_INDICES, tile, HAZARD_INDEX[self.hazard], months)
        ndwi = stack if self.hazard == "flood" else self.view.stack(SPECTRAL_INDICES, tile, "ndwi", months)
        candidates = self._candidates(stack, ndwi, months, pixel_ha(grid))
        if event_month is None:
            if not candidates:
                return self._no_event(tile, months, stack, grid, candidates, maps)
            event_month = max(candidates, key=lambda c: c.area_ha).month
        i = self._event_index(tile, months, event_month, until)
        base_idx = list(range(max(0, i - self.thresholds.baseline_months), i))
        masks, during = self._during(tile, months, stack, ndwi, i, base_idx, grid)
        after, last = self._after(tile, months, stack, ndwi, i, base_idx, masks.footprint, during.area_ha, grid)
        masks = replace(masks, last=last)
        shapes = polygonize(masks.footprint, grid)
        layers, gis_missing = self._event_layers(tile, event_month, shapes)
        analysis = DisasterAnalysis(
            hazard=self.hazard,
            index=HAZARD_INDEX[self.hazard],
            tile=tile,
            crs=grid.crs,
            grid=grid,
            months=months,
            thresholds=self.thresholds,
            candidates=candidates,
            before=Before(
                float(masks.baseline.sum() * pixel_ha(grid)),
                nanmedian(np.nanmedian(stack[base_idx], axis=0)[masks.footprint]),
            ),
            masks=masks,
            sources=self._sources(tile, months, [event_month, *(x.month for x in after)]),
            as_of=self.view.as_of.isoformat() if self.view.as_of else None,
            event_month=event_month,
            others=[c for c in candidates if c.month != event_month],
            baseline_months=[months[j] for j in base_idx],
            during=during,
            after=after,
            **affected(layers, shapes),
            gis_missing=gis_missing,
            terrain=self._terrain(tile, masks.footprint, layers, grid),
            footprint=shapes,
            event_layers=layers,
        )
        return replace(analysis, bases=self._bases(analysis)) if maps else analysis

    async def aanalyze(self, tile: str, event_month: str | None = None, until: str | None = None) -> DisasterAnalysis:
        """:meth:`analyze`, awaitable (run in a worker thread)."""
        return await asyncio.to_thread(self.analyze, tile, event_month, until)

    def report(self, tile: str, month: str) -> Report:
        """The disaster report of ``tile`` for ``month``: the largest event up to that month, and its recovery.

        Raises:
            MissingDataError: the memory holds no spectral indices of ``month`` for ``tile``.
        """
        self.view.record(SPECTRAL_INDICES, tile, month)  # the month itself must be in memory
        return build_report(self.analyze(tile, until=month, maps=True), month)

    # -- the steps of the analysis ----------------------------------------------------------------
    def _months(self, tile: str, until: str | None) -> list[str]:
        months = self.view.months(SPECTRAL_INDICES, tile, until=until)
        if not months:
            self.view.record(SPECTRAL_INDICES, tile)  # raises with the fix
            raise MissingDataError(
                f"the memory holds no spectral_indices for {tile} up to {until}; materialize spectral_indices "
                "for those months or ask for a later month"
            )
        return months

    def _candidates(self, stack: np.ndarray, ndwi: np.ndarray, months: list[str], px_ha: float) -> list[EventCandidate]:
        """Every month (but the first) whose new footprint in the median reaches ``min_event_ha``."""
        out = []
        for i in range(1, len(months)):
            core = self._core(stack, ndwi, i)
            if core.sum() * px_ha >= self.thresholds.min_event_ha:
                out.append(EventCandidate(months[i], float(core.sum() * px_ha)))
        return out

    def _event_index(self, tile: str, months: list[str], event_month: str, until: str | None) -> int:
        if event_month not in months:
            raise MissingDataError(
                f"the memory holds no spectral_indices for {event_month}|{tile} (it holds {months[0]}..{months[-1]}"
                f"{f' up to {until}' if until else ''}); materialize that month or pass another event_month"
            )
        i = months.index(event_month)
        if i == 0:
            raise MissingDataError(
                f"{event_month} is the first month the memory holds for {tile}: no month before it to form a "
                "baseline; materialize earlier months of spectral_indices"
            )
        return i

    def _during(
        self,
        tile: str,
        months: list[str],
        stack: np.ndarray,
        ndwi: np.ndarray,
        i: int,
        base_idx: list[int],
        grid: TileGrid,
    ) -> tuple[DisasterMasks, During]:
        """The masks and the footprint's numbers in the event month ``months[i]``."""
        px_ha = pixel_ha(grid)
        baseline = self._baseline_mask(stack, ndwi, base_idx)
        visible = self._core(stack, ndwi, i)
        footprint = self._grow(tile, months, stack, ndwi, i, visible, baseline)
        coverage, unclear = self._coverage(tile, months[i], stack[i], footprint)
        ring = dilate(footprint, self.thresholds.unobserved_ring_px) & ~baseline
        unobserved = ring & unclear
        edge = footprint & ~erode(footprint)
        during = During(
            month=months[i],
            area_ha=float(footprint.sum() * px_ha),
            area_uncertainty_ha=float((0.5 * edge.sum() + unobserved.sum()) * px_ha),
            visible_ha=float((visible & footprint).sum() * px_ha),
            partly_visible_ha=float((footprint & ~visible).sum() * px_ha),
            edge_ha=float(edge.sum() * px_ha),
            unobserved_ha=float(unobserved.sum() * px_ha),
            patches=patch_count(footprint),
            coverage=coverage,
        )
        return DisasterMasks(baseline, footprint, visible & footprint, footprint), during

    def _after(
        self,
        tile: str,
        months: list[str],
        stack: np.ndarray,
        ndwi: np.ndarray,
        i: int,
        base_idx: list[int],
        footprint: np.ndarray,
        area: float,
        grid: TileGrid,
    ) -> tuple[list[AfterMonth], np.ndarray]:
        """Each month after the event: the part of the footprint still hit; and the last month's mask."""
        px_ha = pixel_ha(grid)
        after, last = [], footprint
        base_median = np.nanmedian(stack[base_idx], axis=0)
        for j in range(i + 1, len(months)):
            still = footprint & self._still(stack[j], ndwi[j], base_median)
            cov, unclear = self._coverage(tile, months[j], stack[j], footprint)
            unseen = footprint & unclear
            still_ha = float(still.sum() * px_ha)
            after.append(
                AfterMonth(
                    month=months[j],
                    still_ha=still_ha,
                    still_uncertainty_ha=float((unseen & ~still).sum() * px_ha),
                    recovered_fraction=1.0 - still_ha / area if area else None,
                    coverage=cov,
                )
            )
            last = still
        return after, last

    def _sources(self, tile: str, months: list[str], event_months: list[str]) -> dict[str, str]:
        """Input -> record: the spectral indices read, and the composites and GIS layers of the event months."""
        sources = {f"spectral_indices {m}": describe(self.view.record(SPECTRAL_INDICES, tile, m)) for m in months}
        for m in event_months:
            for asset in (SURFACE_REFLECTANCE, GIS_LAYERS):
                try:
                    sources[f"{asset} {m}"] = describe(self.view.record(asset, tile, m))
                except MissingDataError:
                    pass
        return sources

    def _bases(self, a: DisasterAnalysis) -> MapBases:
        """The true-colour bases of the report's maps: before, during and after the event (or the last month)."""
        if a.event_month is None:
            return MapBases(month=basemap(self.view, a.tile, a.months[-1], a.grid))
        last = a.after[-1].month if a.after else a.event_month
        return MapBases(
            before=basemap(self.view, a.tile, a.baseline_months[-1], a.grid),
            during=basemap(self.view, a.tile, a.event_month, a.grid),
            after=basemap(self.view, a.tile, last, a.grid),
        )

    # -- detection --------------------------------------------------------------------------------
    def _is_water(self, ndwi: np.ndarray) -> np.ndarray:
        return np.asarray(ndwi > self.thresholds.water_ndwi)

    def _baseline_mask(self, stack: np.ndarray, ndwi: np.ndarray, base_idx: list[int]) -> np.ndarray:
        """Open water (flood) or burned ground (burn) in most clear months of the baseline."""
        if self.hazard == "flood":
            b = ndwi[base_idx]
            return np.asarray((self._is_water(b).sum(0) * 2 > np.isfinite(b).sum(0)) & np.isfinite(b).any(0))
        # Already burnt (NBR < 0 on land) before the event.
        b = stack[base_idx]
        return np.asarray(
            ((b < 0).sum(0) * 2 > np.isfinite(b).sum(0)) & ~self._is_water(np.nanmedian(ndwi[base_idx], 0))
        )

    def _core(self, stack: np.ndarray, ndwi: np.ndarray, i: int) -> np.ndarray:
        """Pixels certainly hit in month ``i``: new water in the median, or a sharp NBR drop."""
        th = self.thresholds
        base_idx = list(range(max(0, i - th.baseline_months), i))
        if self.hazard == "flood":
            core = self._is_water(ndwi[i]) & ~self._baseline_mask(stack, ndwi, base_idx)
        else:
            core = self._nbr_drop(stack, ndwi, i, th.burn_dnbr)
        return sieve(core, th.min_patch_px)

    def _nbr_drop(self, nbr: np.ndarray, ndwi: np.ndarray, i: int, threshold: float) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            drop = (nbr[i - 1] - nbr[i]) > threshold
            if i >= 12:  # a seasonal drop (senescence, harvest) recurs; a burn does not
                drop &= (nbr[i - 12] - nbr[i]) > threshold
            return np.asarray(drop & ~self._is_water(ndwi[i]) & ~self._is_water(ndwi[i - 1]))

    def _grow(
        self,
        tile: str,
        months: list[str],
        stack: np.ndarray,
        ndwi: np.ndarray,
        i: int,
        core: np.ndarray,
        baseline: np.ndarray,
    ) -> np.ndarray:
        """The footprint: ``core`` grown into connected pixels that show the hazard in part of the month."""
        th = self.thresholds
        if not core.any():
            return core
        base_idx = list(range(max(0, i - th.baseline_months), i))
        if self.hazard == "flood":
            with np.errstate(invalid="ignore"):
                partial = (ndwi[i] - np.nanmedian(ndwi[base_idx], axis=0)) > th.rise_ndwi
            nir = self._nir_spread(tile, [months[i], *(months[j] for j in base_idx)])
            if nir is not None:
                now, before = nir[0], np.nanmedian(nir[1:], axis=0)
                with np.errstate(invalid="ignore"):
                    partial |= (now > th.spread_nir) & (now > th.spread_ratio * before)
            if th.harvest_ndvi_drop > 0:
                # A field cut during the month: its median is bare soil (NDVI fell, no water), not a hidden flood,
                # whose dry observations keep the land's NDVI.
                ndvi = self.view.stack(SPECTRAL_INDICES, tile, "ndvi", [months[i], *(months[j] for j in base_idx)])
                with np.errstate(invalid="ignore"):
                    cut = ((np.nanmedian(ndvi[1:], axis=0) - ndvi[0]) > th.harvest_ndvi_drop) & ~self._is_water(ndwi[i])
                partial &= ~cut
        else:
            partial = self._nbr_drop(stack, ndwi, i, th.burn_dnbr_low)
        candidate = (core | partial) & ~baseline
        from scipy import ndimage

        labels, n = ndimage.label(candidate)
        keep = np.zeros(n + 1, dtype=bool)
        keep[np.unique(labels[core & candidate])] = True
        keep[0] = False
        return sieve(keep[labels], th.min_patch_px)

    def _still(self, index: np.ndarray, ndwi: np.ndarray, base_median: np.ndarray) -> np.ndarray:
        """Pixels still showing the hazard in a later month (water, or NBR still well below the baseline)."""
        th = self.thresholds
        with np.errstate(invalid="ignore"):
            if self.hazard == "flood":
                return np.asarray(self._is_water(ndwi) | ((ndwi - base_median) > th.rise_ndwi))
            return np.asarray((base_median - index) > th.burn_dnbr_low)

    def _nir_spread(self, tile: str, months: list[str]) -> np.ndarray | None:
        """(T, H, W) NIR interquartile range of the composites, None when the memory lacks one of them."""
        out = []
        for m in months:
            try:
                ds = self.view.raster(SURFACE_REFLECTANCE, tile, m)
            except MissingDataError:
                return None
            if "spread" not in ds or "nir" not in [str(b) for b in ds["band"].values]:
                return None
            out.append(np.asarray(ds["spread"].sel(band="nir").values, dtype=np.float32))
        return np.stack(out)

    def _coverage(self, tile: str, month: str, index: np.ndarray, footprint: np.ndarray) -> tuple[Coverage, np.ndarray]:
        """Clear-sky coverage of one month (tile share with a clear observation, clear share over the
        footprint), and the mask of pixels without a clear observation."""
        try:
            ds = self.view.raster(SURFACE_REFLECTANCE, tile, month)
            clear = np.asarray(ds["clear_count"].values)
            obs = np.asarray(ds["obs_count"].values)
            unclear = (clear == 0) | ~np.isfinite(index)
            source = "surface_reflectance clear_count/obs_count"
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = clear[footprint] / np.maximum(obs[footprint], 1)
            clear_obs = float(ratio.mean()) if footprint.any() else None
            mean_clear = float(clear[footprint].mean()) if footprint.any() else None
        except MissingDataError:
            unclear = ~np.isfinite(index)
            source = "finite index pixels (no surface_reflectance record)"
            clear_obs = mean_clear = None
        coverage = Coverage(
            clear_coverage=float(1.0 - unclear.mean()),
            footprint_clear_coverage=float(1.0 - unclear[footprint].mean()) if footprint.any() else None,
            footprint_clear_obs_share=clear_obs,
            footprint_mean_clear_obs=mean_clear,
            coverage_source=source,
        )
        return coverage, unclear

    def _no_event(
        self,
        tile: str,
        months: list[str],
        stack: np.ndarray,
        grid: TileGrid,
        candidates: list[EventCandidate],
        maps: bool,
    ) -> DisasterAnalysis:
        th = self.thresholds
        base_idx = list(range(max(0, len(months) - 1 - th.baseline_months), len(months) - 1)) or [0]
        ndwi = stack if self.hazard == "flood" else self.view.stack(SPECTRAL_INDICES, tile, "ndwi", months)
        baseline = self._baseline_mask(stack, ndwi, base_idx)
        empty = np.zeros(grid.shape, dtype=bool)
        analysis = DisasterAnalysis(
            hazard=self.hazard,
            index=HAZARD_INDEX[self.hazard],
            tile=tile,
            crs=grid.crs,
            grid=grid,
            months=months,
            thresholds=th,
            candidates=candidates,
            before=Before(float(baseline.sum() * pixel_ha(grid)), None),
            masks=DisasterMasks(baseline, empty, empty, empty),
            sources=self._sources(tile, months, []),
            as_of=self.view.as_of.isoformat() if self.view.as_of else None,
            baseline_months=[months[j] for j in base_idx],
        )
        return replace(analysis, bases=self._bases(analysis)) if maps else analysis

    def _event_layers(self, tile: str, month: str, footprint: Any) -> tuple[EventLayers | None, str | None]:
        """The event month's buildings and roads against the footprint; (None, why) when the memory holds no
        layers of that month; (None, None) without footprint."""
        if footprint is None or footprint.is_empty:
            return None, None
        try:
            layers = self.view.layers(tile, month, ["buildings", "roads"])
        except MissingDataError as e:
            return None, str(e)
        import geopandas as gpd
        import shapely

        b, r = layers["buildings"], layers["roads"]
        hit = np.asarray(shapely.intersects(footprint, b.geometry.values), dtype=bool) if len(b) else np.zeros(0, bool)
        inside = gpd.GeoSeries(shapely.intersection(r.geometry.values, footprint), crs=r.crs) if len(r) else r.geometry
        inside = inside[~inside.is_empty] if len(inside) else inside
        return EventLayers(b, hit, r, inside), None

    def _terrain(self, tile: str, mask: np.ndarray, layers: EventLayers | None, grid: TileGrid) -> dict[str, Any]:
        """HAND of the footprint against the tile and the affected buildings' flow paths (``terrain_exposure``);
        ``{"missing": why}`` when the memory holds no terrain of the tile."""
        terrain, source = read_terrain(self.view, tile)
        if terrain is None:
            return {"missing": source}
        hit = None
        if layers is not None and len(layers.buildings):
            hit = layers.buildings[layers.hit]
        return {**flood_terrain(terrain, mask, hit, grid), "source": source}


def affected(layers: EventLayers | None, footprint: Any) -> dict[str, Any]:
    """``buildings`` (:class:`AffectedBuildings`) intersecting the footprint and ``roads``
    (:class:`AffectedRoads`, the length inside it) from the event month's layers."""
    if layers is None:
        return {"buildings": AffectedBuildings(), "roads": AffectedRoads()}
    import shapely

    out: dict[str, Any] = {"buildings": AffectedBuildings(), "roads": AffectedRoads()}
    b = layers.buildings
    if len(b):
        hit = b[layers.hit]
        kinds = hit["building"].fillna("yes").astype(str) if "building" in hit else None
        rows = []
        for k, (_, r) in enumerate(hit.iterrows()):
            street, number = r.get("addr:street"), r.get("addr:housenumber")
            rows.append(
                AffectedBuilding(
                    osm_id=plain(r.get("osm_id")),
                    building=str(kinds.iloc[k]) if kinds is not None else "yes",
                    name=text(r.get("name")),
                    address=f"{street} {number}".strip() if text(street) else None,
                )
            )
        by_type = {str(k): int(v) for k, v in kinds.value_counts().items()} if kinds is not None else {}
        out["buildings"] = AffectedBuildings(len(hit), by_type, rows)
    r = layers.roads
    if len(r):
        length = shapely.length(shapely.intersection(r.geometry.values, footprint))
        on = length > 0
        kinds_r = r["highway"].fillna("road").astype(str).to_numpy() if "highway" in r else np.full(len(r), "road")
        by: dict[str, float] = {}
        for k, km in zip(kinds_r[on], length[on] / 1000.0, strict=True):
            by[str(k)] = by.get(str(k), 0.0) + float(km)
        out["roads"] = AffectedRoads(float(length.sum() / 1000.0), by, int(on.sum()))
    return out
