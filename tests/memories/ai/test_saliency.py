"""Saliency and attention figures: integrated gradients is complete and finds the informative band."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memories.ai.saliency import (
    figure_png,
    integrated_gradients,
    occlusion_saliency,
    plot_modality_attention,
    plot_saliency,
)
from tests.memories.ai.test_explain import BANDS, _scene


@pytest.fixture(scope="module")
def signal_model():  # type: ignore[no-untyped-def]
    """A U-Net for which only band 'signal' tells the class (trained on one thread, ~10 s)."""
    from memories.ai.land_cover import train_land_cover
    from memories.config import ModelSettings

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        settings = ModelSettings(width=8, max_epochs=6, patch_px=32, patches_per_scene=64, seed=3)
        result = train_land_cover(
            [_scene(1, 96), _scene(2, 96)], band_names=BANDS, settings=settings, accelerator="cpu"
        )
    finally:
        torch.set_num_threads(before)
    assert result.metrics["val_accuracy"] > 0.8
    return result.model


def test_integrated_gradients_is_complete_and_credits_the_signal_band(signal_model) -> None:  # type: ignore[no-untyped-def]
    x, labels = _scene(9)
    x[:, :8, :8] = np.nan
    sal = integrated_gradients(signal_model, x, steps=16)
    assert sal.attribution.shape == (3, 64, 64)
    assert np.isnan(sal.attribution[:, :8, :8]).all() and (sal.classes[:8, :8] == 0).all()
    assert (sal.classes[8:] == labels[8:]).mean() > 0.8
    share = sal.band_share
    assert next(iter(share)) == "signal" and share["signal"] > 0.5, share
    # Completeness: the attributions add up to F(x) - F(baseline), F = sum of predicted-class logits.
    filled = np.where(np.isnan(x), np.asarray(signal_model.hparams["band_mean"], np.float32)[:, None, None], x)
    with torch.no_grad():
        inp = torch.from_numpy(filled)[None]
        base = signal_model.band_mean.expand_as(inp[0])[None]
        idx = torch.from_numpy(sal.classes.astype(np.int64) - 1).clamp(min=0)[None, None]
        idx[0, 0, :8, :8] = torch.from_numpy(
            signal_model(inp)[:, 1:, :8, :8].argmax(1)[0].numpy()
        )  # the no-data corner is still explained, as the band mean
        gain = float((signal_model(inp)[:, 1:].gather(1, idx) - signal_model(base)[:, 1:].gather(1, idx)).sum())
    assert np.nansum(sal.attribution) == pytest.approx(gain, rel=0.05)


def test_occlusion_drops_confidence_and_figures_draw(signal_model) -> None:  # type: ignore[no-untyped-def]
    x, _ = _scene(9)
    drop = occlusion_saliency(signal_model, x, window=32)
    assert drop.shape == (64, 64) and np.nanmean(drop) > 0.05
    fig = plot_saliency(x, integrated_gradients(signal_model, x, steps=4), rgb=("signal", "noise_a", "noise_b"))
    assert len(fig.axes) == 5  # image, classes, saliency + its colour bar, band shares
    assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    attention = np.stack([np.full((4, 4), 0.7), np.full((4, 4), 0.3)])
    attention[:, 0, 0] = [0.1, 0.9]
    fig = plot_modality_attention(attention, ["image", "text:places"], reflectance=x[:, :4, :4], band_names=BANDS)
    assert len(fig.axes) == 5  # image, two modalities, colour bar, dominant modality
    dominant = fig.axes[3].images[0].get_array()
    assert dominant[0, 0] == 1 and dominant[1, 1] == 0


def test_modality_shares_group_the_tokens_and_sum_to_one_per_pixel() -> None:
    from memories.ai.saliency import MODALITY_GROUPS, modality_shares, plot_modality_shares

    rng = np.random.default_rng(0)
    names = ["image", "context", "text:roads", "text:buildings", "text:places"]
    logits = rng.normal(0, 2, (len(names), 6, 7))
    attention = np.exp(logits) / np.exp(logits).sum(axis=0)  # a softmax over the tokens, as the model's
    attention[:, 0, 0] = np.nan  # a pixel without data
    attention = attention.astype(np.float16)  # stored at low precision: the shares still sum to 1
    shares = modality_shares(attention, names)
    assert shares.shape == (3, 6, 7) and shares.dtype == np.float32
    assert np.isnan(shares[:, 0, 0]).all()
    valid = np.isfinite(shares).all(axis=0)
    assert valid.sum() == 6 * 7 - 1
    np.testing.assert_allclose(shares.sum(axis=0)[valid], 1.0, atol=1e-6)
    assert (shares[:, valid] >= 0).all() and (shares[:, valid] <= 1).all()
    a = attention.astype(np.float64)
    total = a.sum(axis=0)
    np.testing.assert_allclose(shares[MODALITY_GROUPS.index("imagery")], a[0] / total, rtol=1e-5)
    np.testing.assert_allclose(shares[MODALITY_GROUPS.index("vector")], a[1] / total, rtol=1e-5)
    np.testing.assert_allclose(shares[MODALITY_GROUPS.index("text")], a[2:].sum(axis=0) / total, rtol=1e-5)
    # Stored variable names group the same way; an unknown token is refused.
    np.testing.assert_array_equal(
        modality_shares(attention, ["image", "context", "text_roads", "text_b", "text_c"]), shares
    )
    with pytest.raises(Exception, match="attention token 'sound'"):
        modality_shares(attention[:2], ["image", "sound"])
    fig = plot_modality_shares(shares)
    assert len(fig.axes) == 5 and figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"  # mix, three groups, colour bar


def test_saliency_preview_is_markdown_of_the_central_window(signal_model) -> None:  # type: ignore[no-untyped-def]
    import base64
    import io

    from PIL import Image

    from memories.ai.saliency import saliency_preview

    x, _ = _scene(4, 96)
    md = saliency_preview(signal_model, x, window_px=32, title="land_cover:1")
    assert "rows 32..64, cols 32..64" in md
    data = base64.b64decode(md.split("data:image/png;base64,")[1].split(")")[0])
    assert Image.open(io.BytesIO(data)).format == "PNG"
