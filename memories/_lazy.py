"""The one home of lazy package exports: ``import memories.x`` stays light, names load on first use.

In a package's ``__init__.py``::

    __getattr__, __dir__ = lazy_exports(__name__, {"GISProvider": "memories.earth.gis"}, globals())
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for ``exports`` (public name -> defining module).

    A name is imported from its module on first access and kept in ``namespace``
    (the package's ``globals()``), so later accesses are plain lookups.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
