"""The terrain layer in the disaster and urban analyses, against the sample world's analytic terrain."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point

from memories.applications.disaster import DisasterAnalyzer
from memories.applications.terrain_exposure import LOW_HAND_M, STEEP_SLOPE_DEG, built_up_slope, flood_terrain
from memories.applications.urban import UrbanPlanner
from memories.earth.terrain import terrain_dataset
from memories.sample.spec import SampleWorldSpec
from memories.sample.terrain import sample_terrain

STREAM_AREA_M2 = 1e6
"""The terrain's default stream threshold: 10,000 cells of 10 m."""


def test_flood_terrain_gives_the_analytic_hand_and_flow_path_of_a_building() -> None:
    spec = SampleWorldSpec(n_tiles=1, n_months=3, size_px=128)
    truth = sample_terrain(spec, "33TVM")
    grid = truth.grid
    stream_cells = 128 * 20  # the axis is a stream from row 19 down
    ds = terrain_dataset(truth.dem(), grid, chunk_px=48, stream_area_m2=stream_cells * 100.0).load()
    footprint = np.zeros(grid.shape, bool)
    footprint[60:70, truth.axis_col - 3 : truth.axis_col + 4] = True
    r, c = 64, truth.axis_col + 9  # a house 90 m east of the valley axis
    house = gpd.GeoDataFrame({"osm_id": [7]}, geometry=[Point(grid.x[c], grid.y[r]).buffer(3)], crs=grid.crs)
    t = flood_terrain(ds, footprint, house, grid)
    hand = truth.hand(stream_cells)
    assert t["hand_median_m"]["footprint"] == pytest.approx(float(np.median(hand[footprint])), abs=1e-3)
    assert t["low_ground_share"]["tile"] == pytest.approx(float((hand < LOW_HAND_M).mean()))
    [b] = t["buildings"]
    # Its water runs 9 cells west along its row to the axis, a stream there; what drains through it: the
    # cells east of it in the row.
    assert b["path_to_drainage_m"] == pytest.approx(90.0)
    assert b["path_drop_m"] == pytest.approx(hand[r, c], abs=1e-3) and b["hand_m"] == pytest.approx(
        hand[r, c], abs=1e-3
    )
    assert b["upstream_ha"] == pytest.approx((128 - c) * 100 / 1e4)


def test_built_up_slope_is_the_analytic_slope_under_the_new_land() -> None:
    truth = sample_terrain(SampleWorldSpec(n_tiles=1, n_months=3, size_px=128), "33TVM")
    ds = terrain_dataset(truth.dem(), truth.grid, chunk_px=64).load()
    new = np.zeros(truth.grid.shape, bool)
    new[10:30, truth.axis_col + 20 : truth.axis_col + 40] = True  # on the planar flank
    s = built_up_slope(ds, new)
    assert s["new_built_up"]["mean_deg"] == pytest.approx(float(truth.slope_deg()[new].mean()), abs=0.01)
    assert s["new_built_up"]["pixels"] == 400 and s["steep_deg"] == pytest.approx(8.5308, abs=1e-3)
    assert s["new_built_up"]["steep_share"] == float((truth.slope_deg()[new] > STEEP_SLOPE_DEG).mean())


def test_the_disaster_report_says_how_low_the_flood_lies(app_memory: Any) -> None:
    """On app_memory the valley runs under the flood (by the world's design): the flooded ground's HAND
    is that of the analytic terrain, and it lies lower than the tile's."""
    a = DisasterAnalyzer(app_memory.view).analyze(app_memory.tile)
    t = a.terrain
    assert t is not None
    truth = app_memory.world.terrain(app_memory.tile)
    hand = truth.hand(STREAM_AREA_M2 / 100.0)
    footprint = a.masks.footprint
    print(
        f"flood HAND median {t['hand_median_m']} m; low ground (HAND < {LOW_HAND_M} m) {t['low_ground_share']}; "
        f"elevation median {t['elevation_median_m']} m; {len(t['buildings'])} buildings, first {t['buildings'][:2]}"
    )
    assert t["hand_median_m"]["footprint"] == pytest.approx(float(np.median(hand[footprint])), abs=0.01)
    assert t["hand_median_m"]["footprint"] < t["hand_median_m"]["tile"]
    assert t["low_ground_share"]["footprint"] > t["low_ground_share"]["tile"]
    assert len(t["buildings"]) == a.buildings.count > 0
    for b in t["buildings"]:  # the drop along the path to the drainage is the height above it
        assert b["path_drop_m"] == pytest.approx(b["hand_m"], abs=1e-3)
    report = DisasterAnalyzer(app_memory.view).report(app_memory.tile, "2023-07")
    [section] = [s for s in report.summary["sections"] if s["title"].startswith("Terrain")]
    q = section["quantities"]["median HAND in the footprint"]
    assert q["value"] == pytest.approx(t["hand_median_m"]["footprint"]) and q["unit"] == "m"
    assert report.summary["disaster"]["terrain"]["low_ground_share"] == t["low_ground_share"]


def test_the_urban_report_gives_the_slope_of_new_built_up_land(app_memory: Any) -> None:
    planner = UrbanPlanner(app_memory.view)
    r = planner.analyze(app_memory.tile, "2023-01", "2023-08")
    t = r["terrain"]
    truth = app_memory.world.terrain(app_memory.tile)
    [district] = app_memory.events("new_district")
    lc0 = app_memory.view.raster("land_cover", app_memory.tile, "2023-01")["land_cover"].values
    lc1 = app_memory.view.raster("land_cover", app_memory.tile, "2023-08")["land_cover"].values
    gain = (lc1 == 5) & (lc0 != 5)
    print(f"slope of new built-up land {t['new_built_up']}; tile {t['tile']}")
    assert t["new_built_up"]["pixels"] == int(gain.sum()) > 0
    assert t["new_built_up"]["mean_deg"] == pytest.approx(float(truth.slope_deg()[gain].mean()), abs=0.05)
    report = planner.report(app_memory.tile, "2023-08")
    [section] = [s for s in report.summary["sections"] if s["title"] == "Slope of new built-up land"]
    assert section["quantities"]["mean slope of new built-up land"]["value"] == pytest.approx(
        t["new_built_up"]["mean_deg"]
    )
