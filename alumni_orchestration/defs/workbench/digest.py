"""The weekly digest to the digital lead, through the sending resource (the outbox in the demo).

`weekly_digest_job` (one op) gathers the week's figures from the warehouse and the Dagster instance, and
`weekly_digest_schedule` runs it on Mondays at 08:00 Europe/Paris. Counts only, unless the run config sets
`include_names: true` (the lead's opt-in: the new ambassadors' names and promos, never emails).
"""

import datetime as dt
import time

import dagster as dg
import pandas as pd
from pydantic import Field

from alumni_orchestration.campaigns.summary import campaign_summaries
from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.defs.workbench.campaign_summary import send_windows
from alumni_orchestration.defs.workbench.lists import LIST_HISTORY_TABLE, SCHEMA
from alumni_orchestration.settings import PARIS_TZ
from alumni_orchestration.warehouse import WAREHOUSE_POOL, table_exists
from alumni_orchestration.workbench.digest import DigestFacts, compose_digest, dues_week, list_changes
from alumni_orchestration.workbench.exports import exports_dir
from alumni_orchestration.workbench.lists import at_risk_mask
from alumni_orchestration.workbench.trends import dues_to_date, one_year_before

WEEK_SECONDS = 7 * 24 * 3600


class DigestConfig(dg.Config):
    include_names: bool = Field(default=False, description="the lead's opt-in: name the new ambassadors (names "
                                "and promos only, never emails)")
    outcome_window_days: int = Field(default=30, description="as campaign_results': for the backfill ranges")
    acquire_member_eur: float = Field(default=9.0)


def dues_facts(dues: pd.DataFrame, members: pd.DataFrame, as_of: dt.date) -> dict[str, float]:
    now, before = dues_to_date(dues, members, as_of), dues_to_date(dues, members, one_year_before(as_of))
    return {**now, **{f"{k}_last_year": v for k, v in before.items()}, **dues_week(dues, as_of)}


def campaign_lines(warehouse: WarehouseResource, results: pd.DataFrame, config: DigestConfig) -> list[str]:
    if results.empty:
        return []
    summaries = campaign_summaries(results, send_windows(warehouse), config.outcome_window_days, dt.date.today(),
                                   config.acquire_member_eur)
    latest = summaries.sort_values("cycle").groupby("campaign_id").tail(1)
    return [f"{r.campaign_id} {r.cycle}: {r.summary}" for r in latest.itertuples()]


def instance_problems(instance: dg.DagsterInstance, since: float) -> tuple[list[str], list[str]]:
    """The week's failed runs, and its failed asset checks."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE],
                                                   updated_after=dt.datetime.fromtimestamp(since, dt.UTC)), limit=50)
    failed = [f"{run.job_name} (run {run.run_id[:8]})" for run in runs]
    records = instance.get_event_records(dg.EventRecordsFilter(
        event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_timestamp=since), limit=500)
    checks = sorted({f"check {e.check_name} on {e.asset_key.to_user_string()} failed"
                     for e in (r.event_log_entry.dagster_event.event_specific_data for r in records)
                     if e is not None and not e.passed})
    return failed, checks


def gather_facts(warehouse: WarehouseResource, instance: dg.DagsterInstance, config: DigestConfig,
                 ui_url: str) -> DigestFacts:
    since = time.time() - WEEK_SECONDS
    with warehouse.read() as conn:
        history = conn.execute(f"select * from {LIST_HISTORY_TABLE}").df()
        scores = conn.execute("select * from scoring.member_scores").df()
        dues = conn.execute("select member_id, dues_year, paid, amount_eur, first_paid_on, tier "
                            "from marts.dues_history").df()
        members = conn.execute("select member_id, joined_on, left_on from staging.stg_membership__members").df()
        results = (conn.execute("select * from campaigns.campaign_results").df()
                   if table_exists(conn, "campaigns.campaign_results") else pd.DataFrame())
        quarantined = conn.execute("select source, count(*) as n from raw.quarantine where loaded_at >= "
                                   "to_timestamp(?) group by source order by source", [since]).fetchall()
        names = conn.execute(f"select member_id, first_name, last_name, promo from {SCHEMA}.ambassadors").df() \
            if config.include_names else pd.DataFrame()
    as_of = pd.Timestamp(history.as_of.max()).date()
    ambassadors, new_ambassadors = list_changes(history, "ambassadors", as_of)
    at_risk, turned = list_changes(history, "at_risk", as_of)
    failed, checks = instance_problems(instance, since)
    named = names[names.member_id.isin(new_ambassadors or set())] if len(names) else names
    return DigestFacts(
        as_of=as_of, new_ambassadors=None if new_ambassadors is None else len(new_ambassadors),
        turned_at_risk=None if turned is None else len(turned), ambassadors=int(scores.is_ambassador.sum()),
        at_risk=int(at_risk_mask(scores).sum()), dues=dues_facts(dues, members, as_of),
        campaigns=campaign_lines(warehouse, results, config), failed_runs=failed,
        quality_warnings=checks + [f"{n} rows quarantined from {source} this week" for source, n in quarantined],
        exports_folder=str(exports_dir(as_of)), ui_url=ui_url,
        new_ambassador_names=[f"{r.first_name} {r.last_name} ({r.promo})" for r in named.itertuples()])


@dg.op(description="Compose the weekly digest from the warehouse and the instance, and send it to the digital lead.",
       pool=WAREHOUSE_POOL)  # in outbox mode it writes to campaigns.outbox
def send_weekly_digest(context: dg.OpExecutionContext, config: DigestConfig, warehouse: WarehouseResource,
                       email_sender: EmailSenderResource) -> None:
    facts = gather_facts(warehouse, context.instance, config, email_sender.webserver_url)
    subject, text = compose_digest(facts)
    email_sender.send_alert(subject, text)
    context.log.info(f"weekly digest for the week to {facts.as_of} sent ({len(text.splitlines())} lines)")


@dg.job(description="The weekly digest to the digital lead: new ambassadors, members turned at-risk, dues against "
        "last year, each campaign's result in plain words, failed runs, data-quality warnings; counts only.",
        tags={"workbench": ""})
def weekly_digest_job():
    send_weekly_digest()


weekly_digest_schedule = dg.ScheduleDefinition(
    name="weekly_digest", job=weekly_digest_job, cron_schedule="0 8 * * 1", execution_timezone=PARIS_TZ,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Mondays 08:00 Europe/Paris: the weekly digest to the digital lead (ALUMNI_ALERT_EMAIL).")
