"""Where acquisition reads when no source is named: the configured sample world (the embedded default).

The library's no-argument constructors (``GISProvider()``, the providers of
``memories.earth.providers``) take their files from here, as the Dagster resources
do when their paths are empty: the GIS GeoPackage, the weather stations, the census
table and regions, the scanned historical maps of the world that ``config.sample``
describes, generated on first use (``SampleWorld.ensure``).
"""

from __future__ import annotations

from typing import Any

from memories.config import Settings


def sample_world(settings: Settings | None = None) -> Any:
    """The sample world of ``settings.sample`` (default: the live ``config``), generated if missing."""
    from memories.config import config
    from memories.sample import SampleWorld, SampleWorldSpec

    s = settings if settings is not None else config
    return SampleWorld.ensure(SampleWorldSpec.from_settings(s.sample), s.sample.root)


def default_gis_source(settings: Settings | None = None) -> str:
    """The vector file of the GIS layers: the sample world's GeoPackage (EPSG:4326)."""
    return str(sample_world(settings).gis_path)


def default_climate_sources(settings: Settings | None = None) -> list[str]:
    """The weather station files (TMY3 format): one per sample-world tile."""
    return [str(p) for p in sample_world(settings).climate_paths]


def default_census_sources(settings: Settings | None = None) -> tuple[str, str]:
    """(census table CSV, region polygons) of the sample world."""
    world = sample_world(settings)
    return str(world.census_table_path), str(world.census_regions_path)


def default_historical_sources(tile_id: str, settings: Settings | None = None) -> tuple[str, str]:
    """(scanned map, GCP file) of one sample-world tile."""
    world = sample_world(settings)
    return str(world.historical_scan_path(tile_id)), str(world.historical_gcps_path(tile_id))
