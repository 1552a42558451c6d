"""The land-cover U-Net: training on synthetic scenes, the spatial split, prediction of any size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from memories.ai.land_cover import (
    LandCoverUNet,
    TrainingResult,
    confusion_metrics,
    predict_land_cover,
    train_land_cover,
)
from memories.ai.split import spatial_split, split_scenes
from memories.classes import CLASS_BY_CODE
from memories.config import ModelSettings
from memories.errors import ConfigError, ProcessingError


def test_training_reaches_high_validation_accuracy(trained: TrainingResult, training_scenes) -> None:
    m = trained.metrics
    assert m["val_accuracy"] > 0.9
    assert m["val_miou"] > 0.6
    # Per-class entries for every class in the validation labels, by class name.
    # Training unlabels no-data pixels first; so does this split.
    labels = [np.where(s.nodata, 0, s.labels) for s in training_scenes]
    split = split_scenes(labels, patch_px=32, val_fraction=0.25, seed=7)
    val_codes = set()
    for s, mask in zip(training_scenes, split.val_masks, strict=True):
        val_codes |= set(np.unique(s.labels[mask & ~s.nodata]).tolist()) - {0}
    assert val_codes
    for code in val_codes:
        name = CLASS_BY_CODE[code].name
        assert 0.0 <= m[f"val_accuracy/{name}"] <= 1.0
        assert 0.0 <= m[f"val_iou/{name}"] <= 1.0
    assert m["n_val_pixels"] == sum(
        int(((s.labels > 0) & mask & ~s.nodata).sum()) for s, mask in zip(training_scenes, split.val_masks, strict=True)
    )
    assert m["n_train_pixels"] == split.n_train_pixels > m["n_val_pixels"]
    assert m["epochs"] == 8
    assert m["seconds"] > 0
    assert trained.band_names == ["blue", "green", "red", "nir", "swir16", "swir22"]


def test_checkpoint_hyperparameters_carry_normalization(trained: TrainingResult, band_names) -> None:
    hp = trained.model.hparams
    assert hp["in_channels"] == 6 and hp["n_classes"] == 7 and hp["width"] == 8
    assert hp["band_names"] == band_names
    assert len(hp["band_mean"]) == len(hp["band_std"]) == 6
    # nir of the synthetic spectra averages far above blue
    assert hp["band_mean"][3] > hp["band_mean"][0] > 0
    assert all(isinstance(v, float) for v in hp["band_mean"] + hp["band_std"])
    rebuilt = LandCoverUNet(**hp)
    rebuilt.load_state_dict(trained.model.state_dict())


def test_prediction_matches_truth_and_marks_nodata(trained: TrainingResult, scene_factory) -> None:
    scene = scene_factory(96, 96, seed=11)
    classes, confidence = predict_land_cover(trained.model, scene.reflectance)
    assert classes.dtype == np.uint8 and confidence.dtype == np.float32
    assert classes.shape == confidence.shape == (96, 96)
    nodata = scene.nodata
    assert nodata.sum() > 0
    assert (classes[nodata] == 0).all()
    assert np.isnan(confidence[nodata]).all()
    assert (classes[~nodata] > 0).all()
    assert ((confidence[~nodata] > 0) & (confidence[~nodata] <= 1)).all()
    assert (classes[~nodata] == scene.truth[~nodata]).mean() > 0.9


def test_prediction_works_on_odd_sizes_and_small_tiles(trained: TrainingResult, scene_factory) -> None:
    scene = scene_factory(101, 77, seed=12)
    whole, conf = predict_land_cover(trained.model, scene.reflectance)
    assert whole.shape == conf.shape == (101, 77)
    valid = ~scene.nodata
    assert (whole[valid] == scene.truth[valid]).mean() > 0.9
    # 72 px tiles (8 px cores + 32 px margins) must agree with one whole tile nearly everywhere.
    tiled, _ = predict_land_cover(trained.model, scene.reflectance, batch_px=72)
    assert (tiled == whole).mean() > 0.97
    assert (tiled[scene.nodata] == 0).all()


def test_prediction_leaves_the_model_mode_alone(trained: TrainingResult, scene_factory) -> None:
    model = trained.model
    model.train()
    try:
        predict_land_cover(model, scene_factory(40, 40, seed=3).reflectance)
        assert model.training
    finally:
        model.eval()


def test_prediction_rejects_wrong_band_count(trained: TrainingResult) -> None:
    with pytest.raises(ProcessingError, match="stack the bands"):
        predict_land_cover(trained.model, np.zeros((4, 16, 16), np.float32))


def test_spatial_split_never_puts_a_pixel_in_both_train_and_val(scene_factory) -> None:
    labels = [scene_factory(96, 96, s).labels for s in (1, 2)] + [scene_factory(101, 77, 3).labels]
    split = split_scenes(labels, patch_px=16, val_fraction=0.25, seed=7)
    assert split.block_px == 32
    for lab, mask, boxes, windows in zip(labels, split.val_masks, split.val_boxes, split.train_windows, strict=True):
        assert len(boxes) > 0 and len(windows) > 0
        train_pixels = np.zeros(lab.shape, dtype=bool)
        for r, c in windows:
            train_pixels[r : r + 16, c : c + 16] = True
        val_pixels = np.zeros(lab.shape, dtype=bool)
        for r0, r1, c0, c1 in boxes:
            val_pixels[r0:r1, c0:c1] = True
        assert not (train_pixels & val_pixels).any()
        assert (val_pixels == mask).all()
        # Every training window holds a labelled pixel.
        assert all((lab[r : r + 16, c : c + 16] > 0).any() for r, c in windows)
    # The two 96x96 scenes are one place: the same blocks are held out in both.
    assert split.val_boxes[0] == split.val_boxes[1]
    # 9 blocks of 32 px in 96x96: a quarter rounds to 2.
    assert len(split.val_boxes[0]) == 2


def test_spatial_split_is_seeded() -> None:
    a = spatial_split((256, 256), block_px=32, val_fraction=0.25, seed=1)
    assert a == spatial_split((256, 256), block_px=32, val_fraction=0.25, seed=1)
    assert a != spatial_split((256, 256), block_px=32, val_fraction=0.25, seed=2)
    assert len(a) == 16  # of 64 blocks
    assert spatial_split((256, 256), block_px=32, val_fraction=0.0, seed=1) == ()
    with pytest.raises(ConfigError, match="smaller model.patch_px"):
        spatial_split((30, 30), block_px=32, val_fraction=0.25, seed=1)


def test_patch_size_must_be_a_multiple_of_eight() -> None:
    with pytest.raises(ConfigError, match="multiple of 8"):
        split_scenes([np.ones((64, 64), np.uint8)], patch_px=30, val_fraction=0.25, seed=0)


def test_training_rejects_mismatched_bands(training_scenes, small_settings) -> None:
    s = training_scenes[0]
    with pytest.raises(ProcessingError, match="sample 0"):
        train_land_cover([(s.reflectance, s.labels)], band_names=["red"], settings=small_settings)
    with pytest.raises(ProcessingError, match="labels of shape"):
        train_land_cover([(s.reflectance, s.labels[:10])], band_names=list("abcdef"), settings=small_settings)


def test_fast_dev_run_trains_one_batch(training_scenes, small_settings, band_names) -> None:
    result = train_land_cover(
        [(s.reflectance, s.labels) for s in training_scenes],
        band_names=band_names,
        settings=small_settings,
        accelerator="cpu",
        fast_dev_run=True,
    )
    assert isinstance(result.model, LandCoverUNet)
    assert not result.model.training
    assert result.metrics["n_val_pixels"] > 0
    assert 0.0 <= result.metrics["val_accuracy"] <= 1.0
    classes, _ = predict_land_cover(result.model, training_scenes[0].reflectance)
    assert classes.shape == (96, 96)


def test_training_is_reproducible(training_scenes, band_names) -> None:
    settings = ModelSettings(width=4, max_epochs=1, patch_px=32, patches_per_scene=16, seed=3)
    samples = [(s.reflectance, s.labels) for s in training_scenes]
    a = train_land_cover(samples, band_names=band_names, settings=settings, accelerator="cpu")
    b = train_land_cover(samples, band_names=band_names, settings=settings, accelerator="cpu")
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb
        assert torch.equal(va, vb), ka
    assert a.metrics["val_accuracy"] == b.metrics["val_accuracy"]


def test_mc_dropout_varies_and_eval_does_not(trained: TrainingResult, training_scenes) -> None:
    model = trained.model
    x = torch.from_numpy(training_scenes[0].reflectance[:, :64, :64].copy())[None]
    try:
        with torch.inference_mode():
            model.eval()
            assert torch.equal(model(x), model(x))
            model.enable_mc_dropout()
            assert not any(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
            assert not torch.equal(model(x), model(x))
    finally:
        model.eval()


def test_confusion_metrics_by_hand() -> None:
    cm = np.zeros((7, 7), np.int64)
    cm[1, 1], cm[1, 2] = 8, 2  # water: 8 right, 2 called forest
    cm[2, 2] = 10  # forest: all right
    m = confusion_metrics(cm)
    assert m["val_accuracy"] == pytest.approx(18 / 20)
    assert m["val_accuracy/water"] == pytest.approx(0.8)
    assert m["val_iou/water"] == pytest.approx(8 / 10)
    assert m["val_iou/forest"] == pytest.approx(10 / 12)
    assert m["val_miou"] == pytest.approx((0.8 + 10 / 12) / 2)
    assert "val_iou/cropland" not in m


def test_importing_memories_ai_does_not_import_torch() -> None:
    import memories.ai

    project = Path(memories.ai.__file__).resolve().parents[2]
    code = "import sys, memories.ai; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
