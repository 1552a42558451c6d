"""The source assets over the embedded world: climate, census regions, historical map, GIS counts."""

from __future__ import annotations

import io
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from dagster import DagsterInstance, MultiPartitionKey, materialize
from rasterio.io import MemoryFile

from assets.gis import gis_layers
from assets.partitions import TILES
from assets.sources import climate_series, historical_map, socioeconomic_regions
from resources import (
    GisSourceResource,
    MemoryCatalogResource,
    SampleWorldResource,
    StacCatalogResource,
    StorageResource,
)

TILE, MONTH = "33TVM", "2023-05"


@pytest.fixture(scope="module")
def env():  # type: ignore[no-untyped-def]
    sample = SampleWorldResource()
    resources = {
        "stac": StacCatalogResource(sample_world=sample),
        "gis": GisSourceResource(sample_world=sample),
        "storage": StorageResource(),
        "memory": MemoryCatalogResource(),
    }
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES, [TILE])
    return {
        "resources": resources,
        "instance": instance,
        "world": sample.ensure(),
        "root": StorageResource().storage_root(),
    }


def _run(env, assets, key):  # type: ignore[no-untyped-def]
    result = materialize(assets, partition_key=key, resources=env["resources"], instance=env["instance"])
    assert result.success
    return result.asset_materializations_for_node(assets[0].op.name)[0].metadata


def _parquet(root, uri):  # type: ignore[no-untyped-def]
    return pd.read_parquet(io.BytesIO(root.read_bytes(uri)))


def test_climate_series_is_the_stations_month(env) -> None:  # type: ignore[no-untyped-def]
    meta = _run(env, [climate_series], str(MultiPartitionKey({"month": MONTH, "tile": TILE})))
    frame = _parquet(env["root"], env["root"].table_uri("climate_series", TILE, MONTH))
    raw = pd.read_csv(env["world"].climate_path(TILE), skiprows=1)
    may = raw[raw["Date (MM/DD/YYYY)"].str[:2] == "05"]
    assert frame["temperature_mean_c"].iloc[0] == pytest.approx(may["Dry-bulb (C)"].mean())
    assert frame["ghi_kwh_m2"].iloc[0] == pytest.approx(may["GHI (W/m^2)"].sum() / 1000)
    assert frame["station_name"].iloc[0] == f"SAMPLE {TILE}"
    stations = {s["tile_id"]: s for s in json.loads((env["world"].root / "climate" / "stations.json").read_text())}
    assert meta["distance_km"].value == pytest.approx(stations[TILE]["distance_km"], abs=0.05)


def test_socioeconomic_regions_flag_the_planted_gap_and_unit_error(env) -> None:  # type: ignore[no-untyped-def]
    meta = _run(env, [socioeconomic_regions], TILE)
    root = env["root"]
    table = _parquet(root, root.tile_file_uri("socioeconomic_regions", TILE, "table.parquet"))
    regions = gpd.read_parquet(
        io.BytesIO(root.read_bytes(root.tile_file_uri("socioeconomic_regions", TILE, "regions.parquet")))
    )
    truth = env["world"].census_truth()
    assert len(regions) == 4 and regions.crs.to_epsg() == 32633 and regions["has_data"].all()
    code = {r["name"]: r["district_id"] for _, r in regions.iterrows()}
    table["district_id"] = table["region"].map(code)
    gaps = [
        [d, int(y)] for d, y in zip(table.loc[table["flag_gap"], "district_id"], table.loc[table["flag_gap"], "year"])
    ]
    assert gaps == [g for g in truth["gaps"] if g[0].startswith(TILE)]
    jumps = table[table["flag_jump"]]
    assert [[d, int(y)] for d, y in zip(jumps["district_id"], jumps["year"])] == [
        j for j in truth["jumps"] if j[0].startswith(TILE)
    ]
    flags = meta["flags"].value
    assert flags["flag_gap"] == 1 and flags["flag_jump"] == 1
    assert sum(v for k, v in flags.items() if k not in ("flag_gap", "flag_jump")) == 0


def test_historical_map_lands_on_the_tile_with_its_error(env) -> None:  # type: ignore[no-untyped-def]
    meta = _run(env, [historical_map], TILE)
    root = env["root"]
    world = env["world"]
    grid = world.tile(TILE)
    with MemoryFile(root.read_bytes(root.tile_file_uri("historical_map", TILE, "map.tif"))) as mem, mem.open() as ds:
        assert ds.crs == rasterio.crs.CRS.from_epsg(32633) and ds.transform == grid.transform
        on_grid = ds.read(1)
        georef = json.loads(ds.tags()["georeference"])
    truth = world.landcover_truth(TILE, world.spec.time_range[0])
    mapped = on_grid > 0
    assert (on_grid[mapped] == truth[mapped]).mean() > 0.99
    assert meta["method"].value == "polynomial (order 2)"  # the sheet is warped: the polynomial earns its terms
    assert meta["rmse_m"].value == georef["rmse_m"] < 3.0
    residuals = _parquet(root, root.tile_file_uri("historical_map", TILE, "residuals.parquet"))
    assert len(residuals) == 16 and np.sqrt((residuals["residual_m"] ** 2).mean()) == pytest.approx(
        georef["rmse_m"], abs=1e-3
    )


def test_gis_layers_report_counts_and_places(env) -> None:  # type: ignore[no-untyped-def]
    meta = _run(env, [gis_layers], str(MultiPartitionKey({"month": MONTH, "tile": TILE})))
    counts = meta["features"].value
    assert set(counts) == {"buildings", "roads", "landuse", "water", "places"}
    assert meta["dropped_geometries"].value == {k: 0 for k in counts}
    root = env["root"]
    places = gpd.read_parquet(io.BytesIO(root.read_bytes(root.vector_uri("places", TILE, MONTH))))
    assert "Brezovica" in set(places["name"]) and len(places) == counts["places"]


def test_gis_layers_of_a_mapped_one_layer_file_hold_only_that_layer(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A one-layer file mapped in the resource's ``layer_map`` is that layer; the others are empty, not copies."""
    key = str(MultiPartitionKey({"month": MONTH, "tile": TILE}))
    default = _run(env, [gis_layers], key)["features"].value
    parcels = tmp_path / "parcels.geojson"
    gpd.read_file(env["world"].gis_path, layer="landuse").to_file(parcels, driver="GeoJSON")
    gis = GisSourceResource(path=str(parcels), layer_map={"landuse": "parcels"}, sample_world=SampleWorldResource())
    result = materialize(
        [gis_layers], partition_key=key, resources={**env["resources"], "gis": gis}, instance=env["instance"]
    )
    assert result.success
    counts = result.asset_materializations_for_node("gis_layers")[0].metadata["features"].value
    assert counts["landuse"] == default["landuse"] > 0
    assert {k: v for k, v in counts.items() if k != "landuse"} == {k: 0 for k in counts if k != "landuse"}
