"""Who may receive a campaign, and why not. Every member considered gets exactly one reason."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alumni_orchestration.campaigns.send_window import PARIS

INCLUDED = "included"
# Checked in this order; the first that applies is the member's reason.
EXCLUSION_ORDER = (
    "left_or_deceased",
    "no_consent",
    "no_valid_email",
    "suppressed",
    "already_paid",
    "max_reminders_reached",
    "reminder_too_soon",
    "cooldown",
    "frequency_cap",
    "daily_cap",
)


@dataclass(frozen=True)
class AudiencePolicy:
    frequency_cap: int | None = 4  # marketing emails per member per window, all campaigns together (None: not
    # marketing, so not subject to it)
    frequency_window_days: int = 30
    cooldown_days: int = 30  # between two sends of the same campaign to a member
    max_reminders: int | None = None  # dues reminders per cycle
    min_days_between_reminders: int | None = None
    requires_unpaid: bool = False
    daily_cap: int | None = None  # messages of any kind (marketing or not) per member and Paris day


def audience_reasons(members: pd.DataFrame, sends: pd.DataFrame, campaign_id: str, now: dt.datetime,
                     policy: AudiencePolicy) -> pd.Series:
    """members: member_id, status, consent_email, email_valid, suppressed, paid_current_cycle.
    sends: member_id, campaign_id, sent_at, marketing (bool) — earlier sends of every campaign; `messaged`
    (bool, default true) says which reached the member, for the daily cap (a control row did not).
    Returns a reason per member_id ('included' or the first exclusion)."""
    m = members.set_index("member_id")
    window_start = now - dt.timedelta(days=policy.frequency_window_days)
    marketing = sends[sends.marketing & (sends.sent_at >= window_start) & (sends.sent_at <= now)]
    recent = marketing.groupby("member_id").size().reindex(m.index, fill_value=0)
    own = sends[sends.campaign_id == campaign_id]
    last_own = own.groupby("member_id").sent_at.max().reindex(m.index)
    own_count = own.groupby("member_id").size().reindex(m.index, fill_value=0)
    since_own = (now - last_own).dt.days

    checks = {
        "left_or_deceased": m.status.isin(["left", "deceased"]),
        "no_consent": ~m.consent_email.astype(bool),
        "no_valid_email": ~m.email_valid.astype(bool),
        "suppressed": m.suppressed.astype(bool),
        "already_paid": m.paid_current_cycle.astype(bool) if policy.requires_unpaid else False,
        "max_reminders_reached": own_count >= policy.max_reminders if policy.max_reminders else False,
        "reminder_too_soon": (since_own < policy.min_days_between_reminders).fillna(False)
        if policy.min_days_between_reminders else False,
        "cooldown": (since_own < policy.cooldown_days).fillna(False) if not policy.min_days_between_reminders else False,
        "frequency_cap": recent >= policy.frequency_cap if policy.frequency_cap is not None else False,
        "daily_cap": _same_day(sends, now).reindex(m.index, fill_value=0) >= policy.daily_cap
        if policy.daily_cap is not None else False,
    }
    reasons = pd.Series(INCLUDED, index=m.index, dtype=object)
    undecided = np.ones(len(m), dtype=bool)
    for name in EXCLUSION_ORDER:
        hit = np.asarray(pd.Series(checks[name], index=m.index).fillna(False), dtype=bool) & undecided
        reasons[hit] = name
        undecided &= ~hit
    return reasons


def _same_day(sends: pd.DataFrame, now: dt.datetime) -> pd.Series:
    """Messages per member on now's Paris day (whatever their campaign or kind)."""
    messaged = sends[sends.messaged.astype(bool)] if "messaged" in sends else sends
    days = pd.to_datetime(messaged.sent_at, utc=True).dt.tz_convert(PARIS).dt.date
    return messaged[(days == now.astimezone(PARIS).date()).to_numpy()].groupby("member_id").size()
