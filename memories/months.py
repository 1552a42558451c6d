"""Months and instants, the time units of the memory: ``YYYY-MM`` strings, ISO 8601 instants, their UTC ranges.

The one parser of months (:func:`parse_month`) and of instants (:func:`parse_instant`,
:func:`parse_time`, :func:`parse_period`) the library, its command lines and the query
server use. All keep to the years :data:`MIN_YEAR`..:data:`MAX_YEAR` in UTC, so that a
month's end (the next month's first instant) and any UTC offset (at most 14 h) stay
inside Python's calendar (years 1..9999): a date at its edge is an error that says so,
never an overflow.

What a time means, in one place:

- an instant (``2023-06-15``, ``2023-06-15T10:00:00Z``, ``...+02:00``, a datetime) is that
  instant in UTC; a naive date-time or datetime is taken as UTC (:func:`parse_instant`);
- a month ``YYYY-MM`` asked as a *query* (``time_point``, ``time_range``) means the whole
  month: the interval from its first instant to its last microsecond (:func:`parse_period`);
- where one *instant* is required, a month stands for the instant the caller states
  (:data:`MonthInstant`): its first instant (``"start"``, the default), its 15th at
  00:00 UTC (``"mid"``, the representative instant of :func:`month_mid`), or the first
  instant of the next month (``"end"``, the exclusive end of its span) (:func:`parse_time`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from memories.errors import ConfigError

MonthInstant = Literal["start", "mid", "end"]
"""The instant a month ``YYYY-MM`` stands for where one instant is required: its first instant,
its 15th at 00:00 UTC, or the first instant of the next month (its exclusive end)."""

MIN_YEAR = 1
"""First year (UTC) a month or an instant of the memory may have."""
MAX_YEAR = 9998
"""Last year (UTC) a month or an instant of the memory may have (9999-12 has no end in Python's calendar)."""
SHOWN_CHARS = 40
"""Most characters of a rejected value an error message repeats."""

_MONTH_FORM = re.compile(r"[0-9]{4}-[0-9]{2}")


def parse_month(month: str, what: str = "month") -> datetime:
    """The first instant (UTC) of a ``YYYY-MM`` or ``YYYY-MM-DD`` partition key.

    Args:
        month: the key; only its first seven characters (``YYYY-MM``) count.
        what: its name in the error message (``time_point``).

    Raises:
        ConfigError: not of the form ``YYYY-MM``, a month number outside 01..12, or a
            year outside :data:`MIN_YEAR`..:data:`MAX_YEAR`; the message says which.
    """
    text = month[:7] if isinstance(month, str) else ""
    if not _MONTH_FORM.fullmatch(text):
        raise ConfigError(f"{what} {shown(month)} is not of the form YYYY-MM, e.g. 2023-03")
    year, number = int(text[:4]), int(text[5:7])
    if not 1 <= number <= 12:
        raise ConfigError(f"{what} {shown(month)} has month number {text[5:7]}; months are 01..12, e.g. 2023-03")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ConfigError(
            f"{what} {shown(month)} has year {text[:4]}, outside the years "
            f"{MIN_YEAR:04d}..{MAX_YEAR} the memory handles; e.g. 2023-03"
        )
    return datetime(year, number, 1, tzinfo=UTC)


def parse_instant(value: str | datetime, what: str = "time") -> datetime:
    """The instant (UTC) of an ISO 8601 date or date-time, or of a datetime; naive ones are taken as UTC.

    Args:
        value: ``2023-06-15``, ``2023-06-15T10:00:00Z``, ``2023-06-15T12:00:00+02:00`` or a datetime.
        what: its name in the error message (``as_of``).

    Raises:
        ConfigError: not ISO 8601, not a calendar date (``2023-02-30``), or outside the
            years :data:`MIN_YEAR`..:data:`MAX_YEAR` in UTC; the message says which.
    """
    if isinstance(value, datetime):
        d = value
    else:
        text = str(value).strip()
        try:
            d = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as e:
            if str(e).startswith("Invalid isoformat string"):
                raise ConfigError(
                    f"{what} {shown(value)} is not an ISO 8601 date or date-time; "
                    "e.g. 2023-06-15 or 2023-06-15T10:00:00Z"
                ) from None
            raise ConfigError(f"{what} {shown(value)} is not a date of the calendar: {e}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    try:
        d = d.astimezone(UTC)
        inside = MIN_YEAR <= d.year <= MAX_YEAR
    except OverflowError:  # 0001-01-01T00:00+14:00 lies in year 0 in UTC
        inside = False
    if not inside:
        raise ConfigError(
            f"{what} {shown(value)} lies outside the years {MIN_YEAR:04d}..{MAX_YEAR} (UTC) the memory handles; "
            "e.g. 2023-06-15T10:00:00Z"
        )
    return d


def parse_time(
    value: str | datetime, what: str = "time", *, month_at: MonthInstant = "start", end: bool = False
) -> datetime:
    """The instant (UTC) of a valid time: an instant is itself; a month ``YYYY-MM`` is the instant ``month_at`` names.

    Args:
        value: ``YYYY-MM``, an ISO 8601 date or date-time, or a datetime (naive: UTC).
        what: its name in the error message.
        month_at: which instant a month stands for (:data:`MonthInstant`): ``"start"`` its first
            instant, ``"mid"`` its 15th at 00:00 UTC, ``"end"`` the next month's first instant.
        end: ``month_at="end"``: the instant the value's period ends (a month ends where the next
            begins, exclusive; an instant is its own end).

    Raises:
        ConfigError: neither a month nor an ISO 8601 instant, or at the calendar's edge
            (see :func:`parse_month`, :func:`parse_instant`).
    """
    if isinstance(value, str) and is_month(value.strip()):
        start = parse_month(value.strip(), what)
        at = "end" if end else month_at
        if at == "end":
            return add_months(start, 1)
        return start.replace(day=15) if at == "mid" else start
    try:
        return parse_instant(value, what)
    except ConfigError as e:
        if "not an ISO 8601" not in str(e):
            raise
        raise ConfigError(
            f"{what} {shown(value)} is not YYYY-MM (a month), YYYY-MM-DD or an ISO 8601 date-time; "
            "e.g. 2023-06, 2023-06-15 or 2023-06-15T10:00:00Z"
        ) from None


def parse_period(value: str | datetime, what: str = "time") -> tuple[datetime, datetime]:
    """``[start, end]`` (UTC, both inclusive) of a valid time asked as a query.

    A month ``YYYY-MM`` is its whole span, from its first instant to its last microsecond
    (:func:`month_range`); an instant is the one-instant interval ``[t, t]``.

    Raises:
        ConfigError: as :func:`parse_time`.
    """
    if isinstance(value, str) and is_month(value.strip()):
        return month_range(value.strip(), what)
    start = parse_time(value, what)
    return start, start


def is_month(text: str) -> bool:
    """Whether ``text`` has the form of a month, ``YYYY-MM`` (valid or not: :func:`parse_month` says)."""
    return bool(_MONTH_FORM.fullmatch(text))


def shown(value: object) -> str:
    """``repr`` of a rejected value for an error message, cut to :data:`SHOWN_CHARS` characters."""
    text = repr(value.isoformat()) if isinstance(value, datetime) else repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 1]}… ({len(text)} characters)"


def check_month(value: Any, key: str) -> str:
    """A setting that must be a month: exactly ``YYYY-MM`` with MM in 01..12; returns it. ``key`` names it in errors.

    Raises:
        ConfigError: naming the key, the value, what is wrong and an example.
    """
    if isinstance(value, date):
        raise ConfigError(
            f"{key}: {value!r} is a date; write the month as a quoted string, e.g. '{value.year:04d}-{value.month:02d}'"
        )
    m = re.fullmatch(r"(\d{4})-(\d{2})", value) if isinstance(value, str) else None
    if m is None:
        raise ConfigError(f"{key}: {value!r} is not a month of the form YYYY-MM; write e.g. '2024-01' (quoted in YAML)")
    if not 1 <= int(m.group(2)) <= 12:
        raise ConfigError(f"{key}: {value!r} has month {m.group(2)}, not 01..12; write e.g. '{m.group(1)}-12'")
    if int(m.group(1)) < 1:
        raise ConfigError(f"{key}: {value!r} has year 0000; the calendar starts at year 0001")
    return str(value)


def month_range(month: str, what: str = "month") -> tuple[datetime, datetime]:
    """[start, end] of a month in UTC; end is the last microsecond of the month."""
    start = parse_month(month, what)
    return start, add_months(start, 1) - timedelta(microseconds=1)


def add_months(d: datetime, n: int) -> datetime:
    """The first of the month ``n`` months after ``d``'s month."""
    k = d.year * 12 + (d.month - 1) + n
    return d.replace(year=k // 12, month=k % 12 + 1, day=1, hour=0, minute=0, second=0, microsecond=0)


def month_key(d: datetime) -> str:
    """``YYYY-MM`` of a datetime."""
    return f"{d.year:04d}-{d.month:02d}"


def month_index(month: str, origin: str) -> int:
    """Months from ``origin`` to ``month`` (0 for the same month)."""
    a, b = parse_month(origin), parse_month(month)
    return (b.year - a.year) * 12 + (b.month - a.month)


def months_between(first: str, last: str) -> list[str]:
    """All months from ``first`` to ``last`` inclusive."""
    n = month_index(last, first)
    start = parse_month(first)
    return [month_key(add_months(start, i)) for i in range(n + 1)]


def month_mid(month: str) -> datetime:
    """The 15th of the month at 00:00 UTC, the month's representative instant (``parse_time(month_at="mid")``)."""
    return parse_month(month).replace(day=15)
