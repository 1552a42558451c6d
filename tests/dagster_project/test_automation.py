"""Declarative automation from a new scene to the reports, evaluated by Dagster on a persistent instance.

Every partition of the graph is materialized first (reported to the instance as the
runs of the demo would leave it); then the sensor's ``ingest_job`` of one tile-month is
replayed as its materializations, and Dagster's own evaluator of the assets' automation
conditions (the evaluation the ``scenes_to_reports`` sensor runs in the daemon) says which
partitions it requests: the downstream assets of that tile-month and of the partitions
that declare they read it (next month's change map, the reports of the year after), nothing
else; the models are not retrained per scene, and a new model version alone requests nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import AssetKey, AssetMaterialization, evaluate_automation_conditions, instance_for_test

from assets.partitions import TILES, months_partitions, partition_key
from dagster_project.definitions import defs
from dagster_project.defs.jobs import INGEST
from memories.config import config

DOWNSTREAM = (
    "land_cover",
    "multimodal_land_use",
    "change_map",
    "environmental_report",
    "disaster_report",
    "urban_report",
    "historical_report",
    "real_estate_report",
)


def _materialize(instance, keys: Iterable[AssetKey], partitions: Iterable[str | None]) -> None:  # type: ignore[no-untyped-def]
    parts = list(partitions)
    for key in keys:
        for p in parts:
            instance.report_runless_asset_event(AssetMaterialization(asset_key=key, partition=p))


def _requested(result) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    out: dict[str, set[str]] = {}
    for r in result.results:
        if r.true_subset.size:
            key = r.key.to_user_string()
            out[key] = set(r.true_subset.expensively_compute_partition_keys()) if r.true_subset.is_partitioned else {""}
    return out


def test_new_scene_refreshes_only_the_tile_months_that_read_it(tmp_path):
    graph = defs.resolve_asset_graph()
    tiles = [t.tile_id for t in defs.resources["stac"].tiles()]
    months = months_partitions.get_partition_keys()
    assert len(tiles) == config.sample.n_tiles == 2 and len(months) == 4
    keys = [str(partition_key(m, t)) for m in months for t in tiles]
    ingest = INGEST.resolve(graph)
    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(TILES, tiles)
        by_partitions: dict[str, list[AssetKey]] = {}
        for key in graph.get_all_asset_keys():
            pdef = graph.get(key).partitions_def
            name = "none" if pdef is None else ("tile" if pdef.__class__.__name__.startswith("Dynamic") else "month")
            by_partitions.setdefault(name, []).append(key)
        _materialize(instance, by_partitions["none"], [None])
        _materialize(instance, by_partitions["tile"], tiles)
        _materialize(instance, by_partitions["month"], keys)

        first = evaluate_automation_conditions(defs=defs, instance=instance)
        assert _requested(first) == {}, "a materialized graph requests nothing on the first tick"

        # The sensor ingests a new scene of the newest month on one tile.
        tile, last = tiles[0], months[-1]
        _materialize(instance, ingest, [str(partition_key(last, tile))])
        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        expected = {a: {str(partition_key(last, tile))} for a in DOWNSTREAM}
        assert _requested(second) == expected

        # Those runs happen; the next tick requests nothing more.
        _materialize(instance, [AssetKey(a) for a in DOWNSTREAM], [str(partition_key(last, tile))])
        third = evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
        assert _requested(third) == {}

        # A late scene in the first month: its tile-month, plus what declares it reads that month.
        m0 = months[0]
        _materialize(instance, ingest, [str(partition_key(m0, tile))])
        fourth = evaluate_automation_conditions(defs=defs, instance=instance, cursor=third.cursor)
        on_tile = {str(partition_key(m, tile)) for m in months}
        assert _requested(fourth) == {
            "land_cover": {str(partition_key(m0, tile))},
            "multimodal_land_use": {str(partition_key(m0, tile))},
            "change_map": {str(partition_key(m0, tile)), str(partition_key(months[1], tile))},
            "environmental_report": on_tile,  # year-before reference and trends
            "disaster_report": on_tile,  # baseline water of the months before
            "urban_report": on_tile,  # compared with 12 months earlier
            "historical_report": {str(partition_key(m0, tile))},
            "real_estate_report": on_tile,  # index history of the year before
        }
        _materialize(instance, [AssetKey(a) for a in DOWNSTREAM], on_tile)
        fifth = evaluate_automation_conditions(defs=defs, instance=instance, cursor=fourth.cursor)
        assert _requested(fifth) == {}

        # A new model version alone does not rewrite the tile-months computed with the previous one.
        models = [AssetKey("land_cover_model"), AssetKey("change_model"), AssetKey("multimodal_model")]
        _materialize(instance, models, [None])
        sixth = evaluate_automation_conditions(defs=defs, instance=instance, cursor=fifth.cursor)
        assert _requested(sixth) == {}
