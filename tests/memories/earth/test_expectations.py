"""Quality gates: great-expectations suites pass good inputs and fail bad ones, naming what failed."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from shapely.geometry import LineString, Point, Polygon

from memories.earth.expectations import validate_composite, validate_stac_items, validate_vector_layers
from memories.errors import ProcessingError

BANDS = ["blue", "green", "red", "nir", "swir16", "swir22"]


def _items(**overrides: list) -> pd.DataFrame:
    data = {
        "id": ["S2A_33TVM_20230505_0_L2A", "S2B_33TVM_20230510_0_L2A", "S2A_33TVM_20230515_0_L2A"],
        "datetime": pd.to_datetime(["2023-05-05T10:00Z", "2023-05-10T10:00Z", "2023-05-15T10:00Z"]),
        "cloud_cover": [3.5, 40.0, 99.9],
        "tile": ["33TVM", "33TVM", "33TVM"],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def _failed(result) -> set[tuple[str, str | None]]:
    return {(o.expectation, o.column) for o in result.failed}


def test_a_good_scene_table_passes():
    result = validate_stac_items(_items())
    assert result.success and result.rows == 3 and len(result.outcomes) == 5
    assert result.summary()["failed"] == []


def test_duplicate_ids_bad_cloud_cover_and_tile_ids_fail_by_name():
    bad = _items(
        id=["a", "a", "b"],
        cloud_cover=[3.5, 140.0, -1.0],
        tile=["33TVM", "T33TVM", "33tvm"],
        datetime=[pd.Timestamp("2023-05-05", tz="UTC"), pd.NaT, pd.Timestamp("2023-05-15", tz="UTC")],
    )
    result = validate_stac_items(bad)
    assert not result.success
    assert _failed(result) == {
        ("expect_column_values_to_be_unique", "id"),
        ("expect_column_values_to_be_between", "cloud_cover"),
        ("expect_column_values_to_match_regex", "tile"),
        ("expect_column_values_to_not_be_null", "datetime"),
    }
    by_col = {o.column: o for o in result.failed}
    assert by_col["cloud_cover"].details["unexpected_count"] == 2
    assert sorted(by_col["cloud_cover"].details["unexpected_sample"]) == [-1.0, 140.0]
    with pytest.raises(ProcessingError, match="cloud_cover"):
        validate_stac_items(pd.DataFrame({"id": ["x"], "datetime": [pd.Timestamp("2023-01-01")]}))


def _composite(h: int = 40, w: int = 50, clear: float = 0.8, seed: int = 1) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    refl = rng.uniform(0.0, 0.5, size=(6, h, w)).astype(np.float32)
    obs = np.full((h, w), 6, np.uint8)
    clear_count = rng.integers(1, 7, size=(h, w)).astype(np.uint8)
    unseen = rng.random((h, w)) > clear
    refl[:, unseen] = np.nan
    clear_count[unseen] = 0
    spread = np.where(np.isfinite(refl), np.float32(0.02), np.float32(np.nan)).astype(np.float32)
    return xr.Dataset(
        {
            "reflectance": (("band", "y", "x"), refl),
            "spread": (("band", "y", "x"), spread),
            "clear_count": (("y", "x"), clear_count),
            "obs_count": (("y", "x"), obs),
        },
        coords={"band": BANDS},
    )


def test_a_good_composite_passes():
    result = validate_composite(_composite())
    assert result.success, result.summary()
    assert result.rows == 40 * 50


def test_one_pixel_of_reflectance_3_fails_even_when_sampled():
    ds = _composite(h=300, w=300)
    ds["reflectance"].values[3, 123, 201] = 3.0  # nir
    result = validate_composite(ds, sample_px=1000)
    assert result.rows < 1100  # sampled, yet the extreme pixel is in the frame
    assert _failed(result) == {("expect_column_values_to_be_between", "reflectance_nir")}
    assert result.failed[0].details["unexpected_sample"] == [3.0]


def test_a_mostly_cloudy_composite_fails_the_valid_fraction():
    ds = _composite(clear=0.03)
    result = validate_composite(ds, min_valid_fraction=0.05)
    assert _failed(result) == {("expect_column_values_to_be_in_set", "valid")}
    assert validate_composite(ds, min_valid_fraction=0.01).success


def test_more_clear_than_observed_fails():
    ds = _composite()
    ds["clear_count"].values[0, 0] = 7
    result = validate_composite(ds)
    assert _failed(result) == {("expect_column_pair_values_a_to_be_greater_than_b", "obs_count>=clear_count")}


def _layers(crs: str = "EPSG:32633") -> dict[str, gpd.GeoDataFrame]:
    square = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)])
    return {
        "buildings": gpd.GeoDataFrame({"building": ["yes"]}, geometry=[square], crs=crs),
        "roads": gpd.GeoDataFrame({"highway": ["primary"]}, geometry=[LineString([(0, 0), (5, 5)])], crs=crs),
        "water": gpd.GeoDataFrame({"natural": []}, geometry=[], crs=crs),
    }


def test_good_vector_layers_pass_even_with_an_empty_layer():
    result = validate_vector_layers(_layers(), crs="EPSG:32633")
    assert result.success, result.summary()


def test_an_invalid_polygon_fails():
    layers = _layers()
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])  # self-intersecting
    layers["buildings"] = gpd.GeoDataFrame({"building": ["yes", "yes"]}, geometry=[bowtie, bowtie], crs="EPSG:32633")
    result = validate_vector_layers(layers, crs="EPSG:32633")
    assert _failed(result) == {("expect_column_values_to_be_in_set", "is_valid")}
    assert result.failed[0].details["unexpected_count"] == 2


def test_wrong_crs_missing_crs_wrong_geometry_type_and_no_features_fail():
    layers = _layers(crs="EPSG:4326")
    assert _failed(validate_vector_layers(layers, crs="EPSG:32633")) == {("expect_column_values_to_be_in_set", "crs")}
    layers = _layers()
    layers["roads"] = gpd.GeoDataFrame({"highway": ["x"]}, geometry=[Point(1, 1)], crs=None)
    assert _failed(validate_vector_layers(layers)) == {
        ("expect_column_values_to_not_be_in_set", "crs"),
        ("expect_column_values_to_be_in_set", "geom_type_roads"),
    }
    empty = {k: v.iloc[0:0] for k, v in _layers().items()}
    assert _failed(validate_vector_layers(empty)) == {("expect_column_sum_to_be_between", "features")}
    assert _failed(validate_vector_layers(_layers(), min_features={"water": 1})) == {
        ("expect_column_values_to_be_between", "features_over_minimum")
    }


def test_suites_share_one_context_per_process(monkeypatch):
    """Every validation after the first reuses the process's context (making one costs about 0.5 s a suite)."""
    import great_expectations as gx

    from memories.earth import expectations

    made = []
    real = gx.get_context

    def counting(*args, **kwargs):
        made.append(kwargs.get("mode"))
        return real(*args, **kwargs)

    monkeypatch.setattr(gx, "get_context", counting)
    monkeypatch.setattr(expectations, "_CONTEXT", None, raising=False)
    monkeypatch.setattr(expectations, "_BATCH_DEFINITIONS", {}, raising=False)
    table = pd.DataFrame({"id": ["a", "b"], "datetime": ["2023-05-01", "2023-05-02"], "cloud_cover": [1.0, 2.0]})
    results = [expectations.validate_stac_items(table) for _ in range(3)]
    assert all(r.success for r in results)
    bad = table.assign(cloud_cover=[1.0, 101.0])
    assert [o.column for o in expectations.validate_stac_items(bad).failed] == ["cloud_cover"]
    assert len(made) <= 1
