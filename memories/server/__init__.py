"""The query server: an HTTP API (FastAPI + uvicorn) over the memory and its reports.

``MemoriesServer`` is imported lazily, so ``import memories.server`` stays light;
``python -m memories.server`` starts one (see :mod:`memories.server.__main__`).
"""

from __future__ import annotations

from memories._lazy import lazy_exports

_EXPORTS = {
    "MemoriesServer": "memories.server.app",
    "create_app": "memories.server.app",
    "TOKEN_ENV": "memories.server.guard",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
