"""Training sets assembled from the memory (:mod:`memories.ai.training_sets`): which tile-months, which pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from memories.ai.change import IGNORE
from memories.ai.change_maps import composite_reflectance
from memories.ai.registry import training_data_version
from memories.ai.training_sets import (
    change_training_set,
    labelled_change_pairs,
    spread_months,
    training_tile_months,
)
from memories.earth.stac_profiles import COMMON_BANDS
from memories.errors import MissingDataError
from memories.memory.catalog import MemoryCatalog
from memories.sample.landscape import build_landscape
from memories.store.paths import StorageRoot
from memories.store.raster import MonthlyRasterStore
from tests.memories.ai.change_world import SPEC, scene, truth


class LandscapeTruth:
    """The event truth of the change world's tiles (what ``SampleWorld`` gives the pipeline)."""

    def events(self, tile_id: str) -> list[Any]:
        return list(build_landscape(SPEC, tile_id).events)

    def event_mask(self, tile_id: str, kind: str) -> np.ndarray:
        return np.asarray(build_landscape(SPEC, tile_id).event_masks[kind])


def _catalog(tmp_path: Path, rows: dict[str, list[tuple[str, str]]]) -> MemoryCatalog:
    catalog = MemoryCatalog(tmp_path / "catalog.sqlite")
    for asset, pairs in rows.items():
        for tile, month in pairs:
            catalog.record(asset=asset, uri=f"file:///x/{asset}/{tile}/{month}", tile=tile, partition=month)
    return catalog


def test_spread_keeps_first_and_last_month_of_each_tile() -> None:
    months = [f"2023-{m:02d}" for m in range(1, 13)]
    pairs = [("33TVM", m) for m in months] + [("31UDQ", "2023-05")]
    assert spread_months(pairs, 3) == [
        ("31UDQ", "2023-05"),
        ("33TVM", "2023-01"),
        ("33TVM", "2023-07"),
        ("33TVM", "2023-12"),
    ]
    assert spread_months(pairs, 20) == sorted(pairs)


def test_training_tile_months_are_those_with_composite_and_gis_layers(tmp_path: Path) -> None:
    catalog = _catalog(
        tmp_path,
        {
            "surface_reflectance": [("33TVM", "2023-05"), ("33TVM", "2023-06"), ("31UDQ", "2023-05")],
            "gis_layers": [("33TVM", "2023-06"), ("31UDQ", "2023-05"), ("31UDQ", "2023-07")],
        },
    )
    got = training_tile_months(catalog, 12)
    assert got.pairs == [("31UDQ", "2023-05"), ("33TVM", "2023-06")]
    assert got.partitions == ["2023-05|31UDQ", "2023-06|33TVM"]
    rows = [
        m
        for a in ("surface_reflectance", "gis_layers")
        for m in catalog.current(a)
        if (m.tile, m.partition) in set(got.pairs)
    ]
    assert got.data_version == training_data_version(rows)


def test_no_tile_month_with_both_names_what_to_materialize(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path, {"surface_reflectance": [("33TVM", "2023-05")]})
    with pytest.raises(MissingDataError, match="materialize them first"):
        training_tile_months(catalog, 12)


def _stores(root: StorageRoot, months: dict[str, list[str]]) -> dict[str, MonthlyRasterStore]:
    out = {}
    for tile, ms in months.items():
        store = MonthlyRasterStore(root, "surface_reflectance", SPEC.tile(tile), SPEC.months()[0])
        for i, m in enumerate(ms):
            ds = xr.Dataset(
                {"reflectance": (("band", "y", "x"), scene(tile, m, i))}, coords={"band": list(COMMON_BANDS)}
            )
            store.write_month(m, ds)
        out[tile] = store
    return out


def test_labelled_change_pairs_label_the_events_and_ignore_unseen_pixels(tmp_path: Path) -> None:
    months = ["2023-05", "2023-06", "2023-08"]
    store = _stores(StorageRoot(tmp_path.as_uri()), {"33TVM": months})["33TVM"]
    pairs = labelled_change_pairs(store, LandscapeTruth(), months)
    assert len(pairs) == 3
    may_aug = pairs[1]
    np.testing.assert_array_equal(may_aug.before, composite_reflectance(store, "2023-05"))
    changed = np.zeros(SPEC.tile("33TVM").shape, dtype=bool)
    for m in truth("33TVM", "2023-05", "2023-08").values():
        changed |= m
    unseen = np.isnan(may_aug.before).all(axis=0) | np.isnan(may_aug.after).all(axis=0)
    assert unseen.any()
    np.testing.assert_array_equal(may_aug.label == IGNORE, unseen)
    np.testing.assert_array_equal(may_aug.label == 1, changed & ~unseen)


def test_change_training_set_holds_out_the_first_tile(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path.as_uri())
    have = {"31UDQ": ["2023-05", "2023-08"], "33TVM": ["2023-05", "2023-06", "2023-08"]}
    _stores(root, have)
    catalog = _catalog(tmp_path, {"surface_reflectance": [(t, m) for t, ms in have.items() for m in ms]})
    got = change_training_set(root, catalog, SPEC.tile, LandscapeTruth(), SPEC.months()[0])
    assert got.held_out_tile == "31UDQ"
    assert (len(got.training), len(got.validation)) == (3, 1)
    assert got.tiles == [
        {"tile": "31UDQ", "months": have["31UDQ"], "role": "validation"},
        {"tile": "33TVM", "months": have["33TVM"], "role": "training"},
    ]


def test_change_training_set_needs_two_months_on_a_tile(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path.as_uri())
    catalog = _catalog(tmp_path, {"surface_reflectance": [("33TVM", "2023-05"), ("31UDQ", "2023-05")]})
    with pytest.raises(MissingDataError, match="two months"):
        change_training_set(root, catalog, SPEC.tile, LandscapeTruth(), SPEC.months()[0])
