"""The daily partitions shared by every dated source and mart (Europe/Paris days)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from alumni_orchestration import settings

# end_offset=1: today is a partition too (in progress), so what the webhook landed today can be ingested
# at once; the nightly schedule covers yesterday, the last complete day.
daily_partitions = dg.DailyPartitionsDefinition(start_date=settings.partitions_start(), timezone=settings.PARIS_TZ,
                                                end_offset=1)

AS_OF_TAG = "alumni/as_of"


def run_as_of(context: dg.AssetExecutionContext) -> dt.date:
    """The day a run computes as of: an explicit `alumni/as_of` tag, else the day after the run's last
    partition (a nightly run scores yesterday as of this morning), else today."""
    explicit = context.run.tags.get(AS_OF_TAG)
    if explicit:
        return dt.date.fromisoformat(explicit)
    end = context.run.tags.get("dagster/asset_partition_range_end") or context.run.tags.get("dagster/partition")
    return dt.date.fromisoformat(end) + dt.timedelta(days=1) if end else dt.date.today()
