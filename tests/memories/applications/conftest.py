"""A real memory of a small world for the application tests: ``app_memory``.

Tile 33TVM, 8 months 2023-01..2023-08, 256 px (2.56 km). Built with the
library's own ingest code, as the assets run it, but without Dagster (the code
location's partitions are those of the test configuration, 2023-05..2023-08,
which holds no month after the flood): real monthly composites from the sample
world's COGs, spectral indices, the GIS layers as they stood at each month's
end, census regions, the georeferenced historical map, the NDVI forecast, the terrain.
Each write is recorded in a catalog like the assets record it, with its version.

The ``spectral_indices`` and ``land_cover`` records keep each month's summary (tile means,
NDVI quartiles, NDVI per class) as the assets keep it. The ``land_cover`` records hold the
rasterized ground truth (``model_id`` = ``truth``): the applications are tested on what the memory holds; the model's
accuracy is tested in ``tests/dagster_project/test_pipeline.py``.

Events in this world: clear-cut 2023-04-08, new district 2023-05-14, flood
2023-07-02..07-23 (August is after it).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TILE = "33TVM"
START = "2023-01"
N_MONTHS = 8
SIZE_PX = 256


@dataclass
class AppMemory:
    """The built memory and its ground truth."""

    root: Any
    catalog: Any
    world: Any
    grid: Any
    tile: str
    months: list[str]
    path: Path

    @property
    def view(self) -> Any:
        """The memory as of now."""
        from memories.memory.temporal import TemporalMemory
        from memories.memory.view import MemoryView

        return MemoryView(TemporalMemory(self.catalog, self.root))

    def view_as_of(self, as_of: Any) -> Any:
        from memories.memory.temporal import TemporalMemory
        from memories.memory.view import MemoryView

        return MemoryView(TemporalMemory(self.catalog, self.root), as_of=as_of)

    def events(self, kind: str) -> list[Any]:
        """Truth events of the tile of one kind."""
        return [e for e in self.world.events(self.tile) if e.kind == kind]


def _record(catalog: Any, asset: str, uri: str, grid: Any, month: str | None, stats: dict, version: Any) -> None:
    from memories.months import month_range

    valid_from, valid_to = month_range(month) if month else (None, None)
    catalog.record(
        asset=asset,
        uri=uri,
        tile=grid.tile_id,
        partition=month,
        valid_from=valid_from,
        valid_to=valid_to,
        crs=grid.crs,
        bbox_wgs84=grid.bbox_wgs84,
        stats=stats,
        run_id="app-memory-fixture",
        version_id=version,
    )


def build_app_memory(folder: Path) -> AppMemory:
    """Build the memory under ``folder`` (world, store, catalog)."""
    import pystac
    import xarray as xr

    from memories.applications.index_series import INDEX_SUMMARY, class_ndvi_summary, index_summary
    from memories.earth.gis import GISProvider, write_geoparquet
    from memories.earth.imagery import composite_stats, load_scenes, monthly_composite
    from memories.earth.indices import compute_indices
    from memories.earth.stac_profiles import COMMON_BANDS, get_profile
    from memories.memory.catalog import MemoryCatalog
    from memories.months import add_months, month_key, month_mid, month_range, parse_month
    from memories.sample import SampleWorld, SampleWorldSpec
    from memories.store.paths import StorageRoot
    from memories.store.raster import MonthlyRasterStore

    spec = SampleWorldSpec(seed=42, n_tiles=1, start_month=START, n_months=N_MONTHS, size_px=SIZE_PX)
    world = SampleWorld.ensure(spec, folder / "world")
    grid = world.tiles[0]
    root = StorageRoot((folder / "store").as_uri())
    catalog = MemoryCatalog.open(folder / "catalog.sqlite")
    months = [month_key(add_months(parse_month(START), i)) for i in range(N_MONTHS)]
    profile = get_profile("embedded")
    items = world.items(TILE)
    sr = MonthlyRasterStore(root, "surface_reflectance", grid, START, chunk_px=SIZE_PX)
    si = MonthlyRasterStore(root, "spectral_indices", grid, START, chunk_px=SIZE_PX)
    lc = MonthlyRasterStore(root, "land_cover", grid, START, chunk_px=SIZE_PX)
    gis = GISProvider(str(world.gis_path))
    for month in months:
        first, last = month_range(month)
        scenes = [pystac.Item.from_dict(d) for d in items if first.isoformat()[:7] == d["properties"]["datetime"][:7]]
        stack = load_scenes(scenes, profile, grid, COMMON_BANDS, chunk_px=SIZE_PX)
        sr.write_month(month, monthly_composite(stack))
        written = sr.read_month(month, snapshot=sr.last_snapshot).compute()
        q = composite_stats(written)
        _record(
            catalog, "surface_reflectance", sr.uri, grid, month, {"scenes": len(scenes), **_plain(q)}, sr.last_snapshot
        )
        si.write_month(month, compute_indices(written["reflectance"]))
        indices = si.read_month(month, snapshot=si.last_snapshot).compute()
        si_stats = {INDEX_SUMMARY: index_summary(indices)}  # as the spectral_indices asset keeps it
        _record(catalog, "spectral_indices", si.uri, grid, month, si_stats, si.last_snapshot)
        layers = gis.tile_layers(grid, as_of=last)
        for name, gdf in layers.items():
            write_geoparquet(root, root.vector_uri(name, TILE, month), gdf)
        versions = {name: root.current_version(root.vector_uri(name, TILE, month)) for name in layers}
        _record(catalog, "gis_layers", root.vectors_uri(TILE, month), grid, month, {}, versions)
        truth = world.landcover_truth(TILE, month_mid(month)).astype(np.uint8)
        zeros = np.zeros(grid.shape, np.float32)
        lc.write_month(
            month,
            xr.Dataset(
                {
                    "land_cover": (("y", "x"), truth),
                    "confidence": (("y", "x"), zeros + 1.0),
                    "variance": (("y", "x"), zeros),
                    "entropy": (("y", "x"), zeros),
                }
            ),
        )
        lc_stats = {"model_id": "truth", **class_ndvi_summary(written["reflectance"], truth)}  # as land_cover does
        _record(catalog, "land_cover", lc.uri, grid, month, lc_stats, lc.last_snapshot)
    _census(world, grid, root, catalog)
    _historical(world, grid, root, catalog)
    _forecast(si, grid, root, catalog)
    _terrain(world, grid, root, catalog)
    return AppMemory(root, catalog, world, grid, TILE, months, folder)


def _plain(d: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}


def _census(world: Any, grid: Any, root: Any, catalog: Any) -> None:
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import box

    from memories.earth.gis import write_geoparquet
    from memories.earth.socioeconomic import SocioeconomicData

    regions = gpd.read_file(world.census_regions_path, engine="pyogrio")
    result = SocioeconomicData(max_change=0.5).join(
        pd.read_csv(world.census_table_path),
        regions,
        table_name="name",
        region_name="name",
        values=["population", "income_per_capita"],
        table_code="district_id",
        region_code="district_id",
    )
    footprint = gpd.GeoSeries([box(*grid.bounds)], crs=grid.crs).to_crs(regions.crs).iloc[0]
    on_tile = result.regions[result.regions.intersects(footprint).to_numpy()].reset_index(drop=True)
    table = result.table[result.table["region_id"].isin(set(on_tile["name"]))]
    uri = root.tile_file_uri("socioeconomic_regions", grid.tile_id, "regions.parquet")
    write_geoparquet(root, uri, on_tile.to_crs(grid.crs))
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    root.write_bytes(root.tile_file_uri("socioeconomic_regions", grid.tile_id, "table.parquet"), buf.getvalue())
    _record(catalog, "socioeconomic_regions", uri, grid, None, {"regions": len(on_tile)}, root.current_version(uri))


def _historical(world: Any, grid: Any, root: Any, catalog: Any) -> None:
    import json

    from memories.earth.historical import HistoricalMaps, georeference, geotiff_bytes, read_gcps

    maps = HistoricalMaps()
    image, colormap = maps.read_scan(str(world.historical_scan_path(grid.tile_id)))
    gcps, _ = read_gcps(str(world.historical_gcps_path(grid.tile_id)))
    best = maps.best_fit(gcps, crs=grid.crs)
    array, geo = georeference(image, gcps, grid, method=best.method, order=best.order)
    summary = geo.summary()
    uri = root.tile_file_uri("historical_map", grid.tile_id, "map.tif")
    root.write_bytes(uri, geotiff_bytes(array, grid, colormap=colormap, tags={"georeference": json.dumps(summary)}))
    buf = io.BytesIO()
    geo.residuals.to_parquet(buf, index=False)
    root.write_bytes(root.tile_file_uri("historical_map", grid.tile_id, "residuals.parquet"), buf.getvalue())
    _record(catalog, "historical_map", uri, grid, None, summary, None)


def _terrain(world: Any, grid: Any, root: Any, catalog: Any) -> None:
    """The tile's terrain from the sample DEM (the terrain asset's path: GeoTIFF -> grid -> product)."""
    from memories.earth.dem import dem_on_grid
    from memories.earth.terrain import TERRAIN_EPOCH, terrain_dataset, terrain_store, terrain_summary

    ds = terrain_dataset(dem_on_grid([str(world.dem_path(TILE))], grid), grid, chunk_px=128)
    store = terrain_store(root, grid, 128)
    store.write_month(TERRAIN_EPOCH, ds)
    _record(catalog, "terrain", store.uri, grid, None, terrain_summary(ds), store.last_snapshot)


def _forecast(store: Any, grid: Any, root: Any, catalog: Any) -> None:
    import pandas as pd

    from memories.ai.forecast import forecast_series, tile_index_series

    series = tile_index_series(store, "ndvi")["all"]
    result = forecast_series(series, 6, step="MS", alpha=0.05)
    obs = pd.DataFrame({"time": series.index, "kind": "observed", "ndvi": series.to_numpy()})
    fc = pd.DataFrame(
        {
            "time": result.forecast.index,
            "kind": "forecast",
            "ndvi": result.forecast["mean"].to_numpy(),
            "lower": result.forecast["lower"].to_numpy(),
            "upper": result.forecast["upper"].to_numpy(),
        }
    )
    table = pd.concat([obs, fc], ignore_index=True)
    last = series.dropna().index[-1].strftime("%Y-%m")
    uri = root.table_uri("ndvi_forecast", grid.tile_id, last)
    root.write_bytes(uri, table.to_parquet(index=False))
    _record(catalog, "ndvi_forecast", uri, grid, last, {"order": list(result.order)}, None)


# The ``app_memory`` fixture itself lives in ``tests/conftest.py`` (session scope), so every package
# that needs this memory (applications, server, the seed's examples) shares one build of it.
