"""The one home of partitions: month x tile.

Months come from the configured period (the sample world's by default); tiles are
a dynamic dimension filled from the area of interest (sensor, demo, or by hand in
the UI), keyed by MGRS id.
"""

from __future__ import annotations

import warnings
from typing import Any

from dagster import (
    BackfillPolicy,
    BetaWarning,
    DimensionPartitionMapping,
    DynamicPartitionsDefinition,
    IdentityPartitionMapping,
    MonthlyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionMapping,
    MultiPartitionsDefinition,
    TimeWindowPartitionMapping,
)

from memories.aoi import aoi_months
from memories.config import config
from memories.months import add_months, month_key, parse_month

# Backfill policies and partition mappings are beta in Dagster 1.13, which the project pins: the warnings
# (one per asset at import) would bury the code location's log without telling anything new.
warnings.filterwarnings(
    "ignore",
    category=BetaWarning,
    message=r".*(backfill_policy|MultiPartitionMapping|allow_nonexistent_upstream_partitions).*",
)

MONTH_FMT = "%Y-%m"
TILES = "tiles"

_first, _last = aoi_months(config)
FIRST_MONTH: str = _first
"""Origin of every monthly raster store's time axis."""

months_partitions = MonthlyPartitionsDefinition(
    start_date=_first,
    end_date=month_key(add_months(parse_month(_last), 1)) if _last else None,
    fmt=MONTH_FMT,
    end_offset=0,
)
tiles_partitions = DynamicPartitionsDefinition(name=TILES)
month_tile_partitions = MultiPartitionsDefinition({"month": months_partitions, "tile": tiles_partitions})

MAX_PARTITIONS_PER_RUN = 12
"""Tile-months one backfill run computes (a year of one tile): Dagster groups a month x tile backfill by tile,
so a backfill of T tiles x M months runs as T x ceil(M / 12) runs, each starting its STAC server, Dask
cluster and models once."""

MONTH_TILE_BACKFILL = BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN)
"""The backfill policy of every month x tile asset (one policy, so the assets of a backfill share runs)."""


def months_before(n: int) -> MultiPartitionMapping:
    """A month x tile partition reads the same tile's month and the ``n`` months before it.

    Months before the first partition are skipped, not required (the first month has no reference).
    """
    return MultiPartitionMapping(
        {
            "month": DimensionPartitionMapping(
                "month",
                TimeWindowPartitionMapping(start_offset=-n, end_offset=0, allow_nonexistent_upstream_partitions=True),
            ),
            "tile": DimensionPartitionMapping("tile", IdentityPartitionMapping()),
        }
    )


PREVIOUS_MONTH = months_before(1)
"""change_map compares a month with the one before."""
YEAR_BEFORE = months_before(12)
"""The reports compare a month with 12 months earlier (and trend over the year between)."""


def partition_key(month: str, tile: str) -> MultiPartitionKey:
    """The partition key of one month and tile."""
    return MultiPartitionKey({"month": month, "tile": tile})


def partition_keys(context: Any) -> list[str]:
    """Every partition key of an asset run, one or a range, in order.

    A backfill run over a key range gets exactly the keys requested: Dagster builds month x tile
    ranges with one dimension fixed, and ``context.partition_keys`` expands a range dimension by
    dimension.
    """
    if context.has_partition_key_range:
        return list(context.partition_keys)
    return [context.partition_key]


def split_key(key: MultiPartitionKey | str) -> tuple[str, str]:
    """(month, tile) of a month x tile partition key."""
    if isinstance(key, MultiPartitionKey):
        d = key.keys_by_dimension
    else:
        d = dict(zip(("month", "tile"), str(key).split("|"), strict=True))
    return d["month"], d["tile"]
