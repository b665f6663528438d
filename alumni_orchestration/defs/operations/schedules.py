"""The nightly schedule: `alumni_main` at 02:00 Europe/Paris over yesterday, catching up after a downtime.

Catch-up is ours, not Dagster's: after a daemon downtime Dagster evaluates only the latest missed tick
of a schedule. That tick looks up the last day the pipeline completed — the latest partition of
`scoring/member_score_history` (the last daily asset of the job, so a run that failed half-way counts
as not done) materialised after that day had ended (a run during the day covers today only in part) —
and asks for ONE run over every day since, up to yesterday (see
`alumni_orchestration.operations.nightly`). More than 14 missed days: the tick is skipped with the
range to backfill. While a nightly run is still queued or running, the tick is skipped (the next one
covers what it did not). Each range has its own run_key, so re-evaluating a tick never launches it twice.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from alumni_orchestration.defs.jobs import alumni_main
from alumni_orchestration.defs.scoring.assets import HISTORY
from alumni_orchestration.operations.nightly import MAX_CATCH_UP_DAYS, NightlySkip, plan_nightly
from alumni_orchestration.partitions import daily_partitions
from alumni_orchestration.settings import PARIS_TZ

NIGHTLY_SCHEDULE = "alumni_nightly"
COMPLETION_ASSET = HISTORY
MAX_RUNTIME_SECONDS = 4 * 3600  # with run monitoring on (deploy/dagster.yaml), a stuck run fails and alerts
MAX_LOOKUPS = MAX_CATCH_UP_DAYS + 2
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED]


def _day_end(day: dt.date) -> float:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), ZoneInfo(PARIS_TZ)).timestamp()


def last_completed_day(instance: dg.DagsterInstance) -> dt.date | None:
    """The latest day whose partition of the completion asset was materialised after the day had ended.

    Today is a partition too (in progress, `end_offset=1`): a run during the day materialises it with half
    a day of data, which does not make the day done.
    """
    days = sorted((dt.date.fromisoformat(key) for key in instance.get_materialized_partitions(COMPLETION_ASSET)),
                  reverse=True)
    for day in days[:MAX_LOOKUPS]:
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=COMPLETION_ASSET, asset_partitions=[day.isoformat()]), limit=1).records
        if latest and latest[0].timestamp >= _day_end(day):
            return day
    # Past the catch-up horizon, older days are taken as done: the gap is then too long anyway (a backfill).
    return days[MAX_LOOKUPS] if len(days) > MAX_LOOKUPS else None


@dg.schedule(
    name=NIGHTLY_SCHEDULE,
    job=alumni_main,
    cron_schedule="0 2 * * *",
    execution_timezone=PARIS_TZ,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:00 Europe/Paris: alumni_main over yesterday (sources, dbt, scores, score history) as one "
    "single-run backfill; after a downtime, over every day missed since the last completed one (at most 14; "
    "beyond that it skips and names the range to backfill).",
)
def alumni_nightly(context: dg.ScheduleEvaluationContext):
    scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    in_progress = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=alumni_main.name, statuses=IN_PROGRESS,
                              tags={"dagster/schedule_name": NIGHTLY_SCHEDULE}), limit=1)
    if in_progress:
        return dg.SkipReason(f"The nightly run {in_progress[0].run_id} is still {in_progress[0].status.value}; "
                             "the next tick covers the days it does not.")
    start = daily_partitions.start.date()
    plan = plan_nightly(scheduled, last_completed_day(context.instance), start)
    if isinstance(plan, NightlySkip):
        context.log.info(plan.reason)
        return dg.SkipReason(plan.reason)
    if plan.caught_up_from:
        context.log.info(f"Catching up {plan.days} days after the last completed day "
                         f"{plan.caught_up_from.isoformat()}: one run over {plan.first_day} .. {plan.last_day}.")
    return dg.RunRequest(run_key=plan.run_key,
                         tags={**plan.tags(), "dagster/max_runtime": str(MAX_RUNTIME_SECONDS)})
