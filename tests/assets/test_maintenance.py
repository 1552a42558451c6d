"""The raster_garbage_collection asset frees the orphan chunks of every raster store in the catalog."""

from pathlib import Path

import icechunk
import numpy as np
import xarray as xr
import zarr
from dagster import DagsterInstance, materialize

from assets.maintenance import raster_garbage_collection
from memories.grid import TileGrid
from memories.memory.catalog import MemoryCatalog
from memories.months import month_range
from memories.store import StorageRoot
from memories.store.raster import MonthlyRasterStore
from resources import MemoryCatalogResource, StorageResource

GRID = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=64, height=64)
MONTH = "2023-05"


def _values(seed: int) -> xr.Dataset:
    data = np.random.default_rng(seed).random((2, GRID.height, GRID.width), dtype=np.float32)
    return xr.Dataset({"reflectance": (("band", "y", "x"), data)}, coords={"band": ["red", "nir"]})


def _chunk_files(root: StorageRoot, uri: str) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in Path(root.local_path(uri), "chunks").iterdir()}


def test_raster_garbage_collection_frees_abandoned_chunks_of_catalogued_stores_only(tmp_path):
    root = StorageRoot((tmp_path / "store").as_uri())
    catalog = MemoryCatalog.open(tmp_path / "catalog.sqlite")
    start, end = month_range(MONTH)
    stores = [MonthlyRasterStore(root, p, GRID, "2023-01", chunk_px=32) for p in ("surface_reflectance", "indices")]
    for seed, store in enumerate(stores):
        snapshot = store.write_month(MONTH, _values(seed))
        catalog.record(
            asset=store.product, uri=store.uri, tile="33TVM", partition=MONTH, valid_from=start, valid_to=end,
            version_id=snapshot,
        )  # fmt: skip
    catalog.record(asset="environmental_report", uri=root.report_uri("environmental", "33TVM", MONTH, "report.html"))
    uncatalogued = MonthlyRasterStore(root, "uncatalogued", GRID, "2023-01", chunk_px=32)
    uncatalogued.write_month(MONTH, _values(9))

    # A write abandoned before its commit: its chunks are on disk, no snapshot references them.
    target = stores[0]
    before = _chunk_files(root, target.uri)
    session = icechunk.Repository.open(root.icechunk_storage(target.uri)).writable_session("main")
    zarr.open_array(session.store, path="reflectance", mode="r+")[4] = _values(7)["reflectance"].values
    session = None
    orphans = {k: v for k, v in _chunk_files(root, target.uri).items() if k not in before}
    assert len(orphans) == 8  # 2 bands x 2 x 2 chunks of 32 px
    u_session = icechunk.Repository.open(root.icechunk_storage(uncatalogued.uri)).writable_session("main")
    zarr.open_array(u_session.store, path="reflectance", mode="r+")[4] = _values(8)["reflectance"].values
    u_session = None
    uncatalogued_files = _chunk_files(root, uncatalogued.uri)

    result = materialize(
        [raster_garbage_collection],
        resources={
            "storage": StorageResource(root=root.uri),
            "memory": MemoryCatalogResource(path=str(tmp_path / "catalog.sqlite")),
        },
        run_config={"ops": {"raster_garbage_collection": {"config": {"older_than_hours": 0.0}}}},
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    meta = result.asset_materializations_for_node("raster_garbage_collection")[0].metadata
    assert meta["bytes_freed_per_store"].value == {stores[0].uri: sum(orphans.values()), stores[1].uri: 0}
    assert meta["chunks_deleted_per_store"].value == {stores[0].uri: 8, stores[1].uri: 0}
    assert meta["bytes_freed"].value == sum(orphans.values()) and meta["stores"].value == 2
    assert _chunk_files(root, target.uri) == before
    assert _chunk_files(root, uncatalogued.uri) == uncatalogued_files  # not in the catalog: untouched
    for seed, store in enumerate(stores):
        np.testing.assert_array_equal(
            store.read_month(MONTH)["reflectance"].values, _values(seed)["reflectance"].values
        )
