"""Logging: the library only logs (no handlers, no prints); CLIs get one UTC format from memories.logs.configure."""

from __future__ import annotations

import ast
import io
import json
import logging
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import memories
from memories.errors import ConfigError
from memories.logs import configure

PACKAGE = Path(memories.__file__).resolve().parent
PUBLIC_MODULES = [
    "memories",
    "memories.config",
    "memories.errors",
    "memories.cache",
    "memories.concurrency",
    "memories.earth",
    "memories.memory",
    "memories.ai",
    "memories.applications",
    "memories.server",
]
"""The seed's import paths (DESIGN.md); importing them must not touch logging's configuration."""
CLOCK_SKEW_S = 5.0


@pytest.fixture
def root_logger():
    """The root logger, restored to its handlers and level afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logging.captureWarnings(False)


def test_importing_the_library_adds_no_handlers_and_sets_no_levels():
    code = f"""
import importlib, json, logging
root = logging.getLogger()
before = (list(root.handlers), root.level)
for name in {PUBLIC_MODULES!r}:
    importlib.import_module(name)
own = {{n: (len(l.handlers), l.level, l.propagate) for n, l in logging.root.manager.loggerDict.items()
        if n.split(".")[0] == "memories" and isinstance(l, logging.Logger)}}
print(json.dumps({{"root_handlers": len(root.handlers) - len(before[0]), "root_level": root.level,
                  "level_before": before[1], "own": own}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"memories loggers after import: {sorted(report['own'])}")
    assert report["root_handlers"] == 0
    assert report["root_level"] == report["level_before"] == logging.WARNING
    for name, (n_handlers, level, propagate) in report["own"].items():
        assert (n_handlers, level, propagate) == (0, logging.NOTSET, True), name


def test_the_library_never_prints_outside_command_line_entry_points():
    """``print`` is for ``__main__`` modules and ``main()`` functions; the library logs instead."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        allowed: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "main":
                allowed |= {n.lineno for n in ast.walk(node) if hasattr(n, "lineno")}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
                and node.lineno not in allowed
            ):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not offenders, f"print() in library code (log through logging.getLogger(__name__)): {offenders}"


def test_configure_writes_one_utc_line_format(root_logger):
    stream = io.StringIO()
    configure("info", stream=stream)
    logging.getLogger("memories.earth.fetch").info("12 assets fetched")
    logging.getLogger("memories.earth.fetch").debug("not shown at INFO")
    line = stream.getvalue().strip()
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) INFO memories\.earth\.fetch: 12 assets fetched", line)
    assert m, line
    stamp = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < CLOCK_SKEW_S  # UTC, not local time


def test_configure_again_replaces_its_handler_and_keeps_others(root_logger):
    other = logging.NullHandler()
    root_logger.addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    configure(logging.DEBUG, stream=first)
    configure("WARNING", stream=second)
    assert other in root_logger.handlers
    assert sum(getattr(h, "_memories_handler", False) for h in root_logger.handlers) == 1
    logging.getLogger("memories.x").warning("once")
    assert first.getvalue() == "" and second.getvalue().count("once") == 1


@pytest.mark.parametrize("bad", ["LOUD", "", True])
def test_configure_rejects_an_unknown_level(bad, root_logger):
    with pytest.raises(ConfigError, match="is not a level; pass DEBUG, INFO"):
        configure(bad)


def test_memories_logging_logger_is_the_library_logger_and_adds_no_handler(caplog):
    from memories.logging import logger

    assert logger is logging.getLogger("memories")
    assert logging.getLogger("memories.earth.fetch").parent is logger
    assert logger.handlers == [] and logger.level == logging.NOTSET  # the program decides where lines go
    with caplog.at_level(logging.DEBUG, logger="memories"):
        logger.debug("Detailed debugging information")
        logger.info("General information about operation")
        logger.warning("Warning about potential issues")
        logger.error("Error that occurred during operation")
    assert [(r.name, r.levelname) for r in caplog.records] == [
        ("memories", "DEBUG"),
        ("memories", "INFO"),
        ("memories", "WARNING"),
        ("memories", "ERROR"),
    ]
