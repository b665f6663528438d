"""The run-failure alert: when any run of this code location fails, email the digital lead.

The message goes through the campaigns' sending resource (`email_sender`: SendGrid in production, the
warehouse outbox `campaigns.outbox` in the demo), to the recipient configured on it (ALUMNI_ALERT_EMAIL).
It gives the run link, the failed steps and a masked one-line error summary: no personal data (see
`alumni_orchestration.operations.alerts`). The link points at the sender's `webserver_url`
(ALUMNI_WEBSERVER_URL, default http://127.0.0.1:3000).
"""

from __future__ import annotations

import os
from typing import Protocol

import dagster as dg

from alumni_orchestration.operations.alerts import FailedStep, failure_alert

DEFAULT_WEBSERVER_URL = "http://127.0.0.1:3000"
_WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}


class AlertSender(Protocol):
    def send_alert(self, subject: str, text: str) -> None: ...


def webserver_url(sender: object) -> str:
    return getattr(sender, "webserver_url", "") or os.environ.get("ALUMNI_WEBSERVER_URL", DEFAULT_WEBSERVER_URL)


def _user_error(error):
    """The exception the step's code raised, not Dagster's wrapper around it."""
    while error is not None and error.cls_name in _WRAPPERS and error.cause is not None:
        error = error.cause
    return error


def failed_steps(context: dg.RunFailureSensorContext) -> list[FailedStep]:
    steps = []
    for event in context.get_step_failure_events():
        error = _user_error(getattr(event.event_specific_data, "error", None))
        steps.append(FailedStep(event.step_key or "?", error.cls_name if error else None,
                                error.message if error else None))
    return steps


@dg.run_failure_sensor(
    name="alumni_run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Emails the digital lead (through email_sender: outbox in the demo) the link of every failed run "
    "and its failed steps, without personal data.",
)
def alumni_run_failure_alert(context: dg.RunFailureSensorContext, email_sender: dg.ResourceParam[AlertSender]):
    run = context.dagster_run
    start, end = run.tags.get("dagster/asset_partition_range_start"), run.tags.get("dagster/asset_partition_range_end")
    if not (start and end) and run.tags.get("dagster/partition"):
        start = end = run.tags["dagster/partition"]
    run_error = getattr(context.failure_event.event_specific_data, "error", None)
    subject, text = failure_alert(
        run.run_id, run.job_name, failed_steps(context), webserver_url(email_sender),
        run_error=(run_error.message if run_error else context.failure_event.message),
        partition_range=(start, end) if start and end else None,
    )
    email_sender.send_alert(subject, text)
    context.log.info(f"Failure alert sent for run {run.run_id} ({run.job_name}).")
