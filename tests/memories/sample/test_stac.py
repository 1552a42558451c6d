"""STAC: items and collection validate, the STAC API answers searches, stackstac loads them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from memories.errors import DataSourceError
from memories.sample import BANDS, SampleWorld, StacServer
from memories.sample.__main__ import main
from memories.sample.server import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def test_items_parse_as_pystac_items_like_earth_search(tiny_world: SampleWorld) -> None:
    items = tiny_world.items()
    assert len(items) == tiny_world.manifest["items"] and len({i["id"] for i in items}) == len(items)
    for d in items:
        item = pystac.Item.from_dict(d)
        tile = tiny_world.tile(d["properties"]["grid:code"].removeprefix("MGRS-"))
        assert item.collection_id == "sentinel-2-l2a"
        platform = "S2" + d["properties"]["platform"][-1].upper()
        assert item.id == f"{platform}_{tile.tile_id}_{item.datetime:%Y%m%d}_0_L2A"
        assert d["properties"]["proj:epsg"] == tile.epsg  # as Earth Search v1 (projection v1.1.0) has it
        assert item.properties["proj:code"] == tile.crs  # pystac migrates it to projection v2 on reading
        assert item.properties["s2:processing_baseline"] == "05.09"
        assert item.properties["earthsearch:boa_offset_applied"] is True
        assert item.properties["mgrs:utm_zone"] == int(tile.tile_id[:2])
        assert item.properties["mgrs:latitude_band"] == tile.tile_id[2]
        assert item.properties["mgrs:grid_square"] == tile.tile_id[3:]
        assert 0 <= item.properties["eo:cloud_cover"] <= 100
        created = pystac.utils.str_to_datetime(item.properties["created"])
        assert item.datetime is not None and (created - item.datetime).days == 1
        assert set(item.assets) == set(BANDS)
        red = item.assets["red"].to_dict()
        assert red["raster:bands"][0] | {"bits_per_sample": 15} == red["raster:bands"][0]
        assert red["raster:bands"][0]["scale"] == 0.0001 and red["raster:bands"][0]["offset"] == -0.1
        assert red["eo:bands"][0]["common_name"] == "red" and red["proj:shape"] == [tile.height, tile.width]
        assert item.assets["scl"].to_dict()["raster:bands"][0]["data_type"] == "uint8"
        assert Path(item.assets["nir"].href).is_absolute() and Path(item.assets["nir"].href).is_file()
        w, s, e, n = tile.bbox_wgs84
        assert item.bbox is not None
        assert item.bbox[0] == pytest.approx(w, abs=1e-6) and item.bbox[3] == pytest.approx(n, abs=1e-6)
    platforms = [d["properties"]["platform"] for d in tiny_world.items("33TVM")]
    assert platforms[:2] == ["sentinel-2a", "sentinel-2b"]


def test_collection_parses_and_covers_the_items(tiny_world: SampleWorld) -> None:
    collection = pystac.Collection.from_dict(json.loads(tiny_world.collection_path.read_text()))
    assert collection.id == "sentinel-2-l2a"
    assert set(collection.extra_fields["item_assets"]) == set(BANDS)
    (w, s, e, n) = collection.extent.spatial.bboxes[0]
    for item in tiny_world.items():
        iw, is_, ie, in_ = item["bbox"]
        assert w <= iw and s <= is_ and ie <= e and in_ <= n
    start, end = collection.extent.temporal.intervals[0]
    assert start is not None and end is not None
    datetimes = sorted(pystac.utils.str_to_datetime(i["properties"]["datetime"]) for i in tiny_world.items())
    assert start == datetimes[0] and end == datetimes[-1]


def test_stac_server_answers_bbox_and_datetime_search(tiny_world: SampleWorld) -> None:
    from pystac_client import Client

    with StacServer(tiny_world) as server:
        assert server.url.startswith("http://127.0.0.1:")
        client = Client.open(server.url)
        for tile in tiny_world.tiles:
            found = client.search(
                collections=["sentinel-2-l2a"], bbox=tile.bbox_wgs84, datetime="2023-06-01/2023-06-30"
            ).item_collection()
            expected = {
                i["id"] for i in tiny_world.items(tile.tile_id) if i["properties"]["datetime"].startswith("2023-06")
            }
            assert len(expected) == 6
            assert {i.id for i in found} == expected
            assert (
                found[0].assets["red"].href
                == next(i for i in tiny_world.items() if i["id"] == found[0].id)["assets"]["red"]["href"]
            )
        process = server._process
    assert process is not None and process.poll() is not None  # stopped on exit


def test_stac_server_reports_a_bad_start(tiny_world: SampleWorld, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataSourceError, match="broken.json"):
        StacServer([tiny_world.collection_path, broken]).start()
    with pytest.raises(DataSourceError, match="no such file"):
        StacServer([tmp_path / "missing.json"])


def test_stackstac_loads_an_item_on_the_tile_grid(tiny_world: SampleWorld) -> None:
    import stackstac

    tile = tiny_world.tile("33TVM")
    item = pystac.Item.from_dict(tiny_world.items("33TVM")[3])
    stack = stackstac.stack(
        [item],
        assets=["red", "nir", "swir16", "scl"],
        epsg=tile.epsg,
        resolution=10,
        bounds=tile.bounds,
        dtype="uint16",
        fill_value=np.uint16(0),
        rescale=False,
    ).compute()
    assert stack.shape == (1, 4, tile.height, tile.width)
    np.testing.assert_allclose(stack.x.values, tile.x_min + np.arange(tile.width) * 10)  # top-left corners
    for k, asset in enumerate(["red", "nir", "swir16", "scl"]):
        with rasterio.open(item.assets[asset].href) as ds:
            native = ds.read(1)
        if native.shape != tile.shape:
            native = np.repeat(np.repeat(native, 2, axis=0), 2, axis=1)
        np.testing.assert_array_equal(stack.values[0, k], native, err_msg=asset)


def test_cli_generate_writes_a_world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["generate", "--root", str(tmp_path), "--n-tiles", "1", "--n-months", "2", "--size-px", "64"]
    assert main([*argv, "--start-month", "2024-03", "--seed", "5"]) == 0
    assert "generated" in capsys.readouterr().out
    world = SampleWorld.open(tmp_path)
    assert world.spec.seed == 5 and world.months() == ["2024-03", "2024-04"]
    assert [t.tile_id for t in world.tiles] == ["33TVM"] and world.tiles[0].width == 64


def test_cli_serve_answers_and_stops_on_sigterm(tiny_world: SampleWorld) -> None:
    port = free_port()
    command = [sys.executable, "-m", "memories.sample", "serve", "--root", str(tiny_world.root), "--port", str(port)]
    before = tiny_world.items_path.stat().st_mtime_ns
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line, process.stderr.read() if process.stderr else line
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/collections/sentinel-2-l2a/items?limit=1", timeout=5) as r:
            assert json.load(r)["features"][0]["collection"] == "sentinel-2-l2a"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(0.2)
    with pytest.raises(OSError):  # rustac stopped with it
        opener.open(f"http://127.0.0.1:{port}/", timeout=1)
    assert tiny_world.items_path.stat().st_mtime_ns == before  # served as it was, not regenerated
