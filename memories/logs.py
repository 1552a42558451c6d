"""Logging for command-line programs; the library itself only logs.

Every module of ``memories`` logs through ``logging.getLogger(__name__)`` and never
adds handlers, sets levels or prints: where its records go is the application's
choice (Dagster captures them into a run's event log; a notebook shows warnings).
A command-line program calls :func:`configure` once, at its start::

    from memories.logs import configure
    configure("INFO")   # 2026-11-03T09:14:07Z INFO memories.earth.fetch: 12 assets fetched

One format for every CLI, with times in UTC (ISO 8601, ``Z``), so lines from
several machines sort together.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO

from memories.errors import ConfigError

__all__ = ["FORMAT", "DATE_FORMAT", "configure", "utc_formatter"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The one line format of the project's command-line programs."""
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""Times in UTC, ISO 8601."""

_MARK = "_memories_handler"


def utc_formatter() -> logging.Formatter:
    """A formatter of :data:`FORMAT` with its times in UTC."""
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    return formatter


def configure(level: int | str = "INFO", *, stream: IO[str] | None = None) -> logging.Handler:
    """Send log records of ``level`` and above to ``stream`` (default: stderr) in the project's format.

    For command-line programs (``__main__`` modules, scripts), never for library code.
    Calling it again replaces the handler it added before rather than adding a second
    one; handlers that others added to the root logger stay.

    Args:
        level: a level name (``"DEBUG"``, ``"info"``) or number (``logging.INFO``).
        stream: where lines go; default ``sys.stderr``.

    Returns:
        the handler it installed on the root logger.

    Raises:
        ConfigError: ``level`` is not a logging level.
    """
    number = _level(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(utc_formatter())
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    root.setLevel(number)
    logging.captureWarnings(True)
    return handler


def _level(level: int | str) -> int:
    if isinstance(level, bool):
        raise ConfigError(f"log level {level!r} is not a level; pass DEBUG, INFO, WARNING, ERROR or a number")
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(str(level).strip().upper())
    if number is None:
        raise ConfigError(f"log level {level!r} is not a level; pass DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return number
