"""The ``change_map`` product of one tile-month (:func:`memories.ai.change_maps.change_map`), on the change world.

The composites are the change world's scenes of 31UDQ (the tile the shared siamese model never trained on)
written to a monthly store; the event truth is the tile's landscape, behind the :class:`EventTruth` protocol.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from memories.ai.change import difference_change
from memories.ai.change_maps import change_iou, change_map, change_scores, rounded_scores
from memories.earth.stac_profiles import COMMON_BANDS
from memories.sample.landscape import build_landscape
from memories.store.paths import StorageRoot
from memories.store.raster import MonthlyRasterStore
from tests.memories.ai.change_world import AFTER, BASELINE_IOU_FLOOR, BEFORE, SPEC, scene, truth

TILE = "31UDQ"


class LandscapeTruth:
    """The event truth of the change world's tiles (what ``SampleWorld`` gives the pipeline)."""

    def events(self, tile_id: str) -> list[Any]:
        return list(build_landscape(SPEC, tile_id).events)

    def event_mask(self, tile_id: str, kind: str) -> np.ndarray:
        return np.asarray(build_landscape(SPEC, tile_id).event_masks[kind])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> MonthlyRasterStore:
    root = StorageRoot(tmp_path_factory.mktemp("change_map").as_uri())
    out = MonthlyRasterStore(root, "surface_reflectance", SPEC.tile(TILE), SPEC.months()[0])
    # The seeds of test_change's difference-rule pair, which BASELINE_IOU_FLOOR was measured on.
    for month, seed in ((BEFORE, 1), (AFTER, 2)):
        refl = scene(TILE, month, seed=seed)
        out.write_month(
            month, xr.Dataset({"reflectance": (("band", "y", "x"), refl)}, coords={"band": list(COMMON_BANDS)})
        )
    return out


def test_first_month_in_memory_has_no_change_map(store: MonthlyRasterStore, trained_change: Any) -> None:
    assert change_map(store, BEFORE, trained_change[0].model, LandscapeTruth()) is None


def test_change_map_compares_with_the_latest_earlier_month_and_scores_against_the_truth(
    store: MonthlyRasterStore, trained_change: Any
) -> None:
    product = change_map(store, AFTER, trained_change[0].model, LandscapeTruth())
    assert product is not None
    assert product.reference_month == BEFORE == product.stats["reference_month"]
    assert set(product.dataset.data_vars) == {
        "change_baseline",
        "change_learned",
        "change_probability",
        "difference_score",
    }
    baseline = product.dataset["change_baseline"].values.astype(bool)
    # The difference rule on the same two composites: the map is exactly the library's rule.
    want, _ = difference_change(scene(TILE, BEFORE, 1), scene(TILE, AFTER, 2))
    np.testing.assert_array_equal(baseline, want)
    pixel_ha = SPEC.tile(TILE).resolution ** 2 / 10_000
    assert product.stats["changed_ha_difference"] == round(float(want.sum() * pixel_ha), 2)
    counts = product.polygons["method"].value_counts().to_dict()
    assert counts.get("difference", 0) == product.stats["polygons_difference"] > 0
    assert counts.get("learned", 0) == product.stats["polygons_learned"]
    assert set(product.polygons["reference_month"]) == {BEFORE}
    # Scored against the event truth: the baseline finds every event (floors of test_change).
    iou = product.scores["iou_difference"]
    for kind, floor in BASELINE_IOU_FLOOR.items():
        assert iou[kind] > floor, (kind, iou)
    assert iou == rounded_scores(change_iou(want, truth(TILE, BEFORE, AFTER)))


def test_without_a_truth_the_change_map_is_not_scored(store: MonthlyRasterStore, trained_change: Any) -> None:
    product = change_map(store, AFTER, trained_change[0].model, None)
    assert product is not None and product.scores == {}
    assert product.stats["polygons_difference"] > 0


def test_no_event_between_the_months_gives_no_scores() -> None:
    mask = np.ones(SPEC.tile(TILE).shape, dtype=bool)
    assert change_scores(mask, mask, LandscapeTruth(), TILE, BEFORE, BEFORE) == {}


def test_rounded_scores_turn_nan_into_none() -> None:
    assert rounded_scores({"all": float("nan"), "flood": 0.123456}) == {"all": None, "flood": 0.1235}
