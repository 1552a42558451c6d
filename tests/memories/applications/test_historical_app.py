"""HistoricalReconstructor against the sample world's ground truth, on the ``app_memory`` memory.

World: tile 33TVM, 2023-01..2023-08, 256 px; the land-cover records hold the rasterized truth of
each month's 15th; new district on 2023-05-04, clear-cut on 2023-04-08. The historical map shows the
land cover at the world's first instant (2023-01-01).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from memories.applications.historical import HistoricalReconstructor, as_instant
from memories.classes import CLASS_BY_NAME
from memories.errors import ConfigError, MissingDataError
from tests.memories.applications.helpers import materialize_report

MIN_ACCURACY_AT_DATE = 0.98
"""Reconstructed land cover vs truth at a date (a monthly record holds the 15th's state)."""
MIN_MAP_TRUTH_AGREEMENT = 0.99
"""Historical map vs truth at its instant (session 2 measured 99.7 % of mapped pixels at 512 px)."""
MIN_MAP_MEMORY_AGREEMENT = 0.99
"""Historical map vs the memory's land cover of the earliest month."""
DISTRICT_AREA_REL_TOL = 0.05
"""Built-up gained from the date to the report month vs the new district's true area."""
BUILT_UP = CLASS_BY_NAME["built-up"].code


def _accuracy(lc: np.ndarray, truth: np.ndarray) -> tuple[float, dict[int, float]]:
    per = {int(c): float((lc[truth == c] == c).mean()) for c in np.unique(truth) if c > 0}
    return float((lc == truth).mean()), per


def test_reconstructed_land_cover_matches_truth_at_the_date(app_memory: Any) -> None:
    h = HistoricalReconstructor(app_memory.view)
    for date in ("2023-02-20", "2023-04-20", "2023-06-03"):
        r = h.reconstruct(app_memory.tile, date)
        truth = app_memory.world.landcover_truth(app_memory.tile, as_instant(date))
        acc, per = _accuracy(r.land_cover, truth)
        print(f"{date}: land cover of {r.land_cover_month} vs truth: accuracy {acc:.4f}, per class {per}")
        assert r.land_cover_month == date[:7] and r.land_cover_gap_months == 0
        assert acc >= MIN_ACCURACY_AT_DATE
        assert min(per.values()) >= MIN_ACCURACY_AT_DATE
        # Class areas are the pixel counts times 0.01 ha; the truth memory has confidence 1: no area uncertainty.
        n_forest = int((r.land_cover == CLASS_BY_NAME["forest"].code).sum())
        assert r.class_area_ha["forest"]["value"] == pytest.approx(n_forest * 0.01)
        assert r.class_area_ha["forest"]["uncertainty"] == pytest.approx(0.0)
        assert r.land_cover_uncertainty.model.model_id == "truth"


def test_date_without_a_record_uses_the_nearest_month_and_states_the_gap(app_memory: Any) -> None:
    r = HistoricalReconstructor(app_memory.view).reconstruct(app_memory.tile, "2023-10-01")
    assert (r.land_cover_month, r.land_cover_gap_months) == ("2023-08", 2)
    assert r.gis.month == "2023-08" and r.gis.gap_months == 2
    assert r.class_area_ha["forest"]["note"] == "from 2023-08, 2 month(s) from 2023-10"
    with pytest.raises(MissingDataError, match="max_gap_months"):
        HistoricalReconstructor(app_memory.view, max_gap_months=1).reconstruct(app_memory.tile, "2023-10-01")
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        HistoricalReconstructor(app_memory.view).reconstruct(app_memory.tile, "last spring")


def test_new_district_exists_after_its_start_and_not_before(app_memory: Any) -> None:
    (event,) = app_memory.events("new_district")
    mask = app_memory.world.event_mask(app_memory.tile, "new_district")
    h = HistoricalReconstructor(app_memory.view)
    start = event.start.date()
    before = h.reconstruct(app_memory.tile, (start - timedelta(days=1)).isoformat())
    after = h.reconstruct(app_memory.tile, (start + timedelta(days=1)).isoformat())
    n_before = int(before.layers["buildings"].intersects(event.geometry).sum())
    n_after = int(after.layers["buildings"].intersects(event.geometry).sum())
    # The GIS date filter is exact to the day, within one month's layers.
    print(f"district {start}: buildings in it the day before {n_before}, the day after {n_after}")
    assert before.gis.month == after.gis.month == start.strftime("%Y-%m")
    assert n_before == 0 and n_after > 10
    assert before.gis.left_out["buildings"] == after.gis.buildings - before.gis.buildings >= n_after
    assert after.gis.left_out["buildings"] == 0
    # Land cover is monthly: the month before holds no built-up there, the month after does.
    lc_before = h.reconstruct(app_memory.tile, "2023-04-15").land_cover
    lc_after = h.reconstruct(app_memory.tile, "2023-06-15").land_cover
    share_before, share_after = float((lc_before[mask] == BUILT_UP).mean()), float((lc_after[mask] == BUILT_UP).mean())
    print(f"built-up share of the district footprint: 2023-04-15 {share_before:.3f}, 2023-06-15 {share_after:.3f}")
    assert share_before == 0.0 and share_after >= MIN_ACCURACY_AT_DATE


def test_historical_map_agrees_with_truth_and_carries_its_georeferencing_error(app_memory: Any) -> None:
    h = HistoricalReconstructor(app_memory.view)
    hist = h.historical_map(app_memory.tile)
    truth_doc = app_memory.world.historical_truth(app_memory.tile)
    truth = app_memory.world.landcover_truth(app_memory.tile, as_instant(truth_doc["landcover_instant"]))
    mapped = hist.classes > 0
    agreement_truth = float((hist.classes[mapped] == truth[mapped]).mean())
    rec = app_memory.view.record("historical_map", app_memory.tile)
    earliest = h.reconstruct(app_memory.tile, app_memory.months[0]).land_cover
    cmp = h.compare_with_map(app_memory.tile, earliest, hist)
    print(
        f"historical map: {mapped.mean():.3f} of the tile mapped; agreement with truth {agreement_truth:.4f}, "
        f"with memory {cmp.overall:.4f} ({cmp.overall_away_from_edges:.4f} away from edges); "
        f"RMSE {rec.stats['rmse_m']} m, LOO {rec.stats['loo_rmse_m']} m"
    )
    assert agreement_truth >= MIN_MAP_TRUTH_AGREEMENT
    assert cmp.overall >= MIN_MAP_MEMORY_AGREEMENT
    assert cmp.overall_away_from_edges >= cmp.overall  # disagreement sits on class edges (positional error)
    # Independent count of the confusion diagonal.
    both = mapped & (earliest > 0)
    assert cmp.overall == pytest.approx(float((hist.classes[both] == earliest[both]).sum() / both.sum()))
    assert sum(map(sum, cmp.confusion_ha)) == pytest.approx(both.sum() * 0.01)
    u = hist.uncertainty
    assert u["georeferencing RMSE"]["value"] == rec.stats["rmse_m"] and u["georeferencing RMSE"]["unit"] == "m"
    assert u["leave-one-out RMSE (pixels)"]["value"] == pytest.approx(rec.stats["loo_rmse_m"] / 10.0)
    assert len(hist.residuals) == rec.stats["gcps"]


def test_report_shows_district_growth_sources_and_figures(app_memory: Any, tmp_path: Any) -> None:
    from memories.store.paths import StorageRoot

    (event,) = app_memory.events("new_district")
    report = HistoricalReconstructor(app_memory.view).report(app_memory.tile, "2023-08")
    s = report.json()
    h = s["historical"]
    print(
        f"report 2023-08: date {h['date'][:10]}, built-up gained {h['built_up_gained_ha']:.2f} ha "
        f"(district {event.area_m2 / 1e4:.2f} ha), changed {h['changed_ha']:.2f} ha, transitions {h['transitions'][:3]}"
    )
    assert h["date"].startswith("2023-01-15") and h["land_cover_month"] == "2023-01"
    assert h["built_up_gained_ha"] == pytest.approx(event.area_m2 / 1e4, rel=DISTRICT_AREA_REL_TOL)
    clear_cut = app_memory.events("clear_cut")[0]
    to_bare = sum(t["area_ha"] for t in h["transitions"] if (t["from"], t["to"]) == ("forest", "bare soil"))
    assert to_bare == pytest.approx(clear_cut.area_m2 / 1e4, rel=DISTRICT_AREA_REL_TOL)
    assert h["historical_map"]["agreement"]["overall"] >= MIN_MAP_MEMORY_AGREEMENT
    assert "alerts" not in s  # no thresholds in this application
    assert set(s["figure_data"]) == {"maps", "class_areas", "timeline"} == set(report.figures)
    assert s["figure_data"]["timeline"]["month"] == app_memory.months
    # Every quantity has a unit; each source appears with its record.
    for section in s["sections"]:
        for q in (section.get("quantities") or {}).values():
            assert q["unit"]
    assert any(k.startswith("land cover") for k in s["sources"]) and "historical map" in s["sources"]
    files = report.write(StorageRoot(tmp_path.as_uri()))
    html = (tmp_path / files["report.html"].split(tmp_path.as_uri() + "/")[1]).read_text()
    assert "maps.png" in html and "georeferencing RMSE" in html and "validation accuracy" in html
    json.loads((tmp_path / files["summary.json"].split(tmp_path.as_uri() + "/")[1]).read_text())


def test_as_of_returns_the_land_cover_version_the_memory_held_then(app_memory: Any, tmp_path: Any) -> None:
    import xarray as xr

    from memories.earth.gis import write_geoparquet
    from memories.memory.catalog import MemoryCatalog
    from memories.memory.temporal import TemporalMemory
    from memories.memory.view import MemoryView
    from memories.months import month_range
    from memories.store.paths import StorageRoot
    from memories.store.raster import MonthlyRasterStore

    month, grid, tile = "2023-03", app_memory.grid, app_memory.tile
    root = StorageRoot(tmp_path.as_uri())
    catalog = MemoryCatalog.open(tmp_path / "catalog.sqlite")
    valid = dict(zip(("valid_from", "valid_to"), month_range(month), strict=True))
    layers = app_memory.view.layers(tile, month)
    for name, gdf in layers.items():
        write_geoparquet(root, root.vector_uri(name, tile, month), gdf)
    versions = {name: root.current_version(root.vector_uri(name, tile, month)) for name in layers}
    catalog.record(
        asset="gis_layers",
        uri=root.vectors_uri(tile, month),
        tile=tile,
        partition=month,
        version_id=versions,
        transaction_time=datetime(2023, 9, 1, tzinfo=UTC),
        **valid,
    )
    store = MonthlyRasterStore(root, "land_cover", grid, app_memory.months[0], chunk_px=grid.width)
    old = app_memory.view.raster("land_cover", tile, month)
    new = old.copy(deep=True)
    new["land_cover"].values[:] = np.where(old["land_cover"].values == BUILT_UP, 4, old["land_cover"].values)
    times = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)]
    for ds, t in zip((old, new), times, strict=True):
        data = xr.Dataset({k: (("y", "x"), ds[k].values) for k in ("land_cover", "confidence", "variance", "entropy")})
        snapshot = store.write_month(month, data)
        catalog.record(
            asset="land_cover",
            uri=store.uri,
            tile=tile,
            partition=month,
            stats={"model_id": "truth"},
            transaction_time=t,
            version_id=snapshot,
            **valid,
        )
    h = HistoricalReconstructor(MemoryView(TemporalMemory(catalog, root)))
    then = h.reconstruct(tile, "2023-03-15", as_of="2024-03-01")
    now = h.reconstruct(tile, "2023-03-15")
    print(
        f"built-up ha as of 2024-03-01: {then.class_area_ha['built-up']['value']}, now: "
        f"{now.class_area_ha['built-up']['value']}"
    )
    assert (then.land_cover_version, now.land_cover_version) == (1, 2)
    np.testing.assert_array_equal(then.land_cover, old["land_cover"].values)
    np.testing.assert_array_equal(now.land_cover, new["land_cover"].values)
    assert then.class_area_ha["built-up"]["value"] > 0 and now.class_area_ha["built-up"]["value"] == 0
    with pytest.raises(MissingDataError, match="as of 2023-12-01"):
        h.reconstruct(tile, "2023-03-15", as_of="2023-12-01")


def test_historical_report_asset_writes_records_and_previews(app_memory: Any, tmp_path: Any) -> None:
    import shutil

    from assets.report_historical import historical_report
    from memories.memory.catalog import MemoryCatalog
    from memories.memory.temporal import load_report_version

    # A copy of the catalog: the run records its report there, not in the session's shared memory.
    catalog_path = tmp_path / "catalog.sqlite"
    shutil.copy(app_memory.catalog.path, catalog_path)
    result = materialize_report(
        app_memory,
        historical_report,
        "2023-08",
        catalog_path=catalog_path,
        run_config={"ops": {"historical_report": {"config": {"date": "2023-02-10"}}}},
    )
    assert result.success
    md = result.asset_materializations_for_node("historical_report")[0].metadata
    assert md["reconstructed_date"].value == "2023-02-10"
    assert md["map_agreement"].value >= MIN_MAP_MEMORY_AGREEMENT
    assert "data:image/png;base64," in md["summary"].value and "built-up gained" in md["summary"].value
    rec = MemoryCatalog.open(catalog_path).query("historical_report", tile=app_memory.tile)[-1]
    stored = load_report_version(app_memory.root, "historical", app_memory.tile, "2023-08", rec.version_id)
    assert stored["historical"]["date"].startswith("2023-02-10")
    assert md["built_up_gained_ha"].value == pytest.approx(stored["historical"]["built_up_gained_ha"])
