"""Per-pixel quality: SCL classes, QA_PIXEL bits, the spectral cloud test, baseline harmonization."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from memories.earth.quality import (
    baseline_offset_dn,
    harmonize_dn,
    processing_baseline,
    qa_pixel_has_data,
    qa_pixel_mask,
    reflectance_offset,
    scl_clear_mask,
    spectral_clear_mask,
    spectral_cloud_mask,
    spectral_shadow_mask,
)
from memories.errors import DataSourceError, ProcessingError

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def _bits(*bits: int) -> int:
    return sum(1 << b for b in bits)


def test_scl_mask_keeps_vegetation_bare_water_unclassified_snow():
    scl = np.arange(12, dtype=np.uint8)
    assert list(np.flatnonzero(scl_clear_mask(scl))) == [4, 5, 6, 7, 11]
    lazy = xr.DataArray(scl).chunk(4)
    assert list(np.flatnonzero(scl_clear_mask(lazy).values)) == [4, 5, 6, 7, 11]


@pytest.mark.parametrize(
    ("qa", "clear"),
    [
        (0, False),  # stack fill: no observation
        (_bits(0), False),  # fill
        (_bits(6), True),  # clear
        (_bits(7), True),  # water
        (_bits(5), True),  # snow
        (_bits(6, 1), False),  # dilated cloud
        (_bits(6, 2), False),  # cirrus
        (_bits(3), False),  # cloud
        (_bits(6, 4), False),  # cloud shadow
        (_bits(7, 4), False),  # shadow over water
        (_bits(6, 8, 10, 12, 14), True),  # 21824: the usual Landsat 8 clear land value, low confidences
        (_bits(6, 7, 8, 10, 12, 14), True),  # 21952: the usual clear water value (clear and water bits)
        (_bits(1, 3, 8, 9, 10, 12, 14), False),  # 22280: high-confidence cloud, dilated
        (_bits(3, 2, 8, 9, 10, 12, 14, 15), False),  # cloud and high-confidence cirrus
        (_bits(8, 9), False),  # confidence bits alone, no clear/water/snow flag
    ],
)
def test_qa_pixel_bits_decode_to_clear_or_masked(qa, clear):
    got = qa_pixel_mask(np.array([qa], dtype=np.uint16))
    assert bool(got[0]) is clear


def test_qa_pixel_known_values_and_data_flag():
    assert _bits(6, 8, 10, 12, 14) == 21824 and _bits(6, 7, 8, 10, 12, 14) == 21952
    qa = xr.DataArray(np.array([0, 1, 21824, 22280], dtype=np.uint16)).chunk(2)
    assert qa_pixel_mask(qa).values.tolist() == [False, False, True, False]
    assert qa_pixel_has_data(qa).values.tolist() == [False, False, True, True]
    with pytest.raises(ProcessingError, match="integers"):
        qa_pixel_mask(np.array([64.0]))


# top-of-atmosphere reflectance of typical pixels: blue, green, red, nir, swir16, swir22
PIXELS = {
    "thick cloud": (0.30, 0.28, 0.28, 0.40, 0.32, 0.26),
    "thin cloud": (0.15, 0.134, 0.118, 0.30, 0.19, 0.136),
    "vegetation": (0.073, 0.061, 0.037, 0.27, 0.13, 0.056),
    "water": (0.08, 0.06, 0.04, 0.02, 0.01, 0.005),
    "snow": (0.90, 0.88, 0.86, 0.80, 0.06, 0.04),  # NDSI 0.87: fails the basic test
    "bright soil": (0.12, 0.15, 0.20, 0.27, 0.35, 0.30),
    "urban": (0.11, 0.10, 0.10, 0.16, 0.17, 0.14),
}
CLOUDY = {"thick cloud", "thin cloud"}


def test_spectral_cloud_test_on_known_pixels():
    names = list(PIXELS)
    bands = np.array([PIXELS[n] for n in names], dtype=np.float32).T  # (6, n)
    got = spectral_cloud_mask(*bands)
    assert {n for n, c in zip(names, got) if c} == CLOUDY
    # cirrus (B10) flags an otherwise clear vegetation pixel
    cirrus = np.array([0.02 if n == "vegetation" else 0.001 for n in names], dtype=np.float32)
    got = spectral_cloud_mask(*bands, cirrus=cirrus)
    assert {n for n, c in zip(names, got) if c} == CLOUDY | {"vegetation"}
    assert not spectral_cloud_mask(*(np.full(1, np.nan, np.float32) for _ in range(6)))[0]


def _scene(h: int = 60, w: int = 60) -> dict[str, np.ndarray]:
    veg = PIXELS["vegetation"]
    names = ("blue", "green", "red", "nir", "swir16", "swir22")
    return {n: np.full((h, w), v, dtype=np.float32) for n, v in zip(names, veg)}


def test_dark_pixels_are_shadow_only_near_clouds_and_never_water():
    b = _scene()
    for n, v in zip(("blue", "green", "red", "nir", "swir16", "swir22"), PIXELS["thick cloud"]):
        b[n][5:15, 5:15] = v
    for n in ("blue", "green", "red", "nir", "swir16", "swir22"):
        b[n][20:25, 5:15] *= 0.3  # shadow 5-10 px south of the cloud
        b[n][50:55, 50:55] *= 0.3  # dark patch 35 px away from any cloud
    for n, v in zip(("blue", "green", "red", "nir", "swir16", "swir22"), PIXELS["water"]):
        b[n][16:19, 5:15] = v  # a dark lake next to the cloud
    cloud = spectral_cloud_mask(*(b[n] for n in ("blue", "green", "red", "nir", "swir16", "swir22")))
    assert cloud[5:15, 5:15].all() and cloud.sum() == 100
    shadow = spectral_shadow_mask(b["green"], b["nir"], b["swir16"], cloud, search_px=20)
    assert shadow[20:25, 5:15].all()
    assert not shadow[50:55, 50:55].any() and not shadow[16:19, 5:15].any()
    assert shadow.sum() == 50
    clear = spectral_clear_mask(b, search_px=20)
    assert clear.sum() == 60 * 60 - 100 - 50
    # a scene without cloud has no shadow at all
    no_cloud = spectral_shadow_mask(b["green"], b["nir"], b["swir16"], np.zeros_like(cloud))
    assert not no_cloud.any()
    with pytest.raises(ProcessingError, match="swir22"):
        spectral_clear_mask({k: v for k, v in b.items() if k != "swir22"})


def test_declared_offset_wins_over_the_processing_baseline():
    fc = json.loads((DATA / "stac_items" / "earthsearch_v1_s2l2a_landsat_2023-10-08.json").read_text())
    s2 = next(f for f in fc["features"] if f["id"].startswith("S2"))
    assert processing_baseline(s2) == (5, 9)
    # Earth Search v1 already states -0.1: applying -1000 DN again would give -0.2
    assert reflectance_offset(s2, "red", 1e-4) == pytest.approx(-0.1)


def test_baseline_offset_applies_only_without_a_declared_offset():
    def item(baseline: str | None) -> dict:
        props = {} if baseline is None else {"s2:processing_baseline": baseline}
        return {"id": "x", "properties": props, "assets": {"B04": {"raster:bands": [{"nodata": 0}]}}}

    assert reflectance_offset(item("05.09"), "B04", 1e-4) == pytest.approx(-0.1)
    assert reflectance_offset(item("04.00"), "B04", 1e-4) == pytest.approx(-0.1)
    assert reflectance_offset(item("03.01"), "B04", 1e-4) == 0.0
    assert reflectance_offset(item(None), "B04", 1e-4) == 0.0
    pc = json.loads((DATA / "stac_items" / "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json").read_text())
    assert processing_baseline(pc) == (2, 12) and reflectance_offset(pc, "B04", 1e-4) == 0.0
    assert baseline_offset_dn("04.00") == -1000 and baseline_offset_dn("03.99") == 0
    with pytest.raises(DataSourceError, match="NN.NN"):
        processing_baseline(item("four"))
    with pytest.raises(DataSourceError, match="asset-key mapping"):
        reflectance_offset(item("05.09"), "red", 1e-4)


def test_harmonize_dn_removes_the_1000_offset_keeping_nodata():
    dn = np.array([0, 500, 1000, 1001, 5000, 11000], dtype=np.uint16)
    got = harmonize_dn(dn, "05.09")
    assert got.dtype == np.uint16 and got.tolist() == [0, 1, 1, 1, 4000, 10000]
    assert harmonize_dn(dn, (2, 12)).tolist() == dn.tolist()
    # the same reflectance either way: new DN with -0.1 offset == harmonized DN without offset
    refl_new = dn[4:].astype(np.float32) * 1e-4 - 0.1
    np.testing.assert_allclose(harmonize_dn(dn, "05.09")[4:] * 1e-4, refl_new, atol=1e-6)
