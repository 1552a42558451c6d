"""The change tests' world: sample-world scenes of two tiles and the truth of their events, and the training
of the siamese change model that test_change scores and the seed's model example uses (one session fixture).

Scenes are the sample world's clear-sky reflectance at mid-month plus seeded sensor
noise (reflectance sigma 0.01) and no-data holes, built from the spec without
generating the world on disk.
"""

from __future__ import annotations

import numpy as np

from memories.ai.change import IGNORE, ChangePair, ChangeTrainingResult, train_change_detector
from memories.ai.change_maps import event_truth
from memories.earth.stac_profiles import COMMON_BANDS
from memories.months import month_mid
from memories.sample.landscape import build_landscape
from memories.sample.scenes import clear_sky, repeat_to_10m
from memories.sample.spec import SampleWorldSpec
from memories.sample.spectra import BAND_INFO

SPEC = SampleWorldSpec(seed=42, n_tiles=2, start_month="2023-05", n_months=4, size_px=128)
BEFORE, AFTER = "2023-05", "2023-08"
"""May has none of the events; mid-August has the clear-cut, the new district and the flood."""
BASELINE_IOU_FLOOR = {"clear_cut": 0.85, "new_district": 0.85, "flood": 0.85}
"""Measured on 31UDQ: 0.91, 0.89, 0.90."""


def scene(tile: str, month: str, seed: int) -> np.ndarray:
    """Clear-sky reflectance (6, 128, 128) at mid-month with Gaussian noise and two 6x6 no-data holes."""
    landscape = build_landscape(SPEC, tile)
    when = month_mid(month)
    bands = []
    for b in COMMON_BANDS:
        r = clear_sky(landscape, when, b)
        bands.append(repeat_to_10m(r) if BAND_INFO[b].resolution == 20 else r)
    rng = np.random.default_rng(seed)
    x = np.stack(bands) + rng.normal(0, 0.01, (len(bands), *bands[0].shape))
    for _ in range(2):
        r, c = rng.integers(0, 122, 2)
        x[:, r : r + 6, c : c + 6] = np.nan
    return x.astype(np.float32)


def truth(tile: str, before: str, after: str) -> dict[str, np.ndarray]:
    landscape = build_landscape(SPEC, tile)
    return event_truth(landscape.events, landscape.event_masks, month_mid(before), month_mid(after))


def labelled_pair(tile: str, before: str, after: str, seed: int) -> ChangePair:
    a, b = scene(tile, before, seed), scene(tile, after, seed + 1)
    label = np.zeros(a.shape[1:], dtype=np.uint8)
    for m in truth(tile, before, after).values():
        label[m] = 1
    label[np.isnan(a).all(axis=0) | np.isnan(b).all(axis=0)] = IGNORE
    return ChangePair(a, b, label)


def train_siamese() -> tuple[ChangeTrainingResult, ChangePair]:
    """The siamese model trained on every month pair of 33TVM (40 steps, width 8), and the held-out 31UDQ pair."""
    months = SPEC.months()
    train = [
        labelled_pair("33TVM", months[i], months[j], seed=10 * i + j)
        for i in range(len(months))
        for j in range(i + 1, len(months))
    ]
    held_out = labelled_pair("31UDQ", BEFORE, AFTER, seed=99)
    result = train_change_detector(
        train, validation=[held_out], width=8, patch_px=48, steps=40, batch_size=8, seed=7, accelerator="cpu"
    )
    return result, held_out
