import numpy as np

from memories.earth.vegetation import (
    LossThresholds,
    detect_vegetation_gain,
    detect_vegetation_loss,
    edge_pixels,
    reference_month,
)


def test_loss_detects_the_cut_block_and_drops_speckle():
    before = np.full((50, 50), 0.8, dtype=np.float32)
    after = before.copy()
    after[10:20, 10:30] = 0.15  # 200 px clear-cut
    after[40, 40] = 0.1  # one noisy pixel
    after[0:5, 0:5] = np.nan  # cloud gap
    loss = detect_vegetation_loss(before, after, LossThresholds(min_patch_px=10))
    assert loss.sum() == 200 and loss[10:20, 10:30].all()
    # seasonal dip of forest (0.8 -> 0.6) is not loss
    assert not detect_vegetation_loss(before, before - 0.2).any()


def test_gain_detects_regrowth_and_not_loss_or_a_seasonal_rise():
    before = np.full((50, 50), 0.8, dtype=np.float32)
    before[10:20, 10:30] = 0.15  # 200 px bare in the reference month
    before[30:33, 30:33] = 0.2  # 9 px: under the smallest patch
    after = np.full((50, 50), 0.8, dtype=np.float32)
    after[0:3, :] = np.nan
    gain = detect_vegetation_gain(before, after, LossThresholds(min_patch_px=10))
    assert gain.sum() == 200 and gain[10:20, 10:30].all()
    assert not detect_vegetation_loss(before, after).any()
    # green-up of grassland (0.45 -> 0.7) starts above "not vegetated" (0.4): not gain
    assert not detect_vegetation_gain(np.full((20, 20), 0.45), np.full((20, 20), 0.7)).any()


def test_edge_pixels_is_the_ring_around_a_block():
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:10, 5:15] = True  # 5 x 10 block: the 4-connected ring has 2 * (5 + 10) pixels
    assert edge_pixels(mask) == 30
    assert edge_pixels(np.zeros((4, 4), dtype=bool)) == 0


def test_reference_month_prefers_the_same_season():
    months = ["2023-01", "2023-02", "2023-03", "2024-01", "2024-02"]
    assert reference_month(months, "2024-02") == "2023-02"
    assert reference_month(months, "2023-03") == "2023-01"
    assert reference_month(months, "2023-01") is None
