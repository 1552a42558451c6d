"""Raster stores named ``<tile>.zarr`` before the rename are found and moved to ``<tile>.icechunk``, every version kept.

A store at the legacy place is made the way the old code left it: an Icechunk
repository written normally, then put under the legacy name (the name is not part
of the repository's content), on a local root and on a real S3 server (moto) on 127.0.0.1.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr

from memories.errors import StorageError
from memories.grid import TileGrid
from memories.store import StorageRoot
from memories.store.export import export_month
from memories.store.raster import MonthlyRasterStore, open_raster_version

GRID = TileGrid("31UDQ", 32631, 440000.0, 5420000.0, width=40, height=24)


def _month(value: float) -> xr.Dataset:
    return xr.Dataset({"ndvi": (("y", "x"), np.full(GRID.shape, value, dtype=np.float32))})


def _legacy_store(root: StorageRoot, move) -> list[str]:
    """Two months and a rewrite at ``<tile>.zarr``; returns the snapshot ids, oldest first."""
    store = MonthlyRasterStore(root, "spectral_indices", GRID, "2023-01", chunk_px=16)
    ids = [store.write_month("2023-01", _month(0.1)), store.write_month("2023-02", _month(0.2))]
    ids.append(store.write_month("2023-02", _month(0.3)))
    move(root.raster_uri("spectral_indices", GRID.tile_id), root.legacy_raster_uri("spectral_indices", GRID.tile_id))
    return ids


def _assert_migrated_with_every_version(root: StorageRoot, ids: list[str]) -> None:
    legacy = root.legacy_raster_uri("spectral_indices", GRID.tile_id)
    # The catalog recorded the legacy URI: that version loads, from the store's new place.
    first = open_raster_version(root, legacy, ids[1], month="2023-02")
    assert np.allclose(first["ndvi"].values, 0.2)
    assert not root.exists(legacy) and root.exists(root.raster_uri("spectral_indices", GRID.tile_id))
    store = MonthlyRasterStore(root, "spectral_indices", GRID, "2023-01", chunk_px=16)
    assert store.uri.endswith("/rasters/spectral_indices/31UDQ.icechunk")
    assert store.months() == ["2023-01", "2023-02"]
    assert [v.snapshot_id for v in store.versions() if v.month] == ids[::-1]
    assert np.allclose(store.read_month("2023-02")["ndvi"].values, 0.3)
    assert np.allclose(store.read_month("2023-02", snapshot=ids[1])["ndvi"].values, 0.2)
    store.write_month("2023-03", _month(0.4))  # and it takes new months
    assert store.months() == ["2023-01", "2023-02", "2023-03"]


def test_legacy_zarr_named_store_on_a_local_root_is_moved_and_keeps_every_version(tmp_path):
    root = StorageRoot(tmp_path.as_uri())
    ids = _legacy_store(root, lambda new, old: os.rename(root.local_path(new), root.local_path(old)))
    assert not root.exists(root.raster_uri("spectral_indices", GRID.tile_id))
    # The first thing a user does after the upgrade may be an export: it finds the store under its old name.
    out = export_month(root, "spectral_indices", GRID.tile_id, "2023-02", tmp_path / "ndvi.zarr", snapshot=ids[1])
    assert np.allclose(xr.open_zarr(out.path, consolidated=False)["ndvi"].values, 0.2)
    _assert_migrated_with_every_version(root, ids)
    assert not os.path.exists(root.local_path(root.legacy_raster_uri("spectral_indices", GRID.tile_id)) + ".lock")


def test_legacy_zarr_named_store_on_s3_is_moved_and_keeps_every_version(s3_endpoint, s3_bucket):
    client = s3_bucket("legacy")
    root = StorageRoot("s3://legacy/earth", s3_endpoint_url=s3_endpoint)

    def move(new: str, old: str) -> None:
        src, dst = root.path(new).partition("/")[2], root.path(old).partition("/")[2]
        for obj in client.list_objects_v2(Bucket="legacy", Prefix=src + "/")["Contents"]:
            client.copy_object(Bucket="legacy", Key=dst + obj["Key"][len(src) :], CopySource=f"legacy/{obj['Key']}")
            client.delete_object(Bucket="legacy", Key=obj["Key"])

    ids = _legacy_store(root, move)
    _assert_migrated_with_every_version(root, ids)
    legacy_prefix = root.path(root.legacy_raster_uri("spectral_indices", GRID.tile_id)).partition("/")[2]
    left = client.list_objects_v2(Bucket="legacy", Prefix=legacy_prefix + "/")
    assert left.get("KeyCount", 0) == 0


def test_a_store_under_both_names_is_refused_naming_both(tmp_path):
    root = StorageRoot(tmp_path.as_uri())
    _legacy_store(root, lambda new, old: os.rename(root.local_path(new), root.local_path(old)))
    MonthlyRasterStore(root, "spectral_indices", GRID, "2023-01").write_month("2023-05", _month(0.9))
    # ^ moved the legacy store first, so it wrote into it; now make a second legacy copy beside it.
    other = StorageRoot((tmp_path / "other").as_uri())
    _legacy_store(other, lambda new, old: os.rename(other.local_path(new), other.local_path(old)))
    os.rename(
        other.local_path(other.legacy_raster_uri("spectral_indices", GRID.tile_id)),
        root.local_path(root.legacy_raster_uri("spectral_indices", GRID.tile_id)),
    )
    with pytest.raises(StorageError, match=r"31UDQ\.zarr .*31UDQ\.icechunk.*keep the one you want"):
        MonthlyRasterStore(root, "spectral_indices", GRID, "2023-01").months()


def test_a_new_store_leaves_nothing_under_the_legacy_name(tmp_path):
    root = StorageRoot(tmp_path.as_uri())
    MonthlyRasterStore(root, "spectral_indices", GRID, "2023-01").write_month("2023-01", _month(0.1))
    assert sorted(os.listdir(tmp_path / "rasters/spectral_indices")) == ["31UDQ.icechunk", "31UDQ.icechunk.lock"]
