"""Synthetic labelled scenes and one trained land-cover model, shared by the tests of memories.ai."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from memories.config import ModelSettings

BANDS = ["blue", "green", "red", "nir", "swir16", "swir22"]

# Reflectance (0–1) of each class in the six bands: distinct, as real spectra are.
SPECTRA = np.array(
    [
        [0.05, 0.06, 0.04, 0.02, 0.01, 0.01],  # water
        [0.03, 0.05, 0.03, 0.35, 0.18, 0.08],  # forest
        [0.08, 0.10, 0.12, 0.25, 0.30, 0.22],  # cropland
        [0.20, 0.22, 0.25, 0.30, 0.35, 0.30],  # built-up
    ],
    dtype=np.float32,
)
CODES = np.array([1, 2, 3, 5], dtype=np.uint8)

SMALL_SETTINGS = ModelSettings(width=8, max_epochs=8, patch_px=32, patches_per_scene=128, seed=7)
"""128 optimizer steps, about 4 s on two CPU cores for two 96x96 scenes; with half as many steps
some seeds stay below 0.9 validation accuracy."""


@dataclass(frozen=True)
class SyntheticScene:
    """One labelled scene and its ground truth."""

    reflectance: np.ndarray
    """float32 (6, H, W), 0–1, NaN in a few 8x8 holes."""
    labels: np.ndarray
    """uint8 (H, W): the truth with the top eighth of rows unlabelled (0)."""
    truth: np.ndarray
    """uint8 (H, W): the class of every pixel."""

    @property
    def nodata(self) -> np.ndarray:
        return np.isnan(self.reflectance).all(axis=0)


def make_scene(rows: int, cols: int, seed: int, *, n_regions: int = 24, noise: float = 0.02) -> SyntheticScene:
    """Voronoi regions of four classes with their spectra plus Gaussian noise, and three no-data holes."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([0, 0], [rows, cols], size=(n_regions, 2))
    region_class = rng.integers(0, len(CODES), n_regions)
    rr, cc = np.mgrid[0:rows, 0:cols]
    dist = (rr[..., None] - centres[:, 0]) ** 2 + (cc[..., None] - centres[:, 1]) ** 2
    index = region_class[dist.argmin(axis=-1)]
    truth = CODES[index]
    x = SPECTRA[index].transpose(2, 0, 1) + rng.normal(0, noise, (len(BANDS), rows, cols)).astype(np.float32)
    for _ in range(3):
        r, c = rng.integers(0, rows - 8), rng.integers(0, cols - 8)
        x[:, r : r + 8, c : c + 8] = np.nan
    labels = truth.copy()
    labels[: rows // 8] = 0
    return SyntheticScene(x.astype(np.float32), labels, truth)


@pytest.fixture(scope="session")
def training_scenes() -> list[SyntheticScene]:
    """Two 96x96 scenes (think: two months of one tile)."""
    return [make_scene(96, 96, seed) for seed in (1, 2)]


@pytest.fixture(scope="session")
def trained(training_scenes: list[SyntheticScene]):  # type: ignore[no-untyped-def]
    """A LandCoverUNet trained on the two scenes with SMALL_SETTINGS, on the CPU."""
    import torch

    from memories.ai.land_cover import train_land_cover

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see trained_change
    try:
        return train_land_cover(
            [(s.reflectance, s.labels) for s in training_scenes],
            band_names=BANDS,
            settings=SMALL_SETTINGS,
            accelerator="cpu",
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def scene_factory():  # type: ignore[no-untyped-def]
    """:func:`make_scene`, for tests that need scenes of their own."""
    return make_scene


@pytest.fixture(scope="session")
def small_settings() -> ModelSettings:
    """:data:`SMALL_SETTINGS`."""
    return SMALL_SETTINGS


@pytest.fixture(scope="session")
def band_names() -> list[str]:
    """:data:`BANDS`."""
    return list(BANDS)


@pytest.fixture(scope="session")
def trained_change():  # type: ignore[no-untyped-def]
    """The siamese change model of :func:`tests.memories.ai.change_world.train_siamese` and its held-out pair.

    Trained on one torch thread: on a loaded two-core machine two intra-op threads
    made a training step 40x slower (spinning OpenMP workers).
    """
    import torch

    from tests.memories.ai.change_world import train_siamese

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_siamese()
    finally:
        torch.set_num_threads(threads)
