"""Monte-Carlo dropout: per-pixel mean, variance and entropy of land-cover predictions."""

from __future__ import annotations

import numpy as np
import pytest

from memories.ai.land_cover import LandCoverUNet, TrainingResult, predict_land_cover
from memories.ai.uncertainty import UncertaintyEstimator
from memories.errors import ConfigError


def test_dropout_passes_give_positive_variance_and_probabilities_that_sum_to_one(
    trained: TrainingResult, scene_factory
) -> None:
    scene = scene_factory(64, 64, seed=21)
    maps = UncertaintyEstimator(trained.model, passes=8, seed=1).predict(scene.reflectance)
    valid = ~scene.nodata
    assert maps.probabilities.shape == (6, 64, 64)
    np.testing.assert_allclose(maps.probabilities[:, valid].sum(axis=0), 1.0, atol=1e-4)
    assert (maps.variance[valid] >= 0).all() and maps.variance[valid].mean() > 1e-6
    assert (maps.variance[valid] <= 0.25 + 1e-6).all()
    assert ((maps.entropy[valid] >= -1e-6) & (maps.entropy[valid] <= np.log(6) + 1e-5)).all()
    # The mean of T dropout passes still classifies the synthetic truth.
    assert (maps.classes[valid] == scene.truth[valid]).mean() > 0.9
    # Confidence is the mean probability of the predicted class.
    picked = np.take_along_axis(maps.probabilities, (maps.classes[None].astype(np.int64) - 1).clip(0), axis=0)[0]
    np.testing.assert_allclose(maps.confidence[valid], picked[valid], rtol=1e-5)
    assert (maps.classes[scene.nodata] == 0).all() and np.isnan(maps.variance[scene.nodata]).all()


def test_one_pass_has_zero_variance_and_matches_plain_prediction(trained: TrainingResult, scene_factory) -> None:
    scene = scene_factory(48, 56, seed=22)
    maps = UncertaintyEstimator(trained.model, passes=1, seed=1).predict(scene.reflectance)
    valid = ~scene.nodata
    assert (maps.variance[valid] == 0).all()
    # One pass runs with dropout off: exactly the plain prediction.
    classes, _ = predict_land_cover(trained.model, scene.reflectance)
    assert np.array_equal(maps.classes, classes)


def test_without_dropout_every_pass_agrees(trained: TrainingResult, scene_factory) -> None:
    hp = dict(trained.model.hparams)
    hp["dropout"] = 0.0
    deterministic = LandCoverUNet(**hp)
    deterministic.load_state_dict(trained.model.state_dict())
    scene = scene_factory(48, 48, seed=23)
    maps = UncertaintyEstimator(deterministic, passes=6).predict(scene.reflectance)
    valid = ~scene.nodata
    assert np.abs(maps.variance[valid]).max() < 1e-10
    classes, confidence = predict_land_cover(deterministic, scene.reflectance)
    assert (maps.classes == classes).all()
    np.testing.assert_allclose(maps.confidence[valid], confidence[valid], rtol=1e-5)


def test_out_of_distribution_input_is_more_uncertain(trained: TrainingResult, scene_factory) -> None:
    scene = scene_factory(64, 64, seed=24)
    estimator = UncertaintyEstimator(trained.model, passes=16, seed=3)
    familiar = estimator.predict(scene.reflectance)
    # Spectra no training pixel has: halfway mixtures of forest and cropland, and of water and built-up.
    forest, cropland = np.array([0.03, 0.05, 0.03, 0.35, 0.18, 0.08]), np.array([0.08, 0.10, 0.12, 0.25, 0.30, 0.22])
    water, built = np.array([0.05, 0.06, 0.04, 0.02, 0.01, 0.01]), np.array([0.20, 0.22, 0.25, 0.30, 0.35, 0.30])
    rng = np.random.default_rng(5)
    strange = np.concatenate(
        [
            (forest + cropland)[:, None, None] / 2 + rng.normal(0, 0.02, (6, 32, 64)),
            (water + built)[:, None, None] / 2 + rng.normal(0, 0.02, (6, 32, 64)),
        ],
        axis=1,
    )
    unfamiliar = estimator.predict(strange.astype(np.float32))
    valid = ~scene.nodata
    assert unfamiliar.variance.mean() > 2 * familiar.variance[valid].mean()
    assert unfamiliar.entropy.mean() > familiar.entropy[valid].mean()


def test_estimates_are_reproducible_with_a_seed(trained: TrainingResult, scene_factory) -> None:
    scene = scene_factory(40, 40, seed=25)
    a = UncertaintyEstimator(trained.model, passes=4, seed=9).predict(scene.reflectance)
    b = UncertaintyEstimator(trained.model, passes=4, seed=9).predict(scene.reflectance)
    np.testing.assert_array_equal(a.variance, b.variance)
    assert not trained.model.training
    assert not any(m.training for m in trained.model.modules())


def test_uint16_digital_numbers_give_the_same_estimate(trained: TrainingResult, scene_factory) -> None:
    scene = scene_factory(40, 40, seed=26)
    dn = np.where(np.isnan(scene.reflectance), 0, np.round((scene.reflectance + 0.1) * 10000)).astype(np.uint16)
    refl = np.where(dn == 0, np.nan, dn * 1e-4 - 0.1).astype(np.float32)
    est = UncertaintyEstimator(trained.model, passes=3, seed=2)
    from_dn = est.predict(dn, scale=1e-4, offset=-0.1)
    from_float = est.predict(refl)
    np.testing.assert_allclose(from_dn.probabilities, from_float.probabilities, atol=1e-5)


def test_zero_passes_is_a_config_error(trained: TrainingResult) -> None:
    with pytest.raises(ConfigError, match="at least 1 pass"):
        UncertaintyEstimator(trained.model, passes=0)


def test_passes_that_share_the_encoder_equal_full_passes(trained: TrainingResult, scene_factory) -> None:
    """The sampler runs the layers before the first dropout once per batch; the values are those of full passes."""
    import torch

    from memories.ai.mc_dropout import dropout_active

    model = trained.model.eval()
    x = torch.from_numpy(scene_factory(64, 64, seed=23).reflectance[None].astype(np.float32))
    dropout_active(model, True)
    try:
        with torch.no_grad():
            torch.manual_seed(5)
            full = [model.class_probabilities(x) for _ in range(4)]
            torch.manual_seed(5)
            encoded = model.encode(x)
            shared = [model.decoded_probabilities(encoded) for _ in range(4)]
    finally:
        dropout_active(model, False)
    assert all(torch.equal(a, b) for a, b in zip(full, shared, strict=True))
    assert not torch.equal(full[0], full[1])  # the passes do differ: the dropout is on
