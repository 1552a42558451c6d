"""Land cover on real Sentinel-2 L1C over Slovenia, scored on the real land-use polygons.

Measured (``python -m bench.slovenia``, 10 epochs): held-out accuracy 0.84, mean
IoU 0.31; forest 0.99 accuracy, grassland 0.42, cropland and built-up 0 (11 and 198
pixels in the whole patch). The test trains 6 epochs and asserts a little below what
that reaches.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.slovenia import (
    LULC_TO_CLASS,
    SLOVENIA_SETTINGS,
    load_slovenia,
    map_lulc,
    train_slovenia,
)
from memories.ai.split import split_scenes
from memories.classes import CLASS_BY_NAME, NO_LABEL
from tests.real_data import SHARED_DATA, needs_data

DATA = SHARED_DATA / "s2_slovenia"
needs_slovenia = needs_data(DATA / "REFERENCE_SCENES.npy", DATA / "eopatch")

# Floors of the 6-epoch U-Net on the held-out blocks. Measured (CPU, torch 2.13): accuracy 0.8291 against the
# majority-class share 0.7473 (+0.082), grassland IoU 0.3554, forest IoU 0.8197, mean IoU 0.2938; with 1 or 2
# torch threads the figures move by 1e-4. A constant "forest" map scores +0.000, 0.0, 0.747 and 0.187. The
# floors keep about 0.03 below the measured values for other CPUs' float order over 6 seeded epochs.
ACCURACY_MARGIN = 0.05
"""Least held-out accuracy above the majority-class share of the held-out labels (measured +0.082)."""
GRASSLAND_IOU_FLOOR = 0.32
"""Grassland, the second class (0.23 of held-out pixels): measured 0.355 at 6 epochs, 0.39 at 10."""
FOREST_IOU_FLOOR = 0.78
"""Measured 0.820; all-forest scores 0.747 (the forest share), so it cannot pass by predicting forest everywhere."""
MEAN_IOU_FLOOR = 0.26
"""Over forest, cropland, grassland and built-up: measured 0.294 (cropland and built-up 0: 5 and 275 pixels)."""


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return load_slovenia(DATA)


@needs_slovenia
def test_polygons_rasterize_onto_the_source_raster(data) -> None:
    assert data.labels.shape == (101, 100)
    assert (data.labels == data.labels_from_npy).mean() > 0.99
    # Forest dominates the patch (7,601 of 10,100 pixels in LULC.npy).
    assert (data.labels == CLASS_BY_NAME["forest"].code).sum() == pytest.approx(7601, rel=0.02)


@needs_slovenia
def test_scenes_are_top_of_atmosphere_reflectance_in_common_band_order(data) -> None:
    assert data.dates == ["2015-07-11", "2015-07-31", "2015-08-20", "2015-08-30", "2015-09-09"]
    x = data.scenes[0]
    assert x.shape == (6, 101, 100) and x.dtype == np.float32
    forest = data.labels == CLASS_BY_NAME["forest"].code
    # Summer forest: NIR (index 3) far above red (index 2).
    assert np.median(x[3][forest]) > 2 * np.median(x[2][forest])
    assert 0 < np.nanmin(x) and np.nanmax(x) < 1


def test_lulc_mapping_sends_shrubland_to_grassland_and_unknowns_to_no_label() -> None:
    assert map_lulc(np.array([1, 2, 3, 4, 8, 0, 6, 42])).tolist() == [3, 2, 4, 4, 5, 0, 0, 0]
    assert set(LULC_TO_CLASS) == set(range(11))


@needs_slovenia
def test_unet_on_real_land_use_scores_on_held_out_blocks(data) -> None:
    settings = SLOVENIA_SETTINGS.model_copy(update={"max_epochs": 6})
    m = train_slovenia(data, settings=settings, accelerator="cpu").metrics
    # The baseline every model must beat: the majority class of the held-out labels themselves (forest,
    # 0.747 of 11,575 labelled pixels), from the same seeded split the training uses.
    split = split_scenes(
        [data.labels] * len(data.scenes), patch_px=settings.patch_px, val_fraction=0.25, seed=settings.seed
    )
    held_out = np.concatenate([data.labels[mask] for mask in split.val_masks])
    held_out = held_out[held_out != NO_LABEL]
    majority_share = np.bincount(held_out).max() / held_out.size
    print(
        f"\nheld-out accuracy {m['val_accuracy']:.4f} vs majority class {majority_share:.4f}; "
        f"mean IoU {m['val_miou']:.4f}, forest IoU {m['val_iou/forest']:.4f}, "
        f"grassland IoU {m['val_iou/grassland']:.4f}"
    )
    assert m["n_val_pixels"] == held_out.size
    assert m["val_accuracy"] >= majority_share + ACCURACY_MARGIN
    assert m["val_iou/grassland"] >= GRASSLAND_IOU_FLOOR
    assert m["val_iou/forest"] >= FOREST_IOU_FLOOR
    assert m["val_miou"] >= MEAN_IOU_FLOOR
