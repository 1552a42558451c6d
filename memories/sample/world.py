"""A generated sample world on disk and its ground truth.

``SampleWorld.ensure(spec, root)`` is the usual entry point: it opens the world
under ``root`` if one of that spec is there, and generates it otherwise. The
ground truth (land cover at any instant, clear-sky reflectance of any scene) is
recomputed from the spec, deterministically, rather than read back.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np

from memories.errors import ConfigError, DataSourceError
from memories.grid import TileGrid
from memories.months import parse_instant
from memories.sample.generate import GENERATOR_VERSION, MANIFEST_NAME, write_world
from memories.sample.landscape import Landscape, build_landscape
from memories.sample.scenes import clear_sky, repeat_to_10m
from memories.sample.spec import Event, EventKind, SampleWorldSpec
from memories.sample.spectra import BAND_INFO, REFLECTANCE_BANDS

__all__ = ["MANIFEST_NAME", "SampleWorld", "generate_world"]


def generate_world(spec: SampleWorldSpec, root: str | Path, workers: int | None = None) -> SampleWorld:
    """Generate the world of ``spec`` under ``root`` and open it (``write_world``, then ``SampleWorld.open``).

    Replaces the folders of ``memories.sample.generate.OWNED_FOLDERS`` under ``root`` (nothing else).
    Deterministic: the same spec gives the same arrays.

    Args:
        spec: size and seed of the world.
        root: local folder; created if missing.
        workers: processes rendering and writing scenes; default: one per CPU core.
    """
    return SampleWorld.open(write_world(spec, root, workers))


class SampleWorld:
    """A sample world generated under a local folder.

    Attributes:
        root: the folder (absolute).
        spec: the spec it was generated from.
        manifest: the parsed ``truth/manifest.json``.
    """

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self.spec = SampleWorldSpec.from_dict(manifest["spec"])

    @classmethod
    def open(cls, root: str | Path) -> SampleWorld:
        """Open the world generated under ``root``.

        Raises:
            DataSourceError: no complete world is there.
        """
        root = Path(root).expanduser().resolve()
        path = root / "truth" / MANIFEST_NAME
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataSourceError(
                f"no sample world under {root}: {path} is missing; generate one with "
                f"`python -m memories.sample generate --root {root}` or SampleWorld.ensure(spec, root)"
            ) from None
        return cls(root, manifest)

    @classmethod
    def ensure(cls, spec: SampleWorldSpec, root: str | Path) -> SampleWorld:
        """Open the world of ``spec`` under ``root``, generating it first when the
        manifest is missing, was written for another spec or by another generator
        version. Safe to call from several processes at once (a file lock)."""
        from filelock import FileLock

        root = Path(root).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / ".generate.lock")):
            try:
                world = cls.open(root)
                current = (
                    world.manifest.get("generator_version") == GENERATOR_VERSION
                    and world.spec == spec
                    and world.items_path.exists()
                )
                if current:
                    return world
            except DataSourceError:
                pass
            return generate_world(spec, root)

    # -- where things are ------------------------------------------------------
    @property
    def collection_path(self) -> Path:
        """``stac/collection.json``: the ``sentinel-2-l2a`` collection."""
        return self.root / "stac" / "collection.json"

    @property
    def items_path(self) -> Path:
        """``stac/items.json``: a FeatureCollection of every item."""
        return self.root / "stac" / "items.json"

    @property
    def gis_path(self) -> Path:
        """``gis/world.gpkg``: layers landuse, water, roads, buildings in EPSG:4326."""
        return self.root / "gis" / "world.gpkg"

    def climate_path(self, tile_id: str) -> Path:
        """``climate/<tile>.csv``: the tile's weather station, a TMY3-format file."""
        self.tile(tile_id)
        return self.root / "climate" / f"{tile_id}.csv"

    @property
    def climate_paths(self) -> list[Path]:
        """The station files of every tile."""
        return [self.climate_path(t.tile_id) for t in self.tiles]

    @property
    def census_regions_path(self) -> Path:
        """``census/districts.gpkg``: layer ``districts`` (district_id, name, tile_id), EPSG:4326."""
        return self.root / "census" / "districts.gpkg"

    @property
    def census_table_path(self) -> Path:
        """``census/districts.csv``: district_id, name, year, population, income_per_capita."""
        return self.root / "census" / "districts.csv"

    def census_truth(self) -> dict[str, Any]:
        """The planted flaws of the census table: ``gaps`` and ``jumps`` as [district_id, year]."""
        return dict(json.loads((self.root / "census" / "truth.json").read_text()))

    def historical_scan_path(self, tile_id: str) -> Path:
        """``historical/<tile>/scan.tif``: the scanned map, uint8 classes with a colour table."""
        self.tile(tile_id)
        return self.root / "historical" / tile_id / "scan.tif"

    def historical_gcps_path(self, tile_id: str) -> Path:
        """``historical/<tile>/gcps.json``: the scan's ground control points."""
        self.tile(tile_id)
        return self.root / "historical" / tile_id / "gcps.json"

    def historical_truth(self, tile_id: str) -> dict[str, Any]:
        """The scan's true pixel-to-map parameters and exact check points."""
        self.tile(tile_id)
        return dict(json.loads((self.root / "historical" / tile_id / "truth.json").read_text()))

    def landcover_base_path(self, tile_id: str) -> Path:
        """``truth/<tile>/landcover_base.tif``: uint8 land cover before any event."""
        self.tile(tile_id)
        return self.root / "truth" / tile_id / "landcover_base.tif"

    def dem_path(self, tile_id: str) -> Path:
        """``dem/<tile>.tif``: the tile's analytic DEM (``sample/terrain.py``) as a float32 COG, written on
        first use (it follows from the spec like the truth, so worlds generated before it need no rebuild)."""
        from memories.sample.terrain import write_dem_cog

        path = self.root / "dem" / f"{tile_id}.tif"
        if not path.exists():
            write_dem_cog(self.terrain(tile_id), path)
        return path

    def terrain(self, tile_id: str) -> Any:
        """The tile's analytic terrain (``SampleTerrain``): exact DEM, slope, aspect, D8, accumulation, HAND."""
        from memories.sample.terrain import sample_terrain

        self.tile(tile_id)
        return sample_terrain(self.spec, tile_id)

    # -- what is there ---------------------------------------------------------
    @cached_property
    def tiles(self) -> list[TileGrid]:
        """The tile grids, in catalogue order."""
        return [TileGrid.from_dict(t) for t in self.manifest["tiles"]]

    def tile(self, tile_id: str) -> TileGrid:
        """The grid of one tile.

        Raises:
            ConfigError: the world has no such tile.
        """
        for t in self.tiles:
            if t.tile_id == tile_id:
                return t
        raise ConfigError(
            f"tile {tile_id!r} is not in the sample world under {self.root}; "
            f"its tiles are {[t.tile_id for t in self.tiles]}"
        )

    def months(self) -> list[str]:
        """The covered months, ``YYYY-MM``."""
        return list(self.manifest["months"])

    def scene_datetimes(self, tile_id: str) -> list[datetime]:
        """Acquisition times (UTC) of a tile's scenes, oldest first."""
        self.tile(tile_id)
        return self.spec.scene_datetimes(tile_id)

    def items(self, tile_id: str | None = None) -> list[dict[str, Any]]:
        """STAC item dicts, oldest first, of one tile or of all."""
        features = json.loads(self.items_path.read_text())["features"]
        if tile_id is None:
            return cast(list[dict[str, Any]], features)
        self.tile(tile_id)
        return [f for f in features if f["properties"]["grid:code"] == f"MGRS-{tile_id}"]

    def events(self, tile_id: str) -> list[Event]:
        """The scripted events of a tile, oldest first (from the manifest)."""
        self.tile(tile_id)
        return [Event.from_dict(e) for e in self.manifest["events"] if e["tile_id"] == tile_id]

    def event(self, tile_id: str, kind: EventKind) -> Event:
        """The event of one kind on a tile."""
        for e in self.events(tile_id):
            if e.kind == kind:
                return e
        raise ConfigError(f"no event {kind!r} on tile {tile_id}; kinds are clear_cut, new_district, flood")

    # -- ground truth ----------------------------------------------------------
    def landcover_truth(self, tile_id: str, when: datetime) -> np.ndarray:
        """uint8 land-cover codes on the tile grid at ``when``: the base land cover
        with the events active at that instant (naive datetimes are read as UTC)."""
        return self._landscape(tile_id).landcover_at(parse_instant(when, "when"))

    def event_mask(self, tile_id: str, kind: EventKind) -> np.ndarray:
        """bool on the tile grid: the pixels an event changes."""
        return self._landscape(tile_id).event_masks[kind].copy()

    def clear_sky_reflectance(self, tile_id: str, when: datetime, band: str) -> np.ndarray:
        """Noise-free, cloud-free surface reflectance (0-1) that a scene taken at
        ``when`` has in ``band``: float32 on the 10 m tile grid. A 20 m band is the
        2 x 2 mean of the 10 m model repeated onto the 10 m grid, as a 20 m pixel
        read at 10 m gives it."""
        if band not in REFLECTANCE_BANDS:
            raise ConfigError(f"band {band!r} has no reflectance; choose one of {list(REFLECTANCE_BANDS)}")
        r = clear_sky(self._landscape(tile_id), parse_instant(when, "when"), band)
        return repeat_to_10m(r) if BAND_INFO[band].resolution == 20 else r

    def _landscape(self, tile_id: str) -> Landscape:
        self.tile(tile_id)
        return build_landscape(self.spec, tile_id)

    def __repr__(self) -> str:
        return f"SampleWorld({str(self.root)!r}, {self.spec})"
