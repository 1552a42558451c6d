"""Where a model looks: per-pixel saliency of the land-cover U-Net and attention maps of the multi-modal model.

- :func:`integrated_gradients`: attribution of each band at each pixel to the
  logit of the class the model predicts there (Sundararajan et al. 2017), from a
  baseline of the band means the model normalizes by (a "featureless" scene)
  along a straight path in ``steps`` Riemann (midpoint) steps. What is explained
  is F = the sum over pixels of each pixel's predicted-class logit, so a pixel's
  attribution also credits its neighbours' decisions (the U-Net's receptive
  field). Completeness: all attributions sum to ``F(x) - F(baseline)`` up to the
  Riemann error. Units: logit.
- :func:`occlusion_saliency`: the drop in the predicted class's probability
  (0–1) at each pixel when a ``window`` square around it is replaced by the
  band means; model-agnostic, slower.
- :func:`modality_shares`: the share (0–1, summing to 1 per pixel) of the
  multi-modal model's attention on imagery, on the rasterized vector layers and
  on text, from its per-token attention weights.
- :func:`plot_saliency`, :func:`plot_modality_attention` and
  :func:`plot_modality_shares` draw them as
  matplotlib Figures (for reports and UI previews: ``figure_png``).

Band importance over a whole scene (permutation, gradient x input) stays in
:mod:`memories.ai.explain`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memories.errors import ConfigError, ProcessingError

__all__ = [
    "Saliency",
    "figure_png",
    "integrated_gradients",
    "MODALITY_GROUPS",
    "modality_group",
    "modality_shares",
    "occlusion_saliency",
    "plot_modality_attention",
    "plot_modality_shares",
    "plot_saliency",
    "preview_markdown",
    "saliency_preview",
]


@dataclass(frozen=True)
class Saliency:
    """Per-pixel, per-band attribution of a land-cover prediction."""

    attribution: np.ndarray
    """float32 ``(band, y, x)``: contribution of each band at each pixel (logit units; NaN where no data)."""
    classes: np.ndarray
    """uint8 ``(y, x)``: the predicted class each pixel's attribution explains."""
    band_names: list[str]
    method: str

    @property
    def pixel_map(self) -> np.ndarray:
        """float32 ``(y, x)``: summed absolute attribution over bands."""
        return np.asarray(np.abs(self.attribution).sum(axis=0))

    @property
    def band_share(self) -> dict[str, float]:
        """Share (0–1, sums to 1) of absolute attribution per band over pixels with data, largest first."""
        per_band = np.nansum(np.abs(self.attribution), axis=(1, 2)).astype(np.float64)
        total = per_band.sum()
        shares = per_band / total if total > 0 else per_band
        return dict(sorted(zip(self.band_names, shares.tolist(), strict=True), key=lambda kv: -kv[1]))


MODALITY_GROUPS: tuple[str, ...] = ("imagery", "vector", "text")
"""The modality groups of :func:`modality_shares`: the image token; the context token (the rasterized roads,
buildings and water); the text tokens, one per text layer."""


def modality_group(name: str) -> str:
    """The group of one attention token: ``image`` -> imagery, ``context`` -> vector, ``text:<layer>`` (or the
    stored variable name ``text_<layer>``) -> text.

    Raises:
        ProcessingError: a token name of none of these (the tokens of ``MultiModalLandUse.modality_names``).
    """
    if name == "image":
        return "imagery"
    if name == "context":
        return "vector"
    if name.startswith(("text:", "text_")):
        return "text"
    raise ProcessingError(f"attention token {name!r}: expected 'image', 'context' or 'text:<layer>'")


def modality_shares(attention: np.ndarray, modality_names: Sequence[str]) -> np.ndarray:
    """float32 ``(3, y, x)``: the share of each pixel's attention on imagery, vector layers and text
    (:data:`MODALITY_GROUPS` order), each in 0–1 and summing to 1 at every pixel with data; NaN where none.

    The attention of the tokens of a group is added (the text layers together), then divided by the pixel's
    total, so a map stored in bf16 or float16 still sums to 1 exactly.

    Args:
        attention: float ``(M, y, x)``, one plane per token (:func:`~memories.ai.multimodal.predict_multimodal`).
        modality_names: The M token names (``MultiModalLandUse.modality_names``).
    """
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim != 3 or a.shape[0] != len(modality_names):
        raise ProcessingError(f"attention of shape {a.shape} for {len(modality_names)} modalities; give (M, y, x)")
    groups = [modality_group(n) for n in modality_names]
    out = np.zeros((len(MODALITY_GROUPS), *a.shape[1:]), np.float64)
    for plane, group in zip(np.clip(a, 0.0, None), groups, strict=True):
        out[MODALITY_GROUPS.index(group)] += plane
    total = out.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(total > 0, out / total, np.nan)
    return shares.astype(np.float32)


def integrated_gradients(model: Any, reflectance: np.ndarray, *, steps: int = 16) -> Saliency:
    """Integrated gradients of each pixel's predicted-class logit, from the band-mean baseline.

    Args:
        model: A :class:`~memories.ai.land_cover.LandCoverUNet` (any device).
        reflectance: float ``(band, y, x)`` reflectance 0–1, NaN for no data (taken as the band mean).
        steps: Points on the path from baseline to input (midpoint rule); 16 to 64 is usual.
    """
    import torch

    from memories.ai.split import pad_to_multiple

    x, names = _check(model, reflectance)
    if steps < 1:
        raise ConfigError(f"steps={steps}: integrate over at least 1 step (16 is usual)")
    h, w = x.shape[1:]
    device = next(model.parameters()).device
    mean = model.band_mean.to(device)
    inp = torch.from_numpy(pad_to_multiple(x, np.nan))[None].to(device)
    inp = torch.where(torch.isnan(inp), mean.expand_as(inp[0])[None], inp)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            target = model(inp)[:, 1:].argmax(dim=1, keepdim=True)  # (1, 1, H, W), class code - 1
        total = torch.zeros_like(inp)
        for k in range(steps):
            point = (mean + (k + 0.5) / steps * (inp - mean)).detach().requires_grad_(True)
            logits = model(point)[:, 1:]
            logits.gather(1, target).sum().backward()
            assert point.grad is not None
            total += point.grad
        attribution = ((inp - mean) * total / steps)[0, :, :h, :w].detach().cpu().numpy().astype(np.float32)
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    nodata = np.isnan(x).all(axis=0)
    attribution[:, nodata] = np.nan
    classes = (target[0, 0, :h, :w].cpu().numpy() + 1).astype(np.uint8)
    classes[nodata] = 0
    return Saliency(attribution, classes, names, "integrated_gradients")


def occlusion_saliency(model: Any, reflectance: np.ndarray, *, window: int = 8) -> np.ndarray:
    """float32 ``(y, x)``: drop in the probability (0–1) of each pixel's predicted class when the
    ``window`` x ``window`` block holding it is set to the band means (non-overlapping blocks)."""
    x, _ = _check(model, reflectance)
    if window < 1:
        raise ConfigError(f"window={window}: occlude blocks of at least 1 pixel")
    probs = _probabilities(model, x)
    classes = probs.argmax(axis=0)
    base = np.take_along_axis(probs, classes[None], 0)[0]
    out = np.full(x.shape[1:], np.nan, np.float32)
    mean = np.asarray(model.hparams["band_mean"], np.float32)[:, None, None]
    for r in range(0, x.shape[1], window):
        for c in range(0, x.shape[2], window):
            occluded = x.copy()
            occluded[:, r : r + window, c : c + window] = mean
            p = _probabilities(model, occluded)
            block = (slice(r, r + window), slice(c, c + window))
            out[block] = base[block] - np.take_along_axis(p, classes[None], 0)[0][block]
    out[np.isnan(x).all(axis=0)] = np.nan
    return out


def plot_saliency(
    reflectance: np.ndarray,
    saliency: Saliency,
    *,
    rgb: Sequence[str] = ("red", "green", "blue"),
    title: str = "Land-cover saliency",
) -> Any:
    """A Figure of the true-colour image, the predicted classes and the saliency map (and the band shares)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    from memories.classes import LAND_COVER_CLASSES

    fig = Figure(figsize=(13, 3.6), dpi=100)
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1, 0.8]})
    axes[0].imshow(_true_colour(reflectance, saliency.band_names, rgb))
    axes[0].set_title("true colour")
    cmap = ListedColormap(["#ffffff", *(c.color for c in LAND_COVER_CLASSES)])
    axes[1].imshow(saliency.classes, cmap=cmap, vmin=0, vmax=len(LAND_COVER_CLASSES), interpolation="nearest")
    axes[1].set_title("predicted class")
    im = axes[2].imshow(saliency.pixel_map, cmap="magma")
    axes[2].set_title(f"|attribution| ({saliency.method.replace('_', ' ')})")
    fig.colorbar(im, ax=axes[2], fraction=0.046, label="logit")
    for ax in axes[:3]:
        ax.set_axis_off()
    shares = saliency.band_share
    axes[3].barh(list(shares)[::-1], list(shares.values())[::-1], color="#1f6b2a")
    axes[3].set_xlabel("share of attribution")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_modality_attention(
    attention: np.ndarray,
    modality_names: Sequence[str],
    *,
    reflectance: np.ndarray | None = None,
    band_names: Sequence[str] | None = None,
    title: str = "Cross-modal attention",
) -> Any:
    """A Figure with one panel per modality (the attention each pixel gives it, 0–1) and the dominant modality.

    Args:
        attention: float ``(M, y, x)`` from :func:`~memories.ai.multimodal.predict_multimodal`.
        modality_names: The M names (``MultiModalLandUse.modality_names``).
        reflectance: Optional ``(band, y, x)`` scene to show in true colour first (needs ``band_names``).
    """
    from matplotlib.figure import Figure

    a = np.asarray(attention, dtype=np.float32)
    if a.ndim != 3 or a.shape[0] != len(modality_names):
        raise ProcessingError(f"attention of shape {a.shape} for {len(modality_names)} modalities; give (M, y, x)")
    extra = 1 + (reflectance is not None)
    fig = Figure(figsize=(2.6 * (len(modality_names) + extra), 3.0), dpi=100)
    axes = fig.subplots(1, len(modality_names) + extra)
    k = 0
    if reflectance is not None:
        axes[0].imshow(_true_colour(reflectance, list(band_names or []), ("red", "green", "blue")))
        axes[0].set_title("true colour")
        k = 1
    for i, name in enumerate(modality_names):
        ax = axes[k + i]
        im = ax.imshow(a[i], cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"{name}\nmean {np.nanmean(a[i]):.2f}", fontsize=9)
    fig.colorbar(im, ax=axes[k + len(modality_names) - 1], fraction=0.046, label="attention")
    filled = np.where(np.isnan(a), -1.0, a)
    dominant = np.where(np.isnan(a).all(axis=0), np.nan, filled.argmax(axis=0).astype(np.float32))
    axes[-1].imshow(dominant, cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
    axes[-1].set_title("dominant modality", fontsize=9)
    present = sorted({int(v) for v in np.unique(dominant[~np.isnan(dominant)])})
    axes[-1].set_xlabel(", ".join(f"{v}={modality_names[v]}" for v in present), fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_modality_shares(shares: np.ndarray, *, title: str = "Share of attention per modality") -> Any:
    """A Figure of :func:`modality_shares`: the three shares as one colour image (imagery red, vector green,
    text blue: a pixel's colour is its mix) and one panel per group (0–1)."""
    from matplotlib.figure import Figure

    s = np.asarray(shares, dtype=np.float32)
    if s.ndim != 3 or s.shape[0] != len(MODALITY_GROUPS):
        raise ProcessingError(f"shares of shape {s.shape}; give ({len(MODALITY_GROUPS)}, y, x) from modality_shares")
    fig = Figure(figsize=(2.8 * (len(MODALITY_GROUPS) + 1), 3.1), dpi=100)
    axes = fig.subplots(1, len(MODALITY_GROUPS) + 1)
    axes[0].imshow(np.nan_to_num(np.moveaxis(s, 0, -1), nan=1.0), interpolation="nearest")
    axes[0].set_title("mix (R imagery, G vector, B text)", fontsize=8)
    for ax, plane, name in zip(axes[1:], s, MODALITY_GROUPS, strict=True):
        im = ax.imshow(plane, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        mean = float(np.nanmean(plane)) if np.isfinite(plane).any() else float("nan")
        ax.set_title(f"{name}\nmean {mean:.2f}", fontsize=9)
    fig.colorbar(im, ax=axes[-1], fraction=0.046, label="share of attention")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def preview_markdown(png_bytes: bytes, caption: str) -> str:
    """Markdown of a PNG inline (``![caption](data:image/png;base64,...)``), for a Dagster metadata preview."""
    import base64

    return f"{caption}\n\n![{caption}](data:image/png;base64,{base64.b64encode(png_bytes).decode()})\n"


def saliency_preview(model: Any, reflectance: np.ndarray, *, window_px: int = 128, title: str = "") -> str:
    """Markdown preview of a land-cover model's integrated-gradients saliency on the central
    ``window_px`` square of a scene (``(band, y, x)`` reflectance 0–1): the figure of :func:`plot_saliency`."""
    x = np.asarray(reflectance, dtype=np.float32)
    h, w = x.shape[1:]
    r0, c0 = max(0, (h - window_px) // 2), max(0, (w - window_px) // 2)
    crop = x[:, r0 : r0 + window_px, c0 : c0 + window_px]
    sal = integrated_gradients(model, crop)
    fig = plot_saliency(crop, sal, title=f"Land-cover saliency {title}".strip())
    return preview_markdown(
        figure_png(fig),
        f"Integrated gradients (|attribution|, logit) on rows {r0}..{r0 + crop.shape[1]}, "
        f"cols {c0}..{c0 + crop.shape[2]}",
    )


def figure_png(fig: Any) -> bytes:
    """PNG bytes of a Figure (for report files and Dagster markdown previews)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# -- helpers -------------------------------------------------------------------


def _check(model: Any, reflectance: np.ndarray) -> tuple[np.ndarray, list[str]]:
    x = np.asarray(reflectance, dtype=np.float32)
    n = int(model.hparams["in_channels"])
    if x.ndim != 3 or x.shape[0] != n:
        raise ProcessingError(f"reflectance of shape {x.shape}: the model wants ({n}, y, x) reflectance")
    names = list(model.hparams.get("band_names") or [f"band_{i}" for i in range(n)])
    return x, names


def _probabilities(model: Any, x: np.ndarray) -> np.ndarray:
    """float32 ``(n_classes - 1, y, x)`` softmax probabilities of codes 1.. on the model's device."""
    import torch

    from memories.ai.split import pad_to_multiple

    device = next(model.parameters()).device
    h, w = x.shape[1:]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            p = model.class_probabilities(torch.from_numpy(pad_to_multiple(x, np.nan))[None].to(device))
    finally:
        model.train(was_training)
    return np.asarray(p[0, :, :h, :w].float().cpu().numpy())


def _true_colour(reflectance: np.ndarray, names: Sequence[str], rgb: Sequence[str]) -> np.ndarray:
    """``(y, x, 3)`` 0–1 image of the ``rgb`` bands (2–98 % stretch); grey of band 0 when they are missing."""
    x = np.asarray(reflectance, dtype=np.float32)
    idx = [list(names).index(b) for b in rgb] if all(b in names for b in rgb) else [0, 0, 0]
    img = np.moveaxis(x[idx], 0, -1)
    lo, hi = float(np.nanpercentile(img, 2)), float(np.nanpercentile(img, 98))
    return np.asarray(np.nan_to_num(np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1), nan=1.0))
