"""Band importance finds the one band that carries the signal, by both methods."""

from __future__ import annotations

import numpy as np
import pytest

from memories.ai.explain import band_importance, plot_band_importance
from memories.errors import ConfigError, ProcessingError

BANDS = ["noise_a", "signal", "noise_b"]


def _scene(seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi regions of three classes; only band 'signal' depends on the class, the others are noise."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, size, size=(16, 2))
    codes = np.array([1, 2, 3], np.uint8)[rng.integers(0, 3, 16)]
    rr, cc = np.mgrid[0:size, 0:size]
    labels = codes[((rr[..., None] - centres[:, 0]) ** 2 + (cc[..., None] - centres[:, 1]) ** 2).argmin(-1)]
    x = rng.uniform(0.05, 0.4, (3, size, size)).astype(np.float32)
    x[1] = np.array([0.0, 0.05, 0.2, 0.35])[labels] + rng.normal(0, 0.01, (size, size))
    return x.astype(np.float32), labels


@pytest.fixture(scope="module")
def signal_model():  # type: ignore[no-untyped-def]
    from memories.ai.land_cover import train_land_cover
    from memories.config import ModelSettings

    settings = ModelSettings(width=8, max_epochs=6, patch_px=32, patches_per_scene=64, seed=3)
    result = train_land_cover([_scene(1, 96), _scene(2, 96)], band_names=BANDS, settings=settings, accelerator="cpu")
    assert result.metrics["val_accuracy"] > 0.8
    return result.model


@pytest.mark.parametrize("method", ["permutation", "gradient"])
def test_signal_band_ranks_first(signal_model, method: str) -> None:  # type: ignore[no-untyped-def]
    x, labels = _scene(9)
    importance = band_importance(signal_model, x, labels, method=method, n_repeats=2, seed=0)  # type: ignore[arg-type]
    assert list(importance)[0] == "signal"
    assert set(importance) == set(BANDS)
    if method == "permutation":
        # Shuffling the signal band leaves about chance accuracy (1/3): a drop of well over 0.3.
        assert importance["signal"] > 0.3
        assert max(importance["noise_a"], importance["noise_b"]) < importance["signal"] / 3
    else:
        assert sum(importance.values()) == pytest.approx(1.0)
        assert importance["signal"] > 0.5


def test_bad_inputs_and_the_chart(signal_model) -> None:  # type: ignore[no-untyped-def]
    x, labels = _scene(9, size=16)
    with pytest.raises(ProcessingError, match="no labelled pixel"):
        band_importance(signal_model, x, np.zeros_like(labels))
    with pytest.raises(ProcessingError, match="do not fit"):
        band_importance(signal_model, x[:2], labels)
    with pytest.raises(ConfigError, match="method"):
        band_importance(signal_model, x, labels, method="shap")  # type: ignore[arg-type]
    png = plot_band_importance({"signal": 0.6, "noise_a": 0.01, "noise_b": -0.01})
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_the_band_importance_sidecar_is_computed_or_says_why_not(signal_model) -> None:  # type: ignore[no-untyped-def]
    from memories.ai.explain import band_importance_sidecar

    scenes = [_scene(1, 96), _scene(2, 96)]
    sidecar, why_not = band_importance_sidecar(signal_model, scenes, patch_px=32, seed=3, n_repeats=1, scored_on="x")
    assert why_not is None and max(sidecar["band_importance"], key=sidecar["band_importance"].get) == "signal"
    assert band_importance_sidecar(signal_model, scenes, patch_px=32, seed=3, n_repeats=0, scored_on="x") == ({}, None)
    unlabelled = [(x, np.zeros_like(y)) for x, y in scenes]
    sidecar, why_not = band_importance_sidecar(
        signal_model, unlabelled, patch_px=32, seed=3, n_repeats=1, scored_on="x"
    )
    assert sidecar == {} and why_not
