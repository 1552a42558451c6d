"""Configuration of the memories library: one validated settings tree, loaded on first use.

``config`` is the live settings object; ``update_config("storage.root", "s3://b/p")``
changes one value by its dotted key, ``update_config({"processing.use_gpu": False,
"storage.cache_size_gb": 5})`` several at once (all or none), and validates the result.
Defaults run the embedded sample world; a YAML file named by ``MEMORIES_CONFIG`` overrides them.
``reset_config()`` undoes every update; ``load_settings(path)`` reads and validates a
file without touching ``config``. ``config`` (and each of its sections) stays one
object for the whole process, so ``from memories.config import config`` never goes stale.

Loading is lazy: importing this module (or anything of the project) reads neither the
environment nor ``MEMORIES_CONFIG``; the first attribute read of ``config`` (or the first
``update_config``) does, so a program may set ``MEMORIES_CONFIG`` after its imports.
Secrets never live here: they come from the environment where they are used.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from memories.errors import ConfigError
from memories.grid import TileGrid
from memories.months import check_month

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """The local folder for data: ``$MEMORIES_DATA`` or ``<project>/data``."""
    return Path(os.environ.get("MEMORIES_DATA", PROJECT_ROOT / "data")).resolve()


class _Section(BaseModel):
    """A settings model that refuses keys it does not have (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid")


class StorageSettings(_Section):
    """Where products live."""

    root: str = Field(default_factory=lambda: default_data_dir().as_uri() + "/store")
    """Storage root URI: ``file:///abs/path`` or ``s3://bucket/prefix``."""
    s3_endpoint_url: str | None = None
    """Endpoint of an S3-compatible server (MinIO, moto, Ceph); None for AWS."""
    catalog_path: str = Field(default_factory=lambda: str(default_data_dir() / "memory_catalog.sqlite"))
    """The SQLite file of the memory catalog (always local)."""
    cache_size_gb: float = Field(10.0, gt=0)
    """Size cap of each local disk cache (:class:`memories.cache.Cache`: STAC answers, COGs, user caches)
    that is not given its own, GiB (2**30 bytes); the least recently used entries go beyond it."""


class SampleSettings(_Section):
    """Size of the embedded sample world."""

    seed: int = 42
    n_tiles: int = Field(2, ge=1, le=4)
    start_month: str = "2023-01"
    """First month, ``YYYY-MM``."""
    n_months: int = Field(24, ge=2, le=120)
    size_px: int = Field(512, ge=64, le=4096)
    """Pixels per tile side at 10 m."""
    revisit_days: int = Field(5, ge=1, le=30)
    root: str = Field(default_factory=lambda: str(default_data_dir() / "sample_world"))
    """Local folder the sample world is generated into."""

    @field_validator("start_month", mode="before")
    @classmethod
    def _month(cls, v: Any) -> str:
        return check_month(v, "sample.start_month")


class CatalogSettings(_Section):
    """Which STAC API to search and how its asset keys map to band names."""

    profile: Literal[
        "embedded",
        "earth-search",
        "earth-search-landsat",
        "earth-search-v0",
        "planetary-computer",
        "planetary-computer-landsat",
    ] = "embedded"
    url: str | None = None
    """API root; None means the profile's own (the embedded one is started locally)."""
    collection: str = "sentinel-2-l2a"
    max_cloud_cover: float = Field(80.0, ge=0, le=100)
    """Scene-level filter on ``eo:cloud_cover``, percent."""


class AoiSettings(_Section):
    """The area of interest: the tiles the pipeline covers, each with its declared grid."""

    tiles: list[dict[str, Any]] = Field(default_factory=list)
    """TileGrid mappings (tile_id, epsg, x_min, y_max, width, height, resolution);
    empty with the embedded profile means the sample world's tiles."""
    start_month: str | None = None
    """First month of the partitions (``YYYY-MM``); None: the sample world's first month."""
    end_month: str | None = None
    """Last month of the partitions; None: the sample world's last month (embedded)
    or open-ended (real catalogs)."""

    @field_validator("tiles", mode="before")
    @classmethod
    def _tiles(cls, v: Any) -> list[dict[str, Any]]:
        """Each entry checked as a ``TileGrid`` and kept normalized (``epsg: 'EPSG:32633'`` becomes 32633)."""
        if v is None:
            return []
        if not isinstance(v, list):
            raise ConfigError(f"aoi.tiles must be a list of tile mappings, got {v!r}")
        return [TileGrid.from_dict(t, where=f"aoi.tiles[{i}]").to_dict() for i, t in enumerate(v)]

    @field_validator("start_month", "end_month", mode="before")
    @classmethod
    def _months(cls, v: Any, info: Any) -> str | None:
        return None if v is None else check_month(v, f"aoi.{info.field_name}")

    @model_validator(mode="after")
    def _period(self) -> AoiSettings:
        if self.start_month and self.end_month and self.end_month < self.start_month:
            raise ConfigError(
                f"aoi.end_month {self.end_month!r} is before aoi.start_month {self.start_month!r}, "
                "which leaves no month to partition; swap them or fix one"
            )
        return self


class ComputeSettings(_Section):
    """Where the raster math runs."""

    dask_scheduler: str | None = None
    """``tcp://host:8786`` to join a cluster; None starts a local in-process cluster."""
    dask_threads: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1))
    chunk_px: int = Field(2048, ge=64)
    """Spatial chunk side of rasters, pixels."""
    threads_below_px: int = Field(1024 * 1024, ge=0)
    """Without ``dask_scheduler``: tile-months of fewer pixels than this compute on dask's threaded
    scheduler in the run's process instead of the local cluster, whose cost per graph (about 0.1 s
    to submit, schedule and gather) is more than their math; 0: always the cluster. A configured
    ``dask_scheduler`` is always used."""


class ModelSettings(_Section):
    """Land-cover model training, and the model versions inference uses."""

    width: int = Field(16, ge=4)
    """Channels of the U-Net's first level."""
    max_epochs: int = Field(12, ge=1)
    patch_px: int = Field(64, ge=16)
    patches_per_scene: int = Field(48, ge=1)
    seed: int = 7
    land_cover_model: str = "land_cover@latest"
    """Model id the ``land_cover`` asset predicts with: ``land_cover``, ``land_cover:3``,
    ``land_cover@latest``, ``land_cover@best`` (see :mod:`memories.ai.manager`)."""
    change_model: str = "change@latest"
    """Model id of the learned change detector the ``change_map`` asset uses (registered as ``change``)."""


class ProcessingSettings(_Section):
    """Where models run."""

    use_gpu: bool = True
    """Put models on a CUDA GPU when this machine has one (training with ``accelerator="auto"``,
    :class:`memories.ai.ModelManager` without ``device=``); False keeps them on the CPU even where
    a GPU is present. True on a machine without a GPU runs on the CPU."""


SATELLITE_PROVIDERS: dict[str, str] = {
    "embedded": "sentinel",
    "earth-search": "sentinel",
    "earth-search-v0": "sentinel",
    "planetary-computer": "sentinel",
    "earth-search-landsat": "landsat",
    "planetary-computer-landsat": "landsat",
}
"""Catalog profile -> the satellite family its collection holds."""
PROVIDER_TWINS: dict[tuple[str, str], str] = {
    ("earth-search", "landsat"): "earth-search-landsat",
    ("earth-search-landsat", "sentinel"): "earth-search",
    ("planetary-computer", "landsat"): "planetary-computer-landsat",
    ("planetary-computer-landsat", "sentinel"): "planetary-computer",
}
"""(catalog profile, provider) -> the profile of the same STAC API that serves that provider."""


class SatelliteSourceSettings(_Section):
    """Which satellite family :class:`memories.earth.SatelliteImagery` reads by default."""

    default_provider: Literal["sentinel", "landsat"] | None = None
    """``sentinel`` (Sentinel-2 L2A) or ``landsat`` (Landsat Collection 2 L2); None: the family of
    ``catalog.profile``. Setting it with :func:`update_config` switches ``catalog.profile`` to the same
    STAC API's collection of that family (``earth-search`` <-> ``earth-search-landsat``)."""


class DataSourceSettings(_Section):
    """Defaults of the acquisition layer's sources."""

    satellite: SatelliteSourceSettings = Field(default_factory=lambda: SatelliteSourceSettings())


class Settings(_Section):
    """The whole settings tree."""

    storage: StorageSettings = Field(default_factory=lambda: StorageSettings())
    sample: SampleSettings = Field(default_factory=lambda: SampleSettings())
    catalog: CatalogSettings = Field(default_factory=lambda: CatalogSettings())
    aoi: AoiSettings = Field(default_factory=lambda: AoiSettings())
    compute: ComputeSettings = Field(default_factory=lambda: ComputeSettings())
    model: ModelSettings = Field(default_factory=lambda: ModelSettings())
    processing: ProcessingSettings = Field(default_factory=lambda: ProcessingSettings())
    data_sources: DataSourceSettings = Field(default_factory=lambda: DataSourceSettings())

    @model_validator(mode="after")
    def _provider_matches_catalog(self) -> Settings:
        """``data_sources.satellite.default_provider`` is the family of ``catalog.profile`` (filled in when None)."""
        family = SATELLITE_PROVIDERS[self.catalog.profile]
        satellite = self.data_sources.satellite
        if satellite.default_provider is None:
            satellite.default_provider = family  # type: ignore[assignment]
        elif satellite.default_provider != family:
            twin = PROVIDER_TWINS.get((self.catalog.profile, satellite.default_provider))
            fix = f"set catalog.profile to {twin!r}" if twin else "choose a catalog profile that serves it"
            raise ConfigError(
                f"data_sources.satellite.default_provider is {satellite.default_provider!r} but catalog.profile "
                f"{self.catalog.profile!r} serves {family}; {fix}, or drop one of the two"
            )
        return self


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Defaults, overridden by a YAML file: ``path``, else the one named in ``$MEMORIES_CONFIG``, else none.

    Only the keys the file names change; unknown keys are errors (a typo never passes silently).
    This reads and validates; it does not change the live ``config`` (see :func:`reset_config`).

    Raises:
        ConfigError: the file is missing, is not a YAML mapping, names an unknown key, or holds an invalid value.
    """
    source = "config file" if path is not None else "MEMORIES_CONFIG"
    path = path if path is not None else os.environ.get("MEMORIES_CONFIG")
    if not path:
        return Settings()
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{source} names {str(path)!r}, which does not exist; fix the path or unset it") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, got {type(raw).__name__}")
    _check_keys(raw, Settings, f"config file {str(path)!r}")
    try:
        return Settings.model_validate(raw)
    except ValidationError as e:
        where, msg = _explain(e)
        raise ConfigError(f"config file {str(path)!r}: invalid value for {where!r}: {msg}") from None


def _explain(e: ValidationError) -> tuple[str, str]:
    """(dotted key, message) of the first error; our own ``ConfigError`` text as it is, without pydantic's prefix."""
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    cause = (err.get("ctx") or {}).get("error")
    return where, str(cause) if isinstance(cause, ConfigError) else str(err["msg"])


def _check_keys(raw: dict[str, Any], model: type[BaseModel], where: str, prefix: str = "") -> None:
    """Raise ConfigError for a key the settings tree does not have, naming the valid keys at that level."""
    fields = model.model_fields
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown config key {prefix + str(key)!r}; keys here are {sorted(fields)}")
        sub = fields[key].annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel) and isinstance(value, dict):
            _check_keys(value, sub, where, f"{prefix}{key}.")


class _LazySettings:
    """The live settings, loaded (defaults, then ``$MEMORIES_CONFIG``) on the first attribute access."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(_live(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_live(), name, value)

    def __eq__(self, other: object) -> bool:
        return _live() == (_live() if isinstance(other, _LazySettings) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(_live())


_lock = threading.RLock()
_settings: Settings | None = None

config: Settings = cast(Settings, _LazySettings())
"""The live settings tree (a stand-in that loads them on first use; attributes are the :class:`Settings`')."""


def _live() -> Settings:
    """The settings object behind ``config``, loaded on the first call."""
    global _settings
    if _settings is None:
        with _lock:
            if _settings is None:
                _settings = load_settings()
    return _settings


def is_loaded() -> bool:
    """Whether the settings were read yet (importing the project never reads them)."""
    return _settings is not None


def update_config(key: str | Mapping[str, Any], value: Any = None) -> Settings:
    """Set values by dotted key, validated; returns the live ``config``.

    ``update_config("catalog.max_cloud_cover", 30)`` sets one; ``update_config({"processing.use_gpu":
    False, "storage.cache_size_gb": 5})`` sets several, validated together (all or none).
    ``data_sources.satellite.default_provider`` switches ``catalog.profile`` to the same STAC API's
    collection of that family (``earth-search`` -> ``earth-search-landsat``), and a new
    ``catalog.profile`` brings its family along, unless the same update names both.

    ``config`` stays the same object (so does each section, ``config.storage``...): modules that did
    ``from memories.config import config`` see the change. Dagster resources and partitions take their
    defaults from ``config`` when ``resources`` / ``dagster_project`` are imported: change settings
    before that, or pass the resource's fields.

    Raises:
        ConfigError: a key does not exist (the error names the keys at that level) or a value is
            invalid; nothing changes then.
    """
    if isinstance(key, Mapping):
        if value is not None:
            raise ConfigError("update_config(mapping) takes no value; put every value in the mapping")
        changes = dict(key)
    elif isinstance(key, str):
        changes = {key: value}
    else:
        raise ConfigError(
            f"update_config({key!r}): pass a dotted key and a value, or a mapping of dotted keys to values"
        )
    with _lock:
        live = _live()
        data = live.model_dump()
        for k, v in changes.items():
            if not isinstance(k, str):
                raise ConfigError(f"update_config: key {k!r} is not a dotted key such as 'storage.cache_size_gb'")
            _set_dotted(data, k, v)
        _follow_provider(data, changes)
        try:
            new = Settings.model_validate(data)
        except ValidationError as e:
            where, msg = _explain(e)
            if where not in changes and len(changes) == 1:
                where = next(iter(changes))
            shown = repr(changes[where]) if where in changes else "(from the other values of this update)"
            raise ConfigError(f"invalid value {shown} for {where!r}: {msg}") from None
        _assign(live, new)
    return config


_PROVIDER_KEY = "data_sources.satellite.default_provider"


def _follow_provider(data: dict[str, Any], changes: Mapping[str, Any]) -> None:
    """Keep the satellite family and the catalog profile together when an update names only one of them."""
    names_profile = any(k in ("catalog", "catalog.profile") for k in changes)
    names_provider = any(k in ("data_sources", "data_sources.satellite", _PROVIDER_KEY) for k in changes)
    satellite = data["data_sources"]["satellite"]
    if names_profile and not names_provider:
        satellite["default_provider"] = None  # the new profile's family
    elif names_provider and not names_profile:
        provider, profile = satellite.get("default_provider"), data["catalog"]["profile"]
        if provider is not None and SATELLITE_PROVIDERS.get(profile) != provider:
            twin = PROVIDER_TWINS.get((profile, provider))
            if twin is None:
                serving = sorted(p for p, f in SATELLITE_PROVIDERS.items() if f == provider)
                raise ConfigError(
                    f"{_PROVIDER_KEY}={provider!r}: catalog profile {profile!r} has no {provider} collection; "
                    f"set catalog.profile to one of {serving} in the same update"
                )
            data["catalog"]["profile"] = twin


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Put ``value`` at dotted ``key`` of the dumped tree ``data``, refusing keys the tree does not have."""
    node = data
    parts = key.split(".")
    for i, p in enumerate(parts[:-1]):
        if p in node and not isinstance(node[p], dict):
            raise ConfigError(f"unknown config key {key!r}: {'.'.join(parts[: i + 1])!r} is a value, not a section")
        if not isinstance(node.get(p), dict):
            here = ".".join(parts[:i]) or "the top level"
            raise ConfigError(f"unknown config key {key!r}; keys at {here} are {sorted(node)}")
        node = node[p]
    if parts[-1] not in node:
        here = ".".join(parts[:-1]) or "the top level"
        raise ConfigError(f"unknown config key {key!r}; keys at {here} are {sorted(node)}")
    section = _section_model(parts)
    if section is not None and isinstance(value, dict):
        _check_keys(value, section, f"update_config({key!r}, ...)", prefix=f"{key}.")
    node[parts[-1]] = value


def reset_config(path: str | os.PathLike[str] | None = None) -> Settings:
    """Put the live ``config`` back to :func:`load_settings` (``path``, else ``$MEMORIES_CONFIG``, else defaults).

    Undoes every :func:`update_config`; ``config`` stays the same object. Returns it.

    Raises:
        ConfigError: as :func:`load_settings`; nothing changes then.
    """
    global _settings
    new = load_settings(path)
    with _lock:
        if _settings is None:
            _settings = new
        else:
            _assign(_settings, new)
    return config


def _section_model(parts: list[str]) -> type[BaseModel] | None:
    """The settings model at a dotted key (``["storage"]`` -> ``StorageSettings``); None for a plain value."""
    model: type[BaseModel] = Settings
    for p in parts:
        sub = model.model_fields[p].annotation
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            return None
        model = sub
    return model


def _assign(live: BaseModel, new: BaseModel) -> None:
    """Copy ``new`` into ``live`` field by field, keeping the section objects others may hold."""
    for name in type(new).model_fields:
        value = getattr(new, name)
        current = getattr(live, name)
        if isinstance(value, BaseModel) and type(current) is type(value):
            _assign(current, value)
        else:
            setattr(live, name, value)
