"""Catalog profiles against real STAC items from Earth Search (v1, v0) and Planetary Computer.

The items in ``../shared/data/stac_items`` are real API answers; their hrefs are
rewritten to small COGs written here, so bands resolve, files verify and
scaling comes from the items' own ``raster:bands``.
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
from memories.earth.stac import item_epsg
from memories.earth.stac_profiles import COMMON_BANDS, PlanetaryComputerSigner, get_profile, signer_for
from memories.errors import ConfigError, DataSourceError

from .faulty_server import FaultyServer

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "stac_items"
ES_V1 = "earthsearch_v1_s2l2a_landsat_2023-10-08.json"
PC_S2 = "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json"
ES_V0 = "S2A_28QCH_20200714_0_L2A.json"


def real_item(name: str, collection: str | None = None) -> dict:
    d = json.loads((DATA / name).read_text())
    if d.get("type") == "FeatureCollection":
        d = next(f for f in d["features"] if f["collection"] == collection)
    return d


def localized(d: dict, keys: list[str], folder: Path) -> pystac.Item:
    """The item with the hrefs of ``keys`` pointing at 32 x 32 COGs in ``folder`` (as the catalog's CRS)."""
    d = json.loads(json.dumps(d))
    d["links"] = []
    for k in keys:
        path = folder / f"{d['id']}_{k}.tif"
        with rasterio.open(
            path,
            "w",
            driver="COG",
            width=32,
            height=32,
            count=1,
            dtype="uint16",
            crs=f"EPSG:{item_epsg(d, k)}",
            nodata=0,
            transform=rasterio.transform.from_origin(400000, 4500000, 30, 30),
        ) as dst:
            dst.write(np.full((32, 32), 1000, np.uint16), 1)
        d["assets"][k]["href"] = str(path)
    return pystac.Item.from_dict(d)


@pytest.mark.parametrize(
    ("file", "collection", "profile", "epsg", "expected"),
    [
        (
            ES_V1,
            "sentinel-2-l2a",
            ("earth-search", None),
            32613,
            {"red": "red", "nir": "nir", "swir22": "swir22", "scl": "scl"},
        ),
        (
            ES_V1,
            "landsat-c2-l2",
            ("earth-search", "landsat-c2-l2"),
            32613,
            {"red": "red", "nir": "nir08", "swir16": "swir16", "qa_pixel": "qa_pixel"},
        ),
        (PC_S2, None, ("planetary-computer", None), 32606, {"red": "B04", "nir": "B08", "scl": "SCL"}),
        (ES_V0, None, ("earth-search-v0", None), 32628, {"blue": "B02", "nir": "B08", "scl": "SCL"}),
    ],
)
def test_real_items_resolve_their_bands_and_verify_per_profile(tmp_path, file, collection, profile, epsg, expected):
    p = get_profile(profile[0], collection=profile[1])
    d = real_item(file, collection)
    keys = p.resolve_bands(d)
    assert {b: keys[b] for b in expected} == expected
    assert list(keys)[:6] == list(COMMON_BANDS) and list(keys)[6] == p.mask_band
    assert item_epsg(d) == epsg
    item = localized(d, list(keys.values()), tmp_path)
    result = fetch_assets([item], p)
    assert result.completeness == 1.0 and result.requested == 7


def test_scale_offset_and_nodata_come_from_raster_bands():
    landsat = real_item(ES_V1, "landsat-c2-l2")
    nir = band_info(landsat, get_profile("earth-search", collection="landsat-c2-l2").asset_key("nir"))
    assert (nir.asset_key, nir.scale, nir.offset, nir.nodata, nir.dtype) == ("nir08", 2.75e-05, -0.2, 0, "uint16")
    qa = band_info(landsat, "qa_pixel")
    assert qa.nodata == 1 and qa.scale == 1.0
    s2 = band_info(real_item(ES_V1, "sentinel-2-l2a"), "swir16")
    assert (s2.scale, s2.offset, s2.nodata, s2.resolution_m) == (0.0001, -0.1, 0, 20)


def test_masks_are_declared_per_profile_for_the_quality_decoder():
    assert get_profile("earth-search").mask_kind == "scl"
    assert get_profile("planetary-computer").mask_asset_key == "SCL"
    for name in ("earth-search-landsat", "planetary-computer-landsat"):
        p = get_profile(name)
        assert (p.collection, p.mask_band, p.mask_kind, p.mask_asset_key) == (
            "landsat-c2-l2",
            "qa_pixel",
            "qa_pixel",
            "qa_pixel",
        )
    assert get_profile("planetary-computer", collection="landsat-c2-l2").signing == "planetary-computer"
    assert get_profile("earth-search", collection="my-own-s2").asset_keys == get_profile("earth-search").asset_keys
    with pytest.raises(ConfigError, match="unknown catalog profile 'earth-serch'"):
        get_profile("earth-serch")


def test_crs_comes_from_proj_code_as_well_as_proj_epsg():
    d = real_item(ES_V1, "sentinel-2-l2a")
    del d["properties"]["proj:epsg"]
    d["properties"]["proj:code"] = "EPSG:32633"
    assert item_epsg(d) == 32633
    d["assets"]["red"]["proj:code"] = "EPSG:32613"  # an asset's own CRS wins for that asset
    assert item_epsg(d, "red") == 32613 and item_epsg(d, "nir") == 32633
    del d["properties"]["proj:code"]
    assert item_epsg(d) is None


def test_an_earth_search_v0_item_under_the_v1_profile_names_the_profile_that_fits():
    with pytest.raises(DataSourceError, match=r"fit the profile\(s\) \['earth-search-v0'"):
        get_profile("earth-search").resolve_bands(real_item(ES_V0))


def test_planetary_computer_hrefs_are_signed_with_a_cached_token(monkeypatch):
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", "secret-key-123")
    href = real_item(PC_S2)["assets"]["B04"]["href"]
    with FaultyServer() as server:
        signer = PlanetaryComputerSigner(f"{server.url}/api/sas/v1/token")
        signed = signer.sign_href(href, "sentinel-2-l2a")
        assert signed == href + "?st=2024&se=2099&sp=rl&sv=2021-06-08&sr=c&skoid=sentinel-2-l2a&sig=tok1"
        assert signer.sign_href(real_item(PC_S2)["assets"]["B08"]["href"], "sentinel-2-l2a").endswith("sig=tok1")
        assert signer.sign_href(signed, "sentinel-2-l2a") == signed  # never twice
        assert signer.sign_href("https://example.com/x.tif", "sentinel-2-l2a") == "https://example.com/x.tif"
        token_calls = [h for _, _, p, h in server.log if p.startswith("/api/sas/v1/token/")]
        assert len(token_calls) == 1 and token_calls[0]["Ocp-Apim-Subscription-Key"] == "secret-key-123"
        assert signer.sign_href(href, "landsat-c2-l2").endswith("skoid=landsat-c2-l2&sig=tok2")  # per collection

        server.token_lifetime_s = 30  # inside the renewal margin: every use fetches a new token
        short = PlanetaryComputerSigner(f"{server.url}/api/sas/v1/token", margin_s=60)
        short.sign_href(href, "sentinel-2-l2a")
        short.sign_href(href, "sentinel-2-l2a")
        assert short.token_requests == 2

        server.forever("/api/sas/v1/token/nope", ("404",))
        with pytest.raises(DataSourceError, match="answered 404 for collection 'nope'") as err:
            PlanetaryComputerSigner(f"{server.url}/api/sas/v1/token").sign_href(href, "nope")
        assert "secret-key-123" not in str(err.value)
    assert signer_for(get_profile("earth-search")) is None
    assert isinstance(signer_for(get_profile("planetary-computer")), PlanetaryComputerSigner)
