"""Delivering the run-failure alerts: at least once, never lost.

An alert is *recorded* once SendGrid has accepted it, or once it is in the outbox (campaigns.outbox,
kind 'alert') after the send failed. The sensor moves past a failed run only when its alert is
recorded. A send is tried a few times with a short backoff; then the alert goes to the outbox as
`pending` in operations.alert_deliveries, and later ticks send the pending alerts again until SendGrid
accepts them, then mark them `sent`. In outbox mode the outbox is the channel itself (`outboxed`).

A crash between a send and its record sends that alert again: twice is acceptable for an alert, never
is not. The outbox row of a run is keyed `alert:<run_id>`, so recording it again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from alumni_orchestration.campaigns.ledger import OUTBOX, Connect, ensure_tables
from alumni_orchestration.campaigns.transport import Rejected
from alumni_orchestration.operations.alerts import scrub

DELIVERIES = "operations.alert_deliveries"
PENDING, SENT, OUTBOXED = "pending", "sent", "outboxed"
SEND_ATTEMPTS = 3
BACKOFF_SECONDS = 1.0  # then 2 s: an alert waits seconds, not minutes, before it falls back to the outbox
SEND_BUDGET_SECONDS = 10.0  # no new attempt after this long (a frozen SendGrid holds each one until its timeout)
TICK_BUDGET_SECONDS = 10.0  # no new alert started after this long into a tick

DDL = f"""create table if not exists {DELIVERIES} (
    message_id varchar primary key, run_id varchar not null, status varchar not null,
    detail varchar, created_at timestamptz not null, updated_at timestamptz not null)"""

Send = Callable[[str, str], None]  # (subject, text); raises when the message was not accepted


class AlertNotRecorded(RuntimeError):
    """Neither SendGrid nor the outbox took the alert: the sensor must come back to this run."""


@dataclass(frozen=True)
class Alert:
    run_id: str
    recipient: str
    subject: str
    text: str

    @property
    def message_id(self) -> str:
        return f"alert:{self.run_id}"


@dataclass
class AlertChannel:
    """Where a tick's alerts go. `send` is None in outbox mode; `connect` opens the warehouse (None: no outbox)."""

    send: Send | None
    connect: Connect | None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    down: str | None = None  # why SendGrid failed during this tick: later alerts go to the outbox at once
    budget_seconds: float = TICK_BUDGET_SECONDS
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def out_of_time(self) -> bool:
        """No new alert is started past the budget: one alert may still take a send timeout and a warehouse
        wait, and the whole tick must end inside the daemon's 60 s (a tick that times out keeps its cursor,
        so alerts already sent would be sent again, and again)."""
        return self.clock() - self.started > self.budget_seconds


def failure_reason(exc: BaseException) -> str:
    """An exception as a log line: its class and a masked first line (no address, no key)."""
    return f"{type(exc).__name__}: {scrub(str(exc))}"


def _send_with_retries(channel: AlertChannel, alert: Alert) -> str | None:
    """None once SendGrid accepted the alert; otherwise why it did not."""
    started = channel.clock()
    reason = "not attempted"
    for attempt in range(SEND_ATTEMPTS):
        try:
            channel.send(alert.subject, alert.text)
            return None
        except Rejected as exc:  # refused for good (bad key, bad sender): retrying now changes nothing
            return failure_reason(exc)
        except Exception as exc:  # noqa: BLE001 - any failure to hand over the alert sends it to the outbox
            reason = failure_reason(exc)
        wait = BACKOFF_SECONDS * 2**attempt
        if attempt + 1 == SEND_ATTEMPTS or channel.clock() - started + wait > SEND_BUDGET_SECONDS:
            break
        channel.sleep(wait)
    return reason


def _ensure_tables(conn) -> None:
    ensure_tables(conn)
    conn.execute("create schema if not exists operations")
    conn.execute(DDL)


def record_in_outbox(connect: Connect, alert: Alert, status: str, detail: str | None, now: dt.datetime) -> None:
    """The alert in the outbox with its delivery status, in one transaction; a second call changes nothing."""
    with connect() as conn:
        _ensure_tables(conn)
        conn.execute("begin transaction")
        conn.execute(f"insert into {OUTBOX} (message_id, kind, to_email, subject, text, created_at) "
                     "values (?, 'alert', ?, ?, ?, ?) on conflict do nothing",
                     [alert.message_id, alert.recipient, alert.subject, alert.text, now])
        conn.execute(f"insert into {DELIVERIES} values (?, ?, ?, ?, ?, ?) on conflict do nothing",
                     [alert.message_id, alert.run_id, status, detail, now, now])
        conn.execute("commit")


def deliver(channel: AlertChannel, alert: Alert, now: dt.datetime) -> str:
    """SENT, PENDING (in the outbox, SendGrid failed) or OUTBOXED (outbox mode); raises AlertNotRecorded."""
    reason = None
    if channel.send is not None:
        reason = channel.down or _send_with_retries(channel, alert)
        if reason is None:
            return SENT
        channel.down = reason
    if channel.connect is None:
        raise AlertNotRecorded(f"the alert for run {alert.run_id} was not sent ({reason}) and there is no outbox")
    try:
        record_in_outbox(channel.connect, alert, OUTBOXED if channel.send is None else PENDING, reason, now)
    except Exception as exc:  # noqa: BLE001 - a busy or broken warehouse: the run stays unalerted, and is retried
        raise AlertNotRecorded(f"the alert for run {alert.run_id} is recorded nowhere: "
                               f"{'not sent (' + reason + '), and ' if reason else ''}"
                               f"the outbox failed ({failure_reason(exc)})") from None
    return OUTBOXED if channel.send is None else PENDING


def resend_pending(channel: AlertChannel, now: dt.datetime, limit: int = 20) -> tuple[list[str], int]:
    """Send the outbox's pending alerts (oldest first) until one fails; mark the sent ones.

    Returns the run ids sent and how many alerts are still pending. The warehouse is held only to read
    and to mark, never while a request is out."""
    if channel.send is None or channel.connect is None:
        return [], 0
    with channel.connect() as conn:
        _ensure_tables(conn)
        rows = conn.execute(f"select d.message_id, d.run_id, o.subject, o.text from {DELIVERIES} d join {OUTBOX} o "
                            "using (message_id) where d.status = ? order by d.created_at, d.message_id limit ?",
                            [PENDING, limit]).fetchall()
    sent: list[tuple[str, str]] = []
    for message_id, run_id, subject, text in rows:
        if channel.down or channel.out_of_time():
            break
        try:
            channel.send(subject, text)
        except Exception as exc:  # noqa: BLE001 - still down: the rest waits for the next tick
            channel.down = failure_reason(exc)
            break
        sent.append((message_id, run_id))
    with channel.connect() as conn:
        conn.execute("begin transaction")
        for message_id, _ in sent:
            conn.execute(f"update {DELIVERIES} set status = ?, detail = null, updated_at = ? where message_id = ?",
                         [SENT, now, message_id])
        conn.execute("commit")
        [(remaining,)] = conn.execute(f"select count(*) from {DELIVERIES} where status = ?", [PENDING]).fetchall()
    return [run_id for _, run_id in sent], int(remaining)


def delivery_statuses(connect: Connect) -> dict[str, str]:
    """run_id -> delivery status of every alert that went through the outbox (read-only is enough)."""
    with connect() as conn:
        if not conn.execute("select 1 from information_schema.tables where table_schema = 'operations' "
                            "and table_name = 'alert_deliveries'").fetchall():
            return {}
        return dict(conn.execute(f"select run_id, status from {DELIVERIES}").fetchall())
