"""The monthly schedule: on the 3rd, process the month that just ended, every tile."""

from dagster import Definitions, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from assets.partitions import TILES, months_partitions, partition_key
from dagster_project.defs.jobs import monthly_job
from memories.months import add_months, month_key


@schedule(
    job=monthly_job,
    cron_schedule="0 6 3 * *",
    execution_timezone="UTC",
    description="On the 3rd of each month at 06:00 UTC, run every tile for the month that just ended.",
)
def monthly_schedule(context: ScheduleEvaluationContext):  # type: ignore[no-untyped-def]
    now = context.scheduled_execution_time
    month = month_key(add_months(now, -1))
    valid = set(months_partitions.get_partition_keys())
    if month not in valid:
        return SkipReason(f"month {month} is outside the configured partitions")
    tiles = context.instance.get_dynamic_partitions(TILES)
    if not tiles:
        return SkipReason("no tiles yet: the new_scenes sensor or the demo adds the area of interest's tiles")
    return [RunRequest(run_key=f"monthly|{month}|{tile}", partition_key=partition_key(month, tile)) for tile in tiles]


defs = Definitions(schedules=[monthly_schedule])
