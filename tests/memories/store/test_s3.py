"""Products on an S3 root, against a real S3 server (moto's server mode) on 127.0.0.1."""

from __future__ import annotations

import io
import json

import boto3
import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import xarray as xr
from shapely.geometry import Point

from memories.earth.gis import read_geoparquet, write_geoparquet
from memories.grid import TileGrid
from memories.store import StorageRoot
from memories.store.raster import MonthlyRasterStore

GRID = TileGrid("31UDQ", 32631, 440000.0, 5420000.0, width=80, height=48)


@pytest.fixture(scope="module")
def s3_root(s3_endpoint, s3_bucket):
    s3_bucket("earth")
    return StorageRoot("s3://earth/memory", s3_endpoint_url=s3_endpoint)


def test_month_store_round_trips_through_s3(s3_root):
    store = MonthlyRasterStore(s3_root, "spectral_indices", GRID, "2023-01", chunk_px=32)
    snapshots = []
    for i, month in enumerate(["2023-01", "2023-03"]):
        ndvi = np.full(GRID.shape, 0.1 * (i + 1), dtype=np.float32)
        ndvi[0, 0] = np.nan
        snapshots.append(store.write_month(month, xr.Dataset({"ndvi": (("y", "x"), ndvi)}), run_id=f"r{i}"))
    assert store.uri == "s3://earth/memory/rasters/spectral_indices/31UDQ.icechunk"
    assert store.months() == ["2023-01", "2023-03"]
    got = store.read_month("2023-03")["ndvi"].values
    assert np.isnan(got[0, 0]) and np.allclose(got[1:, 1:], 0.2)
    # Versioned on S3: a rewrite is a new snapshot; the old one stays readable by id and by time.
    store.write_month("2023-03", xr.Dataset({"ndvi": (("y", "x"), np.full(GRID.shape, 0.9, dtype=np.float32))}))
    assert np.allclose(store.read_month("2023-03")["ndvi"].values, 0.9)
    assert np.allclose(store.read_month("2023-03", snapshot=snapshots[1])["ndvi"].values[1:, 1:], 0.2)
    written = {v.snapshot_id: v for v in store.versions()}
    assert written[snapshots[1]].metadata == {
        "product": "spectral_indices",
        "tile": "31UDQ",
        "month": "2023-03",
        "run_id": "r1",
    }
    assert store.months(as_of=written[snapshots[0]].written_at) == ["2023-01"]
    keys = boto3.client("s3", endpoint_url=s3_root.s3_endpoint_url).list_objects_v2(
        Bucket="earth", Prefix="memory/rasters/spectral_indices/31UDQ.icechunk/"
    )["Contents"]
    assert any("/snapshots/" in k["Key"] for k in keys) and any("/refs/branch.main" in k["Key"] for k in keys)


def test_geoparquet_and_whole_files_on_s3(s3_root):
    gdf = gpd.GeoDataFrame(
        {"building": ["yes", "yes"]}, geometry=[Point(440010, 5419990), Point(440500, 5419500)], crs=GRID.crs
    )
    uri = s3_root.vector_uri("buildings", GRID.tile_id, "2023-01")
    assert write_geoparquet(s3_root, uri, gdf) > 0
    back = read_geoparquet(s3_root, uri)
    assert back.crs.to_epsg() == 32631 and len(back) == 2
    first = s3_root.current_version(uri)
    write_geoparquet(s3_root, uri, gdf.iloc[:1])
    assert len(read_geoparquet(s3_root, uri)) == 1 and len(read_geoparquet(s3_root, uri, version=first)) == 2
    assert s3_root.versions(uri) == [first, s3_root.current_version(uri)]
    geo = json.loads(pq.read_schema(io.BytesIO(s3_root.read_bytes(uri))).metadata[b"geo"])
    assert geo["version"] == "1.1.0" and "bbox" in geo["columns"]["geometry"]["covering"]
    s3_root.write_bytes(s3_root.report_uri("environmental", "31UDQ", "2023-01", "summary.json"), b"{}")
    assert s3_root.read_bytes(s3_root.report_uri("environmental", "31UDQ", "2023-01", "summary.json")) == b"{}"
