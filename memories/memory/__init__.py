"""The memory: temporal (bi-temporal catalog over versioned stores), spatial, context and relationship memory.

Names are imported lazily, so ``import memories.memory`` stays light and each
manager pulls in its own dependencies only when used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MemoryCatalog": "memories.memory.catalog",
    "Materialization": "memories.memory.catalog",
    "TemporalMemory": "memories.memory.temporal",
    "TemporalMemoryManager": "memories.memory.temporal",
    "SpatialMemory": "memories.memory.spatial",
    "SpatialMemoryManager": "memories.memory.spatial",
    "ContextMemory": "memories.memory.context",
    "ContextMemoryManager": "memories.memory.context",
    "RelationshipMemory": "memories.memory.relationship",
    "RelationshipMemoryManager": "memories.memory.relationship",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memories.memory' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
