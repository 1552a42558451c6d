"""Reading an item's metadata never touches the network, and every path names a missing asset alike.

A Planetary Computer item parsed from a file keeps its links to the public API; pystac's
``to_dict()`` defaults resolve the ``root`` link to make hrefs relative: a request per
item, or ``STACError ... does not resolve`` where the API is out of reach. Here the
links point at a real HTTP server on 127.0.0.1 that counts requests, or at a closed port.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from memories.earth.bands import band_info
from memories.earth.fetch import fetch_assets
from memories.earth.imagery import load_scenes, monthly_composite
from memories.earth.quality import processing_baseline, reflectance_offset
from memories.earth.stac import item_epsg
from memories.earth.stac_profiles import COMMON_BANDS, get_profile
from memories.errors import DataSourceError
from memories.grid import TileGrid
from memories.sample.server import free_port

from .faulty_server import FaultyServer

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "stac_items"
PC_S2 = "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json"
PC_API = "https://planetarycomputer.microsoft.com/api/stac/v1"
SIZE = 32


def _pc_item(api: str, folder: Path, *, drop: str | None = None) -> tuple[pystac.Item, TileGrid]:
    """The real PC item with its links re-pointed from the public API to ``api`` and its bands as local COGs.

    Each band (and SCL) holds DN ``2000 + 100 i``; ``drop`` removes one asset from the item.
    """
    d = json.loads((DATA / PC_S2).read_text())
    for link in d["links"]:
        link["href"] = link["href"].replace(PC_API, api)
    epsg = item_epsg(d)
    assert epsg is not None
    x0, y0 = 400000.0, 6700000.0
    profile = get_profile("planetary-computer")
    for i, key in enumerate(profile.required_keys(COMMON_BANDS).values()):
        path = folder / f"{key}.tif"
        value = 4 if key == "SCL" else 2000 + 100 * i  # SCL 4: vegetation, clear
        with rasterio.open(
            path,
            "w",
            driver="COG",
            width=SIZE,
            height=SIZE,
            count=1,
            dtype="uint16",
            crs=f"EPSG:{epsg}",
            nodata=0,
            transform=rasterio.transform.from_origin(x0, y0, 10.0, 10.0),
        ) as dst:
            dst.write(np.full((SIZE, SIZE), value, np.uint16), 1)
        d["assets"][key].update(
            {
                "href": str(path),
                "proj:shape": [SIZE, SIZE],
                "proj:transform": [10.0, 0.0, x0, 0.0, -10.0, y0],
                "proj:bbox": [x0, y0 - SIZE * 10, x0 + SIZE * 10, y0],
            }
        )
    if drop is not None:
        del d["assets"][drop]
    assert [link["href"] for link in d["links"] if link["rel"] == "root"] == [api]
    return pystac.Item.from_dict(d), TileGrid("06VVN", epsg, x0, y0, SIZE, SIZE, 10.0)


def _read_everything(item: pystac.Item, grid: TileGrid) -> np.ndarray:
    profile = get_profile("planetary-computer")
    assert band_info(item, "B04").scale == pytest.approx(1e-4)
    assert reflectance_offset(item, "B04", 1e-4) == 0.0  # baseline 02.12: no offset
    assert processing_baseline(item) == (2, 12)
    assert profile.resolve_bands(item)["red"] == "B04"
    assert item_epsg(item) == 32606
    stack = load_scenes([item], profile, grid, COMMON_BANDS, chunk_px=SIZE)
    return np.asarray(monthly_composite(stack)["reflectance"].values)


EXPECTED = np.array([(2000 + 100 * i) * 1e-4 for i in range(len(COMMON_BANDS))])


def test_metadata_reads_and_load_scenes_send_no_request_to_the_items_api(tmp_path: Path) -> None:
    with FaultyServer() as api:
        item, grid = _pc_item(api.url, tmp_path)
        refl = _read_everything(item, grid)
        assert [path for _, _, path, _ in api.log] == []  # not one request: metadata is read locally
    np.testing.assert_allclose(refl.mean(axis=(1, 2)), EXPECTED, atol=1e-6)


def test_an_item_whose_root_does_not_resolve_still_loads(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    item, grid = _pc_item(closed, tmp_path)
    refl = _read_everything(item, grid)
    np.testing.assert_allclose(refl.mean(axis=(1, 2)), EXPECTED, atol=1e-6)


def test_an_item_without_the_mask_asset_is_named_with_the_key_and_the_fix_on_every_path(tmp_path: Path) -> None:
    item, grid = _pc_item("http://127.0.0.1:9", tmp_path, drop="SCL")
    profile = get_profile("planetary-computer")
    wanted = rf"item '{item.id}' has no asset \['SCL'\] that profile 'planetary-computer' maps bands \['scl'\] to"
    with pytest.raises(DataSourceError, match=wanted) as resolved:
        profile.resolve_bands(item)
    with pytest.raises(DataSourceError, match=wanted) as loaded:
        load_scenes([item], profile, grid, COMMON_BANDS, chunk_px=SIZE)
    assert str(loaded.value) == str(resolved.value)
    assert "mask_kind='spectral'" in str(loaded.value)  # the fix for a missing mask band
    failures = fetch_assets([item], profile).failures
    assert [(f.item_id, f.asset, f.error) for f in failures] == [(item.id, "SCL", str(resolved.value))]
    # A spectral mask needs no mask asset: the same item loads.
    stack = load_scenes([item], profile, grid, COMMON_BANDS, chunk_px=SIZE, mask_kind="spectral")
    assert stack.scl is None and stack.dn.shape == (1, len(COMMON_BANDS), SIZE, SIZE)
