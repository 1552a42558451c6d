"""The one home of declarative automation: what re-materializes by itself, and when.

The assets carry these conditions; the sensor that evaluates them (``scenes_to_reports``) is
registered in ``dagster_project/defs/sensors.py``. The ``new_scenes_sensor`` ingests each tile-month
with new scenes (``ingest_job``). From there
:data:`REFRESH_WITH_INPUTS` carries the change to the partitions that read it: a month x tile
partition of indices, land cover, change or a report runs again when one of the partitions it
reads was updated, once every partition it reads exists and none is running. Which partitions
those are is declared in the assets' partition mappings (``assets.partitions``): the
same tile-month, plus the month before for ``change_map`` and the year before for the reports
that compare with a year earlier. A scene in the newest month therefore refreshes that
tile-month only; a late scene in an older month also refreshes the change map of the month
after it and the reports of the 12 months after it, which read it.

New model versions do not rewrite history: :data:`RETRAIN_MONTHLY` retrains the models on the
1st of each month at 04:00 UTC when composites arrived since the previous tick, and past
tile-months keep the model they were computed with until someone backfills them.
"""

from __future__ import annotations

from dagster import AssetSelection, AutomationCondition

from memories.products import CHANGE_MODEL, LAND_COVER_MODEL, MULTIMODAL_MODEL

MODELS = (LAND_COVER_MODEL, CHANGE_MODEL, MULTIMODAL_MODEL)
"""The trained models: their new versions do not trigger the partitions that use them."""

REFRESH_WITH_INPUTS = (
    AutomationCondition.any_deps_updated().ignore(AssetSelection.assets(*MODELS)).since_last_handled()
    & ~AutomationCondition.any_deps_missing()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("refresh when an input partition updates")
"""Like ``AutomationCondition.eager()`` but for every month, not only the latest time window (late scenes
arrive for past months), and never on a missing partition alone (a new tile is backfilled on purpose)."""

RETRAIN_CRON = "0 4 1 * *"
RETRAIN_MONTHLY = AutomationCondition.on_cron(RETRAIN_CRON, cron_timezone="UTC")
"""Models retrain once a month (04:00 UTC on the 1st) after their inputs updated since the last tick."""
