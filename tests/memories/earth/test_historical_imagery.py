"""``SatelliteImagery.get_historical_imagery`` and ``calculate_index`` on the embedded world (L2A).

The series is checked against the monthly composites the assets make of the same
scenes (``SatelliteImagery.composite``), and its index aggregates against the
index computed by hand from its reflectance.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from memories.errors import ConfigError

TILE = "33TVM"


@pytest.fixture(scope="module")
def sat():
    from memories.earth import SatelliteImagery

    with SatelliteImagery() as s:
        yield s


def _centre(sat) -> tuple[float, float]:
    w, s, e, n = sat.tile(TILE).bbox_wgs84
    return (s + n) / 2, (w + e) / 2


def test_l2a_series_equals_the_monthly_composites_and_says_it_is_surface_reflectance(sat):
    series = asyncio.run(
        sat.get_historical_imagery(
            location=_centre(sat),
            time_range=("2023-05-01", "2023-07-01"),
            interval="monthly",
            max_cloud_cover=80,
            bands=["B2", "B3", "B4", "B8"],
            apply_atmospheric_correction=True,
            radius_km=0.4,
        )
    )
    assert series.attrs["periods"] == ["2023-05", "2023-06"]
    assert list(series["band"].values) == ["blue", "green", "red", "nir"]
    assert series.attrs["band_names"] == ["B2", "B3", "B4", "B8"]
    assert series.attrs["processing_level"] == "L2A" and series.attrs["surface_reflectance"] is True
    assert "surface reflectance already" in series.attrs["atmospheric_correction"]
    assert "haze" not in series.attrs
    assert series.sizes["x"] in (80, 81) and series.sizes["y"] in (80, 81)  # 2 x 0.4 km at 10 m, pixel-snapped
    for t, month in enumerate(("2023-05", "2023-06")):
        ref = sat.composite(TILE, month, bands=("blue", "green", "red", "nir"))
        ref = ref.sel(x=series["x"], y=series["y"]).compute()
        got = series.isel(time=t)
        assert str(got["time"].values)[:7] == month
        np.testing.assert_allclose(got["reflectance"].values, ref["reflectance"].values, rtol=1e-6, equal_nan=True)
        np.testing.assert_array_equal(got["clear_count"].values, ref["clear_count"].values)
        assert series.attrs["scenes"][month] == ref.attrs["scenes"]
    # common names give the same series, and the sync twin the same values
    twin = sat.historical_imagery(
        _centre(sat), ("2023-05-01", "2023-07-01"), bands=["blue", "green", "red", "nir"], radius_km=0.4
    )
    np.testing.assert_array_equal(twin["reflectance"].values, series["reflectance"].values)


def test_yearly_series_lists_the_years_without_scenes(sat):
    from memories.sample import SampleWorld

    series = sat.historical_imagery(
        _centre(sat), ("2021-01-01", "2024-01-01"), interval="yearly", max_cloud_cover=50, bands=["B4"], radius_km=0.2
    )
    assert series.attrs["periods"] == ["2023"]
    assert series.attrs["empty_periods"] == ["2021", "2022"]
    world = SampleWorld.open(sat.settings.sample.root)
    kept = [it["id"] for it in world.items(TILE) if it["properties"]["eo:cloud_cover"] <= 50]
    assert series.attrs["scenes"]["2023"] == sorted(kept, key=lambda i: i.split("_")[2])
    assert int(series["scene_count"].values[0]) == len(kept)


def test_calculate_index_aggregates_over_space_and_time(sat):
    series = sat.historical_imagery(_centre(sat), ("2023-05", "2023-07"), bands=["B4", "B8"], radius_km=0.3)
    red = series["reflectance"].sel(band="red").values
    nir = series["reflectance"].sel(band="nir").values
    by_hand = (nir - red) / (nir + red)
    per_pixel = sat.calculate_index(imagery=series, index="NDVI")
    np.testing.assert_allclose(per_pixel.values, by_hand, rtol=1e-5, equal_nan=True)
    mean = sat.calculate_index(imagery=series, index="NDVI", aggregate="mean")
    assert mean.dims == ("time",) and mean.attrs["aggregate"] == "mean"
    np.testing.assert_allclose(mean.values, np.nanmean(by_hand, axis=(1, 2)), rtol=1e-5)
    np.testing.assert_array_equal(mean["valid_pixels"].values, np.isfinite(by_hand).sum(axis=(1, 2)))
    median_t = sat.calculate_index(imagery=series, index="ndvi", aggregate="median", over="time")
    np.testing.assert_allclose(median_t.values, np.nanmedian(by_hand, axis=0), rtol=1e-5, equal_nan=True)
    assert 0.2 < float(mean.mean()) < 0.9
    with pytest.raises(ConfigError, match="aggregate='avg'"):
        sat.calculate_index(imagery=series, index="NDVI", aggregate="avg")
    with pytest.raises(ConfigError, match="index='NDXI'"):
        sat.calculate_index(imagery=series, index="NDXI")


def test_bad_requests_are_refused_with_the_fix(sat):
    with pytest.raises(ConfigError, match="no tile of the area of interest holds location"):
        sat.historical_imagery((37.7749, -122.4194), ("2023-05", "2023-06"))
    with pytest.raises(ConfigError, match="band 'B13'"):
        sat.historical_imagery(_centre(sat), ("2023-05", "2023-06"), bands=["B2", "B13"])
    with pytest.raises(ConfigError, match="interval='weekly'"):
        sat.historical_imagery(_centre(sat), ("2023-05", "2023-06"), interval="weekly")
    with pytest.raises(ConfigError, match="ends before it starts"):
        sat.historical_imagery(_centre(sat), ("2023-06", "2023-05"))


def test_periods_are_calendar_steps_clipped_to_the_half_open_range():
    from memories.earth.timeseries import periods

    got = periods(("2023-05-15", "2023-07-01"), "monthly")
    assert [p.label for p in got] == ["2023-05", "2023-06"]
    assert got[0].start.day == 15 and got[-1].end.month == 7 and got[-1].end.day == 1
    years = periods(("2000-01-01", "2023-01-01"), "yearly")
    assert len(years) == 23 and years[0].label == "2000" and years[-1].label == "2022"


def test_band_numbers_and_common_names_resolve_alike():
    from memories.earth.stac_profiles import common_band_name

    assert [common_band_name(b) for b in ("B2", "B02", "b3", "B04", "B8", "B8A", "B11", "B12")] == [
        "blue", "blue", "green", "red", "nir", "nir08", "swir16", "swir22",
    ]  # fmt: skip
    assert common_band_name("NIR") == "nir"
    with pytest.raises(ConfigError, match="B13"):
        common_band_name("B13")


def test_an_unclosed_satellite_imagery_leaves_no_server_behind(sat):
    """The seed never calls close(): the embedded STAC server must stop when the interpreter exits."""
    import os
    import subprocess
    import sys
    import time

    sat._open()  # the world exists (the fixture's server started); the child only starts its own server
    code = (
        "from memories.earth import SatelliteImagery\n"
        "s = SatelliteImagery(); s._open(); print(s._server._process.pid, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=os.environ)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split()[-1])
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 15)
        raise AssertionError(f"rustac {pid} was still running after its SatelliteImagery's interpreter exited")
