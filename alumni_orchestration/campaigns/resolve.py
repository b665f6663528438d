"""Settle a batch whose outcome is unknown: ask SendGrid what became of it, then close or re-plan its members.

A chunk ends `unknown` when its run died after committing the batch and the next run came too late to
cancel it (see ledger.py). Two of SendGrid's answers settle it:

- the scheduled-send status (`GET /v3/user/scheduled_sends/{batch_id}`): a cancelled batch sends nothing,
  and a paused one is cancelled here first, so its members are re-planned;
- the Email Activity API (`GET /v3/messages?query=...`, a paid add-on): the members it shows a message
  for are closed as sent (`scheduled`), the others re-planned once `send_at` is past by `settle`.

Without Email Activity nothing tells a sent batch from a lost one: the batch stays unknown unless the
operator says which it was (`assume`). Re-planned members go back to `planned` without a batch: the next
run of the wave sends them under a new batch id, after this one has been cancelled so that nothing of it
can still leave. Every decision is a row of campaigns.campaign_decisions.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import pandas as pd

from alumni_orchestration.campaigns.ledger import (
    BATCHES,
    CANCEL_SAFETY,
    DECISIONS,
    PLANNED,
    RESOLVED,
    SCHEDULED,
    SENDS,
    UNKNOWN,
    Connect,
    ensure_tables,
)
from alumni_orchestration.campaigns.transport import ActivityUnavailable

SENT, NOT_SENT = "sent", "not-sent"
ACTIVITY_PAGE = 1000
# Email Activity shows a message within minutes of its processing; before that, absence proves nothing.
DEFAULT_SETTLE = dt.timedelta(minutes=10)
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class BatchProvider(Protocol):
    def scheduled_send_status(self, batch_id: str) -> str | None: ...
    def cancel(self, batch_id: str) -> None: ...
    def search_messages(self, query: str, limit: int = ACTIVITY_PAGE) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Resolution:
    batch_id: str
    campaign_id: str
    as_of: dt.date | None
    decision: str
    closed: int = 0
    replanned: int = 0
    left_unknown: int = 0
    scheduled_send_status: str | None = None
    email_activity: str = "not_asked"
    detail: str = ""

    @property
    def settled(self) -> bool:
        return self.left_unknown == 0

    def text(self) -> str:
        return (f"batch {self.batch_id} ({self.campaign_id} {self.as_of}): {self.decision}; {self.closed} closed as "
                f"sent, {self.replanned} re-planned (the wave's next run sends them), {self.left_unknown} left "
                f"unknown. Scheduled-send status: {self.scheduled_send_status or 'none'}; Email Activity: "
                f"{self.email_activity}. {self.detail}").strip()


def activity_query(campaign_id: str, cycle: str, since: dt.datetime, until: dt.datetime) -> str:
    """SendGrid's query language: our custom args come back as unique_args."""
    return (f"(unique_args['campaign_id']=\"{campaign_id}\") AND (unique_args['cycle']=\"{cycle}\") AND "
            f"last_event_time BETWEEN TIMESTAMP \"{since.astimezone(dt.UTC).strftime(TIMESTAMP_FORMAT)}\" "
            f"AND TIMESTAMP \"{until.astimezone(dt.UTC).strftime(TIMESTAMP_FORMAT)}\"")


def messaged_addresses(provider: BatchProvider, campaign_id: str, cycle: str, since: dt.datetime,
                       until: dt.datetime) -> set[str]:
    """Recipients of the campaign cycle's messages with an event in [since, until]. The API has no cursor: a
    full page is split in two halves of the window until every page holds less than the limit."""
    found = provider.search_messages(activity_query(campaign_id, cycle, since, until), ACTIVITY_PAGE)
    if len(found) < ACTIVITY_PAGE or until - since <= dt.timedelta(seconds=2):
        return {str(m.get("to_email", "")).strip().lower() for m in found if m.get("to_email")}
    middle = since + (until - since) / 2
    return (messaged_addresses(provider, campaign_id, cycle, since, middle)
            | messaged_addresses(provider, campaign_id, cycle, middle + dt.timedelta(seconds=1), until))


def _batch_rows(connect: Connect, batch_id: str) -> tuple[pd.DataFrame, Any]:
    with connect() as conn:
        ensure_tables(conn)
        rows = conn.execute(f"select member_id, cycle, campaign_id, as_of, send_at from {SENDS} "
                            "where batch_id = ? and status = ?", [batch_id, UNKNOWN]).df()
        batch = conn.execute(f"select campaign_id, as_of, created_at, send_at from {BATCHES} where batch_id = ?",
                             [batch_id]).fetchall()
    return rows, batch[0] if batch else None


def _record(connect: Connect, rows: pd.DataFrame, closed: set[int], resolution: Resolution, assumed: str | None,
            now: dt.datetime) -> None:
    """The members' new statuses and the decision, in one transaction."""
    stamp = now.astimezone(dt.UTC)
    with connect() as conn:
        conn.execute("begin transaction")
        keys = rows[["member_id", "cycle"]].assign(closed=rows.member_id.isin(closed))
        conn.register("decided_rows", keys)
        where = ("from decided_rows where campaign_sends.member_id = decided_rows.member_id and campaign_sends.cycle = "
                 "decided_rows.cycle and campaign_sends.batch_id = ? and campaign_sends.status = ?")
        conn.execute(f"update {SENDS} set status = ?, updated_at = ?, detail = ? {where} and decided_rows.closed",
                     [SCHEDULED, stamp, "resolved: SendGrid shows this message", resolution.batch_id, UNKNOWN])
        conn.execute(f"update {SENDS} set status = ?, batch_id = null, send_at = null, updated_at = ?, detail = ? "
                     f"{where} and not decided_rows.closed",
                     [PLANNED, stamp, f"resolved: batch {resolution.batch_id} sent nothing to this member; re-planned",
                      resolution.batch_id, UNKNOWN])
        conn.execute(f"update {BATCHES} set status = ?, detail = ?, updated_at = ? where batch_id = ?",
                     [RESOLVED, resolution.decision, stamp, resolution.batch_id])
        _insert_decision(conn, resolution, assumed, stamp)
        conn.execute("commit")


def _insert_decision(conn, resolution: Resolution, assumed: str | None, stamp: dt.datetime) -> None:
    conn.execute(f"insert into {DECISIONS} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [uuid.uuid4().hex, resolution.batch_id, resolution.campaign_id, resolution.as_of, stamp,
                  resolution.decision, resolution.scheduled_send_status, resolution.email_activity, assumed,
                  resolution.closed, resolution.replanned, resolution.left_unknown, resolution.detail])


def _undecided(connect: Connect, resolution: Resolution, assumed: str | None, now: dt.datetime) -> Resolution:
    with connect() as conn:
        _insert_decision(conn, resolution, assumed, now.astimezone(dt.UTC))
    return resolution


def resolve_batch(connect: Connect, provider: BatchProvider, batch_id: str, now: dt.datetime,
                  emails_of: Callable[[Iterable[int]], dict[int, str]], assume: str | None = None,
                  settle: dt.timedelta = DEFAULT_SETTLE) -> Resolution:
    """Settle the batch's `unknown` rows. emails_of(member_ids) -> {member_id: address}, to match Email
    Activity's recipients (addresses stay in memory: never logged nor stored in the decision)."""
    if assume not in (None, SENT, NOT_SENT):
        raise ValueError(f"assume must be {SENT!r} or {NOT_SENT!r}, not {assume!r}")
    rows, batch = _batch_rows(connect, batch_id)
    if batch is None:
        raise ValueError(f"batch {batch_id} is not in {BATCHES}")
    campaign_id, as_of, created_at, send_at = batch
    seen = Resolution(batch_id, campaign_id, as_of, decision="")
    if rows.empty:
        return replace(seen, decision="nothing to resolve: no member of this batch is unknown")
    seen = replace(seen, scheduled_send_status=provider.scheduled_send_status(batch_id))
    members = set(rows.member_id.astype(int))
    send_at = pd.Timestamp(send_at).to_pydatetime() if send_at is not None else now
    if seen.scheduled_send_status == "pause" or send_at - now > CANCEL_SAFETY:
        provider.cancel(batch_id)  # a paused batch holds all of it; an early one is still cancellable in time
        return _settle(connect, rows, set(), replace(seen, decision="re-planned: batch cancelled before any of it "
                                                     "left", replanned=len(members)), assume, now)
    if now < send_at + settle:
        return _undecided(connect, replace(seen, decision="wait", left_unknown=len(members),
                          detail=f"send_at is {send_at:%Y-%m-%d %H:%M} UTC: ask again after "
                                 f"{send_at + settle:%H:%M} UTC, once Email Activity has caught up."), assume, now)
    try:
        since = pd.Timestamp(created_at).to_pydatetime() - dt.timedelta(minutes=5)
        addresses = {a for cycle in sorted(set(rows.cycle))
                     for a in messaged_addresses(provider, campaign_id, cycle, since, now)}
        seen = replace(seen, email_activity="available")
    except ActivityUnavailable:
        addresses, seen = None, replace(seen, email_activity="not available on this account")
    if addresses is not None:
        emails = emails_of(sorted(members))
        closed = {m for m in members if emails.get(m, "").strip().lower() in addresses}
        decision = "closed and re-planned from Email Activity"
    elif assume is not None:
        closed = members if assume == SENT else set()
        decision = f"operator's decision: the batch was {'sent' if assume == SENT else 'not sent'}"
    else:
        # A cancel status does not settle it either: a cancel after send_at discards nothing already sent.
        return _undecided(connect, replace(seen, decision="undetermined", left_unknown=len(members),
                          detail="Without Email Activity SendGrid cannot say whether this batch left. Check the "
                                 "Activity feed in SendGrid's app, then run again with --assume sent or "
                                 "--assume not-sent."), assume, now)
    if members - closed:
        provider.cancel(batch_id)  # whatever of it SendGrid may still hold must never leave after a re-send
    return _settle(connect, rows, closed, replace(seen, decision=decision, closed=len(closed),
                                                  replanned=len(members - closed)), assume, now)


def _settle(connect: Connect, rows: pd.DataFrame, closed: set[int], resolution: Resolution, assumed: str | None,
            now: dt.datetime) -> Resolution:
    _record(connect, rows, closed, resolution, assumed, now)
    return resolution


def resolve_from_environment(batch_id: str, assume: str | None = None) -> Resolution:
    """`alumni campaigns resolve`: the warehouse and SendGrid of this deployment's environment."""
    from alumni_orchestration import settings, warehouse
    from alumni_orchestration.campaigns.transport import SendGridTransport, is_real_host, sendgrid_now

    api_key = os.environ.get("SENDGRID_API_KEY")
    if not api_key:
        raise ValueError("SENDGRID_API_KEY is not set: in outbox mode nothing reached SendGrid, so nothing is unknown")
    host = os.environ.get("SENDGRID_HOST", f"{settings.sandbox_url()}/sendgrid")
    mode = "live" if is_real_host(host) else "sandbox"  # the clock to trust: the sandbox keeps its own
    path = settings.warehouse_path()

    def connect():
        return warehouse.connect(path)

    def emails_of(member_ids: Iterable[int]) -> dict[int, str]:
        with warehouse.connect(path, read_only=True) as conn:
            conn.register("wanted", pd.DataFrame({"member_id": list(member_ids)}))
            found = conn.execute("select m.member_id, m.email from staging.stg_membership__members as m "
                                 "join wanted using (member_id)").fetchall()
        return {int(m): str(e or "") for m, e in found}

    return resolve_batch(connect, SendGridTransport(api_key, host), batch_id, sendgrid_now(mode, host), emails_of,
                         assume=assume)
