"""The new-scenes sensor against a real STAC API server on 127.0.0.1."""

from __future__ import annotations

import json

from dagster import DagsterInstance, build_sensor_context

from assets.partitions import TILES, split_key
from dagster_project.defs.sensors import new_scenes_sensor
from memories.sample import StacServer
from resources import SampleWorldResource, StacCatalogResource


def _serve_months(world, months, path):
    fc = json.loads(world.items_path.read_text())
    fc["features"] = [f for f in fc["features"] if f["properties"]["datetime"][:7] in months]
    path.write_text(json.dumps(fc))
    return StacServer([world.collection_path, path])


def _evaluate(instance, url, cursor=None):
    stac = StacCatalogResource(profile="embedded", url=url, sample_world=SampleWorldResource())
    with build_sensor_context(instance=instance, cursor=cursor, resources={"stac": stac}) as ctx:
        return new_scenes_sensor(ctx)


def test_sensor_requests_exactly_the_partitions_with_new_scenes(tmp_path):
    world = SampleWorldResource().ensure()
    months = world.spec.months()
    tiles = sorted(t.tile_id for t in world.tiles)
    instance = DagsterInstance.ephemeral()

    with _serve_months(world, months[:2], tmp_path / "first.json") as server:
        first = _evaluate(instance, server.url)
    assert sorted(first.dynamic_partitions_requests[0].partition_keys) == tiles
    requested = sorted(split_key(r.partition_key) for r in first.run_requests)
    assert requested == sorted((m, t) for m in months[:2] for t in tiles)
    cursor = first.cursor
    assert cursor and json.loads(cursor)["created"]

    # Tiles are partitions now; the catalog publishes the next months.
    instance.add_dynamic_partitions(TILES, tiles)
    with _serve_months(world, months, tmp_path / "all.json") as server:
        second = _evaluate(instance, server.url, cursor)
        again = _evaluate(instance, server.url, second.cursor)
    requested = sorted(split_key(r.partition_key) for r in second.run_requests)
    assert requested == sorted((m, t) for m in months[2:] for t in tiles)
    assert not second.dynamic_partitions_requests
    assert again.run_requests == []  # nothing new since the cursor
