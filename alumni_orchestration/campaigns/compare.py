"""`alumni campaigns compare-policies`: before switching a campaign's targeting policy, what each policy would
have achieved in past cycles, from the randomised arms only (evaluation.py), at equal volume."""

from __future__ import annotations

import duckdb
import pandas as pd

from alumni_orchestration.campaigns.definitions import Campaign
from alumni_orchestration.campaigns.evaluation import compare_policies, policy_volume, random_score
from alumni_orchestration.warehouse import table_exists

OUTCOMES = "marts.campaign_member_outcomes"
AUDIENCE = "campaigns.campaign_audience"
UPLIFT_SCORES = "scoring.member_uplift_scores"


def randomised_records(conn: duckdb.DuckDBPyConnection, campaign: Campaign, window_days: int | None = None
                       ) -> pd.DataFrame:
    """The campaign's first messages (both strata, both arms) with their outcome and the scores of the wave:
    the propensity, and the predicted uplift then (else the latest one scored before the wave)."""
    if not (table_exists(conn, OUTCOMES) and table_exists(conn, AUDIENCE)):
        return pd.DataFrame()
    uplift = (f"(select arg_max(u.predicted_uplift, u.as_of) from {UPLIFT_SCORES} as u "
              "where u.member_id = o.member_id and u.as_of <= o.as_of)") if table_exists(conn, UPLIFT_SCORES) else "null"
    frame = conn.execute(f"""
        select o.member_id, o.cycle, o.period, o.stratum, o.arm, o.days_to_{campaign.outcome} as days,
               a.score, coalesce(a.predicted_uplift, {uplift}) as predicted_uplift
        from {OUTCOMES} as o
        join {AUDIENCE} as a using (campaign_id, member_id, as_of)
        where o.campaign_id = ? and o.step = 1
    """, [campaign.campaign_id]).df()
    days = pd.to_numeric(frame.days, errors="coerce")
    outcome = days.notna() if window_days is None else days.lt(window_days)
    return frame.assign(outcome=outcome.astype(float)).drop(columns="days")


def compare(records: pd.DataFrame, campaign: Campaign, volume: float | None = None) -> pd.DataFrame:
    """Per period: propensity, uplift and random targeting at one volume (default: what the propensity rule
    would have sent), with 95% intervals."""
    if records.empty:
        return pd.DataFrame()
    threshold = campaign.triggers[0].threshold
    frames = []
    for period, group in records.groupby("period"):
        group = group.reset_index(drop=True)
        e = campaign.targeting.exploration_share
        at = volume or policy_volume(group, group.score.to_numpy(dtype=float) >= threshold, e)
        scores = {"propensity": group.score.to_numpy(dtype=float),
                  "random": random_score(group.member_id, str(period))}
        if group.predicted_uplift.notna().any():
            scores["uplift"] = group.predicted_uplift.to_numpy(dtype=float)
        table = compare_policies(group, scores, at, campaign.holdout_share, e)
        frames.append(table.assign(period=period, explored=int((group.stratum == "explored").sum()),
                                   targeted=int((group.stratum == "targeted").sum())))
    out = pd.concat(frames, ignore_index=True)
    return out[["period", "policy", "volume", "incremental", "ci_low", "ci_high", "per_100_messages", "per_100_low",
                "per_100_high", "targeted", "explored"]]


def compare_from_environment(campaign_id: str, volume: float | None = None) -> str:
    from alumni_orchestration import settings, warehouse
    from alumni_orchestration.campaigns.definitions import campaigns

    known = campaigns()
    if campaign_id not in known:
        raise ValueError(f"no campaign {campaign_id!r}; known: {sorted(known)}")
    campaign = known[campaign_id]
    if not campaign.targeting.exploration_share:
        raise ValueError(f"{campaign_id} has no exploration arm: only the targeted members were randomised, "
                         "so no other policy can be evaluated")
    with warehouse.connect(settings.warehouse_path(), read_only=True) as conn:
        table = compare(randomised_records(conn, campaign), campaign, volume)
    if table.empty:
        return f"{campaign_id}: no randomised cycle in the warehouse yet (marts.campaign_member_outcomes)."
    note = ("Incremental outcomes (" + campaign.outcome + ") had each policy sent the same number of messages, "
            "estimated by inverse-propensity weighting over the holdout and exploration arms; 95% intervals.")
    return note + "\n\n" + table.round(2).to_markdown(index=False) + "\n" + (
        "" if "uplift" in set(table.policy) else "\nNo uplift scores yet: materialise scoring/dues_uplift_model.\n")
