"""Multi-modal land use: imagery, rasterized vector layers and map text fused by cross-modal attention.

Inputs per scene (see :mod:`memories.ai.multimodal_data`): reflectance
``(band, y, x)`` 0–1 with NaN for no data (the convention of
:mod:`memories.ai.land_cover`), context rasters ``(R, y, x)`` (coverage of roads,
buildings, water) and, per text layer, the nearest feature's text and distance.

The network, per pixel:

- an **image** token: the last decoder level of the land-cover U-Net
  (:meth:`LandCoverUNet.features`), which can be initialized from a trained one;
- a **context** token: two convolution levels over the normalized context rasters;
- one **text** token per text layer: the sum of learned embeddings of the byte
  n-gram hash buckets of the nearest feature's text over the square root of their
  count, projected, plus a code of its distance
  and of the layer; a learned "nothing near" token where there is none;
- **cross-modal attention**: the query is the image token; keys and values come
  from all tokens (image included); ``n_heads`` heads softmax over the tokens of
  the pixel (:meth:`attention`). The head reads the attended values plus the image
  features (``image_skip=True``, the default: the model starts as the U-Net, and
  the attention says which modality each pixel takes its *extra* evidence from);
  with ``image_skip=False`` it reads the attended values alone, so the attention
  says where the whole decision comes from. On the sample world the residual path
  scored higher (``bench/multimodal_scores.py``).

Trained with the seeded spatial split of :mod:`memories.ai.split` (the same
blocks as ``train_land_cover`` for the same labels, patch size and seed), scored
with :func:`memories.ai.land_cover.confusion_metrics`, registered like every
model (``ModelRegistry.register``; :meth:`hparams` rebuild it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassConfusionMatrix

from memories.ai import training
from memories.ai.land_cover import LandCoverUNet, confusion_metrics
from memories.ai.layers import channels_last, conv_block, float_list, nhwc
from memories.ai.multimodal_batches import Blocks, Patches, collate, context_statistics, patch_item
from memories.ai.multimodal_data import N_BUCKETS, TEXT_RADIUS_M, ModalityInputs, gram_matrix
from memories.ai.split import DOWNSAMPLING, band_statistics, check_samples, split_scenes
from memories.classes import N_CLASSES, NO_LABEL
from memories.config import ModelSettings
from memories.errors import ConfigError, ProcessingError

__all__ = [
    "MultiModalLandUse",
    "MultiModalResult",
    "MultiModalSample",
    "attention_variable",
    "land_use_dataset",
    "predict_multimodal",
    "train_multimodal",
]


@dataclass(frozen=True)
class MultiModalSample:
    """One labelled scene: reflectance ``(C, H, W)``, its other modalities, labels ``(H, W)`` (0 = unknown)."""

    reflectance: np.ndarray
    modalities: ModalityInputs
    labels: np.ndarray


class MultiModalLandUse(pl.LightningModule):
    """Per-pixel land use from imagery, context rasters and text, fused by cross-modal attention.

    Args:
        in_channels: Reflectance bands.
        context_names: Names of the context rasters (``("roads", "buildings", "water")``).
        text_layers: Names of the text layers, one token each.
        n_classes: Output channels, class code 0 included (never predicted).
        width: Channels of the U-Net's first level and of every token.
        n_heads: Attention heads (``width`` must divide by it).
        text_dim: Size of the byte n-gram embeddings.
        n_buckets: Hash buckets of the n-grams (:func:`~memories.ai.multimodal_data.byte_ngrams`).
        radius_m: Distance (metres) at which a text feature stops being seen.
        band_mean, band_std: Reflectance normalization per band.
        context_mean, context_std: Normalization of each context raster.
        band_names: Names of the bands (recorded).
        lr, weight_decay: AdamW settings.
        dropout: Dropout of the U-Net (element-wise), 0–1.
        image_skip: Add the image features to the attended values before the head (a residual path: the
            model is then at least the U-Net, and the attention describes what is *added* to the image).
    """

    context_mean: Tensor
    context_std: Tensor

    def __init__(
        self,
        in_channels: int,
        context_names: Sequence[str],
        text_layers: Sequence[str],
        n_classes: int = N_CLASSES,
        *,
        width: int = 16,
        n_heads: int = 2,
        text_dim: int = 32,
        n_buckets: int = N_BUCKETS,
        radius_m: float = TEXT_RADIUS_M,
        band_mean: Sequence[float] | None = None,
        band_std: Sequence[float] | None = None,
        context_mean: Sequence[float] | None = None,
        context_std: Sequence[float] | None = None,
        band_names: Sequence[str] | None = None,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        dropout: float = 0.1,
        image_skip: bool = True,
    ) -> None:
        super().__init__()
        if width % n_heads:
            raise ConfigError(f"width={width} does not divide into n_heads={n_heads}; use e.g. width=16, n_heads=2")
        n_ctx = len(context_names)
        ctx_mean = float_list(context_mean, n_ctx, 0.0, "context_mean")
        ctx_std = float_list(context_std, n_ctx, 1.0, "context_std")
        self.save_hyperparameters(
            {
                "in_channels": int(in_channels),
                "context_names": [str(n) for n in context_names],
                "text_layers": [str(n) for n in text_layers],
                "n_classes": int(n_classes),
                "width": int(width),
                "n_heads": int(n_heads),
                "text_dim": int(text_dim),
                "n_buckets": int(n_buckets),
                "radius_m": float(radius_m),
                "band_mean": float_list(band_mean, in_channels, 0.0, "band_mean"),
                "band_std": float_list(band_std, in_channels, 1.0, "band_std"),
                "context_mean": ctx_mean,
                "context_std": ctx_std,
                "band_names": [str(n) for n in band_names] if band_names is not None else None,
                "lr": float(lr),
                "weight_decay": float(weight_decay),
                "dropout": float(dropout),
                "image_skip": bool(image_skip),
            }
        )
        hp = self.hparams
        self.image = LandCoverUNet(
            in_channels, n_classes, width=width, dropout=dropout, band_mean=hp["band_mean"], band_std=hp["band_std"]
        )
        self.register_buffer("context_mean", torch.tensor(ctx_mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("context_std", torch.tensor(ctx_std, dtype=torch.float32).view(-1, 1, 1))
        self.context = nn.Sequential(
            conv_block(max(n_ctx, 1), width), nn.Conv2d(width, width, 3, padding=2, dilation=2)
        )
        n_text = len(text_layers)
        self.text_embedding = nn.EmbeddingBag(n_buckets, text_dim, mode="sum", padding_idx=0)
        self.text_proj = nn.Linear(text_dim, width)
        self.text_layer = nn.Parameter(torch.zeros(max(n_text, 1), width))
        self.text_absent = nn.Parameter(torch.zeros(max(n_text, 1), width))
        self.text_near = nn.Parameter(torch.zeros(width))
        self.query = nn.Conv2d(width, width, 1)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.head = nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, n_classes, 1))
        self.criterion = nn.CrossEntropyLoss(ignore_index=NO_LABEL)
        self.val_confmat = MulticlassConfusionMatrix(num_classes=n_classes, ignore_index=NO_LABEL)
        self.val_confusion: np.ndarray | None = None
        """Confusion matrix (true code x predicted code, pixels) of the last validation epoch."""
        channels_last(self)

    @property
    def modality_names(self) -> list[str]:
        """The tokens each pixel attends over, in order: ``image``, ``context``, ``text:<layer>``..."""
        return ["image", "context", *(f"text:{n}" for n in self.hparams["text_layers"])]

    # -- inference ----------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits ``(B, n_classes, H, W)`` of a batch (keys of :func:`collate`); H, W multiples of 8."""
        return self._run(batch)[0]

    def attention(self, batch: dict[str, Tensor]) -> Tensor:
        """Attention ``(B, M, H, W)`` of each pixel over the :attr:`modality_names` (mean of heads; sums to 1)."""
        return self._run(batch)[1]

    def _run(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        x = batch["image"]
        if x.shape[-1] % DOWNSAMPLING or x.shape[-2] % DOWNSAMPLING:
            raise ProcessingError(
                f"input of {x.shape[-2]}x{x.shape[-1]} px: the model needs multiples of {DOWNSAMPLING}; "
                "call predict_multimodal, which pads any size"
            )
        b, _, h, w = x.shape
        width, heads = self.hparams["width"], self.hparams["n_heads"]
        image = self.image.features(x)
        ctx = torch.nan_to_num((batch["context"] - self.context_mean) / self.context_std)
        tokens = [image, self.context(nhwc(ctx) if ctx.shape[1] else ctx.new_zeros(b, 1, h, w))]
        tokens += self._text_tokens(batch, b, h, w)
        t = torch.stack(tokens, dim=1).permute(0, 3, 4, 1, 2)  # (B, H, W, M, width)
        q = self.query(image).permute(0, 2, 3, 1).reshape(b, h, w, heads, 1, width // heads)
        k = self.key(t).reshape(b, h, w, -1, heads, width // heads).transpose(3, 4)
        v = self.value(t).reshape(b, h, w, -1, heads, width // heads).transpose(3, 4)
        alpha = torch.softmax((q * k).sum(-1) / math.sqrt(width // heads), dim=-1)  # (B, H, W, heads, M)
        fused = (alpha.unsqueeze(-1) * v).sum(-2).reshape(b, h, w, width).permute(0, 3, 1, 2)
        logits: Tensor = self.head(fused + image if self.hparams.get("image_skip") else fused)
        return logits, alpha.mean(dim=3).permute(0, 3, 1, 2)

    def _text_tokens(self, batch: dict[str, Tensor], b: int, h: int, w: int) -> list[Tensor]:
        """One ``(B, width, H, W)`` token per text layer."""
        ids, dist = batch["text_ids"], batch["text_distance"]
        n_text = ids.shape[1]
        if n_text == 0:
            return []
        grams = batch["grams"]
        width = self.hparams["width"]
        if grams.shape[0]:
            # Sum over n-grams / sqrt(count): unit-scale embeddings whatever the text length (a mean of ~100
            # random vectors would be 10x smaller and learn 10x slower).
            real = (grams > 0).float()
            weights = real / real.sum(dim=1, keepdim=True).clamp(min=1.0).sqrt()
            emb = self.text_proj(self.text_embedding(grams, per_sample_weights=weights))  # (S, width)
        else:
            emb = self.text_layer.new_zeros(1, width)
        present = ids >= 0
        looked = emb[ids.clamp(min=0)]  # (B, L, H, W, width)
        near = (1.0 - dist / self.hparams["radius_m"]).clamp(0.0, 1.0).unsqueeze(-1)
        token = looked + near * self.text_near + self.text_layer[:n_text].view(1, n_text, 1, 1, width)
        absent = self.text_absent[:n_text].view(1, n_text, 1, 1, width).expand_as(token)
        token = torch.where(present.unsqueeze(-1), token, absent)
        return [token[:, i].permute(0, 3, 1, 2) for i in range(n_text)]

    def classify(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Class codes (uint8), confidence (max softmax, float32) and attention ``(B, M, H, W)``.

        Pixels whose bands are all NaN get class 0 and NaN confidence and attention.
        """
        logits, alpha = self._run(batch)
        probs = torch.softmax(logits[:, 1:].float(), dim=1)
        confidence, index = probs.max(dim=1)
        classes = (index + 1).to(torch.uint8)
        nodata = torch.isnan(batch["image"]).all(dim=1)
        alpha = alpha.float().masked_fill(nodata.unsqueeze(1), float("nan"))
        return classes.masked_fill(nodata, NO_LABEL), confidence.masked_fill(nodata, float("nan")), alpha

    # -- training -----------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Cross-entropy of one batch of patches."""
        loss = self._loss(self(batch), batch["labels"])
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Confusion matrix of one validation block."""
        logits = self(batch)
        self.val_confmat.update(logits[:, 1:].argmax(dim=1) + 1, batch["labels"])

    def on_validation_epoch_end(self) -> None:
        """Log accuracy and IoU (:func:`~memories.ai.land_cover.confusion_metrics`)."""
        cm = self.val_confmat.compute().detach().cpu().numpy().astype(np.int64)
        self.val_confmat.reset()
        self.val_confusion = cm
        self.log_dict({k: v for k, v in confusion_metrics(cm).items() if not math.isnan(v)})

    def configure_optimizers(self) -> Any:
        """AdamW with a cosine schedule over the epochs."""
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        if not bool((y != NO_LABEL).any()):
            return logits.sum() * 0.0
        loss: Tensor = self.criterion(logits.float(), y)
        return loss


@dataclass
class MultiModalResult:
    """A trained multi-modal model and its validation metrics (keys of ``TrainingResult.metrics``)."""

    model: MultiModalLandUse
    metrics: dict[str, float]


def train_multimodal(
    samples: Sequence[MultiModalSample],
    *,
    band_names: Sequence[str],
    settings: ModelSettings,
    val_fraction: float = 0.25,
    accelerator: str = "auto",
    max_epochs: int | None = None,
    image_from: LandCoverUNet | None = None,
    n_heads: int = 2,
    image_skip: bool = True,
) -> MultiModalResult:
    """Train a :class:`MultiModalLandUse` with the seeded spatial split of ``train_land_cover``.

    Args:
        samples: Labelled scenes; scenes of one shape are one place (the same blocks are held out).
        band_names: Names of the reflectance bands.
        settings: Width, epochs, patch size, patches per scene and seed (as for ``train_land_cover``).
        val_fraction: Share of block positions held out.
        accelerator: Lightning accelerator; bf16 mixed precision on CUDA.
        max_epochs: Overrides ``settings.max_epochs``.
        image_from: A trained land-cover U-Net whose weights start the image branch (same width and bands).
        n_heads: Attention heads.
        image_skip: See :class:`MultiModalLandUse`.
    """
    if not samples:
        raise ProcessingError("no multi-modal samples; give at least one MultiModalSample")
    first = samples[0].modalities
    for i, s in enumerate(samples):
        m = s.modalities
        if (m.context_names, m.text_layers) != (first.context_names, first.text_layers):
            raise ProcessingError(
                f"sample {i} has context {m.context_names} and text layers {m.text_layers}, sample 0 "
                f"{first.context_names} and {first.text_layers}; build every sample with the same layers"
            )
    names = [str(n) for n in band_names]
    images, labels = check_samples([(s.reflectance, s.labels) for s in samples], names)
    split = split_scenes(labels, patch_px=settings.patch_px, val_fraction=val_fraction, seed=settings.seed)
    pl.seed_everything(settings.seed, workers=True, verbose=False)
    mean, std = band_statistics(images, split.val_masks)
    ctx_mean, ctx_std = context_statistics([s.modalities.context for s in samples], split.val_masks)
    model = MultiModalLandUse(
        len(names),
        first.context_names,
        first.text_layers,
        width=settings.width,
        n_heads=n_heads,
        band_mean=mean,
        band_std=std,
        context_mean=ctx_mean,
        context_std=ctx_std,
        band_names=names,
        image_skip=image_skip,
    )
    if image_from is not None:
        state = {k: v for k, v in image_from.state_dict().items() if k not in ("band_mean", "band_std")}
        model.image.load_state_dict(state, strict=False)
    grams = [gram_matrix(s.modalities.texts, n_buckets=model.hparams["n_buckets"]) for s in samples]
    train = Patches(images, labels, [s.modalities for s in samples], grams, split, settings)
    val = Blocks(images, labels, [s.modalities for s in samples], grams, split)
    loader = DataLoader(
        train, batch_size=16, shuffle=True, collate_fn=collate, generator=torch.Generator().manual_seed(settings.seed)
    )
    val_loader = DataLoader(val, batch_size=1, collate_fn=collate) if len(val) else None
    epochs = int(max_epochs if max_epochs is not None else settings.max_epochs)
    trainer = training.trainer(accelerator, max_epochs=epochs, validate=val_loader is not None)
    started = time.perf_counter()
    training.fit(trainer, model, loader, val_loader)
    model.cpu().eval()
    cm = model.val_confusion if model.val_confusion is not None else np.zeros((N_CLASSES, N_CLASSES), np.int64)
    metrics = confusion_metrics(cm)
    metrics.update(
        n_train_pixels=float(split.n_train_pixels),
        n_val_pixels=float(cm[1:].sum()),
        epochs=float(trainer.current_epoch),
        seconds=round(time.perf_counter() - started, 3),
    )
    return MultiModalResult(model, metrics)


def predict_multimodal(
    model: MultiModalLandUse, reflectance: np.ndarray, modalities: ModalityInputs
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classes uint8 ``(H, W)``, confidence float32 ``(H, W)`` and attention float32 ``(M, H, W)`` of a scene.

    The scene goes to the model whole (padded to a multiple of 8), on the model's device,
    under bf16 autocast on CUDA. Attention follows :attr:`MultiModalLandUse.modality_names`.
    """
    x = np.asarray(reflectance, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] != model.hparams["in_channels"] or x.shape[1:] != modalities.context.shape[1:]:
        raise ProcessingError(
            f"reflectance {x.shape} and modalities on {modalities.context.shape[1:]}: the model wants "
            f"({model.hparams['in_channels']}, H, W) bands {model.hparams['band_names']} on the modalities' grid"
        )
    if list(modalities.context_names) != model.hparams["context_names"]:
        raise ProcessingError(
            f"modalities have context {list(modalities.context_names)}, the model was trained on "
            f"{model.hparams['context_names']}; build them with the same layers"
        )
    h, w = x.shape[1:]
    labels = np.zeros((h, w), np.int64)
    item = patch_item(x, labels, modalities, gram_matrix(modalities.texts, n_buckets=model.hparams["n_buckets"]), None)
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in collate([item]).items()}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            classes, confidence, alpha = model.classify(batch)
    finally:
        model.train(was_training)
    return (
        classes[0, :h, :w].cpu().numpy().astype(np.uint8),
        confidence[0, :h, :w].float().cpu().numpy(),
        alpha[0, :, :h, :w].float().cpu().numpy(),
    )


def attention_variable(modality: str) -> str:
    """The variable of a token's attention in the ``multimodal_land_use`` product: ``text:roads`` ->
    ``attention_text_roads`` (Zarr names hold no colon)."""
    return "attention_" + modality.replace(":", "_")


def land_use_dataset(
    classes: np.ndarray, confidence: np.ndarray, attention: np.ndarray, modality_names: Sequence[str]
) -> Any:
    """The ``xarray.Dataset`` of one tile-month of the ``multimodal_land_use`` product: ``land_use`` (uint8
    codes), ``confidence`` (float32 0-1) and one float32 ``attention_<token>`` (0-1) per modality token,
    all ``(y, x)`` (the outputs of :func:`predict_multimodal`)."""
    import xarray as xr

    variables: dict[str, Any] = {
        "land_use": (("y", "x"), np.asarray(classes, dtype=np.uint8)),
        "confidence": (("y", "x"), np.asarray(confidence, dtype=np.float32)),
    }
    for name, plane in zip(modality_names, attention, strict=True):
        variables[attention_variable(name)] = (("y", "x"), np.asarray(plane, dtype=np.float32))
    return xr.Dataset(variables)
