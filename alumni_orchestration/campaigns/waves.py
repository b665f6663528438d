"""Who a campaign wave contacts on a given day, and why. Pure: frames in, frames out.

1. `wave_candidates`: the members a campaign's triggers select between the previous and the
   current score snapshot (with hysteresis), or — for a reminder sequence — the members due for
   their next reminder.
2. `build_audience`: the campaign's audience rules over those candidates (one reason each), and
   the deterministic holdout for the included ones.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from alumni_orchestration.campaigns.audience import INCLUDED, audience_reasons
from alumni_orchestration.campaigns.definitions import Campaign
from alumni_orchestration.campaigns.holdout import assign_arms
from alumni_orchestration.campaigns.triggers import crossings

TREND_DAYS = 30
CANDIDATE_COLUMNS = ["member_id", "step", "cycle", "period", "trigger", "score"]
AUDIENCE_COLUMNS = ["member_id", "campaign_id", "as_of", "cycle", "period", "step", "trigger", "score", "reason", "arm"]


def with_trend(history: pd.DataFrame, days: int = TREND_DAYS) -> pd.DataFrame:
    """Adds engagement_trend: the engagement score's change against `days` before (NaN without that snapshot)."""
    earlier = history[["member_id", "as_of", "engagement_score"]].assign(
        as_of=lambda f: f.as_of + pd.Timedelta(days=days)).rename(columns={"engagement_score": "_earlier"})
    out = history.merge(earlier, on=["member_id", "as_of"], how="left")
    return out.assign(engagement_trend=out.engagement_score - out._earlier).drop(columns="_earlier")


def _snapshots(history: pd.DataFrame) -> pd.DataFrame:
    return history.assign(as_of=pd.to_datetime(history.as_of))


def snapshot_days(campaign: Campaign, previous: dt.date, current: dt.date) -> list[dt.date]:
    """The snapshots that decide which members can possibly cross a trigger between `previous` and
    `current`: those two, and for a trend trigger the ones TREND_DAYS before each."""
    days = {previous, current}
    if any(t.score == "engagement_trend" for t in campaign.triggers):
        days |= {previous - dt.timedelta(days=TREND_DAYS), current - dt.timedelta(days=TREND_DAYS)}
    return sorted(days)


def possible_crossers(campaign: Campaign, snapshots: pd.DataFrame, previous: dt.date, current: dt.date) -> pd.Index:
    """Members whose scores cross a trigger's threshold between the two snapshots, before hysteresis:
    a superset of what `wave_candidates` can select, from a few snapshots instead of the whole lookback,
    so that a large association loads the lookback of these members only."""
    history = _snapshots(snapshots)
    if any(t.score == "engagement_trend" for t in campaign.triggers):
        history = with_trend(history)
    found = [crossings(history, trigger, pd.Timestamp(previous), pd.Timestamp(current), armed_check=False).member_id
             for trigger in campaign.triggers]
    return pd.Index(pd.concat(found).unique() if found else [], name="member_id")


def wave_candidates(campaign: Campaign, history: pd.DataFrame, ledger: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """history: member_id, as_of, engagement_score, dues_propensity, paid_current_cycle (snapshots up to as_of).
    ledger: this campaign's earlier rows (member_id, cycle, period, as_of, step), any arm.
    Returns member_id, step, cycle, period, trigger, score."""
    history = _snapshots(history)
    current = pd.Timestamp(as_of)
    days = sorted(d for d in history.as_of.unique() if d < current)
    if current not in set(history.as_of) or not days:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    previous = days[-1]
    ledger = ledger.assign(as_of=pd.to_datetime(ledger.as_of)) if len(ledger) else pd.DataFrame(
        columns=["member_id", "cycle", "period", "as_of", "step"])
    if campaign.is_sequence:
        return _sequence_candidates(campaign, history, ledger, as_of)
    if any(t.score == "engagement_trend" for t in campaign.triggers):
        history = with_trend(history)
    last_fired = ledger.groupby("member_id").as_of.max() if len(ledger) else None
    found = []
    for trigger in campaign.triggers:
        hits = crossings(history, trigger, previous, current, last_fired)
        found.append(hits.assign(trigger=f"{trigger.score} {trigger.direction} {trigger.threshold:g}",
                                 score=hits.current))
    hits = pd.concat(found, ignore_index=True).drop_duplicates("member_id") if found else pd.DataFrame()
    if hits.empty:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    return hits.assign(step=1, cycle=campaign.cycle_of(as_of), period=campaign.period_of(as_of))[CANDIDATE_COLUMNS]


def _sequence_candidates(campaign: Campaign, history: pd.DataFrame, ledger: pd.DataFrame,
                         as_of: dt.date) -> pd.DataFrame:
    """Due for the next reminder: unpaid, propensity at or above the threshold (the margin below it
    once the sequence has started), fewer than max reminders, and the last one long enough ago."""
    [trigger] = campaign.triggers
    policy = campaign.policy
    period = campaign.period_of(as_of)
    if as_of < campaign.season_opens_on(as_of):
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    today = history[history.as_of == pd.Timestamp(as_of)].set_index("member_id")
    unpaid = ~today.paid_current_cycle.astype(bool)
    score = today[trigger.score]
    mine = ledger[ledger.period == period]
    reminders = mine.groupby("member_id").size().reindex(today.index, fill_value=0)
    last = pd.to_datetime(mine.groupby("member_id").as_of.max().reindex(today.index))
    waited = ((pd.Timestamp(as_of) - last).dt.days >= policy.min_days_between_reminders).fillna(False)
    first = unpaid & (reminders == 0) & (score >= trigger.threshold)
    follow_up = (unpaid & (reminders > 0) & (reminders < policy.max_reminders) & waited
                 & (score >= trigger.threshold - trigger.margin))
    due = first | follow_up
    out = pd.DataFrame({"member_id": today.index[due], "step": (reminders[due] + 1).to_numpy(),
                        "score": score[due].to_numpy()})
    out["trigger"] = np.where(first[due].to_numpy(), f"{trigger.score} >= {trigger.threshold:g} and unpaid",
                              "next reminder of the sequence")
    out["period"] = period
    out["cycle"] = [campaign.cycle_of(as_of, int(s)) for s in out.step]
    return out[CANDIDATE_COLUMNS]


def build_audience(campaign: Campaign, candidates: pd.DataFrame, members: pd.DataFrame, sends: pd.DataFrame,
                   as_of: dt.date, now: dt.datetime) -> pd.DataFrame:
    """members: member_id, status, consent_email, email_valid, suppressed, paid_current_cycle.
    sends: earlier messages (member_id, campaign_id, cycle, period, sent_at, marketing) of every campaign,
    this campaign's control rows included (marketing False) so both arms share one timeline.
    Returns one row per candidate with its reason, and an arm for the included."""
    if candidates.empty:
        return pd.DataFrame(columns=AUDIENCE_COLUMNS)
    own = sends[sends.campaign_id == campaign.campaign_id]
    if campaign.is_sequence:  # a sequence counts its reminders within the period only
        own = own[own.period == candidates.period.iloc[0]]
    considered = pd.concat([sends[sends.campaign_id != campaign.campaign_id], own], ignore_index=True)
    people = candidates[["member_id"]].merge(members, on="member_id", how="left").fillna(
        {"status": "unknown", "consent_email": False, "email_valid": False, "suppressed": False,
         "paid_current_cycle": False})
    reasons = audience_reasons(people, considered, campaign.campaign_id, now, campaign.policy)
    out = candidates.assign(campaign_id=campaign.campaign_id, as_of=as_of,
                            reason=candidates.member_id.map(reasons).to_numpy())
    in_cycle = set(zip(own.member_id, own.cycle, strict=True))
    repeat = [(m, c) in in_cycle for m, c in zip(out.member_id, out.cycle, strict=True)]
    out.loc[repeat, "reason"] = "already_contacted_this_cycle"
    included = out.reason == INCLUDED
    out["arm"] = None
    out.loc[included, "arm"] = assign_arms(out.member_id[included], campaign.campaign_id,
                                           campaign.period_of(as_of), campaign.holdout_share).to_numpy()
    return out[AUDIENCE_COLUMNS].sort_values("member_id", ignore_index=True)
