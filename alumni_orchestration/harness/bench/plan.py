"""What the benchmark runs and where: its fixed associations, its stages, each phase's partitions, and the
units its report speaks in. Pure: no Dagster, no simulator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from alumni_orchestration import settings

BENCH_END_DATE = "2026-01-10"  # fixed (cache); early January, so that 3 years hold the 2 complete dues cycles the model needs
BENCH_SEED = 42
STAGES = {  # stage name -> Dagster groups, in run order
    "ingest": ("sources",),
    "dbt": ("staging", "intermediate", "marts"),
    "scoring": ("scoring",),
}
CAMPAIGN_STAGES = {"sensor": "sensor evaluation", "send": "campaign send"}  # stage -> table column, after STAGES
ALL_STAGES = (*STAGES, *CAMPAIGN_STAGES)
# The wave of a phase runs on the morning after its last day (the as-of day), at this Paris time: the
# sandbox's clock is set to it, so that the send window (quiet hours, Sundays) applies as on that day.
WAVE_MORNING = dt.time(7, 0)
# What the sandbox writes into the association's folder while the pipeline sends to it: reset for each
# scenario, so that one run's sends (and the reactions, payments and unsubscribes they cause) never
# reach the next run's ingest.
SANDBOX_OUTPUTS = ("sandbox_state.json", "mail_send.jsonl", "sent_messages.jsonl")
PERSONALIZATIONS_PER_REQUEST = 1000
REPRODUCE = ".venv/bin/alumni bench --sizes 10000,100000,1000000"
GB = 1024**3


def bench_home() -> Path:
    return settings.alumni_home() / "bench"


def association_dir(members: int, years: int, seed: int, end_date: str) -> Path:
    return bench_home() / "associations" / f"{members}m-{years}y-seed{seed}-{end_date}"


def landing_dir(data: Path) -> Path:
    return data / "bench_landing" / "sendgrid"


def scenario_label(members: int, years: int) -> str:
    return f"{members}m-{years}y"


def phase_windows(history_start: str, end_date: str) -> dict[str, tuple[str, str]]:
    """Full load up to the day before the last generated day; the nightly run takes that last day alone."""
    last = dt.date.fromisoformat(end_date)
    day_before = (last - dt.timedelta(days=1)).isoformat()
    return {"full": (history_start, day_before), "nightly": (last.isoformat(), last.isoformat())}


def failed_stages(run: dict | None) -> set[str]:
    """The stages that failed in a phase's record. A phase stopped by its time limit or a kill lists the
    stages it completed in its text ("...; stages completed: ingest, dbt"): those did not fail."""
    if not run:
        return set()
    if "failed_stages" in run:
        return set(run["failed_stages"])
    reason = (run.get("failed_stage") or "").split("; stages completed:")[0]
    return {stage for stage in ALL_STAGES if stage in reason}


def seconds_text(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 120:
        return f"{value / 60:.1f} min ({value:,.0f} s)"
    return f"{value:.1f} s"


def gb_text(value: int | None) -> str:
    return "—" if value is None else f"{value / GB:.2f} GB"
