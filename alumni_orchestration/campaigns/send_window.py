"""Quiet hours in Europe/Paris: no sending from 21:00 to 08:00, nor on Sundays.

SendGrid's `send_at` may be at most 72 hours ahead; the latest wait here (Saturday 21:00 to
Monday 08:00) is 35 hours.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
OPENS, CLOSES = dt.time(8, 0), dt.time(21, 0)
SUNDAY = 6
MAX_AHEAD = dt.timedelta(hours=72)


def is_quiet(moment: dt.datetime) -> bool:
    local = moment.astimezone(PARIS)
    return local.weekday() == SUNDAY or not (OPENS <= local.time() < CLOSES)


def next_send_time(now: dt.datetime, lead: dt.timedelta = dt.timedelta(minutes=10),
                   not_before: dt.datetime | None = None) -> dt.datetime:
    """The earliest allowed moment at least `lead` after now (the lead leaves time to cancel), and not before
    `not_before` (a greeting's 08:00) unless that is beyond what SendGrid can hold."""
    candidate = (now + lead).astimezone(PARIS)
    if not_before is not None and candidate < not_before <= now + MAX_AHEAD - dt.timedelta(hours=36):
        candidate = not_before.astimezone(PARIS)
    for _ in range(8):
        if not is_quiet(candidate):
            return candidate
        day = candidate.date()
        if candidate.time() >= CLOSES or candidate.weekday() == SUNDAY:
            day += dt.timedelta(days=1)
        candidate = dt.datetime.combine(day, OPENS, PARIS)
    raise AssertionError("no allowed send time within a week")  # unreachable: six days a week are open


def send_at_unix(now: dt.datetime, lead: dt.timedelta = dt.timedelta(minutes=10),
                 not_before: dt.datetime | None = None) -> int:
    moment = next_send_time(now, lead, not_before)
    if moment - now > MAX_AHEAD:
        raise ValueError("send_at would be more than 72 h ahead")
    return int(moment.timestamp())
