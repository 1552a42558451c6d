"""Export of a product month, as of any version, to a COG and to a plain Zarr v3 store, read back by GIS tools."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from memories.errors import ConfigError, StorageError
from memories.grid import TileGrid
from memories.store import StorageRoot
from memories.store.__main__ import main
from memories.store.export import export_month
from memories.store.raster import MonthlyRasterStore

GRID = TileGrid("33TVM", 32633, 460000.0, 5100000.0, width=288, height=160)
ZARR_SPEC_WARNINGS = [
    "error::zarr.errors.UnstableSpecificationWarning",
    "error::zarr.errors.ZarrUserWarning",
]
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray 0.19


def _month(seed: int) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    refl = rng.uniform(0.0, 0.6, (2, *GRID.shape)).astype(np.float32)
    refl[:, :3, :5] = np.nan
    return xr.Dataset(
        {
            "reflectance": (("band", "y", "x"), refl, {"units": "1", "long_name": "surface reflectance"}),
            "spread": (("band", "y", "x"), refl / 10, {"units": "1", "long_name": "interquartile range"}),
            "clear_count": (("y", "x"), rng.integers(0, 9, GRID.shape).astype(np.uint8), {"long_name": "clear obs"}),
        },
        coords={"band": np.array(["red", "nir"])},
    )


@pytest.fixture
def store(tmp_path):
    """sr of 33TVM: 2023-02 written twice (two versions), 2023-03 once."""
    s = MonthlyRasterStore(StorageRoot((tmp_path / "store").as_uri()), "sr", GRID, "2023-01", chunk_px=32)
    s.write_month("2023-02", _month(1))
    s.write_month("2023-03", _month(2))
    s.write_month("2023-02", _month(3))
    return s


def _assert_cog(path) -> None:
    """A COG as GDAL's COG driver lays it out: tiled, with overviews, structural metadata before the IFDs."""
    with open(path, "rb") as f:
        head = f.read(1024)
    assert b"GDAL_STRUCTURAL_METADATA" in head and b"LAYOUT=IFDS_BEFORE_DATA" in head
    with rasterio.open(path) as src:
        assert src.driver == "GTiff" and src.profile["tiled"] and src.block_shapes[0] == (128, 128)
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert all(src.overviews(i) == [2, 4] for i in src.indexes)


def test_cog_of_an_earlier_version_is_georeferenced_and_holds_the_stored_values(store, tmp_path):
    first = store.versions("2023-02")[-1]
    for how in ({"snapshot": first.snapshot_id}, {"as_of": first.written_at}):
        out = export_month(
            store.root, "sr", "33TVM", "2023-02", tmp_path / "sr.tif", blocksize=128, overwrite=True, **how
        )
        assert out.snapshot_id == first.snapshot_id and out.format == "cog"
        _assert_cog(out.path)
        stored = store.read_month("2023-02", snapshot=first.snapshot_id)
        with rasterio.open(out.path) as src:
            assert src.crs.to_epsg() == 32633 and src.transform == GRID.transform
            assert src.count == 5 and src.dtypes == ("float32",) * 5 and np.isnan(src.nodata)
            # Variables by name, each variable's bands in the store's band order.
            assert src.descriptions == ("clear_count", "reflectance:red", "reflectance:nir", "spread:red", "spread:nir")
            names = list(src.descriptions)
            got = {d: src.read(i + 1) for i, d in enumerate(names)}
            assert src.units[names.index("reflectance:nir")] == "1"
            assert src.tags(names.index("spread:red") + 1)["long_name"] == "interquartile range"
            assert src.tags()["snapshot_id"] == first.snapshot_id and src.tags()["month"] == "2023-02"
        np.testing.assert_array_equal(got["reflectance:nir"], stored["reflectance"].sel(band="nir").values)
        np.testing.assert_array_equal(got["spread:red"], stored["spread"].sel(band="red").values)
        np.testing.assert_array_equal(got["clear_count"], stored["clear_count"].values.astype(np.float32))
        assert not np.array_equal(got["reflectance:red"], _month(3)["reflectance"].values[0], equal_nan=True)


def test_cog_of_one_integer_variable_keeps_its_type_and_nodata(store, tmp_path):
    out = export_month(store.root, "sr", "33TVM", "2023-03", tmp_path / "count.tif", variables=["clear_count"])
    with rasterio.open(out.path) as src:
        assert src.dtypes == ("uint8",) and src.nodata == 0 and src.descriptions == ("clear_count",)
        np.testing.assert_array_equal(src.read(1), _month(2)["clear_count"].values)


@pytest.mark.filterwarnings(*ZARR_SPEC_WARNINGS)
def test_plain_zarr_opens_with_xarray_and_rioxarray_with_the_stored_values(store, tmp_path):
    out = export_month(store.root, "sr", "33TVM", "2023-02", tmp_path / "sr.zarr")
    assert out.snapshot_id == store.versions("2023-02")[0].snapshot_id  # the newest by default
    ds = xr.open_zarr(out.path, consolidated=False)
    stored = store.read_month("2023-02")
    for name in ("reflectance", "spread", "clear_count"):
        assert ds[name].rio.crs.to_epsg() == 32633 and ds[name].rio.transform() == GRID.transform
        assert ds[name].dtype == stored[name].dtype
        np.testing.assert_array_equal(ds[name].values, stored[name].values)
    assert ds["reflectance"].attrs["long_name"] == "surface reflectance"
    assert [str(b) for b in ds["band"].values] == ["red", "nir"]
    assert ds.attrs["snapshot_id"] == out.snapshot_id


def test_cli_exports_and_lists_versions(store, tmp_path, capsys):
    root = ["--root", store.root.uri]
    assert main(["versions", "sr", "33TVM", "--month", "2023-02", *root]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [v.snapshot_id for v in store.versions("2023-02")]
    assert main(["export", "sr", "33TVM", "2023-02", str(tmp_path / "a.tif"), "--snapshot", listed[1], *root]) == 0
    with rasterio.open(tmp_path / "a.tif") as src:
        assert src.tags()["snapshot_id"] == listed[1]
        np.testing.assert_array_equal(src.read(1), _month(1)["clear_count"].values.astype(np.float32))
    assert main(["export", "sr", "33TVM", "2023-02", str(tmp_path / "a.tif"), *root]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["export", "sr", "33TVM", "2023-09", str(tmp_path / "b.zarr"), *root]) == 2
    assert "no complete month 2023-09" in capsys.readouterr().err


def test_export_errors_name_the_input_and_the_fix(store, tmp_path):
    with pytest.raises(ConfigError, match=r"\.tif \(COG\) or \.zarr"):
        export_month(store.root, "sr", "33TVM", "2023-02", tmp_path / "x.png")
    with pytest.raises(StorageError, match="has no snapshot 'NOPE'.*versions sr 33TVM"):
        export_month(store.root, "sr", "33TVM", "2023-02", tmp_path / "x.tif", snapshot="NOPE")
    with pytest.raises(StorageError, match="materialize ndvi for tile 33TVM"):
        export_month(store.root, "ndvi", "33TVM", "2023-02", tmp_path / "x.tif")
    with pytest.raises(ConfigError, match=r"no variables \['ndvi'\]"):
        export_month(store.root, "sr", "33TVM", "2023-02", tmp_path / "x.tif", variables=["ndvi"])
    assert not list(tmp_path.glob("*x*"))  # nothing half written


def test_export_from_an_s3_root(s3_endpoint, s3_bucket, tmp_path):
    s3_bucket("exports")
    s = MonthlyRasterStore(StorageRoot("s3://exports/earth", s3_endpoint_url=s3_endpoint), "sr", GRID, "2023-01")
    s.write_month("2023-04", _month(4))
    out = export_month(s.root, "sr", "33TVM", "2023-04", tmp_path / "s3.tif", blocksize=128)
    _assert_cog(out.path)
    with rasterio.open(out.path) as src:
        np.testing.assert_array_equal(src.read(3), _month(4)["reflectance"].values[1])  # reflectance:nir
