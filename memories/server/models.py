"""What the query server accepts and answers: validated inputs and documented outputs.

Path and query parameters are checked here before any endpoint runs, so a bad
tile id, month, instant, coordinate or bbox is a 422 with FastAPI's ``detail``
(where, what, the input), never a query against the memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, NoReturn

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from memories.memory.view import MemoryView
from memories.months import parse_instant, parse_month, parse_time

TILE_PATTERN = r"^[0-9]{1,2}[C-HJ-NP-X][A-HJ-NP-Z]{2}$"
"""An MGRS tile id: UTM zone, latitude band and 100 km square, e.g. ``33TVM``."""
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
"""A month: ``YYYY-MM``."""
KIND_PATTERN = r"^[a-z][a-z_]{0,39}$"
FILE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$"
"""A file name of a report version: one path segment, no leading dot."""

AS_OF = "transaction time, ISO 8601 (UTC if no offset): what the memory knew then; empty: now"
"""Description of the ``as_of`` parameters."""
TIME = "YYYY-MM (a whole month) or an ISO 8601 date/time"
"""Description of the valid-time parameters."""
BBOX = "west,south,east,north in degrees (WGS84), e.g. 24.93,60.16,24.96,60.18"
"""Description of the ``bbox`` parameters."""

ViewFactory = Callable[[datetime | None], MemoryView]
"""Makes the memory view of one request from its ``as_of`` (None: now)."""


def check_time(value: str | None) -> str | None:
    """A valid-time instant: ``YYYY-MM`` (the whole month) or an ISO 8601 date or date-time, in years 1..9998."""
    if value is not None:
        parse_time(value)  # raises ConfigError (a ValueError: a 422) saying what is wrong
    return value


def check_instant(value: datetime | None) -> datetime | None:
    """A transaction time (``as_of``) in UTC, inside the calendar the memory handles (years 1..9998)."""
    return None if value is None else parse_instant(value, "as_of")


def check_month(value: str) -> str:
    """A month ``YYYY-MM`` in the years 1..9998 (the pattern checks the form, this the calendar)."""
    parse_month(value)
    return value


def instant(t: str, *, end: bool = False) -> datetime:
    """The first instant (UTC) of a valid-time string; with ``end``, the instant its period ends.

    A month (``YYYY-MM``) ends where the next begins (exclusive); a date or date-time
    is an instant, its own end. Naive date-times are taken as UTC.
    """
    return parse_time(t, end=end)


def parsed(parse: Callable[[Any], Any], name: str, value: Any) -> Any:
    """``parse(value)`` of the query parameter ``name``; a ``ValueError`` becomes a 422 naming it."""
    try:
        return parse(value)
    except ValueError as e:
        invalid("query", name, value, str(e))


def invalid(where: str, name: str, value: Any, message: str) -> NoReturn:
    """Raise a 422 with FastAPI's ``detail`` shape for one bad input (``where``: query, path or body)."""
    raise RequestValidationError([{"type": "value_error", "loc": (where, name), "msg": message, "input": value}])


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    """``west,south,east,north`` in degrees (WGS84) -> a tuple; west <= east, south <= north."""
    if value is None:
        return None
    parts = value.split(",")
    try:
        w, s, e, n = (float(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"bbox {value!r} is not four numbers west,south,east,north in degrees; e.g. 24.93,60.16,24.96,60.18"
        ) from None
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise ValueError(f"bbox {value!r} is outside longitude -180..180 / latitude -90..90")
    if w > e or s > n:
        raise ValueError(
            f"bbox {value!r} has west > east or south > north; give west,south,east,north "
            "(a box across the antimeridian: ask for two boxes)"
        )
    return w, s, e, n


def utc(t: datetime | None) -> datetime | None:
    """A transaction time in UTC (naive ones are taken as UTC; ``memories.months.parse_instant``), or None."""
    return None if t is None else parse_instant(t, "as_of")


Tile = Annotated[str, Field(pattern=TILE_PATTERN, description="MGRS tile id, e.g. 33TVM", examples=["33TVM"])]
Month = Annotated[
    str, Field(pattern=MONTH_PATTERN, description="month YYYY-MM", examples=["2023-06"]), AfterValidator(check_month)
]
TimeLike = Annotated[str, AfterValidator(check_time)]
Instant = Annotated[datetime, AfterValidator(check_instant)]
"""A transaction time, in UTC once validated (naive: UTC), in the years 1..9998."""
AsOf = Annotated[
    Instant | None,
    Field(description="transaction time, ISO 8601 (UTC if no offset): what the memory knew then; empty: now"),
]
AsOfQuery = Annotated[Instant | None, Query(description=AS_OF)]
"""The ``as_of`` query parameter of the paths that read the memory as it stood then."""
Format = Literal["json", "html"]


class Health(BaseModel):
    """The server answers; ``api`` is the API version of the paths (``/v1``)."""

    status: Literal["ok"] = "ok"
    api: str = "v1"
    time: str = Field(description="server time, ISO 8601 UTC")
    pid: int = Field(default_factory=os.getpid, description="process id of the worker that answered")


class AssetInfo(BaseModel):
    """One asset the memory holds, as of a transaction time."""

    asset: str
    records: int = Field(description="records (partitions) in force")
    tiles: list[str]
    first: str | None = Field(None, description="first partition (YYYY-MM), if partitioned by month")
    last: str | None = Field(None, description="last partition (YYYY-MM)")


class AssetsAnswer(BaseModel):
    """Every asset of the memory catalog."""

    as_of: str | None
    assets: list[AssetInfo]


class TileInfo(BaseModel):
    """A tile the memory holds data of."""

    tile: str
    crs: str | None = Field(description="the tile's CRS, e.g. EPSG:32633")
    bbox_wgs84: list[float] | None = Field(description="west, south, east, north in degrees")
    assets: list[str]


class TilesAnswer(BaseModel):
    """Every tile of the memory catalog."""

    as_of: str | None
    tiles: list[TileInfo]


class RecordOut(BaseModel):
    """One record of the memory catalog: a stored version of a product partition.

    Times are ISO 8601 UTC: ``valid_*`` the period the data describes,
    ``transaction_*`` when the memory held this version (``transaction_to`` null:
    still in force).
    """

    id: int
    asset: str
    tile: str | None
    partition: str | None
    version: int = Field(description="1, 2, ... per partition")
    version_id: str | None = Field(description="the stored data's version (Icechunk snapshot, vector version)")
    valid_from: str | None
    valid_to: str | None
    transaction_from: str
    transaction_to: str | None
    uri: str
    crs: str | None
    bbox_wgs84: list[float] | None
    stats: dict[str, Any]


class RecordsAnswer(BaseModel):
    """Records matching a temporal query."""

    as_of: str | None
    count: int
    records: list[RecordOut]


class FeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection (RFC 7946, coordinates in WGS84 degrees)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[dict[str, Any]]
    numberMatched: int = Field(description="features matching the query")  # noqa: N815 - OGC API name
    numberReturned: int = Field(description="features in this answer (at most limit)")  # noqa: N815


class Kinds(BaseModel):
    """The applications the server runs, by report kind."""

    kinds: list[str]


class AnalysisRequest(BaseModel):
    """Run one application over one tile-month, as of a transaction time, without storing the report."""

    model_config = ConfigDict(extra="forbid")

    tile: Tile
    month: Month
    as_of: AsOf = None
    format: Format = "json"


class PropertyRequest(BaseModel):
    """A property's surroundings over a period (``RealEstateAgent.analyze_property``)."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(min_length=2, max_length=300, examples=["Mannerheimintie 22"])
    time_range: tuple[TimeLike, TimeLike] | None = Field(
        None,
        description="[start, end]: YYYY-MM or ISO dates, inclusive; empty: every month the memory holds",
        examples=[["2023-01", "2023-08"]],
    )
    include_environmental: bool = True
    include_neighborhood: bool = True
    as_of: AsOf = None

    @field_validator("address")
    @classmethod
    def _stripped(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("address is blank; give a street and number or a place name")
        return v.strip()

    @model_validator(mode="after")
    def _ordered(self) -> PropertyRequest:
        if self.time_range is None:
            return self
        start, end = self.time_range
        if instant(end) < instant(start):
            raise ValueError(f"time_range {list(self.time_range)} ends before it starts; give [start, end]")
        return self


class ErrorAnswer(BaseModel):
    """An error: what went wrong and how to fix it."""

    detail: str
    error: str = Field(description="error class, e.g. MissingDataError")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorAnswer, "description": "no or wrong bearer token"},
    413: {"model": ErrorAnswer, "description": "the request body is over the server's limit"},
    404: {"model": ErrorAnswer, "description": "the memory holds no such thing (the message says what to materialize)"},
    500: {"model": ErrorAnswer, "description": "the memory failed (message, no traceback)"},
}
"""The documented error answers of every ``/v1`` path."""
BUSY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorAnswer, "description": "busy: the analysis queue is full; retry after Retry-After seconds"}
}
"""The documented answer of the analyses when the server is busy."""
JSON_OR_HTML: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}, "text/html": {}}}}
"""The documented answer of the paths that serve a report as JSON or as its HTML page."""
