"""The code location: assets, checks, jobs, schedule, sensors (new scenes, automation) and resources."""

from __future__ import annotations

import os

from dagster import (
    Definitions,
    EnvVar,
    in_process_executor,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)

import assets.forecast
import assets.gis
import assets.imagery
import assets.maintenance
import assets.memory
import assets.model_pipeline
import assets.models
import assets.multimodal
import assets.report_disaster
import assets.report_historical
import assets.report_real_estate
import assets.report_urban
import assets.reports
import assets.sources
import assets.terrain
from dagster_project.automation import automation_sensor
from dagster_project.jobs import (
    analysis_job,
    ingest_job,
    maintenance_job,
    memory_job,
    model_pipeline_job,
    monthly_job,
    report_job,
    tile_job,
    train_job,
)
from dagster_project.schedules import monthly_schedule
from dagster_project.sensors import new_scenes_sensor
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

_MODULES = [
    assets.imagery,
    assets.gis,
    assets.sources,
    assets.terrain,
    assets.models,
    assets.model_pipeline,
    assets.multimodal,
    assets.reports,
    assets.report_disaster,
    assets.report_urban,
    assets.report_historical,
    assets.report_real_estate,
    assets.memory,
    assets.forecast,
    assets.maintenance,
]
_sample = SampleWorldResource()
# A shared PostgreSQL catalog comes from the environment, so its password never enters code or run config.
_memory = (
    MemoryCatalogResource(url=EnvVar("MEMORIES_CATALOG_URL"))
    if os.environ.get("MEMORIES_CATALOG_URL")
    else MemoryCatalogResource()
)

defs = Definitions(
    assets=load_assets_from_modules(_MODULES),
    asset_checks=load_asset_checks_from_modules(_MODULES),
    jobs=[
        ingest_job,
        train_job,
        analysis_job,
        report_job,
        monthly_job,
        tile_job,
        model_pipeline_job,
        memory_job,
        maintenance_job,
    ],
    schedules=[monthly_schedule],
    sensors=[new_scenes_sensor, automation_sensor],
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
