"""The model registry: versioned land-cover checkpoints with their metrics, under the storage root.

Version ``n`` of model ``name`` is two files in ``StorageRoot.model_dir(name)``:
the checkpoint at ``StorageRoot.model_uri(name, n)`` (``v0001.ckpt``), a
Lightning-compatible ``torch.save`` of ``{"hyper_parameters", "state_dict"}``,
and a JSON sidecar next to it (``v0001.json``) with the version, creation time
(UTC), metrics, training data, code version and band names. The sidecar is
written last, so it marks a version as complete: a checkpoint without one (a
registration killed half-way) is not a version and is overwritten by the next.

Everything goes through ``StorageRoot.fs``, so file:// and s3:// roots behave alike.
Version numbers come from listing the folder, so two registrations of one model
at the same moment could pick the same number (the later write wins); register
from one place (the ``land_cover_model`` asset) to keep versions distinct.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import io
import json
import math
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memories.errors import StorageError
from memories.json_values import dumps
from memories.store.paths import StorageRoot

__all__ = ["ModelNotFoundError", "ModelRegistry", "ModelVersion", "scalar_metrics", "training_data_version"]

_SIDECAR = re.compile(r"^v(\d+)\.json$")


class ModelNotFoundError(StorageError, LookupError):
    """The registry holds no (such) version of a model."""


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: int
    uri: str
    """URI of the checkpoint."""
    metrics: dict[str, float]
    created: str
    """Registration time, UTC, ISO 8601."""
    band_names: list[str] | None
    training_data: dict[str, Any]
    """What the model was trained on (tiles, months, label source, ...), as the caller gave it."""
    code_version: str | None = None
    """``git describe`` of the code that trained it, when known."""
    training_data_version: str | None = None
    """Fingerprint of the exact inputs (see :func:`training_data_version`); two versions with the
    same fingerprint were trained on the same data."""
    model_class: str | None = None
    """``module.QualName`` of the model, which :meth:`ModelRegistry.load` rebuilds."""
    parent: str | None = None
    """``name:version`` of the registered model this one was fine-tuned from (transfer learning); None if
    trained from scratch."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Further sidecar keys: those given as ``register(..., extra=...)`` (``band_importance``, see
    :func:`memories.ai.explain.held_out_band_importance`) and keys this version of the code does not know."""


class ModelRegistry:
    """Versioned model checkpoints under a storage root."""

    def __init__(self, root: StorageRoot) -> None:
        self.root = root

    def register(
        self,
        name: str,
        model: Any,
        metrics: Mapping[str, float],
        *,
        training_data: dict[str, Any],
        code_version: str | None = None,
        training_data_version: str | None = None,
        extra: Mapping[str, Any] | None = None,
        parent: str | ModelVersion | None = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name`` and return that version.

        Args:
            name: Model name, e.g. ``"land_cover"``; a folder name under ``models/``.
            model: A :class:`~memories.ai.land_cover.LandCoverUNet` (any LightningModule
                whose ``hparams`` rebuild it).
            metrics: Validation metrics to keep beside it (numbers; NaN is stored as null).
            training_data: JSON-able description of the training data.
            code_version: Version of the training code; ``git describe`` of this checkout if None.
            training_data_version: Fingerprint of the inputs, e.g. :func:`training_data_version` of the
                catalog materializations trained on; the SHA-256 of ``training_data`` (canonical JSON) if None.
            extra: More JSON-able sidecar keys, e.g. ``{"band_importance": {"nir": 0.21, ...}}``; they come
                back in :attr:`ModelVersion.extra`. They may not reuse a key the registry writes itself.
            parent: The registered version ``model`` was fine-tuned from (a :class:`ModelVersion` or
                ``"name:version"``); it must exist in this registry. Kept as :attr:`ModelVersion.parent`.

        Raises:
            StorageError: ``training_data`` or ``extra`` is not JSON-able, or ``extra`` reuses a registry key.
            ModelNotFoundError: ``parent`` names no registered version.
        """
        _check_name(name)
        parent_id = self._parent_id(parent)
        clash = sorted(set(extra or {}) & _KNOWN_KEYS)
        if clash:
            raise StorageError(f"extra keys {clash} of model {name!r} are written by the registry itself; rename them")
        version = (self._latest_number(name) or 0) + 1
        uri = self.root.model_uri(name, version)
        import torch

        hparams = dict(model.hparams)
        sidecar = {
            "name": name,
            "version": version,
            "uri": uri,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "metrics": {str(k): _number(v) for k, v in metrics.items()},
            "training_data": training_data,
            "code_version": code_version if code_version is not None else _git_describe(),
            "training_data_version": training_data_version,
            "band_names": hparams.get("band_names"),
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "parent": parent_id,
            **dict(extra or {}),
        }
        try:
            if training_data_version is None:
                canonical = dumps(training_data, nan="raise", lenient=True, sort_keys=True)
                sidecar["training_data_version"] = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
            data = dumps(sidecar, nan="raise", lenient=True, indent=2).encode()
        except ValueError as e:
            raise StorageError(
                f"training_data or extra of model {name!r} cannot be written as JSON ({e}); pass plain values, no NaN"
            ) from e
        buffer = io.BytesIO()
        torch.save(
            {
                "hyper_parameters": hparams,
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "pytorch-lightning_version": importlib.metadata.version("pytorch-lightning"),
            },
            buffer,
        )
        self.root.write_bytes(uri, buffer.getvalue())
        # The sidecar goes last: it is what makes the version exist.
        self.root.write_bytes(self.root.model_sidecar_uri(name, version), data)
        return _version_from_sidecar(json.loads(data))

    def versions(self, name: str) -> list[ModelVersion]:
        """Every complete version of ``name``, oldest first; empty if none."""
        return [self._read_sidecar(name, n) for n in self._numbers(name)]

    def latest(self, name: str) -> ModelVersion | None:
        """The newest version of ``name``, or None if it has none."""
        n = self._latest_number(name)
        return self._read_sidecar(name, n) if n is not None else None

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """One version of ``name`` (the latest if None).

        Raises:
            ModelNotFoundError: no such version.
        """
        numbers = self._numbers(name)
        if not numbers:
            raise ModelNotFoundError(
                f"model {name!r} has no registered version under {self.root.model_dir(name)}; "
                f"materialize {name}_model first"
            )
        if version is None:
            version = numbers[-1]
        if version not in numbers:
            raise ModelNotFoundError(f"model {name!r} has no version {version}; registered versions are {numbers}")
        return self._read_sidecar(name, version)

    def best(self, name: str, metric: str, *, higher_is_better: bool = True) -> ModelVersion:
        """The version of ``name`` with the best value of ``metric`` (ties: the newest).

        Versions without the metric, or with NaN, are not candidates.

        Raises:
            ModelNotFoundError: no version has the metric.
        """
        scored = [v for v in self.versions(name) if not math.isnan(v.metrics.get(metric, math.nan))]
        if not scored:
            raise ModelNotFoundError(
                f"no version of model {name!r} has metric {metric!r}; "
                f"known metrics: {sorted({k for v in self.versions(name) for k in v.metrics})}"
            )
        sign = 1.0 if higher_is_better else -1.0
        return max(scored, key=lambda v: (sign * v.metrics[metric], v.version))

    def load(self, name: str, version: int | None = None, *, map_location: str = "cpu") -> Any:
        """The model of one version (latest if None), rebuilt from its hyper-parameters, in eval mode.

        The class is the sidecar's ``model_class`` when it lives in ``memories``
        (never an arbitrary import), else :class:`~memories.ai.land_cover.LandCoverUNet`.

        Raises:
            ModelNotFoundError: the model has no (such) version; materialize ``land_cover_model`` first.
        """
        import torch

        mv = self.get(name, version)
        checkpoint = torch.load(io.BytesIO(self.root.read_bytes(mv.uri)), map_location=map_location, weights_only=True)
        model = _model_class(mv.model_class)(**checkpoint["hyper_parameters"])
        model.load_state_dict(checkpoint["state_dict"])
        return model.to(map_location).eval()

    def lineage(self, name: str, version: int | None = None) -> list[ModelVersion]:
        """The version and its ancestors through :attr:`ModelVersion.parent`, the version first."""
        chain = [self.get(name, version)]
        while chain[-1].parent is not None:
            parent_name, _, number = chain[-1].parent.rpartition(":")
            chain.append(self.get(parent_name, int(number)))
        return chain

    def _parent_id(self, parent: str | ModelVersion | None) -> str | None:
        """``name:version`` of an existing registered version, or None."""
        if parent is None:
            return None
        if isinstance(parent, ModelVersion):
            parent_name, number = parent.name, parent.version
        else:
            m = re.fullmatch(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*):(?P<version>\d+)", str(parent).strip())
            if m is None:
                raise ModelNotFoundError(
                    f"parent={parent!r} is not 'name:version'; give the exact version fine-tuned from, "
                    "e.g. 'land_cover:3' (or the ModelVersion)"
                )
            parent_name, number = m["name"], int(m["version"])
        return f"{parent_name}:{self.get(parent_name, number).version}"

    # -- listing --------------------------------------------------------------
    def _numbers(self, name: str) -> list[int]:
        _check_name(name)
        folder = self.root.path(self.root.model_dir(name))
        fs = self.root.fs
        fs.invalidate_cache(folder)  # s3fs caches listings; a registration elsewhere must show
        try:
            entries = fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        numbers = []
        for entry in entries:
            m = _SIDECAR.match(str(entry).rstrip("/").rsplit("/", 1)[-1])
            if m:
                numbers.append(int(m.group(1)))
        return sorted(numbers)

    def _latest_number(self, name: str) -> int | None:
        numbers = self._numbers(name)
        return numbers[-1] if numbers else None

    def _read_sidecar(self, name: str, version: int) -> ModelVersion:
        uri = self.root.model_sidecar_uri(name, version)
        try:
            return _version_from_sidecar(json.loads(self.root.read_bytes(uri)))
        except (ValueError, KeyError) as e:
            raise StorageError(f"{uri} is not a valid model sidecar ({e}); re-register version {version}") from e


_KNOWN_KEYS = frozenset(
    {
        "name",
        "version",
        "uri",
        "metrics",
        "created",
        "band_names",
        "training_data",
        "code_version",
        "training_data_version",
        "model_class",
        "parent",
    }
)
"""The sidecar keys the registry writes itself; every other key is :attr:`ModelVersion.extra`."""


def _version_from_sidecar(d: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        name=d["name"],
        version=int(d["version"]),
        uri=d["uri"],
        metrics={k: (math.nan if v is None else float(v)) for k, v in d["metrics"].items()},
        created=d["created"],
        band_names=d.get("band_names"),
        training_data=d.get("training_data") or {},
        code_version=d.get("code_version"),
        training_data_version=d.get("training_data_version"),
        model_class=d.get("model_class"),
        parent=d.get("parent"),
        extra={k: v for k, v in d.items() if k not in _KNOWN_KEYS},
    )


def scalar_metrics(metrics: Mapping[str, object]) -> dict[str, object]:
    """The numbers and strings of a metrics dict (per-class tables and curves left out): what a catalog
    row or a one-line summary carries."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}


def training_data_version(materializations: Iterable[Any]) -> str:
    """A fingerprint of the exact inputs a model was trained on, ``sha256:<16 hex>``.

    Args:
        materializations: Memory-catalog rows (:class:`~memories.memory.catalog.Materialization`,
            or anything with ``asset``, ``tile``, ``partition``, ``version`` and ``transaction_from``).
            Order does not matter; a re-materialized input (new catalog version) changes the fingerprint.
    """
    keys = sorted(
        (str(m.asset), str(m.tile), str(m.partition), int(m.version), str(m.transaction_from)) for m in materializations
    )
    return "sha256:" + hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:16]


def _model_class(qualname: str | None) -> Any:
    """The class a sidecar names, when it is one of this project's; LandCoverUNet otherwise."""
    if qualname and qualname.startswith("memories.") and "." in qualname:
        module, _, cls = qualname.rpartition(".")
        try:
            return getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as e:
            raise StorageError(f"model class {qualname!r} of a sidecar cannot be imported ({e})") from e
    from memories.ai.land_cover import LandCoverUNet

    return LandCoverUNet


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise StorageError(f"model name {name!r} must be letters, digits, '_', '-' or '.', e.g. 'land_cover'")


def _number(v: Any) -> float | None:
    f = float(v)
    return None if math.isnan(f) or math.isinf(f) else f


def _git_describe() -> str | None:
    """``git describe --always --dirty`` of the checkout this module lives in, or None."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None
