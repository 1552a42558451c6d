"""The query server: an HTTP API (FastAPI + uvicorn) over the memory and its reports.

``MemoriesServer`` is imported lazily, so ``import memories.server`` stays light;
``python -m memories.server`` starts one (see :mod:`memories.server.__main__`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MemoriesServer": "memories.server.app",
    "create_app": "memories.server.app",
    "TOKEN_ENV": "memories.server.app",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memories.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
