"""Jobs: ingest, train, analyse and report on a tile-month; per-tile sources; the memory graphs."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from assets.forecast import ndvi_forecast
from assets.gis import gis_layers
from assets.imagery import spectral_indices, stac_items, surface_reflectance
from assets.maintenance import raster_garbage_collection
from assets.memory import event_hypergraph, knowledge_graph, spatial_index, storage_tiering
from assets.model_pipeline import change_trend
from assets.models import change_map, change_model, land_cover, land_cover_model
from assets.multimodal import multimodal_land_use, multimodal_model
from assets.partitions import month_tile_partitions, tiles_partitions
from assets.report_disaster import disaster_report
from assets.report_environmental import environmental_report
from assets.report_historical import historical_report
from assets.report_real_estate import real_estate_report
from assets.report_urban import urban_report
from assets.sources import climate_series, historical_map, socioeconomic_regions
from assets.terrain import terrain

INGEST = AssetSelection.assets(stac_items, surface_reflectance, spectral_indices, gis_layers, climate_series)
ANALYSIS = AssetSelection.assets(land_cover, change_map, environmental_report)
REPORTS = AssetSelection.assets(
    multimodal_land_use, disaster_report, urban_report, historical_report, real_estate_report
)

ingest_job = define_asset_job(
    "ingest_job",
    selection=INGEST,
    partitions_def=month_tile_partitions,
    description="Scenes, cloud-free composite, indices, GIS layers and climate of one tile-month.",
)
train_job = define_asset_job(
    "train_job",
    selection=AssetSelection.assets(land_cover_model, change_model, multimodal_model),
    description="Train and register the land-cover, change and multi-modal land-use models on the composites in "
    "memory.",
)
analysis_job = define_asset_job(
    "analysis_job",
    selection=ANALYSIS,
    partitions_def=month_tile_partitions,
    description="Land cover, change map and the environmental report of one tile-month (needs registered models).",
)
report_job = define_asset_job(
    "report_job",
    selection=REPORTS,
    partitions_def=month_tile_partitions,
    description="The multi-modal land use and the disaster, urban, historical and real-estate reports of one "
    "tile-month, read from the memory (needs the tile-month's land cover and the tile's census regions and "
    "historical map: run tile_job first).",
)
monthly_job = define_asset_job(
    "monthly_job",
    selection=INGEST | ANALYSIS | REPORTS,
    partitions_def=month_tile_partitions,
    description="Everything of one tile-month, from the STAC search to the reports.",
)
tile_job = define_asset_job(
    "tile_job",
    selection=AssetSelection.assets(socioeconomic_regions, historical_map, terrain, ndvi_forecast),
    partitions_def=tiles_partitions,
    description="Per-tile sources and series: census districts, the georeferenced historical map, the terrain, "
    "the NDVI forecast.",
)
model_pipeline_job = define_asset_job(
    "model_pipeline_job",
    selection=AssetSelection.assets(change_trend),
    partitions_def=tiles_partitions,
    description="The seed's model pipeline per tile: land cover, change, trend, uncertainty carried (needs models).",
)
maintenance_job = define_asset_job(
    "maintenance_job",
    selection=AssetSelection.assets(raster_garbage_collection),
    description="Delete chunks no snapshot references (left by killed writes) from every raster store; versions stay.",
)
memory_job = define_asset_job(
    "memory_job",
    selection=AssetSelection.assets(spatial_index, event_hypergraph, knowledge_graph, storage_tiering),
    description="Spatial index, event hypergraph, knowledge graph over what the pipeline holds; then storage tiering.",
)

defs = Definitions(
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
    ]
)
