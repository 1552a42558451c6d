"""Scenes: determinism, SCL against reflectance, DN round trip against clear-sky truth."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio

from memories.months import parse_instant
from memories.sample import BANDS, SampleWorld, generate_world

CLEAR_SCL = (4, 5, 6)
CLOUD_SCL = (8, 9)


def read(item: dict, asset: str) -> np.ndarray:
    with rasterio.open(item["assets"][asset]["href"]) as ds:
        return ds.read(1)


def reflectance(item: dict, asset: str) -> np.ndarray:
    """DN to reflectance by the item's own raster:bands scale and offset, on the 10 m grid."""
    band = item["assets"][asset]["raster:bands"][0]
    dn = read(item, asset)
    r = np.where(dn == band["nodata"], np.nan, dn * band["scale"] + band["offset"])
    return to_10m(r) if band["spatial_resolution"] == 20 else r


def to_10m(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)


def scl_10m(item: dict) -> np.ndarray:
    return to_10m(read(item, "scl"))


def test_same_spec_gives_identical_arrays(
    tiny_world: SampleWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fixture rendered in this process; render again in two worker processes.
    monkeypatch.setattr("memories.sample.generate._MIN_SCENES_FOR_PROCESSES", 0)
    again = generate_world(tiny_world.spec, tmp_path / "again", workers=2)
    first, second = tiny_world.items(), again.items()
    assert [i["id"] for i in first] == [i["id"] for i in second]
    assert [i["properties"] for i in first] == [i["properties"] for i in second]
    for a, b in zip(first[::5], second[::5]):
        for asset in BANDS:
            np.testing.assert_array_equal(read(a, asset), read(b, asset), err_msg=f"{a['id']} {asset}")
    assert again.manifest["events"] == tiny_world.manifest["events"]


def test_assets_are_cogs_on_the_tile_grid(tiny_world: SampleWorld) -> None:
    item = tiny_world.items("31UDQ")[0]
    tile = tiny_world.tile("31UDQ")
    for asset in BANDS:
        with rasterio.open(item["assets"][asset]["href"]) as ds:
            factor = 2 if asset in ("swir16", "swir22", "scl") else 1
            assert ds.crs.to_epsg() == tile.epsg and ds.nodata == 0
            assert ds.shape == (tile.height // factor, tile.width // factor)
            assert ds.transform == tile.transform @ tile.transform.scale(factor)
            assert ds.dtypes[0] == ("uint8" if asset == "scl" else "uint16")
            assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
            assert list(ds.transform)[:6] == item["assets"][asset]["proj:transform"]


def test_clear_pixels_round_trip_to_clear_sky_reflectance(tiny_world: SampleWorld) -> None:
    n_checked = 0
    for tile in tiny_world.tiles:
        for item in tiny_world.items(tile.tile_id):
            when = parse_instant(item["properties"]["datetime"])
            clear = np.isin(scl_10m(item), CLEAR_SCL)
            if clear.mean() < 0.2:
                continue
            for band in BANDS[:-1]:
                error = (
                    reflectance(item, band)[clear] - tiny_world.clear_sky_reflectance(tile.tile_id, when, band)[clear]
                )
                assert np.abs(error).mean() < 0.01, (item["id"], band)
                assert abs(error.mean()) < 0.002, (item["id"], band)  # unbiased: the offset is applied right
                assert 0.002 < error.std() < 0.006, (item["id"], band)  # sensor noise of 0.004 is there
                n_checked += 1
    assert n_checked >= 6 * 10


def test_scl_marks_cloud_where_reflectance_is_cloud_bright(tiny_world: SampleWorld) -> None:
    cloudy = [i for i in tiny_world.items() if i["properties"]["s2:high_proba_clouds_percentage"] > 5]
    assert len(cloudy) >= 5
    for item in cloudy:
        scl, blue, swir = scl_10m(item), reflectance(item, "blue"), reflectance(item, "swir16")
        bright = blue > 0.2
        assert bright.any()
        assert np.isin(scl[bright], CLOUD_SCL).all(), item["id"]
        assert (blue[np.isin(scl, CLOUD_SCL)] > 0.25).all(), item["id"]
        assert np.nanmedian(swir[scl == 9]) > 0.25  # clouds are bright in SWIR too
        assert (blue[np.isin(scl, CLEAR_SCL)] < 0.15).all(), item["id"]


def test_scl_clear_classes_follow_the_land_cover(tiny_world: SampleWorld) -> None:
    for tile in tiny_world.tiles:
        item = min(tiny_world.items(tile.tile_id), key=lambda i: i["properties"]["eo:cloud_cover"])
        truth = tiny_world.landcover_truth(tile.tile_id, parse_instant(item["properties"]["datetime"]))[::2, ::2]
        scl = read(item, "scl")
        assert (scl[truth == 1] == 6).mean() > 0.9  # water
        assert (scl[truth == 2] == 4).mean() > 0.9  # summer forest is vegetation
        assert (scl[truth == 5] == 5).mean() > 0.9  # built-up is not vegetated
        assert (scl[scl == 6] == 6).all() and (truth[scl == 6] == 1).all()


def test_shadows_darken_and_nodata_is_zero_everywhere(tiny_world: SampleWorld) -> None:
    shadows = wedges = 0
    for tile in tiny_world.tiles:
        for item in tiny_world.items(tile.tile_id):
            scl = scl_10m(item)
            nir = reflectance(item, "nir")
            if (scl == 3).sum() > 50:
                when = parse_instant(item["properties"]["datetime"])
                ratio = nir[scl == 3] / tiny_world.clear_sky_reflectance(tile.tile_id, when, "nir")[scl == 3]
                assert 0.2 < np.median(ratio) < 0.4, item["id"]
                shadows += 1
            nodata = scl == 0
            if nodata.any():
                wedges += 1
                assert item["properties"]["s2:nodata_pixel_percentage"] > 0
            for band in BANDS[:-1]:
                factor = 2 if band.startswith("swir") else 1
                dn = read(item, band)
                np.testing.assert_array_equal(dn == 0, nodata[::factor, ::factor], err_msg=f"{item['id']} {band}")
    assert shadows >= 5 and wedges >= 1


def test_cloud_cover_property_counts_cloud_and_shadow_over_valid_pixels(tiny_world: SampleWorld) -> None:
    covers: list[float] = []
    for item in tiny_world.items():
        scl = read(item, "scl")
        valid = scl != 0
        expected = 100 * np.isin(scl[valid], (3, 8, 9, 10)).mean()
        assert item["properties"]["eo:cloud_cover"] == pytest.approx(expected, abs=1e-4)
        covers.append(float(expected))
    cover = np.array(covers)
    assert (cover < 3).mean() > 0.15 and (cover > 20).mean() > 0.4  # a third nearly clear, the rest cloudy


def test_clear_sky_ndvi_has_class_values(tiny_world: SampleWorld) -> None:
    july = datetime(2023, 7, 1, 10, 30, tzinfo=UTC)
    for tile in tiny_world.tiles:
        red = tiny_world.clear_sky_reflectance(tile.tile_id, july, "red")
        nir = tiny_world.clear_sky_reflectance(tile.tile_id, july, "nir")
        ndvi = (nir - red) / (nir + red)
        truth = tiny_world.landcover_truth(tile.tile_id, july)
        assert np.median(ndvi[truth == 2]) > 0.75  # summer forest
        assert 0.1 < np.median(ndvi[truth == 5]) < 0.25  # built-up
        assert np.median(ndvi[truth == 1]) < 0  # water
        if (truth == 6).any():
            assert 0.1 < np.median(ndvi[truth == 6]) < 0.25  # the clear-cut's bare soil


def test_cropland_is_bare_in_winter_and_green_in_summer(tiny_world: SampleWorld) -> None:
    tile = tiny_world.tiles[0]
    truth = tiny_world.landcover_truth(tile.tile_id, datetime(2023, 5, 1, tzinfo=UTC))
    assert (truth == 3).any()

    def ndvi(when: datetime) -> float:
        red = tiny_world.clear_sky_reflectance(tile.tile_id, when, "red")
        nir = tiny_world.clear_sky_reflectance(tile.tile_id, when, "nir")
        return float(np.median(((nir - red) / (nir + red))[truth == 3]))

    assert ndvi(datetime(2023, 1, 15, tzinfo=UTC)) < 0.35
    assert ndvi(datetime(2023, 6, 25, tzinfo=UTC)) > 0.75
    assert ndvi(datetime(2023, 9, 15, tzinfo=UTC)) < 0.35  # harvested in August
