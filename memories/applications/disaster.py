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
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from memories.applications.awaitable import AwaitableReport
from memories.applications.common import dilate, erode, nanmedian, patch_count, pixel_ha, plain, polygonize, sieve, text
from memories.applications.disaster_figures import build_report
from memories.applications.report import Report
from memories.errors import ConfigError, MissingDataError
from memories.grid import TileGrid
from memories.memory.view import MemoryView

REPORT_KIND = "disaster"
Hazard = Literal["flood", "burn"]
HAZARDS: tuple[str, ...] = ("flood", "burn")
_INDEX = {"flood": "ndwi", "burn": "nbr"}


@dataclass(frozen=True)
class DisasterThresholds:
    """Thresholds of the disaster analysis (indices dimensionless, reflectance 0-1, areas ha)."""

    water_ndwi: float = 0.0
    """NDWI (McFeeters) above this in a monthly composite: open water."""
    rise_ndwi: float = 0.15
    """NDWI rise above the pixel's baseline median that marks water in part of the month's observations."""
    spread_nir: float = 0.05
    """NIR interquartile range of the composite (reflectance) above this, and ``spread_ratio`` times the
    baseline's, marks a month that mixed water and land observations."""
    spread_ratio: float = 5.0
    burn_dnbr: float = 0.27
    """NBR drop (dNBR) above this: burned (USGS moderate severity); the core of a burn footprint."""
    burn_dnbr_low: float = 0.1
    """NBR drop above this, connected to the core: the rest of the burn footprint (USGS low severity)."""
    baseline_months: int = 6
    """Months before the event that form the baseline (open water, index median)."""
    min_patch_px: int = 10
    """Footprint patches smaller than this (pixels) are noise."""
    min_event_ha: float = 1.0
    """An event month needs at least this much new footprint (ha)."""
    alert_ha: float = 5.0
    """Area under the hazard in the report's month above this (ha) raises the alert."""
    unobserved_ring_px: int = 3
    """Pixels without clear observation within this distance of the footprint count in its uncertainty."""
    harvest_ndvi_drop: float = 0.3
    """Partial evidence on a pixel whose NDVI median fell by more than this below the baseline's, without open
    water, is a harvest, not a hidden flood (0: off). Without it, fields cut in the flood month that touch the
    flood join it: 134 ha against a 19.7 ha flood in the test world (flood in August); with it 19.6 ha."""


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
    def analyze(self, tile: str, event_month: str | None = None, until: str | None = None) -> dict[str, Any]:
        """The event's extent before, during and after, and what it touched.

        Args:
            tile: MGRS tile id.
            event_month: ``YYYY-MM`` of the event; None: the month with the largest new
                footprint above ``min_event_ha`` (others are listed under ``candidates``).
            until: last month (``YYYY-MM``) read; None: every month the memory holds.

        Returns:
            A dict: ``hazard``, ``tile``, ``crs``, ``event_month`` (None: no event found),
            ``candidates`` (month, area_ha of every month above the minimum), ``baseline_months``,
            ``before`` / ``during`` (areas in ha with ``*_uncertainty_ha``, clear coverage) /
            ``after`` (per month), ``buildings`` (count, by_type, list), ``roads`` (km, by_highway),
            and, not JSON-able, ``footprint`` (shapely geometry in the tile CRS, or None) and
            ``masks`` (name -> bool array on the tile grid: baseline, footprint, visible, last).

        Raises:
            MissingDataError: the memory holds no ``spectral_indices`` for the tile (up to ``until``),
                or not for ``event_month``.
        """
        th = self.thresholds
        months = self.view.months("spectral_indices", tile, until=until)
        if not months:
            self.view.record("spectral_indices", tile)  # raises with the fix
            raise MissingDataError(
                f"the memory holds no spectral_indices for {tile} up to {until}; materialize spectral_indices "
                "for those months or ask for a later month"
            )
        grid = self.view.grid(tile)
        px_ha = pixel_ha(grid)
        stack = self.view.stack("spectral_indices", tile, _INDEX[self.hazard], months)
        ndwi = stack if self.hazard == "flood" else self.view.stack("spectral_indices", tile, "ndwi", months)

        candidates: list[dict[str, Any]] = []
        for i in range(1, len(months)):
            core = self._core(stack, ndwi, i)
            if core.sum() * px_ha >= th.min_event_ha:
                candidates.append({"month": months[i], "area_ha": float(core.sum() * px_ha)})
        result: dict[str, Any] = {
            "hazard": self.hazard,
            "index": _INDEX[self.hazard],
            "tile": tile,
            "crs": grid.crs,
            "months": months,
            "thresholds": asdict(th),
            "candidates": candidates,
        }
        if event_month is None:
            if not candidates:
                return {**result, **self._no_event(tile, months, stack, grid)}
            event_month = str(max(candidates, key=lambda c: float(c["area_ha"]))["month"])
        elif event_month not in months:
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
        result["event_month"] = event_month
        result["others"] = [c for c in candidates if c["month"] != event_month]
        base_idx = list(range(max(0, i - th.baseline_months), i))
        result["baseline_months"] = [months[j] for j in base_idx]

        baseline = self._baseline_mask(stack, ndwi, base_idx)
        visible = self._core(stack, ndwi, i)
        footprint = self._grow(tile, months, stack, ndwi, i, visible, baseline)
        coverage = self._coverage(tile, event_month, stack[i], footprint)
        ring = dilate(footprint, th.unobserved_ring_px) & ~baseline
        unobserved = ring & coverage.pop("_unclear")
        edge = footprint & ~erode(footprint)
        area = float(footprint.sum() * px_ha)
        unc = float((0.5 * edge.sum() + unobserved.sum()) * px_ha)
        result["before"] = {
            "baseline_water_ha" if self.hazard == "flood" else "baseline_burned_ha": float(baseline.sum() * px_ha),
            "baseline_index_median": nanmedian(np.nanmedian(stack[base_idx], axis=0)[footprint]),
        }
        result["during"] = {
            "month": event_month,
            "area_ha": area,
            "area_uncertainty_ha": unc,
            "visible_ha": float((visible & footprint).sum() * px_ha),
            "partly_visible_ha": float((footprint & ~visible).sum() * px_ha),
            "edge_ha": float(edge.sum() * px_ha),
            "unobserved_ha": float(unobserved.sum() * px_ha),
            "patches": patch_count(footprint),
            **coverage,
        }
        after = []
        last = footprint
        base_median = np.nanmedian(stack[base_idx], axis=0)
        for j in range(i + 1, len(months)):
            still = footprint & self._still(stack[j], ndwi[j], base_median)
            cov = self._coverage(tile, months[j], stack[j], footprint)
            unseen = footprint & cov.pop("_unclear")
            still_ha = float(still.sum() * px_ha)
            after.append(
                {
                    "month": months[j],
                    "still_ha": still_ha,
                    "still_uncertainty_ha": float((unseen & ~still).sum() * px_ha),
                    "recovered_fraction": 1.0 - still_ha / area if area else None,
                    **cov,
                }
            )
            last = still
        result["after"] = after
        shapes = polygonize(footprint, grid)
        result.update(self._affected(tile, event_month, shapes))
        result["terrain"] = self._terrain(tile, event_month, footprint, shapes, grid)
        result["footprint"] = shapes
        result["masks"] = {"baseline": baseline, "footprint": footprint, "visible": visible & footprint, "last": last}
        return result

    async def aanalyze(self, tile: str, event_month: str | None = None, until: str | None = None) -> dict[str, Any]:
        """:meth:`analyze`, awaitable (run in a worker thread)."""
        return await asyncio.to_thread(self.analyze, tile, event_month, until)

    def report(self, tile: str, month: str) -> Report:
        """The disaster report of ``tile`` for ``month``: the largest event up to that month, and its recovery.

        Raises:
            MissingDataError: the memory holds no spectral indices of ``month`` for ``tile``.
        """
        self.view.record("spectral_indices", tile, month)  # the month itself must be in memory
        a = self.analyze(tile, until=month)
        grid = self.view.grid(tile)
        return build_report(self, a, grid, tile, month)

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
                ndvi = self.view.stack("spectral_indices", tile, "ndvi", [months[i], *(months[j] for j in base_idx)])
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
                ds = self.view.raster("surface_reflectance", tile, m)
            except MissingDataError:
                return None
            if "spread" not in ds or "nir" not in [str(b) for b in ds["band"].values]:
                return None
            out.append(np.asarray(ds["spread"].sel(band="nir").values, dtype=np.float32))
        return np.stack(out)

    def _coverage(self, tile: str, month: str, index: np.ndarray, footprint: np.ndarray) -> dict[str, Any]:
        """Clear-sky coverage of one month: tile share with a clear observation, clear share over the footprint."""
        try:
            ds = self.view.raster("surface_reflectance", tile, month)
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
        return {
            "clear_coverage": float(1.0 - unclear.mean()),
            "footprint_clear_coverage": float(1.0 - unclear[footprint].mean()) if footprint.any() else None,
            "footprint_clear_obs_share": clear_obs,
            "footprint_mean_clear_obs": mean_clear,
            "coverage_source": source,
            "_unclear": unclear,
        }

    def _no_event(self, tile: str, months: list[str], stack: np.ndarray, grid: TileGrid) -> dict[str, Any]:
        th = self.thresholds
        base_idx = list(range(max(0, len(months) - 1 - th.baseline_months), len(months) - 1)) or [0]
        ndwi = stack if self.hazard == "flood" else self.view.stack("spectral_indices", tile, "ndwi", months)
        baseline = self._baseline_mask(stack, ndwi, base_idx)
        empty = np.zeros(grid.shape, dtype=bool)
        px_ha = pixel_ha(grid)
        key = "baseline_water_ha" if self.hazard == "flood" else "baseline_burned_ha"
        return {
            "event_month": None,
            "others": [],
            "baseline_months": [months[j] for j in base_idx],
            "before": {key: float(baseline.sum() * px_ha), "baseline_index_median": None},
            "during": None,
            "after": [],
            "buildings": {"count": 0, "by_type": {}, "list": []},
            "roads": {"km": 0.0, "by_highway": {}, "segments": 0},
            "footprint": None,
            "masks": {"baseline": baseline, "footprint": empty, "visible": empty, "last": empty},
        }

    def _terrain(self, tile: str, month: str, mask: np.ndarray, footprint: Any, grid: TileGrid) -> dict[str, Any]:
        """HAND of the footprint against the tile and the affected buildings' flow paths (``terrain_exposure``);
        ``{"missing": why}`` when the memory holds no terrain of the tile."""
        from memories.applications.terrain_exposure import flood_terrain, read_terrain

        terrain, source = read_terrain(self.view, tile)
        if terrain is None:
            return {"missing": source}
        hit = None
        if footprint is not None and not footprint.is_empty:
            import shapely

            try:
                b = self.view.layers(tile, month, ["buildings"])["buildings"]
                hit = b[shapely.intersects(footprint, b.geometry.values)] if len(b) else None
            except MissingDataError:
                hit = None
        return {**flood_terrain(terrain, mask, hit, grid), "source": source}

    def _affected(self, tile: str, month: str, footprint: Any) -> dict[str, Any]:
        """Buildings intersecting the footprint and the road length inside it, from the month's GIS layers."""
        out: dict[str, Any] = {
            "buildings": {"count": 0, "by_type": {}, "list": []},
            "roads": {"km": 0.0, "by_highway": {}, "segments": 0},
        }
        if footprint is None or footprint.is_empty:
            return out
        try:
            layers = self.view.layers(tile, month, ["buildings", "roads"])
        except MissingDataError as e:
            out["gis_missing"] = str(e)
            return out
        import shapely

        shapely.prepare(footprint)
        b = layers["buildings"]
        if len(b):
            hit = b[shapely.intersects(footprint, b.geometry.values)]
            kinds = hit["building"].fillna("yes").astype(str) if "building" in hit else None
            rows = []
            for k, (_, r) in enumerate(hit.iterrows()):
                street, number = r.get("addr:street"), r.get("addr:housenumber")
                rows.append(
                    {
                        "osm_id": plain(r.get("osm_id")),
                        "building": str(kinds.iloc[k]) if kinds is not None else "yes",
                        "name": text(r.get("name")),
                        "address": f"{street} {number}".strip() if text(street) else None,
                    }
                )
            out["buildings"] = {
                "count": len(hit),
                "by_type": {str(k): int(v) for k, v in kinds.value_counts().items()} if kinds is not None else {},
                "list": rows,
            }
        r = layers["roads"]
        if len(r):
            inside = shapely.intersection(r.geometry.values, footprint)
            length = shapely.length(inside)
            hit = length > 0
            kinds = r["highway"].fillna("road").astype(str).to_numpy() if "highway" in r else np.full(len(r), "road")
            by: dict[str, float] = {}
            for k, km in zip(kinds[hit], length[hit] / 1000.0, strict=True):
                by[str(k)] = by.get(str(k), 0.0) + float(km)
            out["roads"] = {"km": float(length.sum() / 1000.0), "by_highway": by, "segments": int(hit.sum())}
        return out
