"""Dagster resources that wrap the memories library for a run."""

from resources.compute import DaskClusterResource, ModelRuntimeResource
from resources.sources import GisSourceResource, SampleWorldResource, StacCatalogResource
from resources.storage import MemoryCatalogResource, StorageResource
from resources.tiers import TieredStorageResource

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
