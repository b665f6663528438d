"""The API sandbox as the harness drives it: its own credentials, and its clock (which the sending
resource reads in sandbox mode, and which releases held sends and the recipients' reactions)."""

from __future__ import annotations

import datetime as dt
import time

import requests

# The sandbox's own credentials: they open nothing but the local sandbox (its SendGrid accepts any "SG." key).
SANDBOX_ENV = {
    "SENDGRID_API_KEY": "SG.sandbox-demo-key",
    "EVENTBRITE_TOKEN": "sandbox-eventbrite-token",
    "HELLOASSO_CLIENT_ID": "sandbox-client",
    "HELLOASSO_CLIENT_SECRET": "sandbox-secret",
}


def paris_time(day: dt.date, at: dt.time | int) -> float:
    """The POSIX time of `day` at `at` (a time, or an hour) in Europe/Paris."""
    from zoneinfo import ZoneInfo

    moment = at if isinstance(at, dt.time) else dt.time(at)
    return dt.datetime.combine(day, moment, tzinfo=ZoneInfo("Europe/Paris")).timestamp()


def set_sandbox_clock(base: str, now: float) -> None:
    """The sandbox's clock to `now` (POSIX seconds); it releases what came due on the way."""
    requests.post(f"{base}/sandbox/clock", json={"now": now}, timeout=120).raise_for_status()


def set_clock_to_morning(base: str, day: dt.date, morning: dt.time) -> str:
    """The sandbox's clock to `morning` (Paris) of `day`, so that the send window applies as on that day.
    Returns the moment, ISO-formatted with its offset."""
    from alumni_orchestration.campaigns.send_window import PARIS

    moment = dt.datetime.combine(day, morning, PARIS)
    set_sandbox_clock(base, moment.timestamp())
    return moment.isoformat()


def run_clock_through(base: str, start: float, end: float, step: float = 3600) -> None:
    """Advance the clock from `start` to `end` step by step: held sends go out at their send_at, and
    reactions come due at their own times, as the clock passes them."""
    clock = start
    while clock < end:
        clock = min(clock + step, end)
        set_sandbox_clock(base, clock)


def wait_for_webhook_delivery(base: str, timeout: float = 180) -> None:
    """Until the sandbox's webhook outbox is empty (delivered to the receiver), or `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and requests.get(f"{base}/sandbox/status", timeout=30).json()["outbox"]:
        time.sleep(1)
