"""The one home of the STAC catalog profiles: API root, collection, asset keys.

Each profile maps the catalog's asset keys to the common band names the pipeline
uses (``red``, ``nir``, ``scl``, ...). Switching from the embedded world to Earth
Search or Planetary Computer is choosing another profile, not changing code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from memories.errors import ConfigError

COMMON_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16", "swir22")
"""Reflectance bands the composites carry, in this order."""
MASK_BAND = "scl"


@dataclass(frozen=True)
class CatalogProfile:
    """A STAC API and how to read its Sentinel-2 L2A items.

    Attributes:
        name: profile name.
        url: API root, or None for the embedded server started locally.
        collection: the collection searched.
        asset_keys: common band name -> asset key in that catalog's items.
    """

    name: str
    url: str | None
    collection: str
    asset_keys: Mapping[str, str] = field(default_factory=dict)

    def asset_key(self, band: str) -> str:
        """The asset key of a common band name."""
        try:
            return self.asset_keys[band]
        except KeyError:
            raise ConfigError(
                f"catalog profile {self.name!r} has no asset for band {band!r}; "
                f"known bands: {sorted(self.asset_keys)}"
            ) from None


_EARTH_SEARCH_KEYS = {b: b for b in (*COMMON_BANDS, MASK_BAND)}
_PLANETARY_KEYS = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}

PROFILES: Mapping[str, CatalogProfile] = MappingProxyType(
    {
        "embedded": CatalogProfile("embedded", None, "sentinel-2-l2a", MappingProxyType(_EARTH_SEARCH_KEYS)),
        "earth-search": CatalogProfile(
            "earth-search",
            "https://earth-search.aws.element84.com/v1",
            "sentinel-2-l2a",
            MappingProxyType(_EARTH_SEARCH_KEYS),
        ),
        "planetary-computer": CatalogProfile(
            "planetary-computer",
            "https://planetarycomputer.microsoft.com/api/stac/v1",
            "sentinel-2-l2a",
            MappingProxyType(_PLANETARY_KEYS),
        ),
    }
)


def get_profile(name: str, *, url: str | None = None, collection: str | None = None) -> CatalogProfile:
    """A profile by name, optionally with another URL or collection."""
    try:
        base = PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown catalog profile {name!r}; choose one of {sorted(PROFILES)}") from None
    return CatalogProfile(base.name, url or base.url, collection or base.collection, base.asset_keys)
