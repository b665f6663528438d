"""Campaign waves: the audience of a (campaign, day) and its sends through the ledger.

A wave is a partition of (campaign, date): the date is the score-history day, the wave runs as of
the next morning. The sensors request these runs; re-running one sends nothing twice.
"""


import datetime as dt
import json

import dagster as dg
import pandas as pd

from alumni_orchestration.campaigns import ledger
from alumni_orchestration.campaigns.audience import INCLUDED
from alumni_orchestration.campaigns.content import RECIPIENT_COLUMNS, language_for
from alumni_orchestration.campaigns.definitions import Campaign, campaigns
from alumni_orchestration.campaigns.holdout import CONTROL, TREATMENT
from alumni_orchestration.campaigns.kinds import LATEST_SNAPSHOTS
from alumni_orchestration.campaigns.lifecycle import (
    LIFECYCLE_RECIPIENT_COLUMNS,
    MEMBER_DATE_COLUMNS,
    class_events,
)
from alumni_orchestration.campaigns.send_window import PARIS
from alumni_orchestration.campaigns.waves import (
    AUDIENCE_COLUMNS,
    build_audience,
    possible_crossers,
    snapshot_days,
    wave_candidates,
)
from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.partitions import daily_partitions
from alumni_orchestration.privacy.subject import erased_suppressions_sql
from alumni_orchestration.warehouse import WAREHOUSE_POOL, table_exists

SCHEMA = "campaigns"
AUDIENCE = dg.AssetKey([SCHEMA, "campaign_audience"])
SENDS = dg.AssetKey([SCHEMA, "campaign_sends"])
HISTORY = dg.AssetKey(["scoring", "member_score_history"])
SCORES = dg.AssetKey(["scoring", "member_scores"])
AUDIENCE_TABLE = f"{SCHEMA}.campaign_audience"
# Hysteresis and the 30-day trend look back this far in the score history.
LOOKBACK_DAYS = 120
# Marketing emails sent outside these campaigns (newsletters, calls for dues) count towards the cap.
EXTERNAL_MARKETING_CATEGORIES = ("newsletter", "dues_call")

campaign_partitions = dg.MultiPartitionsDefinition({
    "campaign": dg.StaticPartitionsDefinition(sorted(campaigns())),
    "date": daily_partitions,
})
BY_DATE = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")

AUDIENCE_DDL = f"""create table if not exists {AUDIENCE_TABLE} (
    member_id integer not null, campaign_id varchar not null, as_of date not null, cycle varchar not null,
    period varchar not null, step integer not null, "trigger" varchar, score double, reason varchar not null,
    arm varchar, stratum varchar, predicted_uplift double, computed_at timestamptz not null)"""
AUDIENCE_MIGRATIONS = (f"alter table {AUDIENCE_TABLE} add column if not exists stratum varchar default 'targeted'",
                       f"alter table {AUDIENCE_TABLE} add column if not exists predicted_uplift double")
UPLIFT_SCORES = "scoring.member_uplift_scores"


def wave_of(context: dg.AssetExecutionContext) -> tuple[Campaign, dt.date]:
    keys = context.partition_key.keys_by_dimension
    return campaigns()[keys["campaign"]], dt.date.fromisoformat(keys["date"]) + dt.timedelta(days=1)


def wave_moment(as_of: dt.date) -> dt.datetime:
    """The instant audience rules are evaluated at: the wave's morning, so that re-runs and backfills agree."""
    return dt.datetime.combine(as_of, dt.time(0, 0), PARIS)


HISTORY_COLUMNS = "member_id, as_of, engagement_score, dues_propensity, paid_current_cycle"


def load_history(conn, as_of: dt.date, campaign: Campaign | None = None,
                 lookback_days: int = LOOKBACK_DAYS) -> pd.DataFrame:
    """score_history, with each member's latest predicted uplift (scored on or before as_of) once the uplift
    model has scored: what the uplift targeting policies rank on."""
    history = score_snapshots(conn, as_of, campaign, lookback_days)
    if campaign is None or campaign.kind.date_triggered:  # the whole lookback serves every kind
        history = history.merge(member_dates(conn), on="member_id", how="left")
    if not table_exists(conn, UPLIFT_SCORES):
        return history
    uplift = conn.execute(f"select member_id, arg_max(predicted_uplift, as_of) as predicted_uplift "
                          f"from {UPLIFT_SCORES} where as_of <= ? group by member_id", [as_of]).df()
    return history.merge(uplift, on="member_id", how="left")


def member_dates(conn) -> pd.DataFrame:
    """Each member's dates a lifecycle campaign selects on (birthday, graduation, joining)."""
    return conn.execute(f"select member_id, {', '.join(MEMBER_DATE_COLUMNS)} "
                        "from staging.stg_membership__members").df()


def score_snapshots(conn, as_of: dt.date, campaign: Campaign | None = None,
                 lookback_days: int = LOOKBACK_DAYS) -> pd.DataFrame:
    """The score snapshots a wave's triggers look at, up to `as_of`. For a campaign, only what its kind needs,
    so that the cost follows the members who cross rather than the association: a reminder sequence needs
    the latest two snapshots; crossing triggers need the lookback of the members who crossed (a few
    snapshots tell who)."""
    start = as_of - dt.timedelta(days=lookback_days)
    table = "scoring.member_score_history"
    if campaign is None:
        return conn.execute(f"select {HISTORY_COLUMNS} from {table} where as_of between ? and ?", [start, as_of]).df()
    previous = conn.execute(f"select max(as_of) from {table} where as_of >= ? and as_of < ?",
                            [start, as_of]).fetchall()[0][0]
    if previous is None or campaign.kind.history == LATEST_SNAPSHOTS:
        return conn.execute(f"select {HISTORY_COLUMNS} from {table} where as_of in (?, ?)",
                            [previous or as_of, as_of]).df()
    snapshots = conn.execute(f"select {HISTORY_COLUMNS} from {table} where as_of in (select unnest(?))",
                             [snapshot_days(campaign, previous, as_of)]).df()
    crossers = possible_crossers(campaign, snapshots, previous, as_of)
    if crossers.empty:
        return snapshots[pd.to_datetime(snapshots.as_of).isin([pd.Timestamp(previous), pd.Timestamp(as_of)])]
    return conn.execute(f"select {HISTORY_COLUMNS} from {table} where as_of between ? and ? "
                        "and member_id in (select unnest(?))", [start, as_of, crossers.tolist()]).df()


def load_ledger(conn, campaign_id: str | None = None, exclude_as_of: dt.date | None = None) -> pd.DataFrame:
    if not table_exists(conn, ledger.SENDS):
        return pd.DataFrame(columns=["member_id", "campaign_id", "cycle", "period", "as_of", "step", "arm",
                                     "status", "send_at", "marketing"])
    query = f"select * from {ledger.SENDS} where (? is null or campaign_id = ?) and (? is null or as_of <> ?)"
    return conn.execute(query, [campaign_id, campaign_id, exclude_as_of, exclude_as_of]).df()


def earlier_sends(conn, campaign: Campaign, as_of: dt.date, moment: dt.datetime, window_days: int) -> pd.DataFrame:
    """Every earlier message that counts for the rules: the ledger (control rows of this campaign for
    its timeline, never for the cap) and the other marketing emails SendGrid delivered."""
    rows = load_ledger(conn)
    # The other campaigns' messages of the wave's own day count for the daily cap only (marketing False here).
    same_day = (pd.to_datetime(rows.as_of).dt.date == as_of).to_numpy()
    rows = rows[~same_day | (rows.campaign_id != campaign.campaign_id).to_numpy()]  # re-runs see the same past
    rows = rows[(rows.campaign_id == campaign.campaign_id) | (rows.arm == TREATMENT)]
    rows = rows[~rows.status.isin([ledger.FAILED, ledger.CANCELLED])]
    same_day = (pd.to_datetime(rows.as_of).dt.date == as_of).to_numpy()
    sent_at = pd.to_datetime(rows.send_at, utc=True).fillna(
        pd.to_datetime(rows.as_of).dt.tz_localize(PARIS).dt.tz_convert("UTC"))
    ours = pd.DataFrame({"member_id": rows.member_id.astype("int64"), "campaign_id": rows.campaign_id,
                         "cycle": rows.cycle, "period": rows.period, "sent_at": sent_at,
                         "marketing": rows.marketing.astype(bool) & (rows.arm == TREATMENT) & ~same_day,
                         "messaged": rows.arm == TREATMENT})
    external = conn.execute("""
        select m.member_id, e.campaign_id, e.event_at
        from staging.stg_sendgrid__events as e
        join staging.stg_membership__members as m on m.email = e.email
        where e.event = 'processed' and e.event_at >= ? and e.event_at < ?
          and list_has_any(cast(json(coalesce(e.category, '[]')) as varchar[]), ?)
    """, [moment - dt.timedelta(days=window_days), moment, list(EXTERNAL_MARKETING_CATEGORIES)]).df() \
        if table_exists(conn, "staging.stg_sendgrid__events") else pd.DataFrame(
            columns=["member_id", "campaign_id", "event_at"])
    theirs = pd.DataFrame({"member_id": external.member_id.astype("int64"),
                           "campaign_id": external.campaign_id.fillna("external"), "cycle": "", "period": "",
                           "sent_at": pd.to_datetime(external.event_at, utc=True), "marketing": True,
                           "messaged": True})
    return pd.concat([ours, theirs], ignore_index=True)


def member_facts(conn, as_of: dt.date) -> pd.DataFrame:
    """Status, consent, a deliverable address, SendGrid suppressions (and erased members) and dues standing."""
    return conn.execute(f"""
        with suppressed as (
            select distinct email from staging.stg_sendgrid__suppressions where email is not null
            {erased_suppressions_sql(conn)}
        ),
        standing as (
            select member_id, paid_current_cycle from scoring.member_score_history where as_of = ?
        )
        select m.member_id, m.status, coalesce(m.consent_email, false) as consent_email,
               m.email_status = 'valid' as email_valid, s.email is not null as suppressed,
               coalesce(h.paid_current_cycle, p.paid_current_cycle, false) as paid_current_cycle
        from staging.stg_membership__members as m
        left join marts.member_profile as p on p.member_id = m.member_id
        left join suppressed as s on s.email = m.email
        left join standing as h on h.member_id = m.member_id
    """, [as_of]).df()


# Why the catalogue counts most of the campaign partitions as "missing", in both assets' descriptions.
MISSING_PARTITIONS_NOTE = (
    "\n\nPartitioned by campaign and day: a partition is materialised only on a morning its campaign's sensor found "
    "members to reach (a wave). Every other campaign and day shows as *missing* in the catalogue: no wave that "
    "day, not lost data. Do not backfill or \"materialize missing\" them: that would run a wave, and send its "
    "messages, for each of those days.")


def _md(frame: pd.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.to_markdown(index=False) if len(frame) else "_none_")


@dg.asset(
    key=AUDIENCE,
    group_name="campaigns",
    kinds={"python", "duckdb"},
    partitions_def=campaign_partitions,
    deps=[dg.AssetDep(HISTORY, partition_mapping=BY_DATE), SCORES,
          dg.AssetKey(["staging", "stg_sendgrid__suppressions"]), dg.AssetKey(["staging", "stg_membership__members"])],
    pool=WAREHOUSE_POOL,
    description="Who a campaign wave considers (the members its triggers selected between two consecutive score "
    "snapshots) and, for each, the reason for inclusion or exclusion, and the arm (treatment or control)."
    + MISSING_PARTITIONS_NOTE,
)
def campaign_audience(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    campaign, as_of = wave_of(context)
    moment = wave_moment(as_of)
    with warehouse.read() as conn:
        history = load_history(conn, as_of, campaign)
        own = load_ledger(conn, campaign.campaign_id, exclude_as_of=as_of)
        candidates = wave_candidates(campaign, history, own, as_of)
        members = member_facts(conn, as_of)
        sends = earlier_sends(conn, campaign, as_of, moment, campaign.policy.frequency_window_days)
    audience = build_audience(campaign, candidates, members, sends, as_of, moment)
    rows = audience.assign(computed_at=dt.datetime.now(dt.UTC))
    with warehouse.write() as conn:
        conn.execute(f"create schema if not exists {SCHEMA}")
        conn.execute(AUDIENCE_DDL)
        for migration in AUDIENCE_MIGRATIONS:
            conn.execute(migration)
        conn.execute("begin transaction")
        conn.execute(f"delete from {AUDIENCE_TABLE} where campaign_id = ? and as_of = ?", [campaign.campaign_id, as_of])
        conn.register("wave_audience", rows)
        conn.execute(f"insert into {AUDIENCE_TABLE} by name select * from wave_audience")
        conn.execute("commit")
    included = audience[audience.reason == INCLUDED]
    reasons = audience.reason.value_counts().rename_axis("reason").reset_index(name="members")
    context.log.info(f"{campaign.campaign_id} as of {as_of}: {len(audience)} triggered, {len(included)} included")
    return dg.MaterializeResult(metadata={
        "as_of": str(as_of),
        "triggered": len(audience),
        "included": len(included),
        "treatment": int((included.arm == TREATMENT).sum()),
        "control": int((included.arm == CONTROL).sum()),
        "explored": int((included.stratum == "explored").sum()),
        "excluded": int(len(audience) - len(included)),
        "reasons": _md(reasons),
        "by_step": _md(included.groupby(["step", "arm"]).size().rename("members").reset_index()),
        "dagster/row_count": len(audience),
    })


def lifecycle_details(conn, campaign: Campaign, people: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """A class anniversary's upcoming class events (Eventbrite, matched by promo), as JSON per member."""
    if campaign.lifecycle is None or campaign.lifecycle.occasion != "anniversary" \
            or not table_exists(conn, "staging.stg_eventbrite__attendees"):
        return people.assign(class_events="[]")
    events = conn.execute("select event_id, event_name, start_at from staging.stg_eventbrite__events "
                          "where coalesce(status, '') not in ('canceled', 'cancelled')").df()
    registrations = conn.execute("select event_id, promo from staging.stg_eventbrite__attendees "
                                 "where not coalesce(cancelled, false) and promo is not null").df()
    by_promo = class_events(events, registrations, as_of, campaign.lifecycle.max_events)
    return people.assign(class_events=[json.dumps(by_promo.get(int(p), []) if pd.notna(p) else [])
                                       for p in people.graduation_year])


def recipients_loader(warehouse: WarehouseResource, campaign: Campaign, as_of: dt.date | None = None):
    """Member id -> what a message needs. Only valid addresses; personal data stays in the warehouse."""
    def load(member_ids: list[int]) -> pd.DataFrame:
        with warehouse.read() as conn:
            conn.register("wanted", pd.DataFrame({"member_id": member_ids}))
            people = conn.execute("""
                select m.member_id, m.email, m.first_name, m.city, m.region, s.top_interests,
                       p.current_dues_tier, m.graduation_year
                from wanted as w
                join staging.stg_membership__members as m on m.member_id = w.member_id
                left join scoring.member_scores as s on s.member_id = m.member_id
                left join marts.member_profile as p on p.member_id = m.member_id
                where m.email_status = 'valid'
            """).df()
            if campaign.lifecycle is not None:
                people = lifecycle_details(conn, campaign, people, as_of or dt.date.today())
        people["language"] = [language_for(c, r) for c, r in zip(people.city, people.region, strict=True)]
        # No current tier (e.g. lapsed for years): the standard annual dues.
        people["dues_amount_eur"] = people.current_dues_tier.map(campaign.dues_amounts_eur).fillna(
            campaign.dues_amounts_eur.get("annual"))
        lifecycle = [c for c in LIFECYCLE_RECIPIENT_COLUMNS if campaign.lifecycle is not None and c in people]
        return people[[c for c in RECIPIENT_COLUMNS if c not in ("cycle", "arm")] + lifecycle]
    return load


NO_UNKNOWN_OUTCOMES = "no_unknown_outcomes"


def unknown_outcome_check(unknown: ledger.UnknownOutcomes, campaign_id: str, as_of: dt.date) -> dg.AssetCheckResult:
    """Fails while the wave holds a row whose outcome is unknown; ids and counts only, no personal data."""
    return dg.AssetCheckResult(
        check_name=NO_UNKNOWN_OUTCOMES, asset_key=SENDS, passed=unknown.rows == 0,
        severity=dg.AssetCheckSeverity.ERROR, description=unknown.summary(campaign_id, as_of),
        metadata={"unknown_rows": unknown.rows, "unknown_batches": len(unknown.batches),
                  "batch_ids": dg.MetadataValue.json(unknown.batch_ids),
                  "rows_by_batch": dg.MetadataValue.json(dict(unknown.batches)),
                  "resolve_with": "alumni campaigns resolve --batch ID"})


@dg.asset(
    key=SENDS,
    group_name="campaigns",
    kinds={"sendgrid", "duckdb"},
    partitions_def=campaign_partitions,
    deps=[AUDIENCE],
    pool=WAREHOUSE_POOL,
    description="The wave's messages, through the ledger campaigns.campaign_sends (unique on campaign, cycle and "
    "member): at most 1,000 personalizations per request, each chunk under its own batch id and send_at outside "
    "quiet hours, so that an interrupted run can cancel what it cannot vouch for. Control rows are held out."
    + MISSING_PARTITIONS_NOTE,
    check_specs=[dg.AssetCheckSpec(NO_UNKNOWN_OUTCOMES, asset=SENDS, blocking=True,
                                   description="No member of the wave has an unknown outcome (a chunk interrupted too "
                                   "late to cancel). Fails the run; `alumni campaigns resolve --batch ID` settles it.")],
)
def campaign_sends(context: dg.AssetExecutionContext, warehouse: WarehouseResource, email_sender: EmailSenderResource):
    campaign, as_of = wave_of(context)
    with warehouse.read() as conn:
        audience = conn.execute(f"select * from {AUDIENCE_TABLE} where campaign_id = ? and as_of = ? and reason = ?",
                                [campaign.campaign_id, as_of, INCLUDED]).df() \
            if table_exists(conn, AUDIENCE_TABLE) else pd.DataFrame(columns=AUDIENCE_COLUMNS)
    transport = email_sender.transport()
    now = email_sender.now()
    new_rows, new_held_out = ledger.plan_wave(warehouse.write, campaign, audience, now)
    reopened = 0 if transport.local else ledger.reopen_outboxed(warehouse.write, campaign.campaign_id, as_of, now)
    cancelled, unknown = ledger.recover(warehouse.write, transport, campaign.campaign_id, now)
    report = ledger.send_planned(warehouse.write, transport, campaign, as_of,
                                 recipients_loader(warehouse, campaign, as_of), email_sender.sender(),
                                 clock=email_sender.now, lead=email_sender.lead,
                                 chunk_size=email_sender.chunk_size)
    with warehouse.read() as conn:
        statuses = conn.execute(f"select arm, status, count(*) as members from {ledger.SENDS} "
                                "where campaign_id = ? and as_of = ? group by all order by all",
                                [campaign.campaign_id, as_of]).df()
        outstanding = ledger.unknown_outcomes(conn, campaign.campaign_id, as_of)
    metadata = {
        "as_of": str(as_of),
        "mode": email_sender.mode,
        "planned_now": new_rows,
        "held_out_now": new_held_out,
        "reopened_from_outbox": reopened,
        "sent": report.sent,
        "failed": report.failed,
        "cancelled_batches": cancelled + report.cancelled_batches,
        "unknown_outcome": unknown + report.unknown,
        "unknown_in_wave": outstanding.rows,
        "requests": report.requests,
        "wave_status": _md(statuses),
        "dagster/row_count": int(statuses.members.sum()) if len(statuses) else 0,
    }
    context.log.info(f"{campaign.campaign_id} as of {as_of}: {report.sent} sent ({email_sender.mode}), "
                     f"{report.failed} failed, {cancelled + report.cancelled_batches} batches cancelled, "
                     f"{outstanding.rows} with an unknown outcome")
    check = unknown_outcome_check(outstanding, campaign.campaign_id, as_of)
    if report.failed or report.errors:
        unknown_too = "" if check.passed else f" Also: {check.description}"
        raise dg.Failure(description=f"{campaign.campaign_id}: {report.failed} messages failed; "
                         f"{'; '.join(report.errors[:3])}.{unknown_too}", metadata=metadata)
    yield dg.MaterializeResult(metadata=metadata, check_results=[check])
    if not check.passed:
        # The blocking check alone would fail the step with Dagster's generic text; this failure's first line
        # is what the run-failure alert quotes: counts, batch ids and the command, no personal data.
        context.log.error(check.description)
        raise dg.Failure(description=check.description, metadata=check.metadata)


campaign_job = dg.define_asset_job(
    name="campaign_job",
    selection=dg.AssetSelection.assets(AUDIENCE, SENDS),
    partitions_def=campaign_partitions,
    description="One campaign wave: its audience, then its sends. Requested by the campaign sensors.",
)
