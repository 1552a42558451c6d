"""The resources every asset, sensor and schedule of the code location gets, and the executor of its runs."""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, in_process_executor

from resources import (
    DaskClusterResource,
    GisSourceResource,
    MemoryCatalogResource,
    ModelRuntimeResource,
    SampleWorldResource,
    StacCatalogResource,
    StorageResource,
    TieredStorageResource,
)

_sample = SampleWorldResource()
# A shared PostgreSQL catalog comes from the environment, so its password never enters code or run config.
_memory = (
    MemoryCatalogResource(url=EnvVar("MEMORIES_CATALOG_URL"))
    if os.environ.get("MEMORIES_CATALOG_URL")
    else MemoryCatalogResource()
)

defs = Definitions(
    # One process per run, not per step: the STAC server, the Dask cluster and the loaded models start once
    # per run and serve every step and partition of it; pools still bound the heavy steps across runs.
    executor=in_process_executor,
    resources={
        "stac": StacCatalogResource(sample_world=_sample),
        "gis": GisSourceResource(sample_world=_sample),
        "storage": StorageResource(),
        "memory": _memory,
        "dask_cluster": DaskClusterResource(),
        "model_runtime": ModelRuntimeResource(),
        "tiers": TieredStorageResource(),
    },
)
