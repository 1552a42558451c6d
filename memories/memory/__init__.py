"""The memory: temporal (bi-temporal catalog over versioned stores), spatial, context and relationship memory.

Names are imported lazily, so ``import memories.memory`` stays light and each
manager pulls in its own dependencies only when used.
"""

from __future__ import annotations

from memories._lazy import lazy_exports

_EXPORTS = {
    "MemoryCatalog": "memories.memory.catalog",
    "Materialization": "memories.memory.catalog",
    "TemporalMemory": "memories.memory.temporal",
    "TemporalMemoryManager": "memories.memory.temporal",
    "SpatialMemory": "memories.memory.spatial",
    "SpatialMemoryManager": "memories.memory.spatial_items",
    "SpatialItem": "memories.memory.spatial_items",
    "TemporalRecord": "memories.memory.temporal",
    "ContextMemory": "memories.memory.context",
    "ContextMemoryManager": "memories.memory.context",
    "RelationshipMemory": "memories.memory.relationship",
    "RelationshipMemoryManager": "memories.memory.relationship",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
