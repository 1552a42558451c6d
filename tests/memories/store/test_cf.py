"""CF / GeoZarr georeferencing, attributes and Zarr v3 data types of the stored raster products."""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr

from memories.grid import TileGrid
from memories.store import StorageRoot
from memories.store.raster import MonthlyRasterStore

GRID = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=96, height=64)
ZARR_SPEC_WARNINGS = [
    "error::zarr.errors.UnstableSpecificationWarning",
    "error::zarr.errors.ZarrUserWarning",
]


class _ReaderSpec:
    """Stands for what a reader (stackstac's RasterSpec) leaves in attrs: not JSON, not the product's."""


def _month() -> xr.Dataset:
    refl = np.linspace(0.0, 0.5, 2 * GRID.height * GRID.width, dtype=np.float32).reshape(2, *GRID.shape)
    return xr.Dataset(
        {
            "reflectance": (
                ("band", "y", "x"),
                refl,
                {
                    "units": "1",
                    "long_name": "surface reflectance",
                    "band_scale": np.array([1e-4, 2e-4]),
                    "spec": _ReaderSpec(),
                    "scale_factor": 1e-4,
                },
            ),
            "clear_count": (("y", "x"), np.full(GRID.shape, 3, dtype=np.uint8), {"long_name": "clear observations"}),
        },
        # numpy's fixed-length <U3, as stackstac gives it
        coords={"band": np.array(["red", "nir"])},
    )


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray 0.19 with affine 3
def test_read_month_is_georeferenced_for_rioxarray_and_keeps_variable_attributes(tmp_path):
    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "sr", GRID, "2023-01", chunk_px=32)
    store.write_month("2023-02", _month())
    store.write_month("2024-05", _month())  # grows the time axis: attributes and grid mapping stay
    ds = store.read_month("2024-05")
    for name in ("reflectance", "clear_count"):
        assert ds[name].rio.crs.to_epsg() == 32633
        assert ds[name].rio.transform() == GRID.transform
        assert ds[name].attrs["grid_mapping"] == "spatial_ref"
    ref = ds["spatial_ref"].attrs
    assert ref["GeoTransform"] == "460000.0 10.0 0.0 5100000.0 0.0 -10.0"
    assert "UTM zone 33N" in ref["crs_wkt"] and ref["spatial_ref"] == ref["crs_wkt"]
    assert ref["grid_mapping_name"] == "transverse_mercator"
    refl = ds["reflectance"].attrs
    assert (refl["units"], refl["long_name"], refl["band_scale"]) == ("1", "surface reflectance", [1e-4, 2e-4])
    # Reader objects and CF packing attributes are not the product's: a reader would rescale by scale_factor.
    assert "spec" not in refl and "scale_factor" not in refl
    assert ds["clear_count"].attrs["long_name"] == "clear observations"
    np.testing.assert_array_equal(ds["reflectance"].values, _month()["reflectance"].values)


@pytest.mark.filterwarnings(*ZARR_SPEC_WARNINGS)
def test_band_coordinate_is_stored_as_zarr_v3_string_and_reads_back_the_same(tmp_path):
    import icechunk

    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "sr", GRID, "2023-01", chunk_px=32)
    store.write_month("2023-01", _month())
    session = icechunk.Repository.open(icechunk.local_filesystem_storage(store.root.local_path(store.uri)))
    band = zarr.open_array(session.readonly_session(branch="main").store, path="band", mode="r")
    assert band.metadata.data_type.to_json(zarr_format=3) == "string"
    assert [str(b) for b in store.read_month("2023-01")["band"].values] == ["red", "nir"]


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray 0.19 with affine 3
def test_a_store_written_without_grid_mapping_is_georeferenced_on_read(tmp_path):
    import icechunk

    store = MonthlyRasterStore(StorageRoot(tmp_path.as_uri()), "sr", GRID, "2023-01", chunk_px=32)
    store.write_month("2023-01", _month())
    # Make it what stores written before CF georeferencing hold: no spatial_ref, no grid_mapping.
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(store.root.local_path(store.uri)))
    session = repo.writable_session("main")
    group = zarr.open_group(session.store, mode="r+")
    del group["spatial_ref"]
    for name in ("reflectance", "clear_count"):
        attrs = {k: v for k, v in group[name].attrs.asdict().items() if k not in ("grid_mapping", "coordinates")}
        group[name].attrs.put(attrs)
    session.commit("as before CF georeferencing")
    assert "spatial_ref" not in xr.open_zarr(repo.readonly_session(branch="main").store, consolidated=False)
    ds = store.read_month("2023-01")
    assert ds["reflectance"].rio.crs.to_epsg() == 32633 and ds["reflectance"].rio.transform() == GRID.transform
