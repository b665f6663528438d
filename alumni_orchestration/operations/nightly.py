"""Which days the nightly run covers (pure).

The nightly run at 02:00 Europe/Paris covers yesterday. After a downtime it covers, in ONE run, every
day since the last day the pipeline completed, up to yesterday, as long as that is at most
`MAX_CATCH_UP_DAYS` days; beyond that it does not guess and asks for a backfill instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from alumni_orchestration.settings import PARIS_TZ

MAX_CATCH_UP_DAYS = 14
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
NIGHTLY_TAG = "alumni/nightly"


@dataclass(frozen=True)
class NightlyWindow:
    first_day: dt.date
    last_day: dt.date
    caught_up_from: dt.date | None  # the last day covered before, when this run catches up a downtime

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def run_key(self) -> str:
        """One run per range: a re-evaluated tick asks for the same key, and Dagster launches it once."""
        return f"alumni_main:{self.first_day.isoformat()}..{self.last_day.isoformat()}"

    def tags(self) -> dict[str, str]:
        return {
            RANGE_START_TAG: self.first_day.isoformat(),
            RANGE_END_TAG: self.last_day.isoformat(),
            NIGHTLY_TAG: "catch-up" if self.days > 1 else "yesterday",
        }


@dataclass(frozen=True)
class NightlySkip:
    reason: str


def paris_day(moment: dt.datetime) -> dt.date:
    if moment.tzinfo is None:
        raise ValueError("the scheduled time must be timezone-aware")
    return moment.astimezone(ZoneInfo(PARIS_TZ)).date()


def plan_nightly(scheduled_time: dt.datetime, last_covered: dt.date | None, partitions_start: dt.date,
                 max_days: int = MAX_CATCH_UP_DAYS) -> NightlyWindow | NightlySkip:
    """The window of the run due at `scheduled_time`, given the last day the pipeline completed."""
    yesterday = paris_day(scheduled_time) - dt.timedelta(days=1)
    if yesterday < partitions_start:
        return NightlySkip(f"Nothing to run: the daily partitions start on {partitions_start.isoformat()}.")
    if last_covered is None:
        # A new instance: the nightly run takes yesterday; the history before it is a backfill.
        return NightlyWindow(yesterday, yesterday, None)
    if last_covered >= yesterday:
        return NightlySkip(f"Already covered: the pipeline completed up to {last_covered.isoformat()} "
                           f"(yesterday is {yesterday.isoformat()}).")
    first = max(last_covered + dt.timedelta(days=1), partitions_start)
    missed = (yesterday - first).days + 1
    if missed > max_days:
        return NightlySkip(
            f"Missed {missed} days ({first.isoformat()} .. {yesterday.isoformat()}) since the last completed "
            f"day {last_covered.isoformat()}: more than the {max_days} days the nightly run catches up by "
            f"itself. Launch a backfill of alumni_main over {first.isoformat()} .. {yesterday.isoformat()} "
            "(UI: Jobs > alumni_main > Partitions > Launch backfill, as a single run); the nightly run "
            "resumes once it has completed.")
    return NightlyWindow(first, yesterday, last_covered if missed > 1 else None)
