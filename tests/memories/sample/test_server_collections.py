"""``StacServer`` waits for the collections it serves, whatever they are: a real Landsat item over rustac."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from memories.sample import server as server_module
from memories.sample.server import StacServer

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "stac_items"
LANDSAT = "landsat-c2-l2"


def _landsat_files(folder: Path) -> list[Path]:
    """A Landsat C2 L2 collection and its one real Earth Search item, as rustac reads them."""
    fc = json.loads((DATA / "earthsearch_v1_s2l2a_landsat_2023-10-08.json").read_text())
    item = next(f for f in fc["features"] if f["collection"] == LANDSAT)
    item["links"] = []
    collection = {
        "type": "Collection",
        "id": LANDSAT,
        "stac_version": "1.0.0",
        "description": "Landsat Collection 2 Level-2",
        "license": "proprietary",
        "links": [],
        "extent": {
            "spatial": {"bbox": [item["bbox"]]},
            "temporal": {"interval": [[item["properties"]["datetime"], None]]},
        },
    }
    paths = [folder / "collection.json", folder / "items.json"]
    paths[0].write_text(json.dumps(collection))
    paths[1].write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    return paths


def test_server_over_a_landsat_collection_starts_and_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pystac_client import Client

    monkeypatch.setattr(server_module, "STARTUP_TIMEOUT_S", 10.0)  # the old probe of sentinel-2-l2a timed out
    started = time.monotonic()
    with StacServer(_landsat_files(tmp_path)) as server:
        assert time.monotonic() - started < 5.0
        found = list(Client.open(server.url).search(collections=[LANDSAT], max_items=10).items())
    assert [i.id for i in found] == ["LC08_L2SP_033032_20231008_02_T1"]
    assert found[0].assets["nir08"].href.endswith("_SR_B5.TIF")


def test_server_waits_for_the_collection_rustac_makes_for_items_of_no_collection_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pystac_client import Client

    monkeypatch.setattr(server_module, "STARTUP_TIMEOUT_S", 10.0)
    collection, items = _landsat_files(tmp_path)
    fc = json.loads(items.read_text())
    fc["features"][0]["collection"] = "landsat-c2-l1"  # no file defines it: rustac generates it from its items
    items.write_text(json.dumps(fc))
    assert server_module.served_collections([collection, items]) == [LANDSAT, "landsat-c2-l1"]
    with StacServer([collection, items]) as server:
        found = list(Client.open(server.url).search(collections=["landsat-c2-l1"], max_items=10).items())
    assert [i.id for i in found] == ["LC08_L2SP_033032_20231008_02_T1"]
