"""What every partitioned asset does first and last: find its tile-month, record its output."""

from __future__ import annotations

from typing import Any

from dagster import AssetExecutionContext

from memories.grid import TileGrid
from memories.memory.catalog import Materialization, MemoryCatalog
from memories.months import month_range


def tile_month(context: AssetExecutionContext, stac: Any) -> tuple[str, TileGrid]:
    """(month, tile grid) of the run's month x tile partition."""
    from dagster_project.partitions import split_key

    month, tile = split_key(context.partition_key)
    return month, stac.tile(tile)


def record(
    context: AssetExecutionContext,
    catalog: MemoryCatalog,
    *,
    uri: str,
    stats: dict[str, Any],
    grid: TileGrid | None = None,
    month: str | None = None,
    version: str | dict[str, Any] | None = None,
) -> Materialization:
    """Record this run's output of one asset partition (valid time = the month).

    ``version`` names the stored data of this output: the Icechunk snapshot id a
    raster write returned, the version id of a GeoParquet file, or a dict (layer ->
    version) for several files; the temporal memory loads exactly that version.
    """
    valid_from, valid_to = month_range(month) if month else (None, None)
    return catalog.record(
        asset=context.asset_key.to_user_string(),
        uri=uri,
        tile=grid.tile_id if grid else None,
        partition=month,
        valid_from=valid_from,
        valid_to=valid_to,
        crs=grid.crs if grid else None,
        bbox_wgs84=grid.bbox_wgs84 if grid else None,
        stats=stats,
        run_id=context.run.run_id,
        version_id=version,
    )
