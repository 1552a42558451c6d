"""Blocking quality checks on the acquisition assets: great-expectations suites pass the sample world,
and a bad vector source fails its check, which then blocks the run."""

from __future__ import annotations

import geopandas as gpd
import pytest
from dagster import AssetKey, DagsterInstance, MultiPartitionKey, materialize
from shapely.geometry import Point, Polygon, box

from assets.gis import gis_layers
from assets.imagery import stac_items, surface_reflectance
from assets.partitions import TILES
from resources import (
    DaskClusterResource,
    GisSourceResource,
    MemoryCatalogResource,
    SampleWorldResource,
    StacCatalogResource,
    StorageResource,
)

TILE, MONTH = "33TVM", "2023-05"
KEY = str(MultiPartitionKey({"month": MONTH, "tile": TILE}))


@pytest.fixture(scope="module")
def env(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("checks")
    sample = SampleWorldResource()
    resources = {
        "stac": StacCatalogResource(sample_world=sample),
        "gis": GisSourceResource(sample_world=sample),
        "storage": StorageResource(root=(tmp / "store").as_uri()),
        "memory": MemoryCatalogResource(path=str(tmp / "catalog.sqlite")),
        "dask_cluster": DaskClusterResource(),
    }
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES, [TILE])
    return {"resources": resources, "instance": instance, "tmp": tmp, "world": sample.ensure()}


def _checks(result) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_scene_table_and_composite_pass_their_suites(env):  # type: ignore[no-untyped-def]
    result = materialize(
        [stac_items, surface_reflectance], partition_key=KEY, resources=env["resources"], instance=env["instance"]
    )
    assert result.success
    checks = _checks(result)
    assert checks["scene_table_quality"].passed and checks["clear_coverage"].passed
    meta = checks["clear_coverage"].metadata
    assert meta["expectations"].value == 6 + 6 + 3 + 1  # valid fraction, 6 ranges, 6 spreads, 3 count checks
    assert meta["failed"].value == []
    assert 50_000 <= meta["rows_validated"].value <= 50_012  # a seeded sample of 256 x 256 px plus extremes
    sr = result.asset_materializations_for_node("surface_reflectance")[0].metadata
    assert 0 < sr["cloud_fraction"].value < 1
    assert sr["valid_pixels"].value == round(sr["clear_fraction"].value * 256 * 256)
    assert set(sr["median_spread"].value) == {"blue", "green", "red", "nir", "swir16", "swir22"}


def test_sample_world_vector_layers_pass(env):  # type: ignore[no-untyped-def]
    result = materialize([gis_layers], partition_key=KEY, resources=env["resources"], instance=env["instance"])
    assert result.success
    check = _checks(result)["vector_quality"]
    assert check.passed and check.metadata["features_validated"].value > 100


def test_roads_as_points_fail_the_vector_check_and_block_the_run(env):  # type: ignore[no-untyped-def]
    grid = env["world"].tiles[0]
    assert grid.tile_id == TILE
    x0, y0, x1, y1 = grid.bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    path = env["tmp"] / "bad.gpkg"
    square = Polygon([(cx, cy), (cx + 100, cy), (cx + 100, cy + 100), (cx, cy + 100)])
    layers = {
        "buildings": {"building": ["yes"], "geometry": [square]},
        "landuse": {"landuse": ["forest"], "geometry": [box(x0, y0, cx, cy)]},
        "water": {"natural": ["water"], "geometry": [box(cx, y0, x1, cy)]},
        "roads": {"highway": ["primary", "residential"], "geometry": [Point(cx, cy), Point(cx + 50, cy)]},
    }
    for name, data in layers.items():
        gpd.GeoDataFrame(data, crs=grid.crs).to_file(path, layer=name, driver="GPKG")
    resources = {**env["resources"], "gis": GisSourceResource(path=str(path), sample_world=SampleWorldResource())}
    result = materialize(
        [gis_layers], partition_key=KEY, resources=resources, instance=env["instance"], raise_on_error=False
    )
    check = _checks(result)["vector_quality"]
    assert not check.passed
    failed = check.metadata["failed"].value
    assert [(f["expectation"], f["column"]) for f in failed] == [
        ("expect_column_values_to_be_in_set", "geom_type_roads")
    ]
    assert failed[0]["unexpected_count"] == 2
    assert not result.success  # a failed blocking check fails the run
    assert result.asset_materializations_for_node("gis_layers")  # the asset itself was written, then blocked
    assert AssetKey("gis_layers") in {e.asset_key for e in result.get_asset_check_evaluations()}
