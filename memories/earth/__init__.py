"""Data acquisition: imagery, GIS layers, environmental, socioeconomic and historical sources.

The seed's names are exported lazily, so ``import memories.earth`` stays light::

    from memories.earth import GISProvider, EnvironmentalData, SocioeconomicData, HistoricalMaps
    from memories.earth import SatelliteImagery
    from memories.earth import DataProvider, SatelliteProvider   # the seed's provider pattern (providers.py)
"""

from __future__ import annotations

from memories._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "GISProvider": "memories.earth.gis",
    "EnvironmentalData": "memories.earth.weather",
    "SocioeconomicData": "memories.earth.socioeconomic",
    "HistoricalMaps": "memories.earth.historical",
    "SatelliteImagery": "memories.earth.satellite",
    "DataProvider": "memories.earth.providers",
    "SatelliteProvider": "memories.earth.providers",
    "GISDataProvider": "memories.earth.providers",
    "EnvironmentalProvider": "memories.earth.providers",
    "SocioeconomicProvider": "memories.earth.providers",
    "HistoricalMapsProvider": "memories.earth.providers",
}
"""Public name -> module that defines it (add yours here)."""

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
