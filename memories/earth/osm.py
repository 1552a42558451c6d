"""OpenStreetMap PBF extracts read through GDAL's OSM driver (pyogrio).

GDAL exposes an ``.osm.pbf`` file as the layers ``points``, ``lines``,
``multilinestrings``, ``multipolygons`` and ``other_relations``; a few common keys
are columns, every other tag sits in the ``other_tags`` hstore string
(``"addr:street"=>"Mannerheimintie","addr:housenumber"=>"5"``). Our layers are
queries over them:

| layer | GDAL layer | filter |
| --- | --- | --- |
| ``buildings`` | multipolygons | ``building IS NOT NULL`` |
| ``roads`` | lines | ``highway IS NOT NULL`` |
| ``landuse`` | multipolygons | ``landuse IS NOT NULL`` |
| ``water`` | multipolygons | ``natural = 'water'``, ``landuse = 'reservoir'``, or a ``water`` tag |
| ``places`` | points | ``place IS NOT NULL`` |

A multipolygon GDAL cannot assemble (an unclosed ring of a broken relation) comes
back without geometry; it is dropped and counted, never silently lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from memories.errors import ConfigError, DataSourceError

OSM_EXTENSIONS: tuple[str, ...] = (".osm.pbf", ".pbf", ".osm")
"""File name endings read with GDAL's OSM driver."""

HSTORE_TAGS: tuple[str, ...] = ("addr:street", "addr:housenumber", "start_date", "water", "waterway")
"""Tags lifted out of ``other_tags`` into their own columns (when not a column already)."""


@dataclass(frozen=True)
class OsmQuery:
    """One of our layers as a query over a GDAL OSM layer.

    Attributes:
        gdal_layer: ``points``, ``lines`` or ``multipolygons``.
        where: OGR SQL attribute filter.
    """

    gdal_layer: str
    where: str


OSM_LAYERS: dict[str, OsmQuery] = {
    "buildings": OsmQuery("multipolygons", "building IS NOT NULL"),
    "roads": OsmQuery("lines", "highway IS NOT NULL"),
    "landuse": OsmQuery("multipolygons", "landuse IS NOT NULL"),
    "water": OsmQuery(
        "multipolygons",
        "\"natural\" = 'water' OR landuse = 'reservoir' OR other_tags LIKE '%\"water\"=>%'",
    ),
    "places": OsmQuery("points", "place IS NOT NULL"),
}

_HSTORE_PAIR = re.compile(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"')


def parse_hstore(text: str | None) -> dict[str, str]:
    """The tags of an ``other_tags`` hstore string; ``{}`` for None or empty.

    >>> parse_hstore('"addr:street"=>"Aleksanterinkatu","name:sv"=>"Alexandersgatan"')
    {'addr:street': 'Aleksanterinkatu', 'name:sv': 'Alexandersgatan'}
    """
    if not text:
        return {}
    return {_unescape(k): _unescape(v) for k, v in _HSTORE_PAIR.findall(text)}


def read_osm_layer(path: str, layer: str, *, bbox: tuple[float, float, float, float] | None = None) -> tuple[Any, int]:
    """One of our layers from an OSM extract, in EPSG:4326, with hstore tags as columns.

    Args:
        path: ``.osm.pbf`` file.
        layer: a key of ``OSM_LAYERS``.
        bbox: (west, south, east, north) in degrees to read only features that touch it.

    Returns:
        (GeoDataFrame, dropped): the features with a geometry, and how many
        features GDAL matched but could not give a geometry.
    """
    import geopandas as gpd
    import pyogrio

    if layer not in OSM_LAYERS:
        raise ConfigError(f"OSM layer {layer!r} is not one we read; choose one of {sorted(OSM_LAYERS)}")
    query = OSM_LAYERS[layer]
    try:
        frame = pyogrio.read_dataframe(path, layer=query.gdal_layer, where=query.where, bbox=bbox, on_invalid="ignore")
    except Exception as e:
        raise DataSourceError(
            f"GDAL's OSM driver could not read layer {query.gdal_layer!r} of {path}: {e}; "
            "check that the file is an OSM PBF extract"
        ) from e
    if frame.crs is None:
        frame = frame.set_crs("EPSG:4326")
    if "other_tags" in frame.columns:
        tags = [parse_hstore(t) for t in frame["other_tags"]]
        for key in HSTORE_TAGS:
            if key not in frame.columns:
                frame[key] = [t.get(key) for t in tags]
    missing = frame.geometry.isna() | frame.geometry.is_empty
    kept = frame[~missing.to_numpy(dtype=bool)].reset_index(drop=True)
    return gpd.GeoDataFrame(kept, geometry="geometry", crs=frame.crs), int(missing.sum())


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)
