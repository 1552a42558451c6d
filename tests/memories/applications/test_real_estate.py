"""RealEstateAgent against the ground truth of the app_memory world (33TVM, 2023-01..2023-08, 256 px).

The memory's land cover is the rasterized truth, so the built-up share in a radius
must rise by the new district's area inside it, and the buildings the GIS truth
dates after the district must be the ones the agent counts as new.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point, box

from memories.applications.real_estate import RealEstateAgent
from memories.errors import ConfigError, MissingDataError
from tests.memories.applications.helpers import materialize_report

RADIUS_M = 500.0
BUILT_UP_RISE_TOL = 0.02
"""Absolute tolerance (share 0-1) of the built-up rise against the district area fraction: pixel-centre
sampling of a 500 m circle on a 10 m grid (~7850 pixels) errs by well under 1 %."""
MIN_DISTRICT_OVERLAP = 0.05
"""The district test property's radius must hold at least this share of district land."""
FLOOD_DETECTED_MIN = 0.2
"""Least fraction of the truth flood area inside the radius that must show as new open water (NDWI > 0)
in the flood month: the monthly median composite sees the 21-day flood in only part of the scenes."""
FLOOD_MONTH, AFTER_FLOOD = "2023-07", "2023-08"


@pytest.fixture(scope="module")
def agent(app_memory):
    return RealEstateAgent(app_memory.view, radius_m=RADIUS_M)


@pytest.fixture(scope="module")
def featured(agent, app_memory):
    return agent.featured_properties(app_memory.tile, app_memory.months[-1])


@pytest.fixture(scope="module")
def analyses(agent, featured, app_memory):
    """The full-period analysis of every featured property."""
    period = (app_memory.months[0], app_memory.months[-1])
    return {a: agent.analyze_property_sync(a, period).to_dict() for a in featured}


def _truth_buildings(app_memory):
    b = gpd.read_file(app_memory.world.gis_path, layer="buildings", engine="pyogrio")
    return b[b["tile_id"] == app_memory.tile].to_crs(app_memory.grid.crs)


def _circle(analysis):
    p = analysis["property"]
    return Point(p["x"], p["y"]).buffer(RADIUS_M, quad_segs=128)


def test_featured_addresses_resolve_to_addressed_buildings_of_the_memory(agent, featured, app_memory):
    assert 2 <= len(featured) <= 3
    layers = app_memory.view.layers(app_memory.tile, app_memory.months[-1], ["buildings"])["buildings"]
    known = set((layers["addr:street"] + " " + layers["addr:housenumber"]).dropna())
    for address in featured:
        prop = agent.locate(address)
        assert prop.label in known and address.startswith(prop.label)
        assert prop.tile == app_memory.tile and prop.feature_id.startswith("building/")
        x0, y0, x1, y1 = app_memory.grid.bounds
        assert x0 <= prop.x <= x1 and y0 <= prop.y <= y1


def test_unknown_address_names_close_candidates_and_a_typo_still_resolves(agent, featured):
    label, town = featured[0].split(", ")
    street, number = label.rsplit(" ", 1)
    with pytest.raises(MissingDataError, match="close candidates") as e:
        agent.analyze_property_sync(f"{street} 9999")
    assert f"'{street} " in str(e.value)  # candidates on the same street
    typo = f"{street[:-2]}{street[-1]}{street[-2]} {number}, {town}"  # last two letters swapped
    assert agent.locate(typo).label == label


def test_built_up_share_rises_by_the_district_area_in_the_radius(analyses, app_memory):
    [district] = app_memory.events("new_district")
    dm = district.start.strftime("%Y-%m")
    best = None
    for a in analyses.values():
        circle = _circle(a).intersection(box(*app_memory.grid.bounds))
        overlap = district.geometry.intersection(circle).area / circle.area
        if best is None or overlap > best[0]:
            best = (overlap, a, circle)
    overlap, a, circle = best
    assert overlap >= MIN_DISTRICT_OVERLAP, "no featured property near the new district"
    shares = {t["month"]: t["built_up_share"]["value"] for t in a["timeline"]}
    before = max(m for m in shares if m < dm)
    rise = shares[dm] - shares[before]
    print(
        f"\n{a['property']['label']}: built-up {before} {shares[before]:.4f} -> {dm} {shares[dm]:.4f}, "
        f"rise {rise:.4f} vs district area fraction {overlap:.4f}"
    )
    assert rise == pytest.approx(overlap, abs=BUILT_UP_RISE_TOL)
    # Nothing built before the district: the memory's land cover is the rasterized truth, and this radius holds
    # no built-up pixel until the district (measured 0.0000 in every month before it). Exactly 0, no tolerance:
    # a share counts whole pixels, so one built-up pixel of the ~7,850 in the radius is already 1.3e-4.
    assert {m: shares[m] for m in shares if m < dm} == {m: 0.0 for m in shares if m < dm}
    # New buildings: those the GIS truth dates on/after the district, with a point in the radius.
    truth = _truth_buildings(app_memory)
    dated = truth[
        truth["start_date"].notna() & (truth["start_date"].astype(str) >= district.start.strftime("%Y-%m-%d"))
    ]
    n_truth = int(dated.geometry.representative_point().within(_circle(a)).sum())
    new = a["neighborhood"]["buildings"]["new_by_start_date"]
    print(f"new buildings in radius: memory {new}, GIS truth {n_truth}")
    assert n_truth > 0 and sum(new.values()) == n_truth
    assert set(new) == {district.start.strftime("%Y-%m-%d")}
    assert a["neighborhood"]["buildings"]["end"]["value"] - a["neighborhood"]["buildings"]["start"]["value"] == n_truth
    transitions = a["neighborhood"]["land_cover_transitions"]["transitions"]
    to_built = sum(t["area_m2"] for t in transitions if t["to"] == "built-up")
    assert to_built == pytest.approx(district.geometry.intersection(circle).area, rel=0.05)


def test_property_near_the_flood_sees_water_in_the_flood_month(agent, analyses, app_memory):
    [flood] = app_memory.events("flood")
    areas = {}
    for address, a in analyses.items():
        areas[address] = (flood.geometry.intersection(_circle(a)).area, a)
    near = max(areas, key=lambda k: areas[k][0])
    truth_m2, a = areas[near]
    assert truth_m2 > agent.flood_min_area_m2, "no featured property near the flood"
    fe = a["environmental"]["flood_exposure"]
    new = {q["period"]: q["value"] for q in fe["new_water_area"]}
    print(
        f"\n{near}: flood in radius truth {truth_m2:.0f} m2, new water seen {new[FLOOD_MONTH]:.0f} m2; "
        f"{fe['statement']}"
    )
    assert fe["flooded_months"] == [FLOOD_MONTH]
    assert fe["statement"] == f"flooded in {FLOOD_MONTH}"
    assert new[FLOOD_MONTH] >= FLOOD_DETECTED_MIN * truth_m2
    assert new[FLOOD_MONTH] <= 1.2 * truth_m2 + agent.flood_min_area_m2
    assert new[AFTER_FLOOD] < agent.flood_min_area_m2
    dist = {q["period"]: q["value"] for q in fe["distance_to_water"]}
    assert dist[FLOOD_MONTH] <= dist[AFTER_FLOOD]  # the flood brings water nearer or leaves it as near
    # A property whose radius the flood does not reach is not flagged.
    for truth_far, other in areas.values():
        if truth_far == 0:
            assert other["environmental"]["flood_exposure"]["flooded_months"] == []


def test_analysis_is_json_with_units_periods_and_a_projection_with_intervals(analyses, featured, app_memory):
    a = analyses[featured[0]]
    json.dumps(a)
    assert a["months"] == app_memory.months
    first = a["timeline"][0]
    assert first["built_up_share"]["unit"] == "1" and first["built_up_share"]["period"] == app_memory.months[0]
    shares = first["class_shares"]
    assert sum(v for v in shares.values() if v is not None) == pytest.approx(1.0)
    assert first["green_space_share"]["value"] == pytest.approx(shares["forest"] + shares["grassland"])
    # The NDVI mean equals an independent computation over the pixel centres in the circle.
    p = a["property"]
    ds = app_memory.view.raster("spectral_indices", app_memory.tile, app_memory.months[0])
    g = app_memory.grid
    inside = (g.x[None, :] - p["x"]) ** 2 + (g.y[:, None] - p["y"]) ** 2 <= RADIUS_M**2
    v = ds["ndvi"].values[inside]
    assert first["ndvi_mean"]["value"] == pytest.approx(float(np.nanmean(v)), abs=1e-6)
    trend = a["environmental"]["vegetation_trend"]
    assert trend["slope"]["unit"] == "NDVI/yr" and trend["slope"]["uncertainty"] > 0
    proj = a["projections"]
    assert proj["available"], proj.get("reason")
    assert len(proj["forecast"]) == 6 and proj["forecast"][0]["month"] == "2023-09"
    for f in proj["forecast"]:
        assert f["lower"] < f["ndvi"]["value"] < f["upper"]
    assert a["environmental"]["climate"]["available"] is False  # app_memory has no climate_series


def test_short_series_states_that_no_projection_is_possible(agent, featured, app_memory):
    a = agent.analyze_property_sync(
        featured[0], (app_memory.months[0], app_memory.months[2]), include_environmental=False
    ).to_dict()
    assert a["months"] == app_memory.months[:3]
    assert a["projections"]["available"] is False and "at least" in a["projections"]["reason"]
    assert "environmental" not in a


def test_bad_time_range_and_empty_memory_raise_clear_errors(agent, featured, app_memory):
    with pytest.raises(ConfigError, match="swap"):
        agent.analyze_property_sync(featured[0], ("2023-08", "2023-01"))
    with pytest.raises(ConfigError, match="YYYY-MM"):
        agent.analyze_property_sync(featured[0], ("spring", "2023-08"))
    with pytest.raises(MissingDataError, match="2019-01"):
        agent.analyze_property_sync(featured[0], ("2019-01", "2019-03"))
    with pytest.raises(ConfigError, match="radius"):
        RealEstateAgent(app_memory.view, radius_m=0)
    # As of a time before anything was recorded, the memory knows no place.
    with pytest.raises(MissingDataError, match="gis_layers"):
        RealEstateAgent(app_memory.view_as_of("2001-01-01")).analyze_property_sync(featured[0])


def test_report_holds_every_property_with_figures_and_writes_a_version(agent, app_memory, tmp_path):
    from memories.store.paths import StorageRoot

    report = agent.report(app_memory.tile, app_memory.months[-1])
    s = report.json()
    json.dumps(s)
    props = s["real_estate"]["properties"]
    assert report.kind == "real_estate" and len(props) == len(agent.featured_properties(app_memory.tile, "2023-08"))
    for i in range(1, len(props) + 1):
        assert {f"map_{i}", f"timeline_{i}", f"forecast_{i}"} <= set(report.figures)
        assert report.figures[f"map_{i}"][:8] == b"\x89PNG\r\n\x1a\n"
        assert s["figure_data"][f"timeline_{i}"]["months"] == app_memory.months
    assert any(f"flooded in {FLOOD_MONTH}" in alert for alert in s["alerts"])
    assert {"spectral_indices (8 months)", "land_cover (8 months)", "gis_layers (8 months)"} <= set(s["sources"])
    html = report.html
    for p in props:
        assert p["label"] in html
    files = report.write(StorageRoot(tmp_path.as_uri()))
    assert json.loads(StorageRoot(tmp_path.as_uri()).read_bytes(files["summary.json"]))["kind"] == "real_estate"


def test_real_estate_report_asset_records_the_report_and_previews_it(app_memory):
    from assets.report_real_estate import real_estate_report

    month = app_memory.months[-1]
    result = materialize_report(app_memory, real_estate_report, month)
    assert result.success
    meta = result.asset_materializations_for_node("real_estate_report")[0].metadata
    [rec] = app_memory.view.records("real_estate_report", app_memory.tile)
    assert rec.partition == month and rec.version_id == meta["version"].value
    summary = app_memory.view.load(rec)
    labels = [p["label"] for p in summary["real_estate"]["properties"]]
    assert meta["properties"].value == len(labels) >= 2
    assert meta["properties_flooded"].value >= 1 and meta["alert"].value is True
    preview = meta["summary"].value
    assert all(label in preview for label in labels) and "data:image/png;base64," in preview


def test_analysis_is_typed_and_the_seed_names_are_its_json_view(agent, featured, analyses, app_memory):
    from memories.applications.property_analysis import (
        Environment,
        MonthSurroundings,
        NdviProjection,
        Neighbourhood,
        PropertyAnalysis,
    )

    period = (app_memory.months[0], app_memory.months[-1])
    typed = agent.analyze_property_sync(featured[0], period)
    assert isinstance(typed, PropertyAnalysis)
    assert all(isinstance(m, MonthSurroundings) for m in typed.surroundings)
    assert isinstance(typed.environment, Environment) and isinstance(typed.neighbourhood, Neighbourhood)
    assert isinstance(typed.projection, NdviProjection) and typed.projection.available
    # The typed fields and the seed's JSON views say the same numbers; to_dict is the document the tests read.
    assert typed.to_dict() == analyses[featured[0]]
    assert typed.timeline == analyses[featured[0]]["timeline"]
    assert [m.built_up_share["value"] for m in typed.surroundings if m.built_up_share] == [
        t["built_up_share"]["value"] for t in typed.timeline
    ]
    assert (
        typed.environment.flood_exposure.flooded_months
        == typed.environmental_factors["flood_exposure"]["flooded_months"]
    )
    assert [f.month for f in typed.projection.forecast] == [f["month"] for f in typed.future_projections["forecast"]]
