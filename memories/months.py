"""Months, the time unit of partitions: ``YYYY-MM`` strings and their UTC ranges."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from memories.errors import ConfigError


def parse_month(month: str) -> datetime:
    """The first instant (UTC) of a ``YYYY-MM`` or ``YYYY-MM-DD`` partition key."""
    try:
        d = datetime.strptime(month[:7], "%Y-%m")
    except ValueError:
        raise ConfigError(f"month {month!r} is not of the form YYYY-MM, e.g. 2023-03") from None
    return d.replace(tzinfo=UTC)


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


def month_range(month: str) -> tuple[datetime, datetime]:
    """[start, end] of a month in UTC; end is the last microsecond of the month."""
    start = parse_month(month)
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
    """The 15th of the month at 00:00 UTC, the month's representative instant."""
    return parse_month(month).replace(day=15)
