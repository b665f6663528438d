"""Trends at a glance: the numbers each nightly materialisation records, so that Dagster's Plots tab draws
them over time, and the pictures that go with them. Pure (the pictures are PNG bytes).

Dues paid rate: members who paid the current cycle by the as-of day over the paying members present that
day (lifetime members excluded); "last year" is the same quotient one year earlier, for last year's cycle.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from alumni_orchestration.scoring.plots import figure_png
from alumni_orchestration.workbench.lists import at_risk_mask


def one_year_before(day: dt.date) -> dt.date:
    return day.replace(year=day.year - 1) if not (day.month == 2 and day.day == 29) else day - dt.timedelta(days=366)


def dues_to_date(dues: pd.DataFrame, members: pd.DataFrame, day: dt.date) -> dict[str, float]:
    """dues: member_id, dues_year, paid, amount_eur, first_paid_on, tier; members: member_id, joined_on, left_on.
    Payers, euros and rate of `day`'s cycle as of `day`."""
    joined, left = pd.to_datetime(members.joined_on), pd.to_datetime(members.left_on)
    lifetime = set(dues[(dues.tier == "lifetime") & (pd.to_datetime(dues.first_paid_on) <= pd.Timestamp(day))]
                   .member_id)
    present = members[(joined <= pd.Timestamp(day)) & (left.isna() | (left > pd.Timestamp(day)))
                      & ~members.member_id.isin(lifetime)]
    paid = dues[(dues.dues_year == day.year) & dues.paid.astype(bool)
                & (pd.to_datetime(dues.first_paid_on) <= pd.Timestamp(day)) & dues.member_id.isin(present.member_id)]
    return {"payers": int(paid.member_id.nunique()), "eur": float(paid.amount_eur.fillna(0).sum()),
            "rate": float(paid.member_id.nunique() / len(present)) if len(present) else float("nan")}


def score_trends(scores: pd.DataFrame, metrics: pd.DataFrame, dues: pd.DataFrame, members: pd.DataFrame,
                 as_of: dt.date) -> dict[str, float | int]:
    """scores: scoring.member_scores; metrics: scoring.model_metrics. Flat numeric values, one key each."""
    out: dict[str, float | int] = {f"members/{segment}": int(n) for segment, n in scores.segment.value_counts()
                                   .sort_index().items()}
    out["ambassadors"] = int(scores.is_ambassador.sum())
    out["volunteer_candidates"] = int(scores.volunteer_candidate.sum())
    out["at_risk_members"] = int(at_risk_mask(scores).sum())
    out["engagement_median"] = round(float(scores.engagement_score.median()), 2) if len(scores) else float("nan")
    now, before = dues_to_date(dues, members, as_of), dues_to_date(dues, members, one_year_before(as_of))
    out["dues_paid_rate"] = round(now["rate"], 4)
    out["dues_paid_rate_same_day_last_year"] = round(before["rate"], 4)
    out["dues_collected_eur"] = round(now["eur"], 2)
    out["dues_collected_eur_same_day_last_year"] = round(before["eur"], 2)
    overall = metrics[(metrics.model == "dues_propensity") & (metrics.segment == "all")]
    if len(overall):
        latest = overall[overall.as_of == overall.as_of.max()].set_index("metric").value
        for metric, key in (("roc_auc", "model_auc"), ("ece", "model_ece")):
            if metric in latest.index:
                out[key] = round(float(latest[metric]), 4)
    return out


def campaign_trends(results: pd.DataFrame) -> dict[str, float]:
    """Each campaign's latest measured uplift, in points, under a key of its own (`uplift_points/<campaign>`)."""
    if len(results) and "stratum" in results.columns:  # the headline is the targeted audience, not exploration
        results = results[results.stratum == "targeted"]
    treated = results[(results.arm == "treatment") & results.uplift.notna()] if len(results) else results
    out = {}
    for campaign_id, rows in treated.groupby("campaign_id"):
        latest = rows.sort_values("cycle").iloc[-1]
        out[f"uplift_points/{campaign_id}"] = round(100 * float(latest.uplift), 2)
    return out


def dues_curve(dues: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Cumulative payers by day of the cycle, this cycle (to as_of) and last cycle (whole year)."""
    paid = dues[dues.paid.astype(bool) & dues.first_paid_on.notna()]
    frames = []
    for label, year, until in (("this year", as_of.year, as_of), ("last year", as_of.year - 1, None)):
        rows = paid[paid.dues_year == year]
        days = pd.to_datetime(rows.first_paid_on)
        days = days[days <= pd.Timestamp(until)] if until else days
        day_of_cycle = (days - pd.Timestamp(dt.date(year, 1, 1))).dt.days.clip(lower=0)
        counts = day_of_cycle.value_counts().sort_index().cumsum()
        frames.append(pd.DataFrame({"cycle": label, "day": counts.index, "payers": counts.to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def dues_curve_png(curve: pd.DataFrame, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    for label, rows in curve.groupby("cycle", sort=False):
        ax.step(rows.day, rows.payers, where="post", label=label, linestyle="-" if label == "this year" else "--")
    ax.set_xlim(0, 365)
    ax.set_xticks(np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30]),
                  ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"])
    ax.set_ylabel("members who paid")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return figure_png(fig)
