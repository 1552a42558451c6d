"""The whole graph over a small embedded world, checked against its ground truth.

2 tiles x 4 months x 256 px, through the real STAC API server on 127.0.0.1 that
the catalog resource starts, with an ephemeral Dagster instance. Ingest and analysis run once
per tile over its months (the runs a backfill launches); the reports once per tile-month.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from dagster import AssetKey, DagsterInstance
from rasterio.features import rasterize

from assets.partitions import FIRST_MONTH, TILES, months_partitions, partition_key
from dagster_project.definitions import defs
from memories.classes import CLASS_BY_NAME
from memories.config import config
from memories.months import month_mid, month_range
from memories.store.raster import MonthlyRasterStore

pytestmark = pytest.mark.slow

COMPOSITE_MAE = 0.01
"""Mean absolute error (reflectance) allowed between a composite and the clear-sky truth."""
CLEAR_CUT_AREA_TOLERANCE = 0.15
FLOOD_AREA_TOLERANCE = 0.15
"""Relative error allowed on the flood's extent found by the disaster report (truth: the event geometry); the
flood falls in this world's harvest month (see DisasterThresholds.harvest_ndvi_drop)."""
FLOOD_AREA_RECALL = 0.85
"""Share of the flood's true extent the disaster report's footprint must cover."""
FLOOD_BUILDING_RECALL = 0.8
FLOOD_BUILDING_PRECISION = 0.9
"""Share of the buildings the disaster report lists that the true flood geometry touches (measured 0.96-0.99
on the two tiles: the footprint's edge pixels reach a building or two just outside the truth). A report
listing every building of the tile scores about a tenth."""
DISTRICT_GROWTH_TOLERANCE = 0.15
"""Relative error allowed on the built-up growth the urban report finds vs the new district's area."""
LAND_COVER_ACCURACY_FLOOR = 0.90
LAND_USE_AGREEMENT_FLOOR = 80.0
"""Percent of the planning area's labelled pixels where the multi-modal land use and the image-only land cover
agree (each scores above 0.98 accuracy on this world's truth, so they agree on most pixels)."""


def _months_of(tile: str, months: list[str]) -> dict[str, str]:
    """Run tags of one run over every month of ``tile``: the range a backfill of the tile launches as one run
    (``BackfillPolicy`` in ``assets.partitions``; single-partition runs are ``test_rematerialized_month_*``'s)."""
    return {
        "dagster/asset_partition_range_start": str(partition_key(months[0], tile)),
        "dagster/asset_partition_range_end": str(partition_key(months[-1], tile)),
    }


@pytest.fixture(scope="module")
def pipeline():
    instance = DagsterInstance.ephemeral()
    world = defs.resources["stac"].sample_world.ensure()
    tiles = [g.tile_id for g in world.tiles]
    instance.add_dynamic_partitions(TILES, tiles)
    months = months_partitions.get_partition_keys()
    results = {}
    # Ingest and analysis: one run per tile over its 4 months (every tile-month is checked below, in the
    # store and in the catalog), so the run machinery, the STAC server, the Dask cluster and the models
    # start once per tile instead of once per tile-month.
    for tile in tiles:
        results[("ingest", tile)] = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, tags=_months_of(tile, months)
        )
    results["train"] = defs.resolve_job_def("train_job").execute_in_process(instance=instance)
    for tile in tiles:
        results[("analysis", tile)] = defs.resolve_job_def("analysis_job").execute_in_process(
            instance=instance, tags=_months_of(tile, months)
        )
    for tile in tiles:  # census districts and the historical map (4 months are too few for the NDVI forecast)
        results[("tile", tile)] = defs.resolve_job_def("tile_job").execute_in_process(
            instance=instance,
            partition_key=tile,
            asset_selection=[AssetKey("socioeconomic_regions"), AssetKey("historical_map")],
        )
    for tile in tiles:  # the application reports of the last month, read from the memory
        results[("report", months[-1], tile)] = defs.resolve_job_def("report_job").execute_in_process(
            instance=instance, partition_key=partition_key(months[-1], tile)
        )
    root = defs.resources["storage"].storage_root()
    catalog = defs.resources["memory"].catalog()
    return {
        "instance": instance,
        "world": world,
        "tiles": tiles,
        "months": months,
        "results": results,
        "root": root,
        "catalog": catalog,
    }


def test_every_run_succeeds(pipeline):
    failed = [k for k, r in pipeline["results"].items() if not r.success]
    assert not failed
    assert len(pipeline["months"]) == 4 and len(pipeline["tiles"]) == 2
    every = {str(partition_key(m, t)) for m in pipeline["months"] for t in pipeline["tiles"]}
    for asset in ("stac_items", "surface_reflectance", "spectral_indices", "gis_layers", "climate_series"):
        assert pipeline["instance"].get_materialized_partitions(AssetKey(asset)) == every, asset
    for asset in ("land_cover", "change_map", "environmental_report"):
        assert pipeline["instance"].get_materialized_partitions(AssetKey(asset)) == every, asset


def test_composite_matches_clear_sky_truth(pipeline, record_property):
    world, root = pipeline["world"], pipeline["root"]
    errors = []
    for tile in pipeline["tiles"]:
        grid = world.tile(tile)
        store = MonthlyRasterStore(root, "surface_reflectance", grid, FIRST_MONTH)
        for month in pipeline["months"]:
            ds = store.read_month(month).compute()
            start, end = month_range(month)
            dates = [d for d in world.scene_datetimes(tile) if start <= d <= end]
            for b in ("red", "nir", "swir16"):
                truth = np.median([world.clear_sky_reflectance(tile, d, b) for d in dates], axis=0)
                got = ds["reflectance"].sel(band=b).values
                ok = np.isfinite(got)
                assert ok.mean() > 0.9, f"{tile} {month}: only {ok.mean():.1%} of pixels seen clear"
                errors.append(float(np.abs(got[ok] - truth[ok]).mean()))
    record_property("composite_mae_max", max(errors))
    print(f"composite MAE vs clear-sky truth: mean {np.mean(errors):.4f}, max {max(errors):.4f}")
    assert max(errors) < COMPOSITE_MAE


def test_indices_are_consistent_with_the_composite(pipeline):
    world, root = pipeline["world"], pipeline["root"]
    tile, month = pipeline["tiles"][0], pipeline["months"][1]
    grid = world.tile(tile)
    sr = MonthlyRasterStore(root, "surface_reflectance", grid, FIRST_MONTH).read_month(month)["reflectance"]
    ix = MonthlyRasterStore(root, "spectral_indices", grid, FIRST_MONTH).read_month(month)
    red, nir = sr.sel(band="red").values, sr.sel(band="nir").values
    np.testing.assert_allclose(ix["ndvi"].values, (nir - red) / (nir + red), rtol=1e-5, atol=1e-6)
    forest = world.landcover_truth(tile, month_mid(month)) == CLASS_BY_NAME["forest"].code
    water = world.landcover_truth(tile, month_mid(month)) == CLASS_BY_NAME["water"].code
    assert np.nanmedian(ix["ndvi"].values[forest]) > 0.6
    assert np.nanmedian(ix["ndwi"].values[water]) > 0.2


def test_land_cover_accuracy_against_truth(pipeline, record_property):
    world, root = pipeline["world"], pipeline["root"]
    accs = []
    for tile in pipeline["tiles"]:
        grid = world.tile(tile)
        store = MonthlyRasterStore(root, "land_cover", grid, FIRST_MONTH)
        for month in pipeline["months"]:
            pred = store.read_month(month)["land_cover"].values
            truth = world.landcover_truth(tile, month_mid(month))
            valid = (pred > 0) & (truth > 0)
            accs.append(float((pred[valid] == truth[valid]).mean()))
    record_property("land_cover_accuracy_min", min(accs))
    print(f"land-cover accuracy vs truth: mean {np.mean(accs):.3f}, min {min(accs):.3f}")
    assert min(accs) > LAND_COVER_ACCURACY_FLOOR


def test_clear_cut_area_detected_within_15_percent(pipeline, record_property):
    world, root = pipeline["world"], pipeline["root"]
    last = pipeline["months"][-1]
    for tile in pipeline["tiles"]:
        grid = world.tile(tile)
        summary = json.loads(root.read_bytes(root.report_uri("environmental", tile, last, "summary.json")))
        cut = world.event(tile, "clear_cut")
        truth = rasterize([(cut.geometry, 1)], out_shape=grid.shape, transform=grid.transform, dtype="uint8")
        truth_ha = truth.sum() * grid.pixel_area_m2 / 1e4
        got_ha = summary["forest_loss"]["area_ha"]
        record_property(f"clear_cut_{tile}", f"{got_ha:.2f} ha vs {truth_ha:.2f} ha")
        print(f"{tile}: forest loss {got_ha:.2f} ha, clear-cut truth {truth_ha:.2f} ha")
        assert summary["reference_month"] == pipeline["months"][0]
        assert abs(got_ha - truth_ha) / truth_ha < CLEAR_CUT_AREA_TOLERANCE
        assert summary["alert"] is True


def test_reports_are_written_and_shown_in_metadata(pipeline):
    root, instance = pipeline["root"], pipeline["instance"]
    tile, month = pipeline["tiles"][0], pipeline["months"][-1]
    html = root.read_bytes(root.report_uri("environmental", tile, month, "report.html")).decode()
    assert "ndvi_timeseries.png" in html and "vegetation_loss.png" in html and "Forest loss detected" in html
    png = root.read_bytes(root.report_uri("environmental", tile, month, "vegetation_loss.png"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    event = instance.get_latest_materialization_event(__import__("dagster").AssetKey("environmental_report"))
    assert event is not None
    md = event.asset_materialization.metadata["summary"].value
    assert "data:image/png;base64," in md


def test_memory_catalog_records_every_partition_with_valid_time(pipeline):
    catalog = pipeline["catalog"]
    n = len(pipeline["months"]) * len(pipeline["tiles"])
    for asset in (
        "stac_items",
        "surface_reflectance",
        "spectral_indices",
        "gis_layers",
        "land_cover",
        "environmental_report",
    ):
        rows = catalog.current(asset)
        assert len(rows) == n, asset
        for r in rows:
            start, _ = month_range(r.partition)
            assert r.valid_from == start.isoformat(timespec="microseconds")
            assert r.crs.startswith("EPSG:326") and r.bbox_wgs84 is not None
    assert catalog.current("land_cover_model")[0].stats["version"] == 1


def test_rematerialized_month_keeps_previous_version_in_catalog(pipeline):
    instance, catalog = pipeline["instance"], pipeline["catalog"]
    month, tile = pipeline["months"][0], pipeline["tiles"][0]
    r = defs.resolve_job_def("ingest_job").execute_in_process(
        instance=instance, partition_key=partition_key(month, tile)
    )
    assert r.success
    hist = catalog.history("surface_reflectance", tile=tile, partition=month)
    assert [h.version for h in hist] == [1, 2]
    assert hist[0].transaction_to == hist[1].transaction_from and hist[1].transaction_to is None
    assert hist[0].stats["clear_fraction"] == pytest.approx(hist[1].stats["clear_fraction"])


def test_gis_layers_follow_the_new_district(pipeline):
    world, root = pipeline["world"], pipeline["root"]
    from memories.earth.gis import read_geoparquet

    tile = pipeline["tiles"][0]
    district = world.event(tile, "new_district")
    counts = []
    for month in pipeline["months"]:
        b = read_geoparquet(root, root.vector_uri("buildings", tile, month))
        assert b.crs.to_epsg() == world.tile(tile).epsg
        counts.append(int(b.intersects(district.geometry).sum()))
    built_month = district.start.strftime("%Y-%m")
    for month, c in zip(pipeline["months"], counts):
        if month < built_month:
            assert c == 0
    assert counts[-1] > 10


def test_config_is_the_test_world():
    assert config.sample.size_px == 256 and config.sample.n_months == 4


def _summary(root, kind, tile, month):
    return json.loads(root.read_bytes(root.report_uri(kind, tile, month, "summary.json")))


def test_disaster_report_finds_the_flood_and_the_buildings_it_reached(pipeline, record_property):
    from memories.applications.disaster import DisasterAnalyzer
    from memories.earth.gis import read_geoparquet
    from memories.memory.temporal import TemporalMemory
    from memories.memory.view import MemoryView

    world, root, last = pipeline["world"], pipeline["root"], pipeline["months"][-1]
    view = MemoryView(TemporalMemory(pipeline["catalog"], root))
    for tile in pipeline["tiles"]:
        flood = world.event(tile, "flood")
        a = _summary(root, "disaster", tile, last)["disaster"]
        assert a["event_month"] == flood.start.strftime("%Y-%m")
        truth_ha = flood.geometry.area / 1e4
        got_ha = a["during"]["area_ha"]
        footprint = DisasterAnalyzer(view).analyze(tile, until=last)["footprint"]
        assert footprint.area / 1e4 == pytest.approx(got_ha, rel=0.01)  # the report states this footprint
        covered = footprint.intersection(flood.geometry).area / flood.geometry.area
        buildings = read_geoparquet(root, root.vector_uri("buildings", tile, last))
        truth_ids = set(buildings.loc[buildings.intersects(flood.geometry), "osm_id"].astype(int))
        found_ids = {int(b["osm_id"]) for b in a["buildings"]["list"]}
        recall = len(found_ids & truth_ids) / max(len(truth_ids), 1)
        precision = len(found_ids & truth_ids) / max(len(found_ids), 1)
        record_property(
            f"flood_{tile}",
            f"{got_ha:.2f} ha vs {truth_ha:.2f} ha; covered {covered:.2f}; recall {recall:.2f}; "
            f"precision {precision:.2f}",
        )
        print(
            f"{tile}: flood footprint {got_ha:.2f} ha vs truth {truth_ha:.2f} ha, covering {covered:.1%} of it; "
            f"buildings {len(found_ids)} found of {len(buildings)}, {len(truth_ids)} in truth, "
            f"recall {recall:.3f}, precision {precision:.3f}"
        )
        assert covered >= FLOOD_AREA_RECALL
        assert abs(got_ha - truth_ha) / truth_ha < FLOOD_AREA_TOLERANCE
        assert truth_ids and found_ids
        assert recall >= FLOOD_BUILDING_RECALL
        assert precision >= FLOOD_BUILDING_PRECISION


def test_urban_report_measures_the_new_district(pipeline, record_property):
    world, root, last = pipeline["world"], pipeline["root"], pipeline["months"][-1]
    for tile in pipeline["tiles"]:
        district = world.event(tile, "new_district")
        u = _summary(root, "urban", tile, last)["urban"]
        truth_ha = district.geometry.area / 1e4
        got_ha = u["tile_total"]["builtup_gained_ha"]
        got_ha = got_ha["value"] if isinstance(got_ha, dict) else got_ha
        record_property(f"district_{tile}", f"{got_ha:.2f} ha vs {truth_ha:.2f} ha")
        print(f"{tile}: built-up growth {got_ha:.2f} ha vs new district {truth_ha:.2f} ha")
        assert abs(got_ha - truth_ha) / truth_ha < DISTRICT_GROWTH_TOLERANCE


def test_urban_report_shows_the_multimodal_land_use(pipeline, record_property):
    """train_job registers the multi-modal model and report_job maps the month with it before the urban report
    reads it: the report's land-use section names the model and agrees with the image-only land cover."""
    from memories.applications.urban_report import LAND_USE_TITLE, Q_LAND_USE_AGREEMENT

    root, last = pipeline["root"], pipeline["months"][-1]
    for tile in pipeline["tiles"]:
        [section] = [s for s in _summary(root, "urban", tile, last)["sections"] if s["title"] == LAND_USE_TITLE]
        assert "multimodal_land_use:1" in section["text"], section["text"]
        agreement = section["quantities"][Q_LAND_USE_AGREEMENT]
        agreement = agreement["value"] if isinstance(agreement, dict) else agreement
        record_property(f"land_use_agreement_{tile}", agreement)
        assert agreement > LAND_USE_AGREEMENT_FLOOR
        hectares = sum(row[1] for row in section["table"]["rows"])
        assert hectares > 0


def test_every_application_report_renders_with_figures_and_a_preview(pipeline):
    from dagster import AssetKey

    root, instance, last = pipeline["root"], pipeline["instance"], pipeline["months"][-1]
    for kind in ("environmental", "disaster", "urban", "historical", "real_estate"):
        for tile in pipeline["tiles"]:
            html = root.read_bytes(root.report_uri(kind, tile, last, "report.html")).decode()
            images = re.findall(r'<img src="([^"]+\.png)"', html)
            assert images, kind
            for name in images:  # every figure the page shows is a PNG written beside it
                assert root.read_bytes(root.report_uri(kind, tile, last, name))[:4] == b"\x89PNG", (kind, name)
            assert _summary(root, kind, tile, last)["figure_data"], kind
        event = instance.get_latest_materialization_event(AssetKey(f"{kind}_report"))
        assert event is not None, kind
        assert "data:image/png;base64," in event.asset_materialization.metadata["summary"].value, kind
