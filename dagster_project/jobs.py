"""Jobs: ingest a tile-month, train the land-cover model, analyse a tile-month."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from assets.gis import gis_layers
from assets.imagery import spectral_indices, stac_items, surface_reflectance
from assets.models import land_cover, land_cover_model
from assets.reports import environmental_report
from dagster_project.partitions import month_tile_partitions

INGEST = AssetSelection.assets(stac_items, surface_reflectance, spectral_indices, gis_layers)
ANALYSIS = AssetSelection.assets(land_cover, environmental_report)

ingest_job = define_asset_job(
    "ingest_job",
    selection=INGEST,
    partitions_def=month_tile_partitions,
    description="Scenes, cloud-free composite, indices and GIS layers of one tile-month.",
)
train_job = define_asset_job(
    "train_job",
    selection=AssetSelection.assets(land_cover_model),
    description="Train and register the land-cover model on the composites in memory.",
)
analysis_job = define_asset_job(
    "analysis_job",
    selection=ANALYSIS,
    partitions_def=month_tile_partitions,
    description="Land cover and the environmental report of one tile-month (needs a registered model).",
)
monthly_job = define_asset_job(
    "monthly_job",
    selection=INGEST | ANALYSIS,
    partitions_def=month_tile_partitions,
    description="Everything of one tile-month, from the STAC search to the report.",
)
