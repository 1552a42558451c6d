"""Where the tests find the real data, and what a test that needs it does when it is not there.

The real data (satellite scenes, OSM extracts, weather and census tables) lives in
``../shared/data`` beside the repository (see its README) and is never copied into
the project. A test that reads it is marked :func:`needs_data`; when a path is
missing the test FAILS naming that path (a clone without the data must not pass
by skipping). Tests that need no data carry no mark and run anywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA: Path = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
"""``../shared/data`` relative to the repository root (works from any worktree beside ``shared``)."""

MARKER = "real_data"
"""The marker :func:`needs_data` sets; ``tests/conftest.py`` checks its paths before each test."""


def needs_data(*paths: Path) -> pytest.MarkDecorator:
    """Mark a test (or a module, as ``pytestmark``) that reads these files or folders of the real data."""
    return getattr(pytest.mark, MARKER)(*paths)


def require_data(*paths: Path) -> None:
    """Fail the running test, naming the first of ``paths`` that does not exist."""
    for path in paths:
        if not Path(path).exists():
            pytest.fail(
                f"real data missing at {Path(path).resolve()}; the tests read ../shared/data beside the "
                "repository (see ../shared/data/README.md)",
                pytrace=False,
            )
