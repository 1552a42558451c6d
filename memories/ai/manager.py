"""Models by id, ready for inference, and pipelines that feed one model's output into the next.

A model id names a model in the registry and picks one of its versions:

- ``"land_cover"`` or ``"land_cover@latest"``: the newest version;
- ``"land_cover:3"``: version 3;
- ``"land_cover@best"``: the version with the best value of the manager's
  ``best_metric`` (``val_miou`` by default, higher is better);
  ``"land_cover@best:val_accuracy"`` names the metric.

A *loader* per model name turns a registered version into an object ready for
inference; the default rebuilds the checkpoint's class from its
hyper-parameters (``ModelRegistry.load``), which covers every LightningModule of
``memories.ai``. Other kinds of models register their own with
:meth:`ModelManager.register_loader`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memories.ai.registry import ModelNotFoundError, ModelRegistry, ModelVersion
from memories.errors import ConfigError
from memories.store.paths import StorageRoot

__all__ = [
    "LoadedModel",
    "ModelManager",
    "ModelPipeline",
    "PipelineRun",
    "class_area_summary",
    "land_cover_step",
    "parse_model_id",
]

Loader = Callable[[ModelRegistry, ModelVersion], Any]
"""Builds the inference object of one registered version."""

_ID = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*?)(?::(?P<version>\d+)|@(?P<tag>latest|best)(?::(?P<metric>[^\s:]+))?)?$"
)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference and the registered version it came from."""

    model: Any
    version: ModelVersion

    @property
    def id(self) -> str:
        """``name:version``, the exact id to record in metadata."""
        return f"{self.version.name}:{self.version.version}"


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
        root: Storage root of the model registry.
        best_metric: Metric ``@best`` maximises when the id names none.
        map_location: Device models are loaded to (``"cpu"``, ``"cuda"``).
    """

    def __init__(self, root: StorageRoot, *, best_metric: str = "val_miou", map_location: str = "cpu") -> None:
        self.root = root
        self.registry = ModelRegistry(root)
        self.best_metric = best_metric
        self.map_location = map_location
        self._loaders: dict[str, Loader] = {}

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
        name, version, metric = parse_model_id(model_id)
        try:
            if version == "best":
                return self.registry.best(name, metric or self.best_metric)
            if isinstance(version, int):
                return self.registry.get(name, version)
            return self.registry.get(name)
        except ModelNotFoundError as e:
            raise ModelNotFoundError(f"model id {model_id!r} does not resolve: {e}; {self._registered(name)}") from e

    def load_model(self, model_id: str) -> LoadedModel:
        """The model an id points to, loaded and ready for inference (eval mode), with its version."""
        mv = self.resolve(model_id)
        loader = self._loaders.get(mv.name)
        if loader is not None:
            return LoadedModel(loader(self.registry, mv), mv)
        return LoadedModel(self.registry.load(mv.name, mv.version, map_location=self.map_location), mv)

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
        if numbers:
            return f"registered versions of {name!r}: {numbers}"
        models: dict[str, list[int]] = {}
        for v in self.list_models():
            models.setdefault(v.name, []).append(v.version)
        return f"registered models and versions: {models}" if models else "no model is registered yet"


# -- pipelines -----------------------------------------------------------------


@dataclass
class _Step:
    name: str
    fn: Callable[..., Any]
    model_id: str | None


@dataclass
class PipelineRun:
    """What a pipeline produced: every step's output and the model versions used."""

    outputs: dict[str, Any]
    """Output of each step, by step name, in order."""
    models: dict[str, str] = field(default_factory=dict)
    """``name:version`` of the model of each model step, by step name."""

    @property
    def final(self) -> Any:
        """The last step's output."""
        return list(self.outputs.values())[-1]


class ModelPipeline:
    """Steps run in order, each step's output the next step's input.

    A step is ``fn(x)``, or ``fn(model, x)`` when it names a model id: the model
    is loaded once through the manager, when the pipeline first runs.

    Example::

        run = (
            ModelPipeline(manager)
            .then("land_cover", land_cover_step, model="land_cover@best")
            .then("areas", class_area_summary)
            .run(reflectance)
        )
    """

    def __init__(self, manager: ModelManager | None = None) -> None:
        self.manager = manager
        self.steps: list[_Step] = []
        self._models: dict[str, LoadedModel] = {}

    def then(self, name: str, fn: Callable[..., Any], *, model: str | None = None) -> ModelPipeline:
        """Append a step and return the pipeline (for chaining)."""
        if any(s.name == name for s in self.steps):
            raise ConfigError(f"the pipeline already has a step {name!r}; give each step its own name")
        if model is not None and self.manager is None:
            raise ConfigError(f"step {name!r} uses model {model!r}: build ModelPipeline(manager) to load models")
        self.steps.append(_Step(name, fn, model))
        return self

    def run(self, x: Any) -> PipelineRun:
        """Run every step on ``x`` in order."""
        if not self.steps:
            raise ConfigError("the pipeline has no step; add steps with .then(name, fn)")
        outputs: dict[str, Any] = {}
        models: dict[str, str] = {}
        for step in self.steps:
            if step.model_id is not None:
                assert self.manager is not None
                if step.model_id not in self._models:
                    self._models[step.model_id] = self.manager.load_model(step.model_id)
                loaded = self._models[step.model_id]
                x = step.fn(loaded.model, x)
                models[step.name] = loaded.id
            else:
                x = step.fn(x)
            outputs[step.name] = x
        return PipelineRun(outputs, models)


def land_cover_step(model: Any, reflectance: np.ndarray) -> np.ndarray:
    """Land-cover class codes (uint8 ``(y, x)``) of reflectance ``(band, y, x)``, 0–1, NaN = no data."""
    from memories.ai.land_cover import predict_land_cover

    classes, _ = predict_land_cover(model, reflectance)
    return classes


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
        (names[int(c)].name if int(c) in names else f"class_{int(c)}"): float(n) * pixel_area_m2 / 10_000.0
        for c, n in zip(codes, counts, strict=True)
        if int(c) != 0
    }
