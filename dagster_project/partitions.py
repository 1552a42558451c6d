"""The one home of partitions: month x tile.

Months come from the configured period (the sample world's by default); tiles are
a dynamic dimension filled from the area of interest (sensor, demo, or by hand in
the UI), keyed by MGRS id.
"""

from __future__ import annotations

from dagster import (
    DynamicPartitionsDefinition,
    MonthlyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from memories.aoi import aoi_months
from memories.config import config
from memories.months import add_months, month_key, parse_month

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


def partition_key(month: str, tile: str) -> MultiPartitionKey:
    """The partition key of one month and tile."""
    return MultiPartitionKey({"month": month, "tile": tile})


def split_key(key: MultiPartitionKey | str) -> tuple[str, str]:
    """(month, tile) of a month x tile partition key."""
    if isinstance(key, MultiPartitionKey):
        d = key.keys_by_dimension
    else:
        d = dict(zip(("month", "tile"), str(key).split("|"), strict=True))
    return d["month"], d["tile"]
