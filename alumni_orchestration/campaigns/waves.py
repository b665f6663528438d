"""Who a campaign wave contacts on a given day, and why. Pure: frames in, frames out.

1. `wave_candidates`: the members the campaign's kind selects (kinds.py: trigger crossings with
   hysteresis, or the next step of a reminder sequence), then its targeting policy over the eligible
   pool and the exploration arm outside it (policies.py).
2. `build_audience`: the campaign's audience rules over those candidates (one reason each), and the
   arm of the included: the deterministic holdout for the targeted, the exploration draw for the explored.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from alumni_orchestration.campaigns.audience import INCLUDED, audience_reasons
from alumni_orchestration.campaigns.definitions import Campaign
from alumni_orchestration.campaigns.holdout import assign_arms
from alumni_orchestration.campaigns.kinds import CANDIDATE_COLUMNS as KIND_COLUMNS
from alumni_orchestration.campaigns.kinds import TREND_DAYS, with_trend
from alumni_orchestration.campaigns.policies import EXPLORED, TARGETED, exploration_arms, targeted_mask
from alumni_orchestration.campaigns.triggers import crossings

CANDIDATE_COLUMNS = ["member_id", "step", "cycle", "period", "trigger", "score", "stratum", "explore_arm",
                     "predicted_uplift"]
AUDIENCE_COLUMNS = ["member_id", "campaign_id", "as_of", "cycle", "period", "step", "trigger", "score", "reason", "arm",
                    "stratum", "predicted_uplift"]
__all__ = ["AUDIENCE_COLUMNS", "CANDIDATE_COLUMNS", "TREND_DAYS", "build_audience", "possible_crossers",
           "snapshot_days", "wave_candidates", "with_trend"]


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
    """history: member_id, as_of, engagement_score, dues_propensity, paid_current_cycle and, once the uplift model
    has scored, predicted_uplift (snapshots up to as_of).
    ledger: this campaign's earlier rows (member_id, cycle, period, as_of, step, arm and stratum), any arm.
    Returns CANDIDATE_COLUMNS."""
    history = _snapshots(history)
    current = pd.Timestamp(as_of)
    days = sorted(d for d in history.as_of.unique() if d < current)
    if current not in set(history.as_of) or not days:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    ledger = ledger.assign(as_of=pd.to_datetime(ledger.as_of)) if len(ledger) else pd.DataFrame(
        columns=["member_id", "cycle", "period", "as_of", "step", "arm", "stratum"])
    found = campaign.kind.select(campaign, history, ledger, as_of, days[-1])
    if found.empty:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    return _targeted_and_explored(campaign, found, history, ledger, as_of)


def _targeted_and_explored(campaign: Campaign, found: pd.DataFrame, history: pd.DataFrame, ledger: pd.DataFrame,
                           as_of: dt.date) -> pd.DataFrame:
    """The policy over the eligible pool; the exploration draw over the rest of it. Later steps keep the stratum
    (and, explored, the arm) of the member's first message of the period."""
    today = history[history.as_of == pd.Timestamp(as_of)].set_index("member_id")
    uplift = today.predicted_uplift if "predicted_uplift" in today else pd.Series(np.nan, index=today.index)
    found = found[KIND_COLUMNS].assign(predicted_uplift=found.member_id.map(uplift).astype(float).to_numpy(),
                                       stratum=TARGETED, explore_arm=None)
    earlier = ledger[ledger.period == found.period.iloc[0]]
    if "stratum" in earlier and len(earlier):
        first = earlier.sort_values("step").drop_duplicates("member_id").set_index("member_id")
        explored = found.member_id.map(first.stratum).eq(EXPLORED).to_numpy()
        found.loc[explored, "stratum"] = EXPLORED
        found.loc[explored, "explore_arm"] = found.member_id[explored].map(first.arm).to_numpy()
    pool = found.eligible_pool.astype(bool).to_numpy()
    if not pool.any():
        return found[CANDIDATE_COLUMNS].reset_index(drop=True)
    [trigger] = campaign.triggers[:1]
    already = int((earlier.step == 1).sum()) if len(earlier) else 0
    hit = targeted_mask(campaign.targeting, trigger.threshold, found[pool], already_sent=already)
    policy = campaign.targeting.policy
    rule = f"{trigger.score} >= {trigger.threshold:g} and unpaid" if policy == "propensity" else f"{policy}, unpaid"
    targeted_rows = found.index[pool][hit]
    found.loc[targeted_rows, "trigger"] = rule
    rest = found[pool][~hit]
    arms = exploration_arms(rest.member_id, campaign.campaign_id, found.period.iloc[0],
                            campaign.targeting.exploration_share)
    drawn = arms[arms.notna()]
    found.loc[drawn.index, "stratum"] = EXPLORED
    found.loc[drawn.index, "explore_arm"] = drawn.to_numpy()
    found.loc[drawn.index, "trigger"] = "exploration arm"
    keep = ~pool | found.index.isin(targeted_rows) | found.index.isin(drawn.index)
    return found[keep][CANDIDATE_COLUMNS].reset_index(drop=True)


def build_audience(campaign: Campaign, candidates: pd.DataFrame, members: pd.DataFrame, sends: pd.DataFrame,
                   as_of: dt.date, now: dt.datetime) -> pd.DataFrame:
    """members: member_id, status, consent_email, email_valid, suppressed, paid_current_cycle.
    sends: earlier messages (member_id, campaign_id, cycle, period, sent_at, marketing) of every campaign,
    this campaign's control rows included (marketing False) so both arms share one timeline.
    Returns one row per candidate with its reason, and an arm for the included."""
    if candidates.empty:
        return pd.DataFrame(columns=AUDIENCE_COLUMNS)
    own = sends[sends.campaign_id == campaign.campaign_id]
    if campaign.kind.counts_within_period:  # a sequence counts its reminders within the period only
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
    for column, default in (("stratum", TARGETED), ("explore_arm", None), ("predicted_uplift", np.nan)):
        if column not in out:
            out[column] = default
    included = (out.reason == INCLUDED).to_numpy()
    targeted = included & (out.stratum != EXPLORED).to_numpy()
    out["arm"] = None
    for period in out.period[targeted].unique():  # one period per wave, but a welcome's is the joining year
        drawn = targeted & (out.period == period).to_numpy()
        out.loc[drawn, "arm"] = assign_arms(out.member_id[drawn], campaign.campaign_id, str(period),
                                            campaign.holdout_share).to_numpy()
    explored = included & ~targeted
    out.loc[explored, "arm"] = out.explore_arm[explored].to_numpy()
    return out[AUDIENCE_COLUMNS].sort_values("member_id", ignore_index=True)
