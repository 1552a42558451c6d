"""What a sample world is: its size, its tiles, its acquisition dates and its events.

``SampleWorldSpec`` is small, frozen and hashable; everything else of the world
(land cover, scenes, GIS layers) follows from it deterministically. The tiles are
real MGRS squares with their real UTM CRS, so products written on them line up
with real Sentinel-2 data of the same place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from memories.errors import ConfigError
from memories.grid import TileGrid
from memories.months import add_months, month_key, parse_instant, parse_month

if TYPE_CHECKING:
    import shapely

    from memories.config import SampleSettings

EventKind = Literal["clear_cut", "new_district", "flood"]

# (tile id, EPSG, x_min, y_max): the catalogue of sample tiles, in the order they
# are used. The index of a tile here seeds its landscape, so a world of 2 tiles
# and one of 4 share their first two tiles exactly.
TILE_CATALOGUE: tuple[tuple[str, int, float, float], ...] = (
    ("33TVM", 32633, 460000.0, 5100000.0),  # near Ljubljana
    ("31UDQ", 32631, 440000.0, 5420000.0),  # near Paris
    ("33UXP", 32633, 600000.0, 5345000.0),
    ("34TCT", 32634, 350000.0, 5270000.0),
)

# When the scripted events start, as fractions of the covered time range, so that
# even a world of three months holds all of them; the flood lasts a fixed time.
EVENT_START_FRACTION: dict[EventKind, float] = {"clear_cut": 0.40, "new_district": 0.55, "flood": 0.75}
FLOOD_DURATION = timedelta(days=21)

# Acquisitions happen in the morning, as Sentinel-2's 10:30 descending node gives
# over Europe: 10:20 UTC plus a few minutes per tile.
_ACQUISITION_HOUR = 10
_ACQUISITION_MINUTE = 20


@dataclass(frozen=True)
class Event:
    """A scripted change of land cover with its ground truth.

    Attributes:
        kind: ``clear_cut`` (forest to bare soil), ``new_district`` (cropland or
            grassland to built-up) or ``flood`` (land to water, for a while).
        tile_id: MGRS id of the tile the event happens on.
        geometry: the changed area in the tile CRS (metres): a polygon, or for a
            flood on both banks of a river a multipolygon.
        start: first instant (UTC) at which the change is on the ground.
        end: first instant (UTC) at which it is over; None when it lasts.
    """

    kind: EventKind
    tile_id: str
    geometry: shapely.Geometry
    start: datetime
    end: datetime | None

    @property
    def area_m2(self) -> float:
        """Area of the changed polygon, square metres."""
        return float(self.geometry.area)

    def active(self, when: datetime) -> bool:
        """Whether the change is on the ground at ``when`` (timezone-aware)."""
        return self.start <= when and (self.end is None or when < self.end)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: geometry as WKT in the tile CRS, ISO dates."""
        return {
            "kind": self.kind,
            "tile_id": self.tile_id,
            "wkt": self.geometry.wkt,
            "start": isoformat_utc(self.start),
            "end": isoformat_utc(self.end) if self.end is not None else None,
            "area_m2": round(self.area_m2, 1),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        """Rebuild an event from ``to_dict`` output."""
        import shapely

        return cls(
            kind=d["kind"],
            tile_id=d["tile_id"],
            geometry=shapely.from_wkt(d["wkt"]),
            start=parse_instant(d["start"], "event start"),
            end=parse_instant(d["end"], "event end") if d.get("end") else None,
        )


@dataclass(frozen=True)
class SampleWorldSpec:
    """The size and seed of a sample world.

    Attributes:
        seed: seed of every random choice; the same spec gives the same world.
        n_tiles: number of tiles, 1 to 4, taken in catalogue order.
        start_month: first month covered, ``YYYY-MM``.
        n_months: number of months covered.
        size_px: pixels per tile side at 10 m (even, at least 64).
        revisit_days: days between two acquisitions of a tile.
    """

    seed: int = 42
    n_tiles: int = 2
    start_month: str = "2023-01"
    n_months: int = 24
    size_px: int = 512
    revisit_days: int = 5

    def __post_init__(self) -> None:
        parse_month(self.start_month)  # raises ConfigError naming the value
        if self.seed < 0:
            raise ConfigError(f"sample world seed={self.seed}: use a non-negative integer")
        if not 1 <= self.n_tiles <= len(TILE_CATALOGUE):
            raise ConfigError(
                f"sample world n_tiles={self.n_tiles}: there are {len(TILE_CATALOGUE)} sample tiles; "
                f"choose 1 to {len(TILE_CATALOGUE)}"
            )
        if self.n_months < 1:
            raise ConfigError(f"sample world n_months={self.n_months}: cover at least 1 month")
        if self.size_px < 64 or self.size_px % 2:
            raise ConfigError(
                f"sample world size_px={self.size_px}: use an even number of at least 64 pixels, "
                "so the 20 m bands have exactly half as many"
            )
        if not 1 <= self.revisit_days <= 30:
            raise ConfigError(f"sample world revisit_days={self.revisit_days}: choose 1 to 30 days")

    @classmethod
    def from_settings(cls, s: SampleSettings) -> SampleWorldSpec:
        """The spec of ``config.sample`` (or any ``SampleSettings``)."""
        return cls(
            seed=s.seed,
            n_tiles=s.n_tiles,
            start_month=s.start_month,
            n_months=s.n_months,
            size_px=s.size_px,
            revisit_days=s.revisit_days,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleWorldSpec:
        """Rebuild a spec from ``to_dict`` output."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    # -- time ------------------------------------------------------------------
    def months(self) -> list[str]:
        """The covered months, ``YYYY-MM``, oldest first."""
        start = parse_month(self.start_month)
        return [month_key(add_months(start, i)) for i in range(self.n_months)]

    @property
    def time_range(self) -> tuple[datetime, datetime]:
        """[start, end) of the covered time, UTC: first instant of the first month
        to the first instant of the month after the last."""
        start = parse_month(self.start_month)
        return start, add_months(start, self.n_months)

    def scene_datetimes(self, tile_id: str) -> list[datetime]:
        """Acquisition times (UTC) of a tile: every ``revisit_days`` days from the
        start of the first month plus a tile-specific offset, at about 10:2x UTC."""
        index = self._tile_index(tile_id)
        start, end = self.time_range
        offset_days = index % self.revisit_days
        first = start + timedelta(
            days=offset_days,
            hours=_ACQUISITION_HOUR,
            minutes=_ACQUISITION_MINUTE + 3 * index,
            seconds=7 + 11 * index,
            milliseconds=24 * (index + 1),
        )
        step = timedelta(days=self.revisit_days)
        n = int((end - first) / step) + 1 if first < end else 0
        return [first + i * step for i in range(n) if first + i * step < end]

    def event_start(self, kind: EventKind) -> datetime:
        """Start of an event kind: its fraction of the time range, at 00:00 UTC."""
        start, end = self.time_range
        t = start + (end - start) * EVENT_START_FRACTION[kind]
        return t.replace(hour=0, minute=0, second=0, microsecond=0)

    # -- space -----------------------------------------------------------------
    def tiles(self) -> list[TileGrid]:
        """The tile grids, in catalogue order, ``size_px`` x ``size_px`` at 10 m."""
        return [
            TileGrid(tile_id=t, epsg=epsg, x_min=x, y_max=y, width=self.size_px, height=self.size_px)
            for t, epsg, x, y in TILE_CATALOGUE[: self.n_tiles]
        ]

    def tile(self, tile_id: str) -> TileGrid:
        """The grid of one tile of this world."""
        return self.tiles()[self._tile_index(tile_id)]

    def tile_ids(self) -> list[str]:
        """MGRS ids of the tiles of this world."""
        return [t for t, *_ in TILE_CATALOGUE[: self.n_tiles]]

    def rng(self, *key: int) -> np.random.Generator:
        """A random generator for one purpose, independent of any other key."""
        return np.random.default_rng([self.seed, *key])

    def _tile_index(self, tile_id: str) -> int:
        ids = self.tile_ids()
        if tile_id not in ids:
            raise ConfigError(f"tile {tile_id!r} is not in this sample world; its tiles are {ids}")
        return ids.index(tile_id)


def isoformat_utc(d: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, milliseconds kept when present."""
    d = d.astimezone(UTC)
    if d.microsecond:
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")
