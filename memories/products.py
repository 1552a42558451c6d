"""The names of the memory's products: one home for each product (asset) name the library, assets and server use.

Each product the pipeline writes is stored under its name (the Dagster asset key, the catalog's ``asset``
column, the Zarr group's directory); a reader that looks a product up by name imports the constant from
here instead of spelling the string, so a rename is one edit and a typo is an ``ImportError``.
"""

from __future__ import annotations

from typing import Final

# -- acquisition --------------------------------------------------------------------------------
STAC_ITEMS: Final = "stac_items"
SURFACE_REFLECTANCE: Final = "surface_reflectance"
SPECTRAL_INDICES: Final = "spectral_indices"
GIS_LAYERS: Final = "gis_layers"
CLIMATE_SERIES: Final = "climate_series"
SOCIOECONOMIC_REGIONS: Final = "socioeconomic_regions"
HISTORICAL_MAP: Final = "historical_map"
TERRAIN: Final = "terrain"

# -- models ---------------------------------------------------------------------------------------
LAND_COVER_MODEL: Final = "land_cover_model"
LAND_COVER: Final = "land_cover"
CHANGE_MODEL: Final = "change_model"
CHANGE_MAP: Final = "change_map"
CHANGE_TREND: Final = "change_trend"
MULTIMODAL_MODEL: Final = "multimodal_model"
MULTIMODAL_LAND_USE: Final = "multimodal_land_use"
NDVI_FORECAST: Final = "ndvi_forecast"

# -- memory ---------------------------------------------------------------------------------------
SPATIAL_INDEX: Final = "spatial_index"
KNOWLEDGE_GRAPH: Final = "knowledge_graph"
EVENT_HYPERGRAPH: Final = "event_hypergraph"
STORAGE_TIERING: Final = "storage_tiering"
TEMPORAL_MEMORY: Final = "temporal_memory"
RASTER_GARBAGE_COLLECTION: Final = "raster_garbage_collection"

# -- applications ---------------------------------------------------------------------------------
ENVIRONMENTAL_REPORT: Final = "environmental_report"
DISASTER_REPORT: Final = "disaster_report"
REAL_ESTATE_REPORT: Final = "real_estate_report"
URBAN_REPORT: Final = "urban_report"
HISTORICAL_REPORT: Final = "historical_report"

REPORTS: Final = (ENVIRONMENTAL_REPORT, DISASTER_REPORT, REAL_ESTATE_REPORT, URBAN_REPORT, HISTORICAL_REPORT)
"""Every application report product, in the order the report index lists them."""
