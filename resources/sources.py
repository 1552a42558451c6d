"""The STAC catalog resource: which API, which collection, and the embedded world.

With the ``embedded`` profile and no URL, the resource makes sure the sample world
exists and serves it with a real STAC API server on 127.0.0.1 for the duration of
the run; the pipeline then reaches it through pystac-client like any other API.

The resource is the one place that knows whether the catalog is the sample world's
(:attr:`StacCatalogResource.serves_sample_world`): assets ask it for the world's truth
(:meth:`StacCatalogResource.served_world`, None for a real catalog) instead of testing
the profile themselves.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from memories.aoi import aoi_tile, aoi_tiles
from memories.config import Settings, config
from memories.earth.stac import SceneSearch, open_client, search_scenes
from memories.earth.stac_profiles import COMMON_BANDS, CatalogProfile, get_profile, profile_names
from memories.grid import TileGrid


class SampleWorldResource(ConfigurableResource):  # type: ignore[misc]
    """The embedded sample world: generated once from its seed, then reused."""

    root: str = Field(default_factory=lambda: config.sample.root, description="local folder of the sample world")
    seed: int = Field(default_factory=lambda: config.sample.seed)
    n_tiles: int = Field(default_factory=lambda: config.sample.n_tiles)
    start_month: str = Field(default_factory=lambda: config.sample.start_month)
    n_months: int = Field(default_factory=lambda: config.sample.n_months)
    size_px: int = Field(default_factory=lambda: config.sample.size_px)
    revisit_days: int = Field(default_factory=lambda: config.sample.revisit_days)

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

    profile: str = Field(
        default_factory=lambda: config.catalog.profile,
        description=f"one of {profile_names()}; earth-search or planetary-computer with collection "
        "landsat-c2-l2 read Landsat",
    )
    url: str | None = Field(
        default_factory=lambda: config.catalog.url, description="API root; empty = the profile's own"
    )
    collection: str = Field(default_factory=lambda: config.catalog.collection)
    max_cloud_cover: float = Field(
        default_factory=lambda: config.catalog.max_cloud_cover, description="scene filter, percent"
    )
    request_timeout_s: float = Field(default=60.0, gt=0, description="read timeout of one HTTP request, seconds")
    retries: int = Field(default=5, ge=0, description="retries of one request or download (429/5xx, timeouts)")
    backoff_s: float = Field(default=0.5, ge=0, description="first retry wait, seconds; doubles per retry")
    page_size: int = Field(default=100, ge=1, description="items per STAC search page")
    cache_dir: str = Field(default="", description="local cache folder; empty: the storage root's cache folder")
    stac_cache_ttl_s: float = Field(default=3600.0, gt=0, description="how long STAC answers are reused, seconds")
    asset_cache_ttl_s: float = Field(default=30 * 86400.0, gt=0, description="how long downloads are kept, seconds")
    cache_max_bytes: int = Field(default=20 * 1024**3, gt=0, description="size cap of the download cache, bytes")
    download_workers: int = Field(default=4, ge=1, description="downloads running at once")
    asset_s3_endpoint_url: str | None = Field(
        default=None, description="endpoint of the S3-compatible server holding s3:// asset hrefs; empty = AWS"
    )
    asset_s3_anon: bool = Field(default=False, description="read s3:// assets without credentials (public buckets)")
    asset_s3_requester_pays: bool = Field(
        default=False, description="s3:// assets in requester-pays buckets (Landsat C2 on AWS); credentials from AWS_*"
    )
    sample_world: SampleWorldResource

    _server: Any = PrivateAttr(default=None)
    _url: str | None = PrivateAttr(default=None)

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[StacCatalogResource]:
        """Serve the embedded world on 127.0.0.1 for the run when no URL is configured.

        The server (a ``rustac serve`` process) is started once per process and world files and
        serves every later run of the process (the demo's, a bench's); it stops when the process exits.
        """
        if not self.serves_locally:
            self._url = self.url or get_profile(self.profile).url
            yield self
            return
        server = _embedded_server(self.sample_world.ensure())
        self._url = server.url
        if context.log:
            context.log.info(f"embedded STAC API serving the sample world at {server.url}")
        yield self

    # -- what assets and sensors call ---------------------------------------
    @property
    def serves_sample_world(self) -> bool:
        """The catalog is the sample world's (the ``embedded`` profile, served here or at ``url``): its
        scenes are all there from the start, and its ground truth is known."""
        return self.profile == "embedded"

    @property
    def serves_locally(self) -> bool:
        """This resource serves the sample world itself on 127.0.0.1 (``embedded`` profile, no URL)."""
        return self.serves_sample_world and not self.url

    def served_world(self) -> Any:
        """The sample world behind the catalog (``memories.sample.SampleWorld``: its events, their true
        extents, its analytic terrain), to score products against; None for a real catalog."""
        return self.sample_world.ensure() if self.serves_sample_world else None

    def default_dem_source(self) -> Literal["sample", "stac"]:
        """Where the DEM comes from when a run names none: ``sample`` (the world's analytic DEM) when this
        resource serves the sample world itself, else ``stac``."""
        return "sample" if self.serves_locally else "stac"

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

    def cache(self, kind: str, root: Any = None) -> Any:
        """The ``memories.cache.Cache`` of ``kind`` (``stac`` answers or ``assets``), under ``cache_dir``
        or, when that is empty, under the storage root's cache folder (``StorageRoot.cache_dir``)."""
        from memories.cache import Cache

        if self.cache_dir:
            folder = str(Path(self.cache_dir) / kind)
        elif root is not None:
            folder = root.cache_dir(kind)
        else:
            from memories.store.paths import StorageRoot

            folder = StorageRoot(config.storage.root, config.storage.s3_endpoint_url).cache_dir(kind)
        ttl = self.stac_cache_ttl_s if kind == "stac" else self.asset_cache_ttl_s
        return Cache(folder, ttl_s=ttl, max_bytes=self.cache_max_bytes)

    def client(self, root: Any = None) -> Any:
        """A pystac-client Client with this resource's timeouts, retries and STAC answer cache.

        The embedded server gets no cache: it is started on a new port in each process.
        """
        return open_client(
            self.api_url,
            timeout_s=(10.0, self.request_timeout_s),
            retries=self.retries,
            backoff_s=self.backoff_s,
            cache=None if self.serves_locally else self.cache("stac", root),
        )

    def search(self, grid: TileGrid, month: str, root: Any = None) -> SceneSearch:
        """The scenes of one tile and month, every result page read (``root``: StorageRoot for the cache)."""
        return search_scenes(
            self.client(root),
            self.catalog_profile(),
            grid,
            month,
            max_cloud_cover=self.max_cloud_cover,
            page_size=self.page_size,
        )

    def fetch(self, items: list[Any], root: Any = None, bands: tuple[str, ...] = COMMON_BANDS) -> Any:
        """Download (remote hrefs) and verify the assets ``bands`` + mask of ``items``: a ``FetchResult``."""
        from memories.earth.fetch import fetch_assets

        profile = self.catalog_profile()
        remote = any(not _is_local(a.href) for it in items for a in it.assets.values())
        return fetch_assets(
            items,
            profile,
            bands,
            cache=self.cache("assets", root) if remote else None,
            retries=self.retries,
            backoff_s=self.backoff_s,
            timeout_s=(10.0, self.request_timeout_s),
            max_workers=self.download_workers,
            s3_options=self._s3_options(),
        )

    def _s3_options(self) -> dict[str, Any]:
        """fsspec options for s3:// asset hrefs; credentials stay in the environment (AWS_*)."""
        options: dict[str, Any] = {"anon": self.asset_s3_anon, "requester_pays": self.asset_s3_requester_pays}
        if self.asset_s3_endpoint_url:
            options["client_kwargs"] = {"endpoint_url": self.asset_s3_endpoint_url}
        return options


_SERVERS: dict[tuple[str, int, int], Any] = {}
"""(items file, its mtime in ns, its size) -> the process's running StacServer of that world."""
_SERVERS_LOCK = threading.Lock()


def _embedded_server(world: Any) -> Any:
    """The process's running StacServer of ``world`` (a SampleWorld), started on first use.

    Keyed by the items file and its modification time and size, so a regenerated world gets a
    new server (the old one is stopped); a server that died is started again. Stopped at exit.
    """
    from memories.sample import StacServer

    stat = Path(world.items_path).stat()
    key = (str(world.items_path), stat.st_mtime_ns, stat.st_size)
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is None or not server.running:
            for old_key in [k for k in _SERVERS if k[0] == key[0]]:
                _SERVERS.pop(old_key).stop()
            server = _SERVERS[key] = StacServer(world).start()
            atexit.register(server.stop)
        return server


def _is_local(href: str) -> bool:
    return href.startswith(("/", "file:")) or "://" not in href


class GisSourceResource(ConfigurableResource):  # type: ignore[misc]
    """The vector file the GIS layers come from (GeoPackage, GeoJSON, Shapefile, OSM PBF).

    Empty path: the sample world's GeoPackage.
    """

    path: str | None = Field(default=None, description="vector file with layers buildings, roads, landuse, water")
    simplify_m: float | None = Field(default=None, description="simplification tolerance, metres in the tile CRS")
    layer_map: dict[str, str] = Field(
        default_factory=dict,
        description="which of our layers (buildings, roads, landuse, water, places) a file's layer holds, "
        "e.g. {landuse: counties} for a one-layer counties file; empty = the file's own layer names",
    )
    climate_paths: list[str] = Field(default_factory=list, description="TMY3 station files; empty = sample world's")
    census_table: str | None = Field(default=None, description="long CSV: name, year, values; empty = sample's")
    census_regions: str | None = Field(default=None, description="region polygons of the census table")
    historical_dir: str | None = Field(default=None, description="folder of <tile>/scan.tif + gcps.json")
    sample_world: SampleWorldResource

    def source_path(self) -> str:
        """The file to read."""
        if self.path:
            return self.path
        return str(self.sample_world.ensure().gis_path)

    def climate_sources(self) -> list[str]:
        """TMY3 station files (the sample world's, one per tile, when none are configured)."""
        if self.climate_paths:
            return list(self.climate_paths)
        return [str(p) for p in self.sample_world.ensure().climate_paths]

    def census_sources(self) -> tuple[str, str]:
        """(table CSV, region polygons) of the socioeconomic join."""
        if self.census_table and self.census_regions:
            return self.census_table, self.census_regions
        world = self.sample_world.ensure()
        return str(world.census_table_path), str(world.census_regions_path)

    def historical_sources(self, tile_id: str) -> tuple[str, str]:
        """(scan image, GCP file) of a tile's historical map."""
        if self.historical_dir:
            folder = Path(self.historical_dir) / tile_id
            return str(folder / "scan.tif"), str(folder / "gcps.json")
        world = self.sample_world.ensure()
        return str(world.historical_scan_path(tile_id)), str(world.historical_gcps_path(tile_id))
