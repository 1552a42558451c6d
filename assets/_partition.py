"""What every partitioned asset does first and last: find its tile-months, record its outputs.

A run computes one month x tile partition or, in a backfill, a range of them (``BackfillPolicy`` in
``assets.partitions``): assets loop over :func:`tile_months`, record one catalog row and attach
its own metadata per partition (:func:`partition_metadata`), then return one ``MaterializeResult``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, MetadataValue

from memories.grid import TileGrid
from memories.memory.catalog import Materialization, MemoryCatalog
from memories.months import month_range

if TYPE_CHECKING:
    from resources import StacCatalogResource


def tile_months(context: AssetExecutionContext, stac: StacCatalogResource) -> list[tuple[str, str, TileGrid]]:
    """(partition key, month, tile grid) of every month x tile partition of the run, in key order."""
    from assets.partitions import partition_keys, split_key

    out = []
    grids: dict[str, TileGrid] = {}
    for key in partition_keys(context):
        month, tile = split_key(key)
        if tile not in grids:
            grids[tile] = stac.tile(tile)
        out.append((str(key), month, grids[tile]))
    return out


def largest_px(partitions: Sequence[tuple[str, str, TileGrid]]) -> int:
    """Pixels of the largest tile grid among ``tile_months`` partitions (``DaskClusterResource.each``'s ``pixels``)."""
    return max((grid.width * grid.height for _, _, grid in partitions), default=0)


def partition_metadata(context: AssetExecutionContext, key: str, metadata: dict[str, Any]) -> None:
    """Attach ``metadata`` to the materialization of partition ``key`` alone (also inside a range run)."""
    context.add_asset_metadata(metadata, partition_key=key)


def range_check(name: str, results: Sequence[tuple[str, AssetCheckResult]]) -> AssetCheckResult:
    """One check result over the run's partitions: passes when every partition passes; a failure names
    the failing partitions and keeps their metadata."""
    if len(results) == 1:
        return results[0][1]
    failed = [(k, r) for k, r in results if not r.passed]
    return AssetCheckResult(
        check_name=name,
        passed=not failed,
        severity=AssetCheckSeverity.ERROR,
        description=None
        if not failed
        else f"failed on {len(failed)} of {len(results)} partitions: " + ", ".join(k for k, _ in failed),
        metadata={
            "partitions": len(results),
            "failed_partitions": MetadataValue.json({k: _plain(dict(r.metadata)) for k, r in failed}),
        },
    )


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


def _plain(metadata: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able entries of a metadata dict (numbers, text, JSON values); previews and URLs dropped."""
    out: dict[str, Any] = {}
    for k, v in metadata.items():
        value = getattr(v, "value", v) if hasattr(v, "value") and not isinstance(v, str) else v
        if isinstance(value, (int, float, str, bool, dict, list)) or value is None:
            if isinstance(value, str) and len(value) > 200:
                continue
            out[k] = value
    return out
