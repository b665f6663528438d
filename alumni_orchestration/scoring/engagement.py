"""The engagement mart's arithmetic in pandas, for any as-of day.

It reads the same dbt vars (half-lives, signal and mode weights) from dbt_project.yml, so that
scores can be recomputed as of past days (score history, trends) and the dbt mart can be compared
with what a user would otherwise write by hand. A test holds the two to the same numbers.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

DBT_PROJECT_FILE = Path(__file__).resolve().parents[2] / "dbt_project" / "dbt_project.yml"
MODES = ("communication", "experiential", "philanthropic", "volunteer", "governance")


@cache
def dbt_vars() -> dict:
    return yaml.safe_load(DBT_PROJECT_FILE.read_text())["vars"]


def engagement_as_of(activity: pd.DataFrame, roles: pd.DataFrame, memberships: pd.DataFrame,
                     profile: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """activity: member_activity_daily; roles: volunteer roles (member_id, started_on, ended_on);
    memberships: group memberships (member_id, is_leader, left_on); profile: member_id, segment,
    consent_newsletter, email_status. Returns the mart's columns, indexed by member_id."""
    decayed, frequency = decayed_activity(activity, as_of)
    return engagement_from_decayed(decayed, frequency, roles, memberships, profile, as_of)


def decayed_activity(activity: pd.DataFrame, as_of: dt.date) -> tuple[pd.DataFrame, pd.Series]:
    """Each member's activity as of a day: the decayed sum per signal (a column per signal) and the
    number of distinct active days in the last 365 (age 0 to 364), both indexed by member_id."""
    half = dbt_vars()["half_life_days"]
    cut = pd.Timestamp(as_of)
    dates = pd.to_datetime(activity.activity_date)
    past = activity[dates <= cut].assign(age=(cut - dates[dates <= cut]).dt.days)
    decay = np.exp(-np.log(2) * past.age.clip(lower=0) / past.signal.map(half).astype(float))
    value = np.where(past.signal == "donations", past.amount_eur.astype(float) / 50.0,
                     past.activity_count.astype(float)) * decay
    decayed = pd.DataFrame({"member_id": past.member_id, "signal": past.signal, "value": value}).pivot_table(
        index="member_id", columns="signal", values="value", aggfunc="sum", fill_value=0.0)
    recent = past[past.age < 365].groupby("member_id").activity_date.nunique()
    return decayed, recent


def engagement_from_decayed(decayed: pd.DataFrame, frequency: pd.Series, roles: pd.DataFrame,
                            memberships: pd.DataFrame, profile: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The mart's columns from decayed_activity()'s two results (or the same quantities computed otherwise,
    e.g. for many days at once by scoring.history)."""
    v = dbt_vars()
    weight, mode_weight = v["signal_weights"], v["mode_weights"]
    cut = pd.Timestamp(as_of)
    out = profile.set_index("member_id")[["segment"]].copy()
    d = decayed.reindex(out.index).fillna(0.0)

    def col(signal: str) -> pd.Series:
        return d[signal] if signal in d.columns else pd.Series(0.0, index=out.index)

    started = pd.to_datetime(roles.started_on)
    ended = pd.to_datetime(roles.ended_on)
    active_roles = roles[(started <= cut) & (ended.isna() | (ended >= cut))].groupby("member_id").size()
    left = pd.to_datetime(memberships.left_on)
    led = memberships[memberships.is_leader & (left.isna() | (left >= cut))].groupby("member_id").size()
    out["communication"] = col("opens") * weight["opens"] + col("clicks") * weight["clicks"]
    out["experiential"] = col("events_registered") * weight["events_registered"] + col("events_attended") * weight[
        "events_attended"]
    out["philanthropic"] = col("dues_paid") * weight["dues_paid"] + col("donations") * weight["donations_per_50_eur"]
    out["volunteer"] = (active_roles.reindex(out.index).fillna(0) * weight["active_volunteer_roles"]
                        + led.reindex(out.index).fillna(0) * weight["led_groups"]
                        + col("volunteer_starts") * weight["volunteer_starts"] + col("group_joins") * weight["group_joins"])
    out["governance"] = col("votes") * weight["votes"]
    out["frequency_365"] = frequency.reindex(out.index).fillna(0).astype(int)
    out["active_modes"] = sum((out[m] > 0.1).astype(int) for m in MODES)
    receives = profile.set_index("member_id").pipe(lambda p: p.consent_newsletter.astype(bool) & (p.email_status == "valid"))
    scaled = {}
    for mode in (*MODES, "frequency"):
        values = np.log1p(out["frequency_365" if mode == "frequency" else mode])
        mean = values[receives].mean() if mode == "communication" else values.mean()
        scaled[mode] = values / mean if mean else values * 0.0
    numerator = sum(mode_weight[m] * scaled[m] for m in ("experiential", "philanthropic", "volunteer", "governance",
                                                         "frequency"))
    numerator = numerator + np.where(receives, mode_weight["communication"] * scaled["communication"], 0.0)
    denominator = (sum(mode_weight[m] for m in ("experiential", "philanthropic", "volunteer", "governance", "frequency"))
                   + np.where(receives, mode_weight["communication"], 0.0))
    out["engagement_raw"] = numerator / denominator
    ranks = out.engagement_raw.rank(method="min") - 1
    out["engagement_index"] = 100 * ranks / max(len(out) - 1, 1)
    return out
