"""Dagster resources that wrap the memories library for a run."""

from resources.catalog import GisSourceResource, SampleWorldResource, StacCatalogResource
from resources.compute import DaskClusterResource, ModelRuntimeResource
from resources.memory import TieredStorageResource
from resources.storage import MemoryCatalogResource, StorageResource

__all__ = [
    "DaskClusterResource",
    "GisSourceResource",
    "MemoryCatalogResource",
    "ModelRuntimeResource",
    "SampleWorldResource",
    "StacCatalogResource",
    "StorageResource",
    "TieredStorageResource",
]
