"""The direct COG reader (``load_scenes(engine="gdal")``) gives stackstac's digital numbers, and the
composite on it equals a plain numpy median and percentile of the clear observations.

Files in the layouts real catalogs publish: 1024 px internal tiles, deflate and zstd, overviews,
10/20/60 m bands, a scene in the neighbouring UTM zone (warped), one that covers half the tile, a
band without a nodata value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping

from memories.earth.imagery import load_scenes, monthly_composite
from memories.earth.order_stats import dn_median_iqr
from memories.earth.stac_profiles import get_profile
from memories.grid import TileGrid

GRID = TileGrid("33TVM", 32633, 500_000.0, 5_100_000.0, 300, 300, 10.0)
BANDS = ("blue", "red", "swir16", "swir22")
RES = {"blue": 10, "red": 10, "swir16": 20, "swir22": 20, "scl": 20}


def _write(path: Path, values: np.ndarray, epsg: int, x0: float, y0: float, res: float, **opts: Any) -> None:
    profile = {"driver": "COG", "blocksize": 1024, "compress": "deflate", "nodata": 0, **opts}
    with rasterio.open(
        path,
        "w",
        width=values.shape[1],
        height=values.shape[0],
        count=1,
        dtype=values.dtype,
        crs=f"EPSG:{epsg}",
        transform=rasterio.transform.from_origin(x0, y0, res, res),
        **profile,
    ) as dst:
        dst.write(values, 1)


def _scene(folder: Path, i: int, rng: np.random.Generator, **kind: Any) -> dict[str, Any]:
    """One scene's COGs and item: ``epsg``, origin shift ``shift`` (m), ``width`` (m), per-band overrides."""
    epsg = kind.get("epsg", 32633)
    x0, y0 = GRID.x_min - 400.0 + kind.get("shift", 0.0), GRID.y_max + 400.0
    if epsg != 32633:  # the same ground in the neighbouring zone, snapped to its own 10 m lattice
        w, s, e, n = transform_bounds(32633, epsg, x0, y0 - 4000, x0 + 4000, y0)
        x0, y0 = float(w // 60 * 60), float(-(-n // 60) * 60)
    width = kind.get("width", 4000.0)
    assets: dict[str, Any] = {}
    folder.mkdir(parents=True, exist_ok=True)
    for band in (*BANDS, "scl"):
        res = kind.get("res", {}).get(band, RES[band])
        shape = (int(4000 // res), int(width // res))
        if band == "scl":
            codes = np.array([0, 3, 4, 5, 6, 8, 9, 10], np.uint8)
            values = rng.choice(codes, shape, p=[0.05, 0.05, 0.4, 0.2, 0.1, 0.1, 0.05, 0.05])
        else:
            values = rng.integers(0, 12000, shape, dtype=np.uint16)
            values[rng.random(shape) < 0.05] = 0
        path = folder / f"{band}.tif"
        opts = dict(kind.get("opts", {}).get(band, {}))
        _write(path, values, epsg, x0, y0, res, **opts)
        assets[band] = {
            "href": str(path),
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "proj:code": f"EPSG:{epsg}",
            "proj:shape": list(shape),
            "proj:transform": [res, 0.0, x0, 0.0, -res, y0],
            "raster:bands": [{"data_type": str(values.dtype), "nodata": 0, "scale": 0.0001, "offset": -0.1}]
            if band != "scl"
            else [{"data_type": "uint8", "nodata": 0}],
        }
    west, south, east, north = transform_bounds(epsg, 4326, x0, y0 - 4000, x0 + width, y0)
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"S2A_33TVM_2023060{i + 1}_0_L2A",
        "bbox": [west, south, east, north],
        "geometry": mapping(box(west, south, east, north)),
        "properties": {"datetime": f"2023-06-0{i + 1}T10:00:00Z", "proj:code": f"EPSG:{epsg}"},
        "links": [],
        "assets": assets,
    }


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("cogs")
    rng = np.random.default_rng(7)
    kinds: list[dict[str, Any]] = [
        {},
        {"shift": 20.0, "opts": {"blue": {"compress": "zstd"}, "swir16": {"compress": "zstd", "overviews": "AUTO"}}},
        {"width": 2400.0},  # covers the west of the tile only
        {"epsg": 32634},  # the neighbouring UTM zone: warped
        {"opts": {"red": {"nodata": None}}},  # a band without a nodata value
        {"res": {"swir22": 60}},  # a 60 m band in one scene: swir22 is resampled in every scene
    ]
    # given out of time order: both engines sort by datetime
    return [_scene(folder / f"s{i}", i, rng, **k) for i, k in reversed(list(enumerate(kinds)))]


def test_direct_reader_gives_stackstacs_digital_numbers(items: list[dict[str, Any]]) -> None:
    profile = get_profile("embedded")
    fast = load_scenes(items, profile, GRID, BANDS, chunk_px=128, engine="gdal")
    ref = load_scenes(items, profile, GRID, BANDS, chunk_px=128, engine="stackstac")
    assert fast.dn.dtype == ref.dn.dtype == np.uint16 and fast.scl is not None and ref.scl is not None
    np.testing.assert_array_equal(fast.dn["time"].values, ref.dn["time"].values)
    assert list(fast.dn["time"].values) == sorted(fast.dn["time"].values)
    a, b = fast.dn.values, ref.dn.values
    for t in range(a.shape[0]):
        for j, band in enumerate(BANDS):
            differ = int((a[t, j] != b[t, j]).sum())
            assert differ == 0, f"scene {t} {band}: {differ} pixels differ from stackstac"
    np.testing.assert_array_equal(fast.scl.values, ref.scl.values)
    assert (a[:, 0] != 0).any() and (a[2, 0, :, 250:] == 0).all()  # the half scene is empty in the east
    np.testing.assert_array_equal(fast.scale, ref.scale)
    np.testing.assert_array_equal(fast.offset, ref.offset)


def test_composite_on_the_direct_reader_is_numpys_median_and_iqr(items: list[dict[str, Any]]) -> None:
    stack = load_scenes(items, get_profile("embedded"), GRID, BANDS, chunk_px=128)
    got = monthly_composite(stack).compute()
    dn = stack.dn.values.astype(np.float64)
    clear = np.isin(stack.scl.values, [4, 5, 6, 7, 11])[:, None]  # vegetation, bare, water, unclassified, snow
    dn[~clear | (dn == 0)] = np.nan
    median, iqr = _nan_median_iqr(dn)
    want = (median.astype(np.float32) * np.float32(0.0001) + np.float32(-0.1)).astype(np.float32)
    np.testing.assert_array_equal(got["reflectance"].values, want)
    np.testing.assert_array_equal(got["spread"].values, (iqr.astype(np.float32) * np.float32(0.0001)))
    assert np.isfinite(want).mean() > 0.5


@pytest.mark.parametrize("t", [1, 2, 3, 6, 7, 12, 31, 70])
def test_dn_median_iqr_equals_numpy(t: int) -> None:
    rng = np.random.default_rng(t)
    dn = rng.integers(0, 3000, size=(t, 2, 40, 50)).astype(np.uint16)
    dn[rng.random(dn.shape) < 0.1] = 0
    clear = rng.random((t, 1, 40, 50)) < 0.7
    got = dn_median_iqr(dn, clear)
    x = np.where(clear & (dn != 0), dn, np.nan)
    np.testing.assert_array_equal(got, np.stack(_nan_median_iqr(x)).astype(np.float32))


def _nan_median_iqr(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy's median and 75th - 25th percentile over axis 0 of the non-NaN values (NaN: none).

    ``np.nanpercentile`` gives the same but loops in Python per pixel; grouping the pixels
    by their count of values lets plain ``np.percentile`` do each group at once.
    """
    s = np.sort(x, axis=0)  # NaN last
    n = np.isfinite(x).sum(axis=0)
    median = np.full(x.shape[1:], np.nan)
    iqr = np.full(x.shape[1:], np.nan)
    for c in range(1, x.shape[0] + 1):
        sel = n == c
        v = s[:c, sel]
        median[sel] = np.median(v, axis=0)
        iqr[sel] = np.percentile(v, 75, axis=0) - np.percentile(v, 25, axis=0)
    return median, iqr


def test_grid_side_not_a_multiple_of_the_native_pixel_reads_the_same(items: list[dict[str, Any]]) -> None:
    # 295 x 298 px: a 20 m pixel is cut by the grid's east edge; the direct reader repeats and crops it,
    # stackstac (needing whole native pixels) warps the band onto the 10 m grid: the same values
    grid = TileGrid("33TVM", 32633, GRID.x_min, GRID.y_max, 295, 298, 10.0)
    profile = get_profile("embedded")
    fast = load_scenes(items, profile, grid, ("swir16",), chunk_px=128, engine="gdal")
    ref = load_scenes(items, profile, grid, ("swir16",), chunk_px=128, engine="stackstac")
    np.testing.assert_array_equal(fast.dn.values, ref.dn.values)
    np.testing.assert_array_equal(fast.scl.values, ref.scl.values)


def test_forget_open_files_closes_the_kept_datasets_and_the_next_read_is_the_same(
    items: list[dict[str, Any]],
) -> None:
    from memories.earth import cog_reader

    href = items[0]["assets"]["red"]["href"]
    kept = cog_reader._dataset(href)
    assert cog_reader._dataset(href) is kept  # kept open between reads of one thread
    before = load_scenes(items, get_profile("embedded"), GRID, BANDS, chunk_px=128).dn.values
    cog_reader.forget_open_files()
    reopened = cog_reader._dataset(href)
    assert reopened is not kept and kept.closed and not reopened.closed
    np.testing.assert_array_equal(
        load_scenes(items, get_profile("embedded"), GRID, BANDS, chunk_px=128).dn.values, before
    )


@pytest.mark.parametrize("chosen", [None, "512"])
def test_reading_bounds_gdals_block_cache_unless_the_user_chose_one(
    items: list[dict[str, Any]], tmp_path: Path, chosen: str | None
) -> None:
    """GDAL's default cache (5 % of RAM) holds blocks that are never read again; the reader lowers it to
    ``GDAL_BLOCK_CACHE_BYTES`` in its process, and leaves a ``GDAL_CACHEMAX`` of the environment alone."""
    import json
    import os
    import subprocess
    import sys

    from memories.earth.cog_reader import GDAL_BLOCK_CACHE_BYTES

    script = tmp_path / "read.py"
    script.write_text(
        "import json, sys\n"
        "from rasterio.env import get_gdal_config\n"
        "from memories.earth.cog_reader import GridWindow, _read_band_window, _Spec\n"
        "from memories.grid import TileGrid\n"
        "before = get_gdal_config('GDAL_CACHEMAX')\n"
        f"grid = TileGrid('33TVM', 32633, {GRID.x_min}, {GRID.y_max}, 300, 300, 10.0)\n"
        "_read_band_window((sys.argv[1],), _Spec.of(grid, 1), GridWindow(0, 128, 0, 128), 'uint16')\n"
        "print(json.dumps([before, get_gdal_config('GDAL_CACHEMAX')]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GDAL_CACHEMAX"}
    if chosen:
        env["GDAL_CACHEMAX"] = chosen
    out = subprocess.run(
        [sys.executable, str(script), items[0]["assets"]["red"]["href"]],
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        capture_output=True,
        text=True,
        check=True,
    )
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    if chosen:
        assert before == after == 512 * 2**20  # GDAL reads a value under 100000 as MB
    else:
        assert after == min(before, GDAL_BLOCK_CACHE_BYTES)  # never raised, should RAM be small
