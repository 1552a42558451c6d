"""The area and period of interest: which tiles and months the pipeline covers.

With the embedded catalog and no tiles configured, they are the sample world's;
with a real catalog, the tiles are declared in ``aoi.tiles`` (never guessed).
"""

from __future__ import annotations

from memories.config import Settings
from memories.errors import ConfigError
from memories.grid import TileGrid
from memories.months import add_months, month_key, parse_month


def aoi_tiles(settings: Settings) -> list[TileGrid]:
    """The tiles of the area of interest, each with its declared grid."""
    if settings.aoi.tiles:
        return [TileGrid.from_dict(t) for t in settings.aoi.tiles]
    if settings.catalog.profile == "embedded":
        from memories.sample.spec import SampleWorldSpec

        return SampleWorldSpec.from_settings(settings.sample).tiles()
    raise ConfigError(
        f"catalog profile {settings.catalog.profile!r} needs declared tiles: set aoi.tiles to a list of "
        "{tile_id, epsg, x_min, y_max, width, height} in the config file"
    )


def aoi_tile(settings: Settings, tile_id: str) -> TileGrid:
    """One tile of the area of interest by id."""
    for t in aoi_tiles(settings):
        if t.tile_id == tile_id:
            return t
    raise ConfigError(
        f"tile {tile_id!r} is not in the area of interest ({[t.tile_id for t in aoi_tiles(settings)]}); "
        "add it to aoi.tiles"
    )


def aoi_months(settings: Settings) -> tuple[str, str | None]:
    """(first month, last month or None when open-ended), ``YYYY-MM``.

    Raises:
        ConfigError: no first month is set (a real catalog), or the last month is before the first.
    """
    first = settings.aoi.start_month
    last = settings.aoi.end_month
    first_from, last_from = "aoi.start_month", "aoi.end_month"
    if settings.catalog.profile == "embedded":
        if first is None:
            first, first_from = settings.sample.start_month, "sample.start_month"
        if last is None:
            last = month_key(add_months(parse_month(settings.sample.start_month), settings.sample.n_months - 1))
            last_from = "the sample world's last month (sample.start_month + sample.n_months - 1)"
    if first is None:
        raise ConfigError("set aoi.start_month (YYYY-MM): the first month of the partitions")
    if last is not None and last < first:
        raise ConfigError(
            f"the period ends before it starts: {last_from} is {last!r}, before {first_from} {first!r}, "
            "which leaves no month to partition; move aoi.start_month earlier or set aoi.end_month after it"
        )
    return first, last
