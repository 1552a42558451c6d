import numpy as np

from memories.applications.vegetation import LossThresholds, detect_vegetation_loss, reference_month


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


def test_reference_month_prefers_the_same_season():
    months = ["2023-01", "2023-02", "2023-03", "2024-01", "2024-02"]
    assert reference_month(months, "2024-02") == "2023-02"
    assert reference_month(months, "2023-03") == "2023-01"
    assert reference_month(months, "2023-01") is None
