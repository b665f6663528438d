"""The kinds of campaign: how each selects its candidates and which score history it needs. Pure.

A campaign names its kind in campaigns.yaml; everything that used to branch on "is this the dues
sequence?" asks the kind instead. A new kind (`lifecycle`: birthdays, anniversaries) is one entry in KINDS:
a selection function, the history it reads, and whether its cycles are numbered by step.

Every selection returns CANDIDATE_COLUMNS: `eligible_pool` marks the members the kind could contact
but whose targeting rule (the campaign's policy) has not been applied yet — the pool the exploration
arm draws from. Crossing triggers have no such pool: a crossing is the rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from alumni_orchestration.campaigns.lifecycle import lifecycle_selection
from alumni_orchestration.campaigns.triggers import crossings

if TYPE_CHECKING:
    from alumni_orchestration.campaigns.definitions import Campaign

TREND_DAYS = 30
CANDIDATE_COLUMNS = ["member_id", "step", "cycle", "period", "trigger", "score", "eligible_pool"]
# What a kind reads from scoring.member_score_history for a wave.
LATEST_SNAPSHOTS = "latest_snapshots"      # the wave's snapshot and the one before, every member
CROSSERS_LOOKBACK = "crossers_lookback"    # the lookback, for the members who crossed a trigger only
# columns of the campaign_member_outcomes mart (days_to_<outcome>); signed_up_or_paid: an event sign-up, dues or a
# donation after the message (the lifecycle campaigns' outcome)
OUTCOMES = ("dues_paid", "reengaged", "signed_up_or_paid")


def with_trend(history: pd.DataFrame, days: int = TREND_DAYS) -> pd.DataFrame:
    """Adds engagement_trend: the engagement score's change against `days` before (NaN without that snapshot)."""
    earlier = history[["member_id", "as_of", "engagement_score"]].assign(
        as_of=lambda f: f.as_of + pd.Timedelta(days=days)).rename(columns={"engagement_score": "_earlier"})
    out = history.merge(earlier, on=["member_id", "as_of"], how="left")
    return out.assign(engagement_trend=out.engagement_score - out._earlier).drop(columns="_earlier")


def empty_candidates() -> pd.DataFrame:
    return pd.DataFrame(columns=CANDIDATE_COLUMNS)


def crossing_candidates(campaign: Campaign, history: pd.DataFrame, ledger: pd.DataFrame, as_of: dt.date,
                        previous: pd.Timestamp) -> pd.DataFrame:
    """Members whose score crossed one of the campaign's triggers (with hysteresis) since `previous`."""
    if any(t.score == "engagement_trend" for t in campaign.triggers):
        history = with_trend(history)
    last_fired = ledger.groupby("member_id").as_of.max() if len(ledger) else None
    found = []
    for trigger in campaign.triggers:
        hits = crossings(history, trigger, previous, pd.Timestamp(as_of), last_fired)
        found.append(hits.assign(trigger=f"{trigger.score} {trigger.direction} {trigger.threshold:g}",
                                 score=hits.current))
    hits = pd.concat(found, ignore_index=True).drop_duplicates("member_id") if found else pd.DataFrame()
    if hits.empty:
        return empty_candidates()
    return hits.assign(step=1, cycle=campaign.cycle_of(as_of), period=campaign.period_of(as_of),
                       eligible_pool=False)[CANDIDATE_COLUMNS]


def sequence_candidates(campaign: Campaign, history: pd.DataFrame, ledger: pd.DataFrame, as_of: dt.date,
                        previous: pd.Timestamp) -> pd.DataFrame:
    """The next step of a reminder sequence, once its season is open. First reminders: every unpaid member not
    reminded yet this period (`eligible_pool`: the campaign's policy picks among them). Follow-ups: unpaid, fewer
    than max reminders, the last one long enough ago, and the score still within the trigger's margin."""
    [trigger] = campaign.triggers
    policy = campaign.policy
    period = campaign.period_of(as_of)
    if as_of < campaign.season_opens_on(as_of):
        return empty_candidates()
    today = history[history.as_of == pd.Timestamp(as_of)].set_index("member_id")
    unpaid = ~today.paid_current_cycle.astype(bool)
    score = today[trigger.score]
    mine = ledger[ledger.period == period]
    reminders = mine.groupby("member_id").size().reindex(today.index, fill_value=0)
    last = pd.to_datetime(mine.groupby("member_id").as_of.max().reindex(today.index))
    waited = ((pd.Timestamp(as_of) - last).dt.days >= policy.min_days_between_reminders).fillna(False)
    first = unpaid & (reminders == 0)
    follow_up = (unpaid & (reminders > 0) & (reminders < policy.max_reminders) & waited
                 & (score >= trigger.threshold - trigger.margin))
    due = first | follow_up
    out = pd.DataFrame({"member_id": today.index[due], "step": (reminders[due] + 1).to_numpy(),
                        "score": score[due].to_numpy(), "eligible_pool": first[due].to_numpy()})
    out["trigger"] = np.where(out.eligible_pool, "unpaid, not reminded yet", "next reminder of the sequence")
    out["period"] = period
    out["cycle"] = [campaign.cycle_of(as_of, int(s)) for s in out.step]
    return out[CANDIDATE_COLUMNS]


def lifecycle_candidates(campaign: Campaign, history: pd.DataFrame, ledger: pd.DataFrame, as_of: dt.date,
                         previous: pd.Timestamp) -> pd.DataFrame:
    """A date of the member's life (birthday, class anniversary, joining) fell within the wave's days."""
    found = lifecycle_selection(campaign, history, ledger, as_of, previous)
    return found[CANDIDATE_COLUMNS] if len(found) else empty_candidates()


Selection = Callable[["Campaign", pd.DataFrame, pd.DataFrame, dt.date, pd.Timestamp], pd.DataFrame]


@dataclass(frozen=True)
class Kind:
    name: str
    select: Selection
    history: str                  # LATEST_SNAPSHOTS or CROSSERS_LOOKBACK
    numbered_steps: bool          # cycles "2026-r1", "2026-r2": one ledger cycle per step of a sequence
    counts_within_period: bool    # its own earlier messages count within the current period only
    date_triggered: bool = False  # selects on members' dates (lifecycle.MEMBER_DATE_COLUMNS), needs no trigger


KINDS: dict[str, Kind] = {
    "crossing": Kind("crossing", crossing_candidates, CROSSERS_LOOKBACK, numbered_steps=False,
                     counts_within_period=False),
    "sequence": Kind("sequence", sequence_candidates, LATEST_SNAPSHOTS, numbered_steps=True,
                     counts_within_period=True),
    "lifecycle": Kind("lifecycle", lifecycle_candidates, LATEST_SNAPSHOTS, numbered_steps=False,
                      counts_within_period=False, date_triggered=True),
}


def kind_named(name: str) -> Kind:
    if name not in KINDS:
        raise ValueError(f"unknown campaign kind {name!r}; known: {sorted(KINDS)}")
    return KINDS[name]
