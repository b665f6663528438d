"""The daily partitions shared by every dated source and mart (Europe/Paris days)."""

from __future__ import annotations

import dagster as dg

from alumni_orchestration import settings

daily_partitions = dg.DailyPartitionsDefinition(start_date=settings.partitions_start(), timezone=settings.PARIS_TZ)
