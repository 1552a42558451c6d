"""``SatelliteImagery``: scene search and monthly composites from a notebook, as the assets make them.

The same functions the Dagster assets call (``search_scenes``, ``load_scenes``,
``monthly_composite``, ``compute_indices``), behind one object::

    from memories.earth import SatelliteImagery

    with SatelliteImagery() as sat:                 # the embedded sample world, served on 127.0.0.1
        found = sat.search("33TVM", "2023-05")      # SceneSearch: items + rejected ids with reasons
        ds = sat.composite("33TVM", "2023-05")      # lazy xarray Dataset: reflectance, spread, counts
        ds.compute()

The seed's time series under a point, awaited (``historical_imagery`` is its sync twin)::

    imagery = await sat.get_historical_imagery(location=(46.03, 14.52), time_range=("2023-05-01", "2023-09-01"),
                                               interval="monthly", max_cloud_cover=80, bands=["B2", "B3", "B4", "B8"])
    ndvi = sat.calculate_index(imagery=imagery, index="NDVI", aggregate="mean")   # one mean per composite

With a real catalog (``SatelliteImagery("earth-search")``) the tiles must be
declared in ``aoi.tiles`` of the configuration; no server is started.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import xarray as xr

from memories.config import Settings
from memories.earth.imagery import composite_stats, load_scenes, monthly_composite
from memories.earth.indices import compute_indices
from memories.earth.quality import MaskKind
from memories.earth.stac import SceneSearch, datetime_range, open_client, search_period, search_scenes
from memories.earth.stac_profiles import COMMON_BANDS, CatalogProfile, get_profile
from memories.earth.timeseries import Period, calculate_index, composite_series, periods, tile_at, window
from memories.errors import ConfigError, ProcessingError
from memories.grid import TileGrid
from memories.months import month_range


class SatelliteImagery:
    """Search scenes and build cloud-free monthly composites of the area of interest's tiles.

    Args:
        profile: catalog profile name (``embedded``, ``earth-search``, ``planetary-computer``, ...);
            None: the configured one.
        url: API root overriding the profile's; None: the profile's (embedded: a local server started on use).
        collection: collection overriding the profile's.
        max_cloud_cover: scene filter on ``eo:cloud_cover``, percent; None: the configured one.
        mask_kind: ``"scl"``, ``"qa_pixel"`` or ``"spectral"``; None: the profile's, else SCL.
        chunk_px: spatial chunk of the lazy arrays, pixels.
        settings: library settings (default: ``memories.config.config``).
        cache: a ``memories.cache.Cache`` of STAC API answers (``stac.open_client``), or None.
    """

    SEARCH_CONCURRENCY = 4
    """STAC searches ``get_historical_imagery`` keeps in flight at once (one per period)."""

    def __init__(
        self,
        profile: str | None = None,
        *,
        url: str | None = None,
        collection: str | None = None,
        max_cloud_cover: float | None = None,
        mask_kind: MaskKind | None = None,
        chunk_px: int = 1024,
        settings: Settings | None = None,
        cache: Any = None,
    ) -> None:
        from memories.config import config

        base: Settings = settings if settings is not None else config
        name = profile or base.catalog.profile
        self.settings: Settings = base.model_copy(update={"catalog": base.catalog.model_copy(update={"profile": name})})
        self._profile_name = name
        self._url = url or base.catalog.url
        self._collection = collection
        self.max_cloud_cover = base.catalog.max_cloud_cover if max_cloud_cover is None else max_cloud_cover
        self.mask_kind = mask_kind
        self.chunk_px = chunk_px
        self._server: Any = None
        self._stop_server: Any = None
        self._client: Any = None
        self._cache = cache

    # -- lifecycle ------------------------------------------------------------
    def __enter__(self) -> SatelliteImagery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the embedded STAC server, if one was started (also done when the object is collected or the
        interpreter exits, so the seed's examples, which never close, leave no server behind)."""
        if self._server is not None:
            self._stop_server()
            self._server = None
        self._client = None

    # -- what a notebook calls ------------------------------------------------
    @property
    def profile(self) -> CatalogProfile:
        """The catalog profile in use, with the URL actually searched."""
        return get_profile(self._profile_name, url=self.api_url, collection=self._collection)

    @property
    def api_url(self) -> str:
        """The STAC API root searched (the embedded server's is known once it runs)."""
        if self._server is not None:
            return str(self._server.url)
        return self._url or get_profile(self._profile_name).url or ""

    def tiles(self) -> list[TileGrid]:
        """The tiles of the area of interest, each with its declared grid."""
        from memories.aoi import aoi_tiles

        return aoi_tiles(self.settings)

    def tile(self, tile: str | TileGrid) -> TileGrid:
        """A tile's declared grid (a TileGrid passes through)."""
        if isinstance(tile, TileGrid):
            return tile
        from memories.aoi import aoi_tile

        return aoi_tile(self.settings, tile)

    def search(
        self, tile: str | TileGrid | None = None, month: str | None = None, *, bbox: Sequence[float] | None = None
    ) -> SceneSearch:
        """The scenes of a tile (or of a WGS84 bbox) in one month.

        Args:
            tile: MGRS tile id or TileGrid: only that tile's scenes, after the cloud filter (as ``stac_items``).
            month: ``YYYY-MM``.
            bbox: (west, south, east, north) degrees instead of a tile: every scene touching it, cloud filter
                applied, any tile.
        """
        if month is None or (tile is None) == (bbox is None):
            raise ProcessingError(
                "search needs a month and exactly one of tile= or bbox=, e.g. search('33TVM', '2023-05')"
            )
        if tile is not None:
            return search_scenes(
                self._open(), self.profile, self.tile(tile), month, max_cloud_cover=self.max_cloud_cover
            )
        start, end = month_range(month)
        found = self._open().search(
            collections=[self.profile.collection], bbox=list(bbox or ()), datetime=datetime_range(start, end)
        )
        kept, rejected = [], {}
        for it in found.items():
            cloud = it.properties.get("eo:cloud_cover")
            if cloud is not None and float(cloud) > self.max_cloud_cover:
                rejected[it.id] = f"cloud cover {float(cloud):.1f}% > {self.max_cloud_cover:.1f}%"
            else:
                kept.append(it)
        kept.sort(key=lambda it: (it.datetime, it.id))
        return SceneSearch(kept, rejected)

    def composite(
        self, tile: str | TileGrid, month: str, *, bands: Sequence[str] = COMMON_BANDS, indices: bool = False
    ) -> xr.Dataset:
        """The cloud-free monthly composite of a tile, lazily (call ``.compute()``).

        Variables: ``reflectance`` (band, y, x; reflectance 0-1), ``spread`` (its interquartile range),
        ``clear_count`` and ``obs_count`` (y, x); with ``indices=True`` also NDVI, NDWI, EVI, NBR
        (dimensionless). The dataset's attrs carry the tile grid and scene ids.
        """
        grid = self.tile(tile)
        found = self.search(grid, month)
        if not found.items:
            raise ProcessingError(
                f"no scenes for tile {grid.tile_id} in {month} under {self.max_cloud_cover}% cloud; "
                f"rejected: {dict(list(found.rejected.items())[:5])}. Raise max_cloud_cover or pick another month"
            )
        scenes = load_scenes(
            found.items, self.profile, grid, tuple(bands), chunk_px=self.chunk_px, mask_kind=self.mask_kind
        )
        ds = monthly_composite(scenes)
        if indices:
            ds = ds.merge(compute_indices(ds["reflectance"]))
        ds.attrs.update(tile_id=grid.tile_id, crs=grid.crs, month=month, scenes=[it.id for it in found.items])
        return ds

    @staticmethod
    def stats(composite: xr.Dataset) -> dict[str, Any]:
        """Valid-pixel count, valid fraction, cloud fraction and median spread of a composite."""
        return composite_stats(composite)

    # -- the seed's time series ------------------------------------------------
    def historical_imagery(
        self,
        location: Sequence[float],
        time_range: Sequence[Any],
        interval: str = "monthly",
        max_cloud_cover: float | None = None,
        bands: Sequence[str] = ("B2", "B3", "B4", "B8"),
        apply_atmospheric_correction: bool = True,
        *,
        radius_km: float | None = None,
        compute: bool = True,
    ) -> xr.Dataset:
        """Cloud-masked composites of the tile under a point, one per month or year (the sync twin).

        Args:
            location: (latitude, longitude), degrees.
            time_range: (start, end), half-open: ISO dates, months or datetimes (``timeseries.periods``).
            interval: ``monthly`` or ``yearly``: the period each composite covers.
            max_cloud_cover: scene-level ``eo:cloud_cover`` limit, percent; None: this object's.
            bands: Sentinel-2 band numbers (``B2``, ``B02``) or common names (``blue``), in output order.
            apply_atmospheric_correction: correct top-of-atmosphere (L1C) scenes by dark-object
                subtraction; surface reflectance (L2A) is never corrected again, and the attrs say so.
            radius_km: only a square of ``2 radius_km`` around the point; None: the whole tile.
            compute: load the values now (False: a lazy Dask-backed Dataset).

        Returns:
            ``timeseries.composite_series``'s Dataset (time, band, y, x), reflectance 0-1, with attrs
            ``location``, ``interval``, ``other_tiles`` (tiles that hold the point too).

        Raises:
            ConfigError: a bad location, range, interval or band name.
            ProcessingError: no period has a scene.
        """
        grid, others, steps = self._series_plan(location, time_range, interval, radius_km)
        cloud = self.max_cloud_cover if max_cloud_cover is None else float(max_cloud_cover)
        found = [(p, self._search_in(grid, p, cloud)) for p in steps]
        return self._series(found, grid, others, location, interval, bands, apply_atmospheric_correction, compute)

    async def get_historical_imagery(
        self,
        location: Sequence[float],
        time_range: Sequence[Any],
        interval: str = "monthly",
        max_cloud_cover: float | None = None,
        bands: Sequence[str] = ("B2", "B3", "B4", "B8"),
        apply_atmospheric_correction: bool = True,
        *,
        radius_km: float | None = None,
        compute: bool = True,
    ) -> xr.Dataset:
        """``historical_imagery`` as a coroutine: the periods' STAC searches run concurrently (at most
        ``SEARCH_CONCURRENCY`` at once), loading and compositing in a worker thread."""
        from memories.concurrency import agather

        grid, others, steps = self._series_plan(location, time_range, interval, radius_km)
        cloud = self.max_cloud_cover if max_cloud_cover is None else float(max_cloud_cover)
        await asyncio.to_thread(self._open)
        results = await agather(
            *(asyncio.to_thread(self._search_in, grid, p, cloud) for p in steps), limit=self.SEARCH_CONCURRENCY
        )
        found = list(zip(steps, results))
        return await asyncio.to_thread(
            self._series, found, grid, others, location, interval, bands, apply_atmospheric_correction, compute
        )

    @staticmethod
    def calculate_index(
        imagery: xr.Dataset | xr.DataArray, index: str = "NDVI", aggregate: str | None = None, over: str = "space"
    ) -> xr.DataArray:
        """One spectral index of a series: per pixel, or ``aggregate`` (``mean``...) over space or time
        (``timeseries.calculate_index``)."""
        return calculate_index(imagery, index=index, aggregate=aggregate, over=over)

    def _series_plan(
        self, location: Sequence[float], time_range: Sequence[Any], interval: str, radius_km: float | None
    ) -> tuple[TileGrid, list[str], list[Period]]:
        lat, lon = _lat_lon(location)
        steps = periods(time_range, interval)
        grid, others = tile_at(self.tiles(), lat, lon)
        if radius_km is not None:
            grid = window(grid, lat, lon, radius_km)
        return grid, others, steps

    def _search_in(self, grid: TileGrid, period: Period, max_cloud_cover: float) -> SceneSearch:
        end = period.end - timedelta(microseconds=1)
        return search_period(
            self._open(), self.profile, grid, period.start, end, max_cloud_cover=max_cloud_cover, label=period.label
        )

    def _series(
        self,
        found: list[tuple[Period, SceneSearch]],
        grid: TileGrid,
        others: list[str],
        location: Sequence[float],
        interval: str,
        bands: Sequence[str],
        correction: bool,
        compute: bool,
    ) -> xr.Dataset:
        ds = composite_series(
            found,
            self.profile,
            grid,
            list(bands),
            apply_atmospheric_correction=correction,
            mask_kind=self.mask_kind,
            chunk_px=self.chunk_px,
        )
        ds.attrs.update(location=list(_lat_lon(location)), interval=interval, other_tiles=others)
        return ds.compute() if compute else ds

    # -- helpers --------------------------------------------------------------
    def _open(self) -> Any:
        if self._client is None:
            if self._profile_name == "embedded" and not self._url:
                self._start_embedded()
            self._client = open_client(self.api_url, cache=self._cache)
        return self._client

    def _start_embedded(self) -> None:
        from memories.earth.sources import sample_world
        from memories.sample import StacServer

        server = StacServer(sample_world(self.settings))
        server.__enter__()
        self._server = server
        self._stop_server = weakref.finalize(self, server.stop)


def _lat_lon(location: Sequence[float]) -> tuple[float, float]:
    """(lat, lon) of a location given as a pair of degrees."""
    try:
        lat, lon = (float(v) for v in location)
    except (TypeError, ValueError):
        raise ConfigError(f"location={location!r} must be (latitude, longitude) in degrees") from None
    return lat, lon
