"""Models by id, ready for inference, and pipelines that feed one model's output into the next.

A model id names a model in the registry and picks one of its versions:

- ``"land_cover"`` or ``"land_cover@latest"``: the newest version;
- ``"land_cover:3"``: version 3;
- ``"land_cover@best"``: the version with the best value of the manager's
  ``best_metric`` (``val_miou`` by default, higher is better);
  ``"land_cover@best:val_accuracy"`` names the metric;
- the seed's form ``"<name>_v<N>"``: version N, e.g. ``"satellite_change_detection_v2"``.

The seed's model names are aliases of registry names, all in :data:`SEED_MODEL_NAMES`
(``satellite_change_detection`` is the ``change`` detector, ``time_series_trend_analyzer``
the ``ndvi_trend`` model); both names work everywhere an id is taken.

A *loader* per model name turns a registered version into an object ready for
inference; the default rebuilds the checkpoint's class from its
hyper-parameters (``ModelRegistry.load``), which covers every LightningModule of
``memories.ai``. Other kinds of models register their own with
:meth:`ModelManager.register_loader`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from memories.ai.devices import default_device
from memories.ai.inference import LoadedModel, check_params
from memories.ai.pipeline import ModelPipeline
from memories.ai.registry import ModelNotFoundError, ModelRegistry, ModelVersion
from memories.errors import ConfigError
from memories.grid import M2_PER_HA
from memories.store.paths import StorageRoot

__all__ = [
    "SEED_MODEL_NAMES",
    "LoadedModel",
    "ModelManager",
    "class_area_summary",
    "parse_model_id",
]

Loader = Callable[[ModelRegistry, ModelVersion], Any]
"""Builds the inference object of one registered version."""

_ID = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*?)(?::(?P<version>\d+)|@(?P<tag>latest|best)(?::(?P<metric>[^\s:]+))?)?$"
)
_SEED_ID = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*?)_v(?P<version>\d+)$")

SEED_MODEL_NAMES: Mapping[str, str] = MappingProxyType(
    {"satellite_change_detection": "change", "time_series_trend_analyzer": "ndvi_trend"}
)
"""The seed's model names and the registry names they stand for: the one place of these aliases."""


def parse_model_id(model_id: str) -> tuple[str, int | str | None, str | None]:
    """(name, version number or ``"latest"``/``"best"`` or None, metric or None) of a model id.

    Raises:
        ConfigError: the id is not of a form listed in the module docstring.
    """
    m = _ID.match(model_id.strip())
    if m is None:
        raise ConfigError(
            f"model id {model_id!r} is not understood; use 'land_cover', 'land_cover:3', "
            "'land_cover@latest', 'land_cover@best' or 'land_cover@best:val_accuracy'"
        )
    version: int | str | None = int(m["version"]) if m["version"] else m["tag"]
    return m["name"], version, m["metric"]


class ModelManager:
    """Load registered models by id (``land_cover``, ``land_cover:3``, ``land_cover@best``).

    Args:
        root: Storage root of the model registry; the configured one if None.
        best_metric: Metric ``@best`` maximises when the id names none.
        map_location: Device models are loaded to (``"cpu"``, ``"cuda"``) unless ``load_model`` names one;
            None: a CUDA GPU when there is one and ``processing.use_gpu`` is True, else the CPU
            (:func:`memories.ai.devices.default_device`, asked at each load).
    """

    def __init__(
        self, root: StorageRoot | None = None, *, best_metric: str = "val_miou", map_location: str | None = None
    ) -> None:
        if root is None:
            from memories.config import config

            root = StorageRoot(config.storage.root, config.storage.s3_endpoint_url)
        self.root = root
        self.registry = ModelRegistry(root)
        self.best_metric = best_metric
        self.map_location = map_location
        self._loaders: dict[str, Loader] = {}
        self.models: dict[str, LoadedModel] = {}
        """Models loaded by :meth:`load_model`, by the id they were asked for, until :meth:`unload_model`."""

    def register_loader(self, name: str, loader: Loader) -> None:
        """Use ``loader(registry, version)`` to build models called ``name``."""
        self._loaders[name] = loader

    def resolve(self, model_id: str) -> ModelVersion:
        """The registered version an id points to.

        Raises:
            ModelNotFoundError: no such model, version or metric; the message names the id and the
                versions that are registered.
            ConfigError: malformed id.
        """
        name, version, metric = self._parse(model_id)
        try:
            if version == "best":
                return self.registry.best(name, metric or self.best_metric)
            if isinstance(version, int):
                return self.registry.get(name, version)
            return self.registry.get(name)
        except ModelNotFoundError as e:
            raise ModelNotFoundError(f"model id {model_id!r} does not resolve: {e}; {self._registered(name)}") from e

    def load_model(
        self, model_id: str, device: str | None = None, batch_size: int | None = None, **params: Any
    ) -> LoadedModel:
        """The model an id points to, loaded and ready for inference (eval mode), with its version.

        A model already loaded under this id (same version, device and parameters) is
        returned again; :meth:`unload_model` frees it.

        Args:
            model_id: Any id of the module docstring (``change@best``, ``satellite_change_detection_v2``).
            device: ``"cpu"`` or ``"cuda"`` (``cuda:1``...); the manager's ``map_location`` if None
                (and where that is None too, ``processing.use_gpu`` decides).
            batch_size: Tiles per forward pass at inference (positive).
            params: Defaults of the model's parameters: the change detector takes ``threshold``
                (probability 0–1) and ``min_area`` (m²); the trend model ``confidence_level``,
                ``horizon``, ``metrics`` and ``seasonality``.

        Raises:
            ModelNotFoundError: the id does not resolve (the message lists what is registered).
            ConfigError: a device that is not here, a bad batch size, a parameter the model does not take.
        """
        mv = self.resolve(model_id)
        dev = _device(device or self.map_location or default_device())
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ConfigError(f"batch_size={batch_size!r}: a positive number of tiles per forward pass, e.g. 16")
        cached = self.models.get(model_id)
        if cached is not None and (cached.version, cached.device, cached.batch_size, cached.params) == (
            mv,
            dev,
            batch_size,
            params,
        ):
            return cached
        loader = self._loaders.get(mv.name)
        if loader is not None:
            model = loader(self.registry, mv)
            if hasattr(model, "to"):
                model = model.to(dev)
        else:
            model = self.registry.load(mv.name, mv.version, map_location=dev)
        check_params(model, params, f"load_model({model_id!r})")
        loaded = LoadedModel(model, mv, device=dev, batch_size=batch_size, params=dict(params))
        self.models[model_id] = loaded
        return loaded

    def unload_model(self, model_id: str) -> bool:
        """Forget the model loaded under ``model_id`` and free its device memory; False if none was loaded."""
        loaded = self.models.pop(model_id, None)
        if loaded is None:
            return False
        if loaded.device.startswith("cuda"):
            import torch

            if hasattr(loaded.model, "cpu"):
                loaded.model.cpu()
            torch.cuda.empty_cache()
        return True

    def create_pipeline(self, pipeline_config: Sequence[Mapping[str, Any]]) -> ModelPipeline:
        """A :class:`~memories.ai.pipeline.ModelPipeline` of the models the steps name, run in order.

        Each step is ``{"model_id": ..., "input_mapping": {model input: key}, "output_mapping":
        {model output: key}}`` (optional ``"params"``); keys name the values the pipeline passes on,
        starting with those given to ``run``. A mapping left out passes names unchanged.
        """
        pipeline = ModelPipeline()
        for k, step in enumerate(pipeline_config):
            if "model_id" not in step:
                raise ConfigError(f"pipeline step {k} has no 'model_id'; it has {sorted(step)}")
            unknown = sorted(set(step) - {"model_id", "input_mapping", "output_mapping", "params"})
            if unknown:
                raise ConfigError(
                    f"pipeline step {k} has keys {unknown}; "
                    "a step takes model_id, input_mapping, output_mapping and params"
                )
            pipeline.add_step(
                model=self.load_model(str(step["model_id"])),
                input_mapping=step.get("input_mapping") or {},
                output_mapping=step.get("output_mapping") or {},
                params=step.get("params") or {},
            )
        return pipeline

    def _parse(self, model_id: str) -> tuple[str, int | str | None, str | None]:
        """(registry name, version, metric) of an id in any form, the seed's names resolved."""
        m = _SEED_ID.match(model_id.strip())
        if m is not None and not self.registry.versions(m["name"] + "_v" + m["version"]):
            return SEED_MODEL_NAMES.get(m["name"], m["name"]), int(m["version"]), None
        name, version, metric = parse_model_id(model_id)
        return SEED_MODEL_NAMES.get(name, name), version, metric

    def list_models(self) -> list[ModelVersion]:
        """Every registered version of every model, by name then version."""
        folder = self.root.path(self.root.model_dir("x")).rsplit("/", 1)[0]
        fs = self.root.fs
        fs.invalidate_cache(folder)
        try:
            names = sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(folder, detail=False))
        except FileNotFoundError:
            return []
        out: list[ModelVersion] = []
        for name in names:
            try:
                out += self.registry.versions(name)
            except ModelNotFoundError:
                continue
        return out

    def _registered(self, name: str) -> str:
        """What is registered, for error messages: the versions of ``name``, else every model's."""
        numbers = [v.version for v in self.registry.versions(name)]
        aliases = [a for a, n in SEED_MODEL_NAMES.items() if n == name]
        if numbers:
            also = f" (also called {aliases[0]!r}: ids {[f'{aliases[0]}_v{n}' for n in numbers]})" if aliases else ""
            return f"registered versions of {name!r}: {numbers}{also}"
        models: dict[str, list[int]] = {}
        for v in self.list_models():
            models.setdefault(v.name, []).append(v.version)
        return f"registered models and versions: {models}" if models else "no model is registered yet"


def _device(device: str) -> str:
    """A device torch can use here.

    Raises:
        ConfigError: CUDA asked for where there is none.
    """
    text = str(device).strip().lower()
    if text.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={device!r} but this machine has no CUDA GPU; pass device='cpu' "
                "(or 'cuda' if torch.cuda.is_available() else 'cpu')"
            )
        return text
    if text != "cpu":
        raise ConfigError(f"device={device!r}; use 'cpu' or 'cuda' ('cuda:1' for a second GPU)")
    return text


# -- class areas ----------------------------------------------------------------


def class_area_summary(classes: np.ndarray, pixel_area_m2: float = 100.0) -> dict[str, float]:
    """Area of each land-cover class in hectares (classes of :mod:`memories.classes`; 0 is left out).

    Args:
        classes: Class codes ``(y, x)``.
        pixel_area_m2: Area of one pixel, square metres (100 for 10 m pixels).
    """
    from memories.classes import CLASS_BY_CODE

    codes, counts = np.unique(np.asarray(classes), return_counts=True)
    names: Mapping[int, Any] = CLASS_BY_CODE
    return {
        (names[int(c)].name if int(c) in names else f"class_{int(c)}"): float(n) * pixel_area_m2 / M2_PER_HA
        for c, n in zip(codes, counts, strict=True)
        if int(c) != 0
    }
