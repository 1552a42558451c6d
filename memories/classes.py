"""The one home of land-cover classes: codes, names, colours and OSM tags.

Code 0 means "no label / no data" everywhere (labels, predictions, truth rasters).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LandCoverClass:
    """One land-cover class."""

    code: int
    name: str
    color: str
    """Hex colour used on maps."""


NO_LABEL = 0

LAND_COVER_CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(1, "water", "#3b7dd8"),
    LandCoverClass(2, "forest", "#1f6b2a"),
    LandCoverClass(3, "cropland", "#e3c84b"),
    LandCoverClass(4, "grassland", "#8fd16a"),
    LandCoverClass(5, "built-up", "#c0392b"),
    LandCoverClass(6, "bare soil", "#9c7a54"),
)

CLASS_BY_NAME: dict[str, LandCoverClass] = {c.name: c for c in LAND_COVER_CLASSES}
CLASS_BY_CODE: dict[int, LandCoverClass] = {c.code: c for c in LAND_COVER_CLASSES}
N_CLASSES = len(LAND_COVER_CLASSES) + 1
"""Number of output channels of a land-cover model (class codes 0..6, 0 ignored)."""

# OSM-style tags of the ``landuse`` / ``natural`` keys to our classes; used to
# rasterize GIS land-use polygons into training labels.
OSM_LANDUSE_TO_CLASS: dict[str, int] = {
    "forest": 2,
    "wood": 2,
    "farmland": 3,
    "meadow": 4,
    "grass": 4,
    "residential": 5,
    "industrial": 5,
    "commercial": 5,
    "retail": 5,
    "construction": 6,
    "water": 1,
    "reservoir": 1,
    "basin": 1,
}
