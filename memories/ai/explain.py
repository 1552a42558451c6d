"""Which bands a land-cover model relies on: permutation and gradient x input importance.

- ``method="permutation"``: the drop in pixel accuracy (0–1) on the labelled
  pixels when one band's values are shuffled among the pixels of the scene
  (its spatial pattern destroyed, its distribution kept), averaged over
  ``n_repeats`` seeded shuffles. Model-agnostic; needs labels.
- ``method="gradient"``: mean over labelled pixels of
  ``|d logit(predicted class) / d x_b * (x_b - mean_b)|`` per band ``b``
  (gradient x input, with the band mean the model normalises by as the
  reference), normalised to sum to 1. One backward pass; labels only choose
  the pixels.

:func:`held_out_band_importance` runs the permutation method on the validation
blocks of one training scene, split exactly as ``train_land_cover`` split it, so
the numbers describe pixels the model never trained on; the model registry keeps
them in the version's sidecar (``band_importance``) and reports show them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from memories.errors import ConfigError, ProcessingError

__all__ = ["HeldOutImportance", "band_importance", "held_out_band_importance", "plot_band_importance"]

Method = Literal["permutation", "gradient"]


def band_importance(
    model: Any,
    reflectance: np.ndarray,
    labels: np.ndarray,
    *,
    method: Method = "permutation",
    n_repeats: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Importance of each input band of a land-cover model, by band name, most important first.

    Args:
        model: A :class:`~memories.ai.land_cover.LandCoverUNet`.
        reflectance: float ``(band, y, x)``, reflectance 0–1, NaN for no data.
        labels: uint8 ``(y, x)`` true class codes, 0 = unknown (not scored).
        method: ``"permutation"`` (accuracy drop, 0–1) or ``"gradient"`` (share of gradient x input, sums to 1).
        n_repeats: Shuffles per band (permutation).
        seed: Seed of the shuffles.

    Raises:
        ProcessingError: shapes disagree or no pixel is labelled.
        ConfigError: unknown method or ``n_repeats`` < 1.
    """
    from memories.ai.land_cover import predict_land_cover

    x = np.asarray(reflectance, dtype=np.float32)
    y = np.asarray(labels)
    n_bands = int(model.hparams["in_channels"])
    names = list(model.hparams.get("band_names") or [f"band_{i}" for i in range(n_bands)])
    if x.ndim != 3 or x.shape[0] != n_bands or x.shape[1:] != y.shape:
        raise ProcessingError(
            f"reflectance {x.shape} and labels {y.shape} do not fit a model of {n_bands} bands; "
            "pass (band, y, x) reflectance and (y, x) labels of the same scene"
        )
    scored = (y != 0) & ~np.isnan(x).all(axis=0)
    if not scored.any():
        raise ProcessingError("no labelled pixel with data; importance needs labels (codes > 0)")
    if method == "permutation":
        if n_repeats < 1:
            raise ConfigError(f"n_repeats={n_repeats}: shuffle each band at least once")
        rng = np.random.default_rng(seed)
        base = _accuracy(predict_land_cover(model, x)[0], y, scored)
        scores = []
        for b in range(n_bands):
            drops = []
            for _ in range(n_repeats):
                shuffled = x.copy()
                flat = shuffled[b].reshape(-1)
                shuffled[b] = flat[rng.permutation(flat.size)].reshape(x.shape[1:])
                drops.append(base - _accuracy(predict_land_cover(model, shuffled)[0], y, scored))
            scores.append(float(np.mean(drops)))
    elif method == "gradient":
        scores = _gradient_x_input(model, x, scored)
    else:
        raise ConfigError(f"method={method!r}; use 'permutation' or 'gradient'")
    return dict(sorted(zip(names, scores, strict=True), key=lambda kv: -kv[1]))


@dataclass(frozen=True)
class HeldOutImportance:
    """Permutation importance of each band on held-out (validation) pixels."""

    values: dict[str, float]
    """Drop in pixel accuracy (0–1) when the band is shuffled, by band name, most important first."""
    n_pixels: int
    """Labelled validation pixels with data that were scored."""
    n_repeats: int
    """Shuffles per band."""
    method: str = "permutation"
    unit: str = "drop in pixel accuracy (0-1)"

    def sidecar(self, scored_on: str) -> dict[str, Any]:
        """The model-registry sidecar keys of this result (``register(..., extra=...)``).

        Args:
            scored_on: What was scored, for people, e.g. ``"validation blocks of 2023-05|33TVM"``.
        """
        return {
            "band_importance": dict(self.values),
            "band_importance_info": {
                "method": self.method,
                "unit": self.unit,
                "n_repeats": self.n_repeats,
                "n_pixels": self.n_pixels,
                "scored_on": scored_on,
            },
        }


def held_out_band_importance(
    model: Any,
    samples: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    patch_px: int,
    seed: int,
    val_fraction: float = 0.25,
    scene: int = 0,
    n_repeats: int = 2,
) -> HeldOutImportance:
    """Permutation importance on the validation blocks of one training scene.

    The blocks are those :func:`~memories.ai.land_cover.train_land_cover` held out
    with the same ``patch_px``, ``val_fraction`` and ``seed`` (the split depends on
    the scene's shape and the seed only), so only pixels the model never trained
    on are scored; bands are shuffled over the whole scene.

    Args:
        model: The trained :class:`~memories.ai.land_cover.LandCoverUNet`.
        samples: The ``(reflectance, labels)`` pairs it was trained on (see ``train_land_cover``).
        patch_px: ``ModelSettings.patch_px`` of the training (pixels).
        seed: ``ModelSettings.seed`` of the training.
        val_fraction: ``val_fraction`` of the training.
        scene: Index of the scene in ``samples`` to score.
        n_repeats: Shuffles per band; each costs one prediction of the scene.

    Raises:
        ProcessingError: ``scene`` is out of range or its validation blocks hold no labelled pixel.
    """
    from memories.ai.split import split_scenes

    if not 0 <= scene < len(samples):
        raise ProcessingError(f"scene={scene} but {len(samples)} sample(s) were given; pick 0..{len(samples) - 1}")
    x, labels = samples[scene]
    y = np.asarray(labels)
    split = split_scenes([y], patch_px=patch_px, val_fraction=val_fraction, seed=seed)
    held = np.where(split.val_masks[0], y, 0).astype(y.dtype)
    n_pixels = int(((held != 0) & ~np.isnan(np.asarray(x, dtype=np.float32)).all(axis=0)).sum())
    values = band_importance(model, x, held, method="permutation", n_repeats=n_repeats, seed=seed)
    return HeldOutImportance(values=values, n_pixels=n_pixels, n_repeats=n_repeats)


def plot_band_importance(importance: Mapping[str, float], *, title: str = "Band importance") -> bytes:
    """A PNG horizontal bar chart of band importance (most important on top), for reports."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    items = sorted(importance.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(5, 0.35 * len(items) + 1.2), dpi=100)
    try:
        ax.barh([k for k, _ in items], [v for _, v in items], color="#1f6b2a")
        ax.set_xlabel("importance")
        ax.set_title(title)
        ax.axvline(0, color="black", linewidth=0.6)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


# -- helpers -------------------------------------------------------------------


def _accuracy(pred: np.ndarray, labels: np.ndarray, scored: np.ndarray) -> float:
    return float((pred[scored] == labels[scored]).mean())


def _gradient_x_input(model: Any, x: np.ndarray, scored: np.ndarray) -> list[float]:
    import torch

    from memories.ai.split import pad_to_multiple

    padded = pad_to_multiple(x, np.nan)
    h, w = x.shape[1:]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        inp = torch.from_numpy(padded)[None].to(device)
        mean = model.band_mean.to(device)
        inp = torch.where(torch.isnan(inp), mean.expand_as(inp[0])[None], inp).requires_grad_(True)
        logits = model(inp)[0, 1:, :h, :w]
        mask = torch.from_numpy(scored).to(device)
        top = logits.argmax(dim=0, keepdim=True)
        chosen = logits.gather(0, top)[0]
        chosen[mask].sum().backward()
        assert inp.grad is not None
        contrib = (inp.grad[0, :, :h, :w] * (inp[0, :, :h, :w] - mean)).abs()
        per_band = contrib[:, mask].mean(dim=1).detach().cpu().numpy().astype(np.float64)
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    total = per_band.sum()
    return [float(v / total) if total > 0 else 0.0 for v in per_band]


def band_importance_sidecar(
    model: Any,
    samples: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    patch_px: int,
    seed: int,
    n_repeats: int,
    scored_on: str,
) -> tuple[dict[str, Any], str | None]:
    """The registry sidecar of :func:`held_out_band_importance` on the first scene, or why there is none.

    Computed once per model version, so the numbers travel with the checkpoint and every report made with
    the version shows what it looks at. Sparse labels can leave the first scene's held-out blocks
    unlabelled: then the sidecar is empty and the reason (the ``ProcessingError``'s text) is returned, so
    the model is registered without it rather than not at all.

    Returns:
        ``(sidecar, None)``, or ``({}, reason)``; ``({}, None)`` when ``n_repeats`` is 0 (not asked).
    """
    from memories.errors import ProcessingError

    if n_repeats <= 0:
        return {}, None
    try:
        importance = held_out_band_importance(model, samples, patch_px=patch_px, seed=seed, n_repeats=n_repeats)
    except ProcessingError as e:
        return {}, str(e)
    return importance.sidecar(scored_on=scored_on), None
