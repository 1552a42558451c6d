"""``SatelliteImagery``: scene search and monthly composites from a notebook, as the assets make them.

The same functions the Dagster assets call (``search_scenes``, ``load_scenes``,
``monthly_composite``, ``compute_indices``), behind one object::

    from memories.earth import SatelliteImagery

    with SatelliteImagery() as sat:                 # the embedded sample world, served on 127.0.0.1
        found = sat.search("33TVM", "2023-05")      # SceneSearch: items + rejected ids with reasons
        ds = sat.composite("33TVM", "2023-05")      # lazy xarray Dataset: reflectance, spread, counts
        ds.compute()

With a real catalog (``SatelliteImagery("earth-search")``) the tiles must be
declared in ``aoi.tiles`` of the configuration; no server is started.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import xarray as xr

from memories.config import Settings
from memories.earth.catalogs import COMMON_BANDS, CatalogProfile, get_profile
from memories.earth.imagery import composite_stats, load_scenes, monthly_composite
from memories.earth.indices import compute_indices
from memories.earth.quality import MaskKind
from memories.earth.stac import SceneSearch, datetime_range, open_client, search_scenes
from memories.errors import ProcessingError
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
    """

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
        self._client: Any = None

    # -- lifecycle ------------------------------------------------------------
    def __enter__(self) -> SatelliteImagery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the embedded STAC server, if one was started."""
        if self._server is not None:
            self._server.__exit__(None, None, None)
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

    # -- helpers --------------------------------------------------------------
    def _open(self) -> Any:
        if self._client is None:
            if self._profile_name == "embedded" and not self._url:
                self._start_embedded()
            self._client = open_client(self.api_url)
        return self._client

    def _start_embedded(self) -> None:
        from memories.sample import SampleWorld, SampleWorldSpec, StacServer

        world = SampleWorld.ensure(SampleWorldSpec.from_settings(self.settings.sample), self.settings.sample.root)
        server = StacServer(world)
        server.__enter__()
        self._server = server
