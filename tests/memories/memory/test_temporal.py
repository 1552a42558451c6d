"""Bi-temporal memory: a re-materialized partition keeps its old version readable through ``as_of``.

The rasters go to a real versioned store (Icechunk on a local root) and the
vectors to versioned GeoParquet; the catalog runs on SQLite and on PostgreSQL.
"""

from datetime import UTC, datetime, timedelta

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from shapely.geometry import box

from memories.earth.gis import read_geoparquet, write_geoparquet
from memories.errors import ConfigError, StorageError
from memories.grid import TileGrid
from memories.memory import TemporalMemoryManager
from memories.memory.catalog import MemoryCatalog
from memories.memory.temporal import TemporalMemory
from memories.months import month_range
from memories.store import StorageRoot
from memories.store.raster import MonthlyRasterStore

GRID = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=64, height=48)


def _refl(seed: int) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {"reflectance": (("band", "y", "x"), rng.random((2, GRID.height, GRID.width), dtype=np.float32))},
        coords={"band": ["red", "nir"]},
    )


def _record(cat, store_or_uri, month, version, t, asset="surface_reflectance"):
    uri = store_or_uri.uri if isinstance(store_or_uri, MonthlyRasterStore) else store_or_uri
    start, end = month_range(month)
    return cat.record(
        asset=asset,
        uri=uri,
        tile=GRID.tile_id,
        partition=month,
        valid_from=start,
        valid_to=end,
        transaction_time=t,
        version_id=version,
    )


def test_as_of_before_a_rematerialization_returns_the_old_record_and_old_pixels(tmp_path, catalog_location):
    root = StorageRoot(tmp_path.as_uri())
    cat = MemoryCatalog.open(catalog_location)
    memory = TemporalMemoryManager(cat, root)
    store = MonthlyRasterStore(root, "surface_reflectance", GRID, "2023-01", chunk_px=32)
    old, new, april = _refl(1), _refl(2), _refl(3)
    t1, t2 = datetime(2023, 4, 5, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    _record(cat, store, "2023-03", store.write_month("2023-03", old), t1)
    _record(cat, store, "2023-04", store.write_month("2023-04", april), t1 + timedelta(days=30))
    second = store.write_month("2023-03", new)
    _record(cat, store, "2023-03", second, t2)

    # What did we know about 33TVM for March 2023 as of 1 January 2024? The first version.
    [then] = memory.query(tile="33TVM", time_point="2023-03", as_of=datetime(2024, 1, 1, tzinfo=UTC))
    assert then.version == 1 and then.transaction_to == t2.isoformat(timespec="microseconds")
    np.testing.assert_array_equal(memory.load(then)["reflectance"].values, old["reflectance"].values)
    # Now: the second version, with the new pixels.
    [now] = memory.query(tile="33TVM", asset="surface_reflectance", time_point=datetime(2023, 3, 15))
    assert (now.version, now.version_id, now.transaction_to) == (2, second, None)
    np.testing.assert_array_equal(memory.load(now)["reflectance"].values, new["reflectance"].values)
    # History lists both, each loading its own pixels.
    hist = memory.history("surface_reflectance", tile="33TVM", partition="2023-03")
    assert [h.version for h in hist] == [1, 2] and hist[0].version_id != hist[1].version_id
    assert float(abs(memory.load(hist[0])["reflectance"] - old["reflectance"]).max()) == 0
    # The store itself answers as_of by commit time; the later April write is untouched by the March re-run.
    assert store.months() == ["2023-03", "2023-04"]
    np.testing.assert_array_equal(store.read_month("2023-04")["reflectance"].values, april["reflectance"].values)
    v1_time = [v for v in store.versions("2023-03")][-1].written_at
    np.testing.assert_array_equal(
        store.read_month("2023-03", as_of=v1_time)["reflectance"].values, old["reflectance"].values
    )
    assert store.months(as_of=v1_time) == ["2023-03"]
    # A range over both months, before anything was known, and bad input.
    both = memory.query(tile="33TVM", time_range=("2023-03", "2023-04"))
    assert [(r.partition, r.version) for r in both] == [("2023-03", 2), ("2023-04", 1)]
    assert memory.query(tile="33TVM", time_point="2023-03", as_of="2023-04-01") == []
    with pytest.raises(ConfigError, match="YYYY-MM"):
        memory.query(time_point="March")


def test_vector_versions_stay_readable_after_a_rewrite(tmp_path):
    root = StorageRoot(tmp_path.as_uri())
    cat = MemoryCatalog.open(tmp_path / "c.sqlite")
    memory = TemporalMemory(cat, root)
    uri = root.table_uri("stac_items", GRID.tile_id, "2023-03")
    first = gpd.GeoDataFrame({"id": ["a"]}, geometry=[box(0, 0, 1, 1)], crs=GRID.crs)
    second = gpd.GeoDataFrame({"id": ["a", "b"]}, geometry=[box(0, 0, 1, 1), box(2, 2, 3, 3)], crs=GRID.crs)
    write_geoparquet(root, uri, first)
    v1 = root.current_version(uri)
    r1 = _record(cat, uri, "2023-03", v1, datetime(2024, 1, 1, tzinfo=UTC), asset="stac_items")
    write_geoparquet(root, uri, second)
    v2 = root.current_version(uri)
    _record(cat, uri, "2023-03", v2, datetime(2024, 3, 1, tzinfo=UTC), asset="stac_items")
    assert v1 < v2 and root.versions(uri) == [v1, v2]
    assert list(read_geoparquet(root, uri)["id"]) == ["a", "b"]
    assert list(read_geoparquet(root, uri, version=v1)["id"]) == ["a"]
    assert list(memory.load(r1)["id"]) == ["a"]
    [then] = memory.query(asset="stac_items", time_point="2023-03", as_of=datetime(2024, 2, 1, tzinfo=UTC))
    assert then.version_id == v1 and list(memory.load(then)["id"]) == ["a"]
    # The plain file stays the current version, for hive-partitioned readers.
    assert list(gpd.read_parquet(root.local_path(uri))["id"]) == ["a", "b"]
    with pytest.raises(StorageError, match="no version 'nope'"):
        read_geoparquet(root, uri, version="nope")
    # gis_layers records point at one version per layer.
    for layer, gdf in (("roads", first), ("water", second)):
        write_geoparquet(root, root.vector_uri(layer, GRID.tile_id, "2023-03"), gdf)
    versions = {
        layer: root.current_version(root.vector_uri(layer, GRID.tile_id, "2023-03")) for layer in ("roads", "water")
    }
    rec = _record(
        cat,
        root.vectors_uri(GRID.tile_id, "2023-03"),
        "2023-03",
        None,
        datetime(2024, 3, 2, tzinfo=UTC),
        asset="gis_layers",
    )
    rec = cat.record(asset="gis_layers", uri=rec.uri, tile=GRID.tile_id, partition="2023-03", version_id=versions)
    write_geoparquet(root, root.vector_uri("roads", GRID.tile_id, "2023-03"), second)
    layers = memory.load(rec)
    assert sorted(layers) == ["roads", "water"] and len(layers["roads"]) == 1 and len(layers["water"]) == 2
    assert len(memory.load(rec, layer="roads")) == 1


def test_unknown_snapshot_is_a_clear_error(tmp_path):
    root = StorageRoot(tmp_path.as_uri())
    store = MonthlyRasterStore(root, "sr", GRID, "2023-01", chunk_px=32)
    store.write_month("2023-01", _refl(0))
    with pytest.raises(StorageError, match="pick one of store.versions"):
        store.read_month("2023-01", snapshot="NOTASNAPSHOT0000000")
    with pytest.raises(StorageError, match="as of"):
        store.read_month("2023-01", as_of=datetime(2000, 1, 1))
