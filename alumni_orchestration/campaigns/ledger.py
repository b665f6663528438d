"""The send ledger: each member gets a campaign's message at most once per cycle, and exactly once
even if the sending process is killed at any instant.

`campaigns.campaign_sends` is unique on (campaign_id, cycle, member_id). A message moves
planned -> scheduling -> scheduled (or outboxed). Before a chunk is sent, its rows are marked
`scheduling` with a fresh SendGrid batch id and a `send_at` a few minutes ahead, and that is
committed; only then is the request made. A chunk found `scheduling` on the next run has an
unknown outcome: its batch is cancelled through /v3/user/scheduled_sends while `send_at` is still
ahead, and the chunk goes back to `planned`, to be sent again under a new batch id. If `send_at`
has already passed, the chunk is marked `unknown` and never re-sent: a duplicate is worse than a gap.
An unknown row is never silent: it fails the wave's blocking check `no_unknown_outcomes`, and
`alumni campaigns resolve --batch ID` (campaigns/resolve.py) asks SendGrid what became of the batch,
closes or re-plans its members and records that decision in campaigns.campaign_decisions.
Control-arm members get a `held_out` row and no message, so both arms share one timeline.
`outboxed` (rendered to campaigns.outbox, nothing left) counts as delivered only in outbox mode.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import pandas as pd

from alumni_orchestration.campaigns.content import Sender, mail_request, render
from alumni_orchestration.campaigns.definitions import Campaign
from alumni_orchestration.campaigns.holdout import CONTROL, TREATMENT
from alumni_orchestration.campaigns.send_window import send_at_unix
from alumni_orchestration.campaigns.transport import OutcomeUnknown, Rejected
from alumni_orchestration.contracts import MAX_PERSONALIZATIONS, mail_send_errors
from alumni_orchestration.warehouse import table_exists

SCHEMA = "campaigns"
SENDS = f"{SCHEMA}.campaign_sends"
BATCHES = f"{SCHEMA}.campaign_batches"
OUTBOX = f"{SCHEMA}.outbox"
DECISIONS = f"{SCHEMA}.campaign_decisions"
# Statuses of a ledger row.
PLANNED, SCHEDULING, SCHEDULED, OUTBOXED = "planned", "scheduling", "scheduled", "outboxed"
HELD_OUT, FAILED, UNKNOWN, CANCELLED = "held_out", "failed", "unknown", "cancelled"
RESOLVED = "resolved"  # a batch whose unknown outcome was settled by `alumni campaigns resolve`
DELIVERED_STATUSES = (SCHEDULED, OUTBOXED)  # in outbox mode; see delivered_statuses
# Below this much time before send_at, a cancel may come too late to be trusted.
CANCEL_SAFETY = dt.timedelta(seconds=60)

DDL = {
    SENDS: f"""create table if not exists {SENDS} (
        campaign_id varchar not null, cycle varchar not null, member_id integer not null,
        period varchar not null, as_of date not null, step integer not null, arm varchar not null,
        status varchar not null, batch_id varchar, send_at timestamptz, attempts integer not null default 0,
        detail varchar, marketing boolean not null default true, updated_at timestamptz not null,
        stratum varchar not null default 'targeted',
        primary key (campaign_id, cycle, member_id))""",
    BATCHES: f"""create table if not exists {BATCHES} (
        batch_id varchar primary key, campaign_id varchar not null, as_of date not null,
        recipients integer not null, status varchar not null, send_at timestamptz, detail varchar,
        created_at timestamptz not null, updated_at timestamptz not null)""",
    OUTBOX: f"""create table if not exists {OUTBOX} (
        message_id varchar primary key, kind varchar not null, campaign_id varchar, cycle varchar,
        member_id integer, to_email varchar not null, subject varchar not null, html varchar, text varchar,
        batch_id varchar, send_at timestamptz, created_at timestamptz not null)""",
    DECISIONS: f"""create table if not exists {DECISIONS} (
        decision_id varchar primary key, batch_id varchar not null, campaign_id varchar not null,
        as_of date not null, decided_at timestamptz not null, decision varchar not null,
        scheduled_send_status varchar, email_activity varchar not null, assumed varchar,
        members_closed integer not null, members_replanned integer not null, members_left_unknown integer not null,
        detail varchar)""",
}

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


class Transport(Protocol):
    local: bool

    def new_batch(self) -> str: ...
    def send(self, body: dict[str, Any]) -> None: ...
    def cancel(self, batch_id: str) -> None: ...


@dataclass
class DeliveryReport:
    planned: int = 0
    held_out: int = 0
    sent: int = 0
    failed: int = 0
    cancelled_batches: int = 0
    unknown: int = 0
    requests: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


def delivered_statuses(mode: str) -> tuple[str, ...]:
    """The ledger statuses that mean "the member got the message". A row only rendered to the outbox
    was never sent, so it counts only where the outbox is the deployment's channel."""
    return DELIVERED_STATUSES if mode == "outbox" else (SCHEDULED,)


@dataclass(frozen=True)
class UnknownOutcomes:
    """A wave's rows whose outcome is unknown, by batch (ids only: no personal data)."""
    rows: int
    batches: tuple[tuple[str, int], ...]

    @property
    def batch_ids(self) -> list[str]:
        return [batch_id for batch_id, _ in self.batches]

    def summary(self, campaign_id: str, as_of: dt.date) -> str:
        """One line, for the check, the run failure and so the alert: counts, batch ids, the command."""
        if not self.rows:
            return f"{campaign_id} {as_of}: no unknown outcome"
        shown = ", ".join(f"{b} ({n})" for b, n in self.batches[:3]) + (", …" if len(self.batches) > 3 else "")
        return (f"{campaign_id} {as_of}: {self.rows} members with an unknown outcome in {len(self.batches)} "
                f"batch{'es' if len(self.batches) > 1 else ''}: {shown}; "
                "resolve each with `alumni campaigns resolve --batch ID`")


def unknown_outcomes(conn: duckdb.DuckDBPyConnection, campaign_id: str, as_of: dt.date) -> UnknownOutcomes:
    """Read-only: the wave's unknown rows, by batch."""
    if not table_exists(conn, SENDS):
        return UnknownOutcomes(rows=0, batches=())
    found = conn.execute(f"select batch_id, count(*) from {SENDS} where campaign_id = ? and as_of = ? and status = ? "
                         "group by batch_id order by batch_id", [campaign_id, as_of, UNKNOWN]).fetchall()
    return UnknownOutcomes(rows=sum(n for _, n in found), batches=tuple((str(b), int(n)) for b, n in found))


def reopen_outboxed(connect: Connect, campaign_id: str, as_of: dt.date, now: dt.datetime) -> int:
    """In sandbox or live mode, rows of this wave that a run only rendered to the outbox were never sent:
    they go back to `planned`, so this run sends them. Returns how many."""
    with connect() as conn:
        ensure_tables(conn)
        conn.execute("begin transaction")
        count = conn.execute(f"select count(*) from {SENDS} where campaign_id = ? and as_of = ? and status = ?",
                             [campaign_id, as_of, OUTBOXED]).fetchall()[0][0]
        conn.execute(f"update {SENDS} set status = ?, batch_id = null, send_at = null, updated_at = ?, detail = "
                     "'rendered to the outbox only, never sent: planned again' where campaign_id = ? and as_of = ? "
                     "and status = ?", [PLANNED, _utc(now), campaign_id, as_of, OUTBOXED])
        conn.execute("commit")
    return count


# Ledgers created before the exploration arm: every earlier row was targeted.
MIGRATIONS = (f"alter table {SENDS} add column if not exists stratum varchar default 'targeted'",)


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"create schema if not exists {SCHEMA}")
    for ddl in DDL.values():
        conn.execute(ddl)
    for migration in MIGRATIONS:
        conn.execute(migration)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC)


def plan_wave(connect: Connect, campaign: Campaign, audience: pd.DataFrame, now: dt.datetime) -> tuple[int, int]:
    """Ledger rows for the included members of a wave (audience: member_id, cycle, period, as_of, step, arm and
    stratum). Rows that already exist are left as they are: re-running a wave plans nothing twice."""
    if "stratum" not in audience:
        audience = audience.assign(stratum="targeted")
    rows = audience.assign(campaign_id=campaign.campaign_id, stratum=audience.stratum.fillna("targeted"),
                           status=audience.arm.map({TREATMENT: PLANNED, CONTROL: HELD_OUT}),
                           marketing=campaign.marketing, updated_at=_utc(now))
    rows = rows[["campaign_id", "cycle", "member_id", "period", "as_of", "step", "arm", "status", "marketing",
                 "updated_at", "stratum"]]
    with connect() as conn:
        ensure_tables(conn)
        counts = f"select count(*) filter (where status = '{HELD_OUT}'), count(*) from {SENDS} where campaign_id = ?"
        held_before, before = conn.execute(counts, [campaign.campaign_id]).fetchall()[0]
        conn.register("wave_rows", rows)
        conn.execute(f"insert or ignore into {SENDS} by name select * from wave_rows")
        held_after, after = conn.execute(counts, [campaign.campaign_id]).fetchall()[0]
    return after - before, held_after - held_before


def recover(connect: Connect, transport: Transport, campaign_id: str, now: dt.datetime) -> tuple[int, int]:
    """Resolve chunks left `scheduling` by an interrupted run. Returns (cancelled batches, unknown rows)."""
    with connect() as conn:
        ensure_tables(conn)
        stuck = conn.execute(f"select batch_id, min(send_at) from {SENDS} where campaign_id = ? and status = ? "
                             "group by batch_id order by batch_id", [campaign_id, SCHEDULING]).fetchall()
    cancelled = unknown = 0
    for batch_id, send_at in stuck:
        if send_at is not None and _utc(send_at) - _utc(now) > CANCEL_SAFETY:
            transport.cancel(batch_id)
            with connect() as conn:
                conn.execute("begin transaction")
                conn.execute(f"update {BATCHES} set status = ?, updated_at = ? where batch_id = ?",
                             [CANCELLED, _utc(now), batch_id])
                conn.execute(f"update {SENDS} set status = ?, batch_id = null, send_at = null, updated_at = ?, "
                             "detail = 'batch cancelled after an interrupted run; re-sent under a new batch' "
                             "where batch_id = ? and status = ?", [PLANNED, _utc(now), batch_id, SCHEDULING])
                conn.execute("commit")
            cancelled += 1
        else:
            with connect() as conn:
                conn.execute("begin transaction")
                conn.execute(f"update {BATCHES} set status = ?, updated_at = ? where batch_id = ?",
                             [UNKNOWN, _utc(now), batch_id])
                count = conn.execute(f"select count(*) from {SENDS} where batch_id = ? and status = ?",
                                     [batch_id, SCHEDULING]).fetchall()[0][0]
                conn.execute(f"update {SENDS} set status = ?, updated_at = ?, detail = 'interrupted too close to "
                             "send_at to cancel; not re-sent' where batch_id = ? and status = ?",
                             [UNKNOWN, _utc(now), batch_id, SCHEDULING])
                conn.execute("commit")
            unknown += count
    return cancelled, unknown


def _outbox_rows(campaign: Campaign, chunk: pd.DataFrame, sender: Sender, batch_id: str,
                 send_at: dt.datetime, now: dt.datetime) -> pd.DataFrame:
    records = []
    for recipient in chunk.to_dict("records"):
        message = render(campaign, recipient, sender)
        records.append({"message_id": f"{campaign.campaign_id}:{recipient['cycle']}:{recipient['member_id']}",
                        "kind": "campaign", "campaign_id": campaign.campaign_id, "cycle": recipient["cycle"],
                        "member_id": int(recipient["member_id"]), "to_email": recipient["email"],
                        "subject": message.subject, "html": message.html, "text": message.text,
                        "batch_id": batch_id, "send_at": _utc(send_at), "created_at": _utc(now)})
    return pd.DataFrame(records)


def _mark(conn: duckdb.DuckDBPyConnection, batch_id: str, status: str, now: dt.datetime, detail: str | None = None) -> None:
    """A chunk's outcome, on its batch and on its ledger rows still `scheduling`."""
    conn.execute(f"update {BATCHES} set status = ?, detail = ?, updated_at = ? where batch_id = ?",
                 [status, detail, _utc(now), batch_id])
    conn.execute(f"update {SENDS} set status = ?, detail = ?, updated_at = ? where batch_id = ? and status = ?",
                 [status, detail, _utc(now), batch_id, SCHEDULING])


def send_planned(connect: Connect, transport: Transport, campaign: Campaign, as_of: dt.date,
                 recipients: Callable[[list[int]], pd.DataFrame], sender: Sender,
                 clock: Callable[[], dt.datetime], lead: dt.timedelta = dt.timedelta(minutes=10),
                 chunk_size: int = MAX_PERSONALIZATIONS, max_attempts: int = 3) -> DeliveryReport:
    """Send the wave's planned treatment rows in chunks, each under its own batch id.

    recipients(member_ids) -> member_id, email, first_name, language, top_interests, dues_amount_eur.
    """
    report = DeliveryReport()
    with connect() as conn:
        ensure_tables(conn)
        planned = conn.execute(f"select member_id, cycle, arm from {SENDS} where campaign_id = ? and as_of = ? "
                               "and status = ? order by member_id", [campaign.campaign_id, as_of, PLANNED]).df()
    if planned.empty:
        return report
    people = recipients(planned.member_id.tolist()).set_index("member_id")
    missing = planned[~planned.member_id.isin(people.index)]
    if len(missing):  # an address vanished between audience and send: fail those rows visibly
        with connect() as conn:
            conn.register("gone", missing[["member_id", "cycle"]])
            conn.execute(f"update {SENDS} set status = ?, detail = 'no deliverable address at send time', "
                         "updated_at = ? from gone where campaign_sends.member_id = gone.member_id and "
                         "campaign_sends.cycle = gone.cycle and campaign_id = ?",
                         [FAILED, _utc(clock()), campaign.campaign_id])
        report.failed += len(missing)
    planned = planned[planned.member_id.isin(people.index)]
    chunk_frames = [planned.iloc[i:i + chunk_size] for i in range(0, len(planned), chunk_size)]
    for chunk in chunk_frames:
        chunk = chunk.join(people, on="member_id")
        for _attempt in range(max_attempts):
            now = clock()
            batch_id = transport.new_batch()
            send_at = dt.datetime.fromtimestamp(send_at_unix(now, lead, campaign.not_before(as_of)), dt.UTC)
            body = mail_request(campaign, chunk, sender, batch_id=None if transport.local else batch_id,
                                send_at=int(send_at.timestamp()))
            errors = mail_send_errors(body, now.timestamp())
            if errors:  # our own bug: never let SendGrid be the first to see it
                raise ValueError(f"mail/send body for {campaign.campaign_id} breaks the published schema: "
                                 f"{errors[0]['field']}: {errors[0]['message']}")
            _reserve(connect, campaign, as_of, chunk, batch_id, send_at, now, transport, sender)
            if transport.local:
                report.sent += len(chunk)
                break
            report.requests += 1
            try:
                transport.send(body)
            except Rejected as exc:
                with connect() as conn:
                    conn.execute("begin transaction")
                    _mark(conn, batch_id, FAILED, clock(), str(exc)[:300])
                    conn.execute("commit")
                report.failed += len(chunk)
                report.errors.append(str(exc))
                break
            except OutcomeUnknown:
                report.retries += 1
                cancelled, unknown = recover(connect, transport, campaign.campaign_id, clock())
                report.cancelled_batches += cancelled
                report.unknown += unknown
                if unknown:
                    break
                continue
            with connect() as conn:
                conn.execute("begin transaction")
                _mark(conn, batch_id, SCHEDULED, clock())
                conn.execute("commit")
            report.sent += len(chunk)
            break
    return report


def _reserve(connect: Connect, campaign: Campaign, as_of: dt.date, chunk: pd.DataFrame, batch_id: str,
             send_at: dt.datetime, now: dt.datetime, transport: Transport, sender: Sender) -> None:
    """Commit the chunk's batch id and send time before any request leaves (outbox: write it, atomically)."""
    keys = chunk[["member_id", "cycle"]]
    status = OUTBOXED if transport.local else SCHEDULING
    outbox = _outbox_rows(campaign, chunk, sender, batch_id, send_at, now) if transport.local else None
    with connect() as conn:
        conn.execute("begin transaction")
        conn.execute(f"insert into {BATCHES} values (?, ?, ?, ?, ?, ?, null, ?, ?)",
                     [batch_id, campaign.campaign_id, as_of, len(chunk), status, send_at, _utc(now), _utc(now)])
        conn.register("chunk_keys", keys)
        conn.execute(f"update {SENDS} set status = ?, batch_id = ?, send_at = ?, attempts = attempts + 1, "
                     "updated_at = ? from chunk_keys where campaign_sends.member_id = chunk_keys.member_id "
                     "and campaign_sends.cycle = chunk_keys.cycle and campaign_id = ? and status = ?",
                     [status, batch_id, send_at, _utc(now), campaign.campaign_id, PLANNED])
        if outbox is not None:
            conn.register("outbox_rows", outbox)
            conn.execute(f"insert into {OUTBOX} by name select * from outbox_rows")
        conn.execute("commit")


def write_alert(connect: Connect, to_email: str, subject: str, text: str, now: dt.datetime) -> str:
    """An operational alert in the outbox (the demo's and the tests' way of sending one)."""
    message_id = f"alert:{uuid.uuid4().hex}"
    with connect() as conn:
        ensure_tables(conn)
        conn.execute(f"insert into {OUTBOX} (message_id, kind, to_email, subject, text, created_at) "
                     "values (?, 'alert', ?, ?, ?, ?)", [message_id, to_email, subject, text, _utc(now)])
    return message_id
