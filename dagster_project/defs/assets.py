"""Where an asset module is registered: its assets and asset checks join the code location.

To add assets, write the module under ``assets/`` and add it to :data:`ASSET_MODULES` (import it above).
"""

from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

import assets.forecast
import assets.gis
import assets.imagery
import assets.maintenance
import assets.memory
import assets.model_pipeline
import assets.models
import assets.multimodal
import assets.report_disaster
import assets.report_environmental
import assets.report_historical
import assets.report_real_estate
import assets.report_urban
import assets.sources
import assets.terrain

ASSET_MODULES = [
    assets.imagery,
    assets.gis,
    assets.sources,
    assets.terrain,
    assets.models,
    assets.model_pipeline,
    assets.multimodal,
    assets.report_environmental,
    assets.report_disaster,
    assets.report_urban,
    assets.report_historical,
    assets.report_real_estate,
    assets.memory,
    assets.forecast,
    assets.maintenance,
]
"""Every module of ``assets/`` whose assets and checks the code location serves."""

defs = Definitions(
    assets=load_assets_from_modules(ASSET_MODULES),
    asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
)
