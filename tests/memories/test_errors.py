"""The library's errors: one family under MemoriesError, with the seed's names, documented in one table."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import memories.errors as errors
from memories.errors import MemoriesError

PACKAGE = Path(errors.__file__).resolve().parent
SEED_NAMES = {"DataSourceError", "ProcessingError", "StorageError", "ConfigError", "MissingDataError", "ModelError"}
"""The names the seed's code imports from ``memories.errors``."""


def _public_errors() -> dict[str, type[BaseException]]:
    return {
        name: obj
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and not name.startswith("_")
    }


def _table_rows() -> dict[str, str]:
    """error name -> its 'also a' cell, from the module docstring's table."""
    lines = (errors.__doc__ or "").splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    assert len(rules) == 3, "memories/errors.py's docstring should hold one table"
    rows = {}
    for line in lines[rules[1] + 1 : rules[2]]:
        rows[line.split()[0].strip("`")] = line[23:43].strip().strip("`")
    return rows


def test_the_seed_names_and_authentication_error_exist():
    assert SEED_NAMES | {"AuthenticationError", "MemoriesError"} <= set(_public_errors())


@pytest.mark.parametrize("name", sorted(_public_errors()))
def test_every_public_error_is_a_memories_error(name):
    assert issubclass(_public_errors()[name], MemoriesError)


def test_the_docstring_table_lists_every_error_with_its_builtin_base():
    rows = _table_rows()
    assert set(rows) == set(_public_errors()), "the table in memories/errors.py and its classes differ"
    for name, also in rows.items():
        cls = _public_errors()[name]
        if also:
            assert issubclass(cls, getattr(__import__("builtins"), also)), f"{name} is documented as a {also}"


def test_errors_defined_anywhere_in_the_library_derive_from_memories_error():
    """Scan every module of ``memories`` for exception classes and check each one's ancestry."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names = [
            n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name.endswith(("Error", "Exception"))
        ]
        if not names:
            continue
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        mod = importlib.import_module(module)
        for name in names:
            cls = getattr(mod, name, None)
            if inspect.isclass(cls) and issubclass(cls, BaseException):
                found.append(f"{module}.{name}")
                assert issubclass(cls, MemoriesError), f"{module}.{name} does not derive from MemoriesError"
    print(f"{len(found)} error classes: {found}")
    assert "memories.ai.registry.ModelNotFoundError" in found


def test_errors_carry_their_message_and_are_caught_as_their_builtin():
    with pytest.raises(ValueError, match="cloud cover 120 is above 100; pass 0..100"):
        raise errors.ConfigError("cloud cover 120 is above 100; pass 0..100")
    with pytest.raises(LookupError):
        raise errors.MissingDataError("no land_cover for 33TVM 2023-05; materialize land_cover first")
    with pytest.raises(TimeoutError):
        raise errors.TaskTimeoutError("3 of 3 tasks not done after 1 s")
