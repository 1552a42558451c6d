"""The seed's provider pattern: one awaitable interface over the five acquisition sources.

``DataProvider`` is the seed's abstract base: ``await get_data(location, time_range, **kwargs)``,
``await get_metadata(data_id)`` and ``capabilities``. Each provider wraps the library's own
reader of its source; the work runs in a worker thread (GDAL, rasterio and requests release
the GIL), so several providers awaited together with ``acquire`` retrieve concurrently::

    from memories.earth.providers import GISDataProvider, SatelliteProvider, acquire

    got = await acquire({"imagery": SatelliteProvider(), "features": GISDataProvider()},
                        location=(46.03, 14.52), time_range=("2023-05-01", "2023-09-01"))

Under them (one home each, not repeated here):

- retries: STAC requests through ``memories.earth.http.retry_policy`` (exponential backoff,
  ``Retry-After`` honoured on 429), by ``stac.open_client``; the file sources (GIS, weather,
  census, scans) are local files, where a retry would only repeat the same error;
- cache: STAC API answers in a ``memories.cache.Cache`` (``stac.open_client``; not for the
  embedded server, whose port changes each start); the tabular results of the GIS, weather and
  census providers in a ``Cache`` of their own (``ResultCache``), keyed by the source file's size
  and modification time and the request, so a changed file is read again.

Location is (latitude, longitude) in degrees; time ranges are half-open ``(start, end)``
(``memories.earth.timeseries.periods``). Unknown keyword arguments are refused by name.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memories.earth.results import ResultCache, stac_cache
from memories.errors import ConfigError, DataSourceError

__all__ = [
    "DataProvider",
    "EnvironmentalProvider",
    "GISDataProvider",
    "HistoricalMapsProvider",
    "ProviderCapabilities",
    "ResultCache",
    "SatelliteProvider",
    "SocioeconomicProvider",
    "acquire",
]


@dataclass(frozen=True)
class ProviderCapabilities:
    """What a provider retrieves and how.

    Attributes:
        source: ``satellite``, ``historical_maps``, ``gis``, ``environmental`` or ``socioeconomic``.
        returns: what ``get_data`` returns.
        options: the keyword arguments ``get_data`` accepts.
        temporal: whether ``time_range`` selects what comes back.
        formats: the source formats read.
        retries: the retry policy under the provider.
        cache: what is cached.
    """

    source: str
    returns: str
    options: tuple[str, ...]
    temporal: bool
    formats: tuple[str, ...]
    retries: str
    cache: str


class DataProvider(ABC):
    """A data source with the seed's interface (see the module docstring)."""

    @abstractmethod
    async def get_data(self, location: Sequence[float], time_range: Sequence[Any] | None, **kwargs: Any) -> Any:
        """Retrieve data for a location and time range."""

    @abstractmethod
    async def get_metadata(self, data_id: str) -> dict[str, Any]:
        """Retrieve metadata for a specific data item."""

    @property
    @abstractmethod
    def capabilities(self) -> ProviderCapabilities:
        """Return the capabilities of this provider."""

    def _options(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``kwargs``, once every name is one of ``capabilities.options``."""
        unknown = sorted(set(kwargs) - set(self.capabilities.options))
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}.get_data does not take {unknown}; it takes {list(self.capabilities.options)}"
            )
        return dict(kwargs)


async def acquire(
    providers: Mapping[str, DataProvider],
    location: Sequence[float],
    time_range: Sequence[Any] | None,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    limit: int | None = 4,
) -> dict[str, Any]:
    """Await several providers' ``get_data`` at once (at most ``limit`` together); results by name.

    ``options`` gives each provider's keyword arguments by the same name. The first failure is
    raised as it is, the others cancelled (``memories.concurrency.agather``).
    """
    from memories.concurrency import agather

    opts = options or {}
    names = list(providers)
    results = await agather(
        *(providers[n].get_data(location, time_range, **dict(opts.get(n, {}))) for n in names), limit=limit
    )
    return dict(zip(names, results))


class SatelliteProvider(DataProvider):
    """Composite time series of the configured STAC catalog (``SatelliteImagery.get_historical_imagery``).

    Args:
        imagery: the ``SatelliteImagery`` to use; None: one on the configured catalog profile, with a
            STAC answer cache under the storage root (``cache/stac``, a day's TTL) unless the catalog is
            the embedded server (started on a new port each time, so its answers are never asked twice).
    """

    def __init__(self, imagery: Any = None) -> None:
        if imagery is None:
            from memories.config import config
            from memories.earth.satellite import SatelliteImagery

            embedded = config.catalog.profile == "embedded" and not config.catalog.url
            imagery = SatelliteImagery(cache=None if embedded else stac_cache())
        self.imagery = imagery

    @property
    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            source="satellite",
            returns="xarray.Dataset (time, band, y, x): cloud-masked composites, reflectance 0-1",
            options=("interval", "max_cloud_cover", "bands", "apply_atmospheric_correction", "radius_km", "compute"),
            temporal=True,
            formats=("STAC API", "Cloud-Optimized GeoTIFF"),
            retries="STAC requests: exponential backoff, Retry-After on 429 (memories.earth.http.retry_policy)",
            cache="STAC API answers (stac.open_client) for a configured catalog; none for the embedded server",
        )

    async def get_data(self, location: Sequence[float], time_range: Sequence[Any] | None, **kwargs: Any) -> Any:
        if time_range is None:
            raise ConfigError("SatelliteProvider.get_data needs time_range=(start, end), e.g. ('2023-05', '2023-09')")
        return await self.imagery.get_historical_imagery(location, time_range, **self._options(kwargs))

    async def get_metadata(self, data_id: str) -> dict[str, Any]:
        """The STAC item of a scene id, as the catalog serves it (links dropped)."""
        return await asyncio.to_thread(self._item, data_id)

    def _item(self, data_id: str) -> dict[str, Any]:
        from memories.earth.items import item_dict

        found = list(self.imagery._open().search(ids=[data_id], collections=[self.imagery.profile.collection]).items())
        if not found:
            raise DataSourceError(
                f"no scene {data_id!r} in {self.imagery.profile.collection} at {self.imagery.api_url}; "
                "ids are listed in a series' attrs['scenes']"
            )
        return {**item_dict(found[0]), "links": []}


class GISDataProvider(DataProvider):
    """Vector features near a point from the configured GIS source (``GISProvider.get_features``).

    Args:
        gis: the ``GISProvider``; None: ``GISProvider()`` (the sample world's GeoPackage).
        cache: a ``ResultCache``; None: the default one.
    """

    def __init__(self, gis: Any = None, cache: ResultCache | None = None) -> None:
        if gis is None:
            from memories.earth.gis import GISProvider

            gis = GISProvider()
        self.gis = gis
        self.results = cache or ResultCache()

    @property
    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            source="gis",
            returns="geopandas.GeoDataFrame (EPSG:4326): features with feature_type and distance_km",
            options=("radius_km", "feature_types", "include_attributes", "simplify_tolerance"),
            temporal=True,
            formats=("OSM PBF", "GeoPackage", "GeoJSON", "Shapefile"),
            retries="none: a local file",
            cache="results, keyed by the file's size and mtime and the request (ResultCache)",
        )

    async def get_data(self, location: Sequence[float], time_range: Sequence[Any] | None, **kwargs: Any) -> Any:
        """Features within ``radius_km`` (default 1) that exist by the end of ``time_range`` (None: all)."""
        from memories.earth.features import features_near

        opts = {"radius_km": 1.0, **self._options(kwargs)}
        as_of = _range_end(time_range)
        request = {"location": list(location), "as_of": as_of, **opts}

        def make() -> Any:
            return features_near(
                self.gis.source,
                location,
                source_crs=self.gis.source_crs,
                layer_map=self.gis.layer_map,
                as_of=as_of,
                **opts,
            )

        return await asyncio.to_thread(self.results.get_or_make, "gis", [self.gis.source], request, make)

    async def get_metadata(self, data_id: str) -> dict[str, Any]:
        """A layer of the source: its feature count, CRS, bounds and columns."""
        return await asyncio.to_thread(self._layer_info, data_id)

    def _layer_info(self, layer: str) -> dict[str, Any]:
        import pyogrio

        from memories.earth.vector import source_format, source_layers

        offered = source_layers(self.gis.source, self.gis.layer_map)
        if layer not in offered:
            raise DataSourceError(f"{self.gis.source} has no layer {layer!r}; it offers {sorted(offered)}")
        if source_format(self.gis.source) == "osm":
            return {"layer": layer, "source": self.gis.source, "format": "osm", "crs": "EPSG:4326"}
        info = pyogrio.read_info(self.gis.source, layer=offered[layer])
        return {
            "layer": layer,
            "source": self.gis.source,
            "features": int(info["features"]),
            "crs": info["crs"],
            "bounds": [float(v) for v in info["total_bounds"]],
            "columns": [str(c) for c in info["fields"]],
            "geometry_type": info["geometry_type"],
        }


class EnvironmentalProvider(DataProvider):
    """Monthly weather at a point from the nearest configured station (``EnvironmentalData``).

    Args:
        paths: TMY3 station files; None: the sample world's (one per tile).
        cache: a ``ResultCache``; None: the default one.
    """

    def __init__(self, paths: Sequence[str] | None = None, cache: ResultCache | None = None) -> None:
        if paths is None:
            from memories.earth.sources import default_climate_sources

            paths = default_climate_sources()
        self.paths = [str(p) for p in paths]
        self.results = cache or ResultCache()
        self._data: Any = None

    @property
    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            source="environmental",
            returns="pandas.DataFrame: one row per month, the nearest station's monthly weather",
            options=(),
            temporal=True,
            formats=("TMY3 CSV",),
            retries="none: local files (memories.earth.weather.OpenMeteoArchive retries its API)",
            cache="results, keyed by the files' size and mtime and the request (ResultCache)",
        )

    async def get_data(self, location: Sequence[float], time_range: Sequence[Any] | None, **kwargs: Any) -> Any:
        """The months of ``time_range`` (required) at the station nearest to (lat, lon)."""
        self._options(kwargs)
        months = _months(time_range, "EnvironmentalProvider")
        lat, lon = (float(v) for v in location)
        request = {"location": [lat, lon], "months": months}

        def make() -> Any:
            return self._series().monthly_series_at(lat, lon, months)

        return await asyncio.to_thread(self.results.get_or_make, "environmental", self.paths, request, make)

    async def get_metadata(self, data_id: str) -> dict[str, Any]:
        """A station by id: name, position, elevation, series kind, source file."""
        data = await asyncio.to_thread(self._series)
        for s in data.series:
            if s.station.station_id == str(data_id):
                return {**s.station.__dict__, "kind": s.kind, "source": s.source, "hours": len(s.hourly)}
        ids = [s.station.station_id for s in data.series]
        raise DataSourceError(f"no station {data_id!r}; the stations are {ids}")

    def _series(self) -> Any:
        if self._data is None:
            from memories.earth.weather import EnvironmentalData

            self._data = EnvironmentalData.from_tmy3(self.paths)
        return self._data


class SocioeconomicProvider(DataProvider):
    """The census rows of the region under a point, gaps and jumps flagged (``SocioeconomicData.join``).

    Args:
        table: long CSV (``name``, ``district_id``, ``year``, values); None: the sample world's.
        regions: its region polygons; None: the sample world's.
        values: the value columns.
        cache: a ``ResultCache``; None: the default one.
    """

    def __init__(
        self,
        table: str | None = None,
        regions: str | None = None,
        *,
        values: Sequence[str] = ("population", "income_per_capita"),
        cache: ResultCache | None = None,
    ) -> None:
        if table is None or regions is None:
            from memories.earth.sources import default_census_sources

            table, regions = default_census_sources()
        self.table, self.regions, self.values = str(table), str(regions), list(values)
        self.results = cache or ResultCache()

    @property
    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            source="socioeconomic",
            returns="pandas.DataFrame: the region's yearly rows with flag_* columns",
            options=(),
            temporal=True,
            formats=("CSV", "GeoPackage", "Shapefile", "GeoJSON"),
            retries="none: local files",
            cache="results, keyed by the files' size and mtime and the request (ResultCache)",
        )

    async def get_data(self, location: Sequence[float], time_range: Sequence[Any] | None, **kwargs: Any) -> Any:
        """The rows of the region holding (lat, lon), in the years ``time_range`` overlaps (None: all)."""
        self._options(kwargs)
        lat, lon = (float(v) for v in location)
        years = None if time_range is None else [int(p.label) for p in _periods(time_range, "yearly")]
        request = {"location": [lat, lon], "years": years}
        return await asyncio.to_thread(
            self.results.get_or_make,
            "socioeconomic",
            [self.table, self.regions],
            request,
            lambda: self._rows(lat, lon, years),
        )

    async def get_metadata(self, data_id: str) -> dict[str, Any]:
        """A region by name: its code, the years and flags of its rows."""
        return await asyncio.to_thread(self._region, data_id)

    def _join(self) -> Any:
        import geopandas as gpd
        import pandas as pd

        from memories.earth.socioeconomic import SocioeconomicData

        return SocioeconomicData().join(
            pd.read_csv(self.table),
            gpd.read_file(self.regions, engine="pyogrio"),
            table_name="name",
            region_name="name",
            values=self.values,
            table_code="district_id",
            region_code="district_id",
        )

    def _rows(self, lat: float, lon: float, years: list[int] | None) -> Any:
        from shapely.geometry import Point

        joined = self._join()
        regions = joined.regions.to_crs("EPSG:4326")
        under = regions[regions.contains(Point(lon, lat))]
        if under.empty:
            raise DataSourceError(
                f"no region of {self.regions} holds ({lat}, {lon}); its regions: {list(regions['name'])}"
            )
        rows = joined.table[joined.table["region_id"] == under["name"].iloc[0]]
        if years is not None:
            rows = rows[rows["year"].isin(years)]
        return rows.reset_index(drop=True)

    def _region(self, name: str) -> dict[str, Any]:
        joined = self._join()
        rows = joined.table[joined.table["region_id"] == name]
        if rows.empty:
            raise DataSourceError(
                f"no region {name!r} with data; regions: {sorted(set(joined.table['region_id'].dropna()))}"
            )
        flags = {c: int(rows[c].sum()) for c in rows.columns if c.startswith("flag_")}
        return {
            "region": name,
            "code": rows["code"].iloc[0],
            "years": sorted(int(y) for y in rows["year"]),
            "flags": flags,
        }


class HistoricalMapsProvider(DataProvider):
    """The scanned historical map of the tile under a point, georeferenced onto it (``HistoricalMaps``).

    Args:
        folder: folder of ``<tile>/scan.tif`` and ``<tile>/gcps.json``; None: the sample world's.
        method: ``best`` (affine or polynomial by leave-one-out RMSE), ``affine`` or ``polynomial``.
    """

    def __init__(self, folder: str | None = None, method: str = "best") -> None:
        if method not in ("best", "affine", "polynomial"):
            raise ConfigError(f"method={method!r}: use 'best', 'affine' or 'polynomial'")
        self.folder, self.method = folder, method

    @property
    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            source="historical_maps",
            returns="xarray.DataArray (y, x) on the tile grid, with the fit's RMSE as its uncertainty",
            options=(),
            temporal=False,
            formats=("GeoTIFF or PNG scan", "GCP JSON"),
            retries="none: local files",
            cache="none: georeferencing a scan takes well under a second",
        )

    async def get_data(self, location: Sequence[float], time_range: Sequence[Any] | None = None, **kwargs: Any) -> Any:
        """The map of the tile holding (lat, lon); ``time_range`` is not used (a scan has one date)."""
        self._options(kwargs)
        return await asyncio.to_thread(self._map, location)

    async def get_metadata(self, data_id: str) -> dict[str, Any]:
        """A tile's map: its files and the fit's summary (method, GCPs, RMSE in metres)."""
        result = await asyncio.to_thread(self._map_of, data_id)
        return {k: v for k, v in result.attrs.items()}

    def _map(self, location: Sequence[float]) -> Any:
        from memories.aoi import aoi_tiles
        from memories.config import config
        from memories.earth.timeseries import tile_at

        lat, lon = (float(v) for v in location)
        return self._map_of(tile_at(aoi_tiles(config), lat, lon)[0].tile_id)

    def _map_of(self, tile_id: str) -> Any:
        import xarray as xr

        from memories.aoi import aoi_tile
        from memories.config import config
        from memories.earth.historical import HistoricalMaps, georeference, read_gcps

        grid = aoi_tile(config, tile_id)
        if self.folder:
            scan, gcps = os.path.join(self.folder, tile_id, "scan.tif"), os.path.join(self.folder, tile_id, "gcps.json")
        else:
            from memories.earth.sources import default_historical_sources

            scan, gcps = default_historical_sources(tile_id)
        maps = HistoricalMaps()
        image, _ = maps.read_scan(scan)
        points, crs = read_gcps(gcps)
        method = maps.best_fit(points, crs).method if self.method == "best" else self.method
        array, geo = georeference(image, points, grid, method=method)  # type: ignore[arg-type]
        return xr.DataArray(
            array,
            dims=("y", "x"),
            coords={"y": grid.y, "x": grid.x},
            name="historical_map",
            attrs={"tile_id": tile_id, "crs": grid.crs, "scan": scan, "gcps_file": gcps, **geo.summary()},
        )


def _range_end(time_range: Sequence[Any] | None) -> Any:
    """The instant a half-open range ends (None: no range)."""
    if time_range is None:
        return None
    return _periods(time_range, "monthly")[-1].end


def _periods(time_range: Sequence[Any], interval: str) -> Any:
    from memories.earth.timeseries import periods

    return periods(time_range, interval)


def _months(time_range: Sequence[Any] | None, who: str) -> list[str]:
    if time_range is None:
        raise ConfigError(f"{who}.get_data needs time_range=(start, end), e.g. ('2023-05', '2023-09')")
    return [p.label for p in _periods(time_range, "monthly")]
