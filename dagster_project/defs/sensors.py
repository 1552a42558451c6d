"""The sensors: new scenes on the STAC API ingest the partitions they touch; automation carries them on.

Its cursor is the newest ``created`` time seen, kept by Dagster across restarts;
each evaluation asks the API for scenes of the area of interest in the lookback
window and requests an ingest run for each (month, tile) with newer scenes. Tiles
of the area of interest that are not yet partitions are added first.
"""

import json
from datetime import UTC, datetime

from dagster import (
    AddDynamicPartitionsRequest,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from assets.partitions import TILES, months_partitions, partition_key
from dagster_project.defs.jobs import ingest_job
from memories.earth.stac import datetime_range, item_created, item_tile, open_client
from memories.months import add_months, month_key, month_range
from resources import StacCatalogResource

LOOKBACK_MONTHS = 3
"""How far back a real catalog is searched for late-arriving scenes."""


@sensor(
    job=ingest_job,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.STOPPED,
    description="Requests ingest runs for tile-months with scenes newer than the cursor.",
)
def new_scenes_sensor(context: SensorEvaluationContext, stac: StacCatalogResource) -> SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    since = datetime.fromisoformat(cursor["created"]) if cursor.get("created") else None
    keys = months_partitions.get_partition_keys(dynamic_partitions_store=context.instance)
    if not keys:
        return SensorResult(skip_reason="no month partitions are configured")
    first = (
        keys[0]
        if since is None or stac.serves_sample_world
        else max(keys[0], month_key(add_months(datetime.now(UTC), -LOOKBACK_MONTHS)))
    )
    start, _ = month_range(first)
    _, end = month_range(keys[-1])
    valid_months = set(keys)

    client = open_client(stac.api_url)
    profile = stac.catalog_profile()
    newest = since
    touched: dict[tuple[str, str], datetime] = {}
    tiles = stac.tiles()
    for grid in tiles:
        search = client.search(
            collections=[profile.collection],
            bbox=list(grid.bbox_wgs84),
            datetime=datetime_range(start, end),
            limit=200,
        )
        for item in search.items():
            created = item_created(item)
            if item_tile(item.properties) not in (None, grid.tile_id) or (since and created <= since):
                continue
            month = month_key(item.datetime)
            if month not in valid_months:
                continue
            key = (month, grid.tile_id)
            touched[key] = max(touched.get(key, created), created)
            newest = created if newest is None else max(newest, created)

    known = set(context.instance.get_dynamic_partitions(TILES))
    new_tiles = [g.tile_id for g in tiles if g.tile_id not in known]
    runs = [
        RunRequest(
            run_key=f"{month}|{tile}|{created.isoformat()}",
            partition_key=partition_key(month, tile),
            tags={"earth-memory/trigger": "new_scenes"},
        )
        for (month, tile), created in sorted(touched.items())
    ]
    context.log.info(f"{len(runs)} tile-months with new scenes since {since}")
    return SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[AddDynamicPartitionsRequest(TILES, new_tiles)] if new_tiles else [],
        cursor=json.dumps({"created": newest.isoformat()}) if newest else context.cursor,
    )


automation_sensor = AutomationConditionSensorDefinition(
    "scenes_to_reports",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the assets' automation conditions (assets/automation.py): new scenes flow from ingest "
    "to the reports.",
)

defs = Definitions(sensors=[new_scenes_sensor, automation_sensor])
