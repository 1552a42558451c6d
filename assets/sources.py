"""Environmental, socioeconomic and historical sources of a tile.

``climate_series`` harmonizes weather stations (TMY3 files; the sample world has
one per tile) to the tile-month; ``socioeconomic_regions`` joins a census table
to its region polygons on the tile, flags gaps and inconsistencies; and
``historical_map`` georeferences a scanned map from its ground control points,
keeping the residual error as the map's uncertainty.
"""

import io
import json

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets._partition import partition_metadata, record, tile_months
from assets.partitions import MONTH_TILE_BACKFILL, month_tile_partitions, tiles_partitions
from memories.products import CLIMATE_SERIES, HISTORICAL_MAP, SOCIOECONOMIC_REGIONS
from resources import GisSourceResource, MemoryCatalogResource, StacCatalogResource, StorageResource

CENSUS_NAME_COLUMN = "name"
"""Region name column of the census table and of its polygons (sample world's)."""
CENSUS_CODE_COLUMN = "district_id"
CENSUS_VALUES = ("population", "income_per_capita")
CENSUS_MAX_CHANGE = 0.5
"""Largest plausible year-on-year change (50 %)."""


@asset(
    partitions_def=month_tile_partitions,
    backfill_policy=MONTH_TILE_BACKFILL,
    group_name="sources",
    kinds={"pandas", "parquet"},
    description="Monthly weather of the tile (temperature, precipitation, irradiation, humidity, wind) "
    "from the nearest station, with the station distance as uncertainty.",
)
def climate_series(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    gis: GisSourceResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    from memories.earth.weather import EnvironmentalData

    root = storage.storage_root()
    data = EnvironmentalData.from_tmy3(gis.climate_sources())
    for key, month, grid in tile_months(context, stac):
        frame = data.monthly_series(grid, [month])
        uri = root.table_uri(CLIMATE_SERIES, grid.tile_id, month)
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        root.write_bytes(uri, buf.getvalue())
        row = frame.iloc[0]
        values = {k: (None if v != v else round(float(v), 3)) for k, v in row.items() if isinstance(v, float | int)}
        stats = {"station_id": str(row["station_id"]), "kind": str(row["kind"]), **values}
        record(context, memory.catalog(), uri=uri, stats=stats, grid=grid, month=month)
        partition_metadata(
            context,
            key,
            {
                "station": f"{row['station_name']} ({row['station_id']})",
                "distance_km": float(row["distance_km"]),
                "kind": str(row["kind"]),
                "values": MetadataValue.json(values),
                "uri": uri,
            },
        )
    return MaterializeResult()


@asset(
    partitions_def=tiles_partitions,
    group_name="sources",
    kinds={"geopandas", "geoparquet"},
    description="Census regions on the tile joined to their yearly table; gaps and inconsistencies flagged.",
)
def socioeconomic_regions(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    gis: GisSourceResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import box

    from memories.earth.gis import write_geoparquet
    from memories.earth.socioeconomic import SocioeconomicData

    grid = stac.tile(context.partition_key)
    root = storage.storage_root()
    table_path, regions_path = gis.census_sources()
    regions = gpd.read_file(regions_path, engine="pyogrio")
    footprint = gpd.GeoSeries([box(*grid.bounds)], crs=grid.crs).to_crs(regions.crs).iloc[0]
    # Join against every region, so a row is "unmatched" only when no polygon anywhere has its name.
    result = SocioeconomicData(max_change=CENSUS_MAX_CHANGE).join(
        pd.read_csv(table_path),
        regions,
        table_name=CENSUS_NAME_COLUMN,
        region_name=CENSUS_NAME_COLUMN,
        values=list(CENSUS_VALUES),
        table_code=CENSUS_CODE_COLUMN,
        region_code=CENSUS_CODE_COLUMN,
    )
    on_tile = result.regions.intersects(footprint).to_numpy()
    regions = result.regions[on_tile].reset_index(drop=True)
    # Rows of this tile's regions, and unmatched rows (they belong to no tile: show them everywhere).
    table = result.table[
        result.table["region_id"].isin(set(regions[CENSUS_NAME_COLUMN])) | result.table["flag_unmatched"]
    ]
    regions_uri = root.tile_file_uri(SOCIOECONOMIC_REGIONS, grid.tile_id, "regions.parquet")
    table_uri = root.tile_file_uri(SOCIOECONOMIC_REGIONS, grid.tile_id, "table.parquet")
    write_geoparquet(root, regions_uri, regions.to_crs(grid.crs))
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    root.write_bytes(table_uri, buf.getvalue())
    flags = {k: int(table[k].sum()) for k in table.columns if k.startswith("flag_")}
    flagged = table[table["flags"] != ""][["region", "year", *CENSUS_VALUES, "flags"]]
    stats = {"regions": len(regions), "rows": len(table), "flags": flags}
    record(context, memory.catalog(), uri=regions_uri, stats=stats, grid=grid)
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "regions": len(regions),
            "regions_without_data": MetadataValue.json(
                [r for r in result.summary["polygons_without_data"] if r in set(regions[CENSUS_NAME_COLUMN])]
            ),
            "flags": MetadataValue.json(flags),
            "flagged_rows": MetadataValue.md(flagged.to_markdown(index=False) if len(flagged) else "none"),
            "uri": regions_uri,
            "table_uri": table_uri,
        }
    )


@asset(
    partitions_def=tiles_partitions,
    group_name="sources",
    kinds={"rasterio", "geotiff"},
    description="The tile's scanned historical map on the tile grid, georeferenced from its GCPs, "
    "with RMSE and per-GCP residuals as its uncertainty.",
)
def historical_map(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    gis: GisSourceResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    from memories.earth.historical import (
        HistoricalMaps,
        georeference,
        geotiff_bytes,
        read_gcps,
        residuals_markdown,
    )

    grid = stac.tile(context.partition_key)
    root = storage.storage_root()
    scan_path, gcps_path = gis.historical_sources(grid.tile_id)
    maps = HistoricalMaps()
    image, colormap = maps.read_scan(scan_path)
    gcps, _ = read_gcps(gcps_path)
    best = maps.best_fit(gcps, crs=grid.crs)
    array, geo = georeference(image, gcps, grid, method=best.method, order=best.order)
    summary = geo.summary()
    uri = root.tile_file_uri(HISTORICAL_MAP, grid.tile_id, "map.tif")
    tags = {"georeference": json.dumps(summary), "scan": scan_path}
    root.write_bytes(uri, geotiff_bytes(array, grid, colormap=colormap, tags=tags))
    residuals_uri = root.tile_file_uri(HISTORICAL_MAP, grid.tile_id, "residuals.parquet")
    buf = io.BytesIO()
    geo.residuals.to_parquet(buf, index=False)
    root.write_bytes(residuals_uri, buf.getvalue())
    record(context, memory.catalog(), uri=uri, stats=summary, grid=grid)
    context.log.info(f"historical map {grid.tile_id}: {summary}")
    return MaterializeResult(
        metadata={
            "method": f"{geo.method} (order {geo.order})",
            "rmse_m": summary["rmse_m"],
            "loo_rmse_m": summary["loo_rmse_m"],
            "max_residual_m": summary["max_residual_m"],
            "gcps": summary["gcps"],
            "mapped_fraction": float((array > 0).mean()),
            "residuals": MetadataValue.md(residuals_markdown(geo)),
            "uri": uri,
            "residuals_uri": residuals_uri,
        }
    )
