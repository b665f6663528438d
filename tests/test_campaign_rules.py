"""Pure campaign rules: holdout, quiet hours, hysteresis triggers, audience exclusions."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from alumni_orchestration.campaigns.audience import INCLUDED, AudiencePolicy, audience_reasons
from alumni_orchestration.campaigns.holdout import CONTROL, assign_arms
from alumni_orchestration.campaigns.send_window import MAX_AHEAD, is_quiet, next_send_time
from alumni_orchestration.campaigns.triggers import Trigger, crossings

PARIS = ZoneInfo("Europe/Paris")


def test_holdout_is_deterministic_and_close_to_its_share() -> None:
    ids = pd.Series(range(20_000))
    arms = assign_arms(ids, "reengagement", "2026-11", 0.1)
    assert arms.equals(assign_arms(ids, "reengagement", "2026-11", 0.1))
    assert 0.09 < (arms == CONTROL).mean() < 0.11
    assert not arms.equals(assign_arms(ids, "reengagement", "2026-12", 0.1))


@pytest.mark.parametrize(("local", "expected"), [
    ("2026-11-23 10:00", "2026-11-23 10:10"),  # Monday morning: now plus the lead
    ("2026-11-23 20:55", "2026-11-24 08:00"),  # the lead runs into the evening
    ("2026-11-24 03:00", "2026-11-24 08:00"),  # night
    ("2026-11-21 22:00", "2026-11-23 08:00"),  # Saturday night: skip Sunday
    ("2026-11-22 12:00", "2026-11-23 08:00"),  # Sunday
    ("2026-03-29 07:55", "2026-03-30 08:00"),  # Sunday of the DST change
])
def test_next_send_time_respects_quiet_hours(local: str, expected: str) -> None:
    now = dt.datetime.fromisoformat(local).replace(tzinfo=PARIS)
    moment = next_send_time(now)
    assert moment == dt.datetime.fromisoformat(expected).replace(tzinfo=PARIS)
    assert not is_quiet(moment) and moment - now <= MAX_AHEAD


def _history(rows: list[tuple[int, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["member_id", "as_of", "engagement_score"])


def test_downward_crossing_fires_once_while_hovering() -> None:
    trigger = Trigger("engagement_score", "down", threshold=40, margin=5)
    h = _history([(1, "d1", 50), (1, "d2", 38), (1, "d3", 41), (1, "d4", 39),  # hovers: fire at d2 only
                  (2, "d1", 42), (2, "d2", 39),  # never armed (never >= 45)
                  (3, "d1", 60), (3, "d2", 55)])  # no crossing
    assert crossings(h, trigger, "d1", "d2").member_id.tolist() == [1]
    fired = pd.Series({1: "d2"})
    assert crossings(h, trigger, "d3", "d4", last_fired=fired).empty
    h2 = pd.concat([h, _history([(1, "d5", 47), (1, "d6", 30)])])
    assert crossings(h2, trigger, "d5", "d6", last_fired=fired).member_id.tolist() == [1]  # re-armed


def test_audience_excludes_with_the_first_reason_that_applies() -> None:
    now = dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)
    members = pd.DataFrame({
        "member_id": [1, 2, 3, 4, 5, 6, 7],
        "status": ["active", "left", "active", "active", "active", "lapsed", "active"],
        "consent_email": [True, True, False, True, True, True, True],
        "email_valid": [True, True, True, False, True, True, True],
        "suppressed": [False, False, False, False, True, False, False],
        "paid_current_cycle": [False] * 7,
    })
    sends = pd.DataFrame({
        "member_id": [6, 6, 6, 6, 7],
        "campaign_id": ["a", "b", "c", "d", "reengagement"],
        "sent_at": [now - dt.timedelta(days=d) for d in (1, 5, 9, 20)] + [now - dt.timedelta(days=3)],
        "marketing": [True] * 5,
    })
    reasons = audience_reasons(members, sends, "reengagement", now, AudiencePolicy(frequency_cap=4, cooldown_days=30))
    assert reasons.to_dict() == {1: INCLUDED, 2: "left_or_deceased", 3: "no_consent", 4: "no_valid_email",
                                 5: "suppressed", 6: "frequency_cap", 7: "cooldown"}


def test_dues_reminders_stop_when_paid_and_after_three() -> None:
    now = dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)
    members = pd.DataFrame({"member_id": [1, 2, 3, 4], "status": ["lapsed"] * 4, "consent_email": [True] * 4,
                            "email_valid": [True] * 4, "suppressed": [False] * 4,
                            "paid_current_cycle": [True, False, False, False]})
    sends = pd.DataFrame({"member_id": [2, 2, 2, 3], "campaign_id": ["dues_reminder"] * 4,
                          "sent_at": [now - dt.timedelta(days=d) for d in (60, 40, 20, 5)], "marketing": [True] * 4})
    policy = AudiencePolicy(requires_unpaid=True, max_reminders=3, min_days_between_reminders=14)
    reasons = audience_reasons(members, sends, "dues_reminder", now, policy)
    assert reasons.to_dict() == {1: "already_paid", 2: "max_reminders_reached", 3: "reminder_too_soon", 4: INCLUDED}
