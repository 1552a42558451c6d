"""The STAC catalog resource: which API, which collection, and the embedded world.

With the ``embedded`` profile and no URL, the resource makes sure the sample world
exists and serves it with a real STAC API server on 127.0.0.1 for the duration of
the run; the pipeline then reaches it through pystac-client like any other API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from memories.aoi import aoi_tile, aoi_tiles
from memories.config import Settings, config
from memories.earth.catalogs import CatalogProfile, get_profile
from memories.earth.stac import SceneSearch, open_client, search_scenes
from memories.grid import TileGrid


class SampleWorldResource(ConfigurableResource):  # type: ignore[misc]
    """The embedded sample world: generated once from its seed, then reused."""

    root: str = Field(default=config.sample.root, description="local folder of the sample world")
    seed: int = config.sample.seed
    n_tiles: int = config.sample.n_tiles
    start_month: str = config.sample.start_month
    n_months: int = config.sample.n_months
    size_px: int = config.sample.size_px
    revisit_days: int = config.sample.revisit_days

    def spec(self) -> Any:
        """The world's SampleWorldSpec."""
        from memories.sample import SampleWorldSpec

        return SampleWorldSpec.from_settings(self.settings().sample)

    def ensure(self) -> Any:
        """The SampleWorld, generated first if missing or of another spec (one process at a time)."""
        from memories.sample import SampleWorld

        return SampleWorld.ensure(self.spec(), Path(self.root))

    def settings(self) -> Settings:
        """The library settings with this world's size, so AOI helpers agree with it."""
        s = config.model_copy(deep=True)
        s.sample = s.sample.model_copy(update={k: getattr(self, k) for k in type(s.sample).model_fields})
        return s


class StacCatalogResource(ConfigurableResource):  # type: ignore[misc]
    """A STAC API and the asset-key mapping of its items."""

    profile: str = Field(default=config.catalog.profile, description="embedded | earth-search | planetary-computer")
    url: str | None = Field(default=config.catalog.url, description="API root; empty = the profile's own")
    collection: str = config.catalog.collection
    max_cloud_cover: float = Field(default=config.catalog.max_cloud_cover, description="scene filter, percent")
    sample_world: SampleWorldResource

    _server: Any = PrivateAttr(default=None)
    _url: str | None = PrivateAttr(default=None)

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[StacCatalogResource]:
        """Serve the embedded world on 127.0.0.1 for the run when no URL is configured."""
        if self.profile != "embedded" or self.url:
            self._url = self.url or get_profile(self.profile).url
            yield self
            return
        from memories.sample import StacServer

        world = self.sample_world.ensure()
        with StacServer(world) as server:
            self._url = server.url
            if context.log:
                context.log.info(f"embedded STAC API serving the sample world at {server.url}")
            yield self

    # -- what assets and sensors call ---------------------------------------
    @property
    def api_url(self) -> str:
        """The URL the run searches."""
        return self._url or self.url or get_profile(self.profile).url or ""

    def catalog_profile(self) -> CatalogProfile:
        """The profile with this resource's URL and collection."""
        return get_profile(self.profile, url=self.api_url, collection=self.collection)

    def settings(self) -> Settings:
        """Library settings matching this resource (catalog profile, sample world)."""
        s = self.sample_world.settings()
        s.catalog = s.catalog.model_copy(update={"profile": self.profile, "collection": self.collection})
        return s

    def tiles(self) -> list[TileGrid]:
        """The tiles of the area of interest."""
        return aoi_tiles(self.settings())

    def tile(self, tile_id: str) -> TileGrid:
        """One tile's declared grid."""
        return aoi_tile(self.settings(), tile_id)

    def search(self, grid: TileGrid, month: str) -> SceneSearch:
        """The scenes of one tile and month."""
        return search_scenes(
            open_client(self.api_url), self.catalog_profile(), grid, month, max_cloud_cover=self.max_cloud_cover
        )


class GisSourceResource(ConfigurableResource):  # type: ignore[misc]
    """The vector file the GIS layers come from (GeoPackage, GeoJSON, Shapefile, OSM PBF).

    Empty path: the sample world's GeoPackage.
    """

    path: str | None = Field(default=None, description="vector file with layers buildings, roads, landuse, water")
    sample_world: SampleWorldResource

    def source_path(self) -> str:
        """The file to read."""
        if self.path:
            return self.path
        return str(self.sample_world.ensure().gis_path)
