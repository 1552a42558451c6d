"""The one parser of months and instants: the calendar's edges are errors that say what is wrong, never overflows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from memories.errors import ConfigError
from memories.memory.temporal import TemporalMemory
from memories.months import MAX_YEAR, MIN_YEAR, month_range, parse_instant, parse_month, parse_time


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0000-01", "has year 0000, outside the years 0001..9998"),
        ("9999-12", "has year 9999, outside the years 0001..9998"),
        ("2023-13", "has month number 13; months are 01..12"),
        ("2023-00", "has month number 00; months are 01..12"),
        ("2023-6", "is not of the form YYYY-MM"),
        ("June", "is not of the form YYYY-MM"),
    ],
)
def test_a_bad_month_is_refused_saying_what_is_wrong(text, says):
    with pytest.raises(ConfigError) as err:
        parse_month(text, "time_point")
    assert f"time_point '{text}' {says}" in str(err.value)


def test_the_months_at_the_calendars_edges_have_their_spans():
    assert parse_month(f"{MIN_YEAR:04d}-01") == datetime(1, 1, 1, tzinfo=UTC)
    first, last = month_range(f"{MAX_YEAR}-12")
    assert (first, last) == (datetime(9998, 12, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC) - timedelta(0, 0, 1))
    assert parse_time("9998-12", end=True) == datetime(9999, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0001-01-01T00:00:00+14:00", "lies outside the years 0001..9998 (UTC)"),  # year 0 in UTC: an overflow before
        ("9999-12-31T23:59:59-14:00", "lies outside the years 0001..9998 (UTC)"),
        ("9999-06-01", "lies outside the years 0001..9998 (UTC)"),
        ("0000-01-01", "is not a date of the calendar: year 0 is out of range"),
        ("2023-02-30", "is not a date of the calendar: day is out of range for month"),
        ("yesterday", "is not an ISO 8601 date or date-time"),
    ],
)
def test_a_bad_instant_is_refused_saying_what_is_wrong(text, says):
    with pytest.raises(ConfigError) as err:
        parse_instant(text, "as_of")
    assert f"as_of '{text}' {says}" in str(err.value)


def test_instants_are_utc_and_a_long_rejected_value_is_not_repeated_whole():
    assert parse_instant("2023-06-15T12:00:00+02:00") == datetime(2023, 6, 15, 10, tzinfo=UTC)
    ten = datetime(2023, 6, 15, 10, tzinfo=UTC)
    assert parse_instant("2023-06-15T10:00:00Z") == parse_instant("2023-06-15T10:00:00") == ten
    east = datetime(1, 1, 1, 13, tzinfo=timezone(timedelta(hours=14)))  # 0000-12-31T23:00Z
    with pytest.raises(ConfigError, match="outside the years"):
        parse_instant(east, "as_of")
    with pytest.raises(ConfigError) as err:
        parse_time("x" * 100_000, "start")
    assert len(str(err.value)) < 200 and "(100002 characters)" in str(err.value)
    with pytest.raises(ConfigError, match="is not YYYY-MM \\(a month\\), YYYY-MM-DD or an ISO 8601 date-time"):
        parse_time("2023/06", "start")


def test_the_temporal_query_refuses_the_calendars_edge_instead_of_overflowing(tmp_path):
    memory = TemporalMemory(tmp_path / "catalog.sqlite", (tmp_path / "store").as_uri())
    with pytest.raises(ConfigError, match="9999"):
        memory.query(time_point="9999-12")
    with pytest.raises(ConfigError, match="outside the years"):
        memory.query(time_range=("2023-01", "9999-12-31T23:00:00-14:00"))
    assert memory.query(time_range=("0001-01", "9998-12")) == []
