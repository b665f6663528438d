"""The run-failure alert: when a run on this instance fails, email the digital lead, at least once.

The message goes through the campaigns' sending resource (`email_sender`) to ALUMNI_ALERT_EMAIL:
- `outbox` mode: into the warehouse table campaigns.outbox (the outbox is the channel);
- `sandbox` (the demo) and `live`: through SendGrid (the local sandbox, or the real one). When SendGrid
  does not take it after a few quick attempts, the alert goes to campaigns.outbox as pending, an error
  line says so, and later ticks send it once SendGrid answers again
  (see `alumni_orchestration.operations.alert_delivery`).

Why a plain sensor and not `@dg.run_failure_sensor`: a run status sensor moves its cursor past a run even
when its function raised ("run status sensors have side effects that we don't want to repeat", in
dagster/_daemon/sensor.py), so an alert whose channel failed was lost for good. Here the cursor is the
storage id of the last run-failure event whose alert is recorded (sent, or in the outbox); a tick that
fails keeps the previous cursor, so its runs are taken again.

The alert gives the run link, the failed steps and a masked one-line error summary: no personal data
(see `alumni_orchestration.operations.alerts`). The link points at the sender's `webserver_url`
(ALUMNI_WEBSERVER_URL, default http://127.0.0.1:3000).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Protocol

import dagster as dg

from alumni_orchestration.operations.alert_delivery import (
    PENDING,
    Alert,
    AlertChannel,
    AlertNotRecorded,
    deliver,
    failure_reason,
    resend_pending,
)
from alumni_orchestration.operations.alerts import FailedStep, failure_alert
from alumni_orchestration.warehouse import connect

DEFAULT_WEBSERVER_URL = "http://127.0.0.1:3000"
DEFAULT_RECIPIENT = "digital-lead@anciens-exemple.fr"
FAILURES_PER_TICK = 25
WAREHOUSE_WAIT_SECONDS = 10.0  # a tick must end inside the daemon's 60 s: a busy warehouse is tried next tick
WILL_RETRY_TAG = "dagster/will_retry"  # set on a failed run when run retries will re-execute it
_WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}


class AlertSender(Protocol):
    """The sending resource as the alert sees it (mode, alert_recipient and warehouse are read if present)."""

    def send_alert(self, subject: str, text: str) -> None: ...


@dataclass
class AlertCursor:
    after: int  # storage id of the last run-failure event whose alert is recorded
    pending: int = 0  # alerts in the outbox still to send: the warehouse is opened only when there are some

    @classmethod
    def parse(cls, text: str | None) -> AlertCursor | None:
        try:
            data = json.loads(text or "")
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        after = data.get("after", data.get("record_id"))  # record_id: the former run_failure_sensor's cursor
        return cls(int(after), int(data.get("pending", 0))) if isinstance(after, int) else None

    def dump(self) -> str:
        return json.dumps(asdict(self))


def webserver_url(sender: object) -> str:
    return getattr(sender, "webserver_url", "") or os.environ.get("ALUMNI_WEBSERVER_URL", DEFAULT_WEBSERVER_URL)


def _user_error(error):
    """The exception the step's code raised, not Dagster's wrapper around it."""
    while error is not None and error.cls_name in _WRAPPERS and error.cause is not None:
        error = error.cause
    return error


def failed_steps(instance: dg.DagsterInstance, run_id: str) -> list[FailedStep]:
    steps = []
    for record in instance.get_records_for_run(run_id=run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records:
        event = record.event_log_entry.dagster_event
        error = _user_error(getattr(event.event_specific_data, "error", None))
        steps.append(FailedStep(event.step_key or "?", error.cls_name if error else None,
                                error.message if error else None))
    return steps


def _alert(instance: dg.DagsterInstance, record: dg.EventLogRecord, sender: AlertSender) -> Alert | None:
    run = instance.get_run_by_id(record.event_log_entry.run_id)
    if run is None:  # deleted since it failed: nothing left to point at
        return None
    start, end = run.tags.get("dagster/asset_partition_range_start"), run.tags.get("dagster/asset_partition_range_end")
    if not (start and end) and run.tags.get("dagster/partition"):
        start = end = run.tags["dagster/partition"]
    event = record.event_log_entry.dagster_event
    run_error = getattr(event.event_specific_data, "error", None) if event else None
    subject, text = failure_alert(
        run.run_id, run.job_name, failed_steps(instance, run.run_id), webserver_url(sender),
        run_error=run_error.message if run_error else record.event_log_entry.message,
        partition_range=(start, end) if start and end else None,
        will_retry=run.tags.get(WILL_RETRY_TAG) == "true",
    )
    return Alert(run.run_id, getattr(sender, "alert_recipient", "") or DEFAULT_RECIPIENT, subject, text)


def alert_channel(sender: AlertSender) -> AlertChannel:
    """Outbox mode writes to the outbox; otherwise SendGrid, with the outbox (if the sender has a warehouse) behind it."""
    warehouse = getattr(sender, "warehouse", None)
    outbox = None
    if warehouse is not None:
        wait = min(warehouse.wait_seconds, WAREHOUSE_WAIT_SECONDS)
        outbox = lambda: connect(warehouse.path, wait_seconds=wait)  # noqa: E731
    return AlertChannel(send=None if getattr(sender, "mode", "") == "outbox" else sender.send_alert, connect=outbox)


def _latest_failure(instance: dg.DagsterInstance) -> int:
    records = instance.fetch_run_status_changes(dg.DagsterEventType.RUN_FAILURE, limit=1).records
    return records[0].storage_id if records else -1


def _new_failures(instance: dg.DagsterInstance, after: int) -> list[dg.EventLogRecord]:
    records_filter = dg.RunStatusChangeRecordsFilter(event_type=dg.DagsterEventType.RUN_FAILURE, after_storage_id=after)
    return list(instance.fetch_run_status_changes(records_filter, limit=FAILURES_PER_TICK, ascending=True).records)


def _log(context: dg.SensorEvaluationContext, alert: Alert, job_name: str, status: str, channel: AlertChannel) -> None:
    if status == PENDING:
        context.log.error(f"FAILURE ALERT NOT SENT for run {alert.run_id} ({job_name}): SendGrid did not take it "
                          f"({channel.down}). It is in the outbox (campaigns.outbox, {alert.message_id}) and will be "
                          "sent when SendGrid answers again.")
    else:
        context.log.info(f"Failure alert for run {alert.run_id} ({job_name}): {status}.")


def _resend(context: dg.SensorEvaluationContext, channel: AlertChannel, cursor: AlertCursor, counts: Counter) -> None:
    try:
        sent, cursor.pending = resend_pending(channel, dt.datetime.now(dt.UTC))
    except Exception as exc:  # noqa: BLE001 - a busy warehouse: the pending alerts wait for the next tick
        context.log.warning(f"Pending failure alerts not re-sent this tick: {failure_reason(exc)}")
        return
    for run_id in sent:
        context.log.info(f"Failure alert for run {run_id}, kept in the outbox while SendGrid was down, is now sent.")
    counts["sent later"] += len(sent)


@dg.sensor(
    name="alumni_run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Emails the digital lead the link of every failed run and its failed steps, without personal data: "
    "through SendGrid (sandbox or live) or into campaigns.outbox (outbox mode, or while SendGrid is down, "
    "until it is sent). Moves past a failed run only once its alert is sent or in the outbox.",
)
def alumni_run_failure_alert(context: dg.SensorEvaluationContext, email_sender: dg.ResourceParam[AlertSender]):
    cursor = AlertCursor.parse(context.cursor)
    if cursor is None:  # as Dagster's run status sensors: a new sensor starts with the failures to come
        cursor = AlertCursor(_latest_failure(context.instance))
        context.update_cursor(cursor.dump())
        return dg.SkipReason(f"Started: alerts for run failures after event {cursor.after}.")
    channel = alert_channel(email_sender)
    counts: Counter = Counter()
    blocked = None
    for record in _new_failures(context.instance, cursor.after):
        if channel.out_of_time():  # the rest on the next tick: a tick that times out would repeat its sends
            break
        alert = _alert(context.instance, record, email_sender)
        if alert is not None:
            try:
                status = deliver(channel, alert, dt.datetime.now(dt.UTC))
            except AlertNotRecorded as exc:
                blocked = str(exc)
                context.log.error(f"FAILURE ALERT NOT RECORDED: {blocked}. The sensor stays on this run.")
                break
            _log(context, alert, record.event_log_entry.job_name or "?", status, channel)
            counts[status] += 1
            cursor.pending += status == PENDING
        cursor.after = record.storage_id
    if cursor.pending and not channel.down and blocked is None and not channel.out_of_time():
        _resend(context, channel, cursor, counts)
    if blocked and not counts:  # nothing moved: a failed tick is the loudest signal, and it keeps the cursor
        raise AlertNotRecorded(blocked)
    summary = ", ".join(f"{n} {what}" for what, n in counts.items()) or "no new failed run"
    if blocked:
        summary += "; one alert recorded nowhere yet (retried next tick)"
    context.update_cursor(cursor.dump())  # a tick that raises keeps the previous cursor
    return dg.SkipReason(f"Failure alerts: {summary}; {cursor.pending} pending in the outbox.")

