"""What a campaign achieved: per campaign, cycle and arm, the funnel and the outcomes, and the
uplift of treatment over control with a 95% two-proportion confidence interval (Newcombe). Pure.

The outcome of a cycle is "retained": for a dues reminder, dues paid within N days of the send
(control members: of their held-out date); for re-engagement, any activity (click, event, vote,
dues...) within N days. ROI compares the incremental members retained, valued at what acquiring
a member would otherwise cost, with the cost of the emails sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

Z_95 = 1.959963984540054
RESULT_COLUMNS = ["campaign_id", "cycle", "arm", "audience", "sent", "delivered", "unique_opens", "clicks",
                  "unsubscribes", "spam_reports", "retained", "retention_rate", "revenue_eur", "uplift",
                  "uplift_ci_low", "uplift_ci_high", "incremental_retained", "cost_eur",
                  "cost_per_incremental_retained_eur", "roi"]


@dataclass(frozen=True)
class Costs:
    per_email_eur: float = 0.002          # what one email costs to send
    retain_member_eur: float = 1.0        # the seed documents: 1 € to keep a member ...
    acquire_member_eur: float = 9.0       # ... against 9 € to recruit one

    @property
    def retention_vs_acquisition(self) -> float:
        return self.acquire_member_eur / self.retain_member_eur


def wilson_interval(x: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for one proportion: sound at 0 or n successes and in small arms."""
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_uplift(x_t: int, n_t: int, x_c: int, n_c: int, z: float = Z_95) -> tuple[float, float, float]:
    """p_t - p_c with Newcombe's hybrid score interval (his method 10), built from both arms' Wilson
    intervals. Unlike the Wald interval it keeps its coverage when an arm is small or has no
    successes, as a campaign's control arm often does. NaN where an arm is empty."""
    if n_t == 0 or n_c == 0:
        return math.nan, math.nan, math.nan
    p_t, p_c = x_t / n_t, x_c / n_c
    (low_t, high_t), (low_c, high_c) = wilson_interval(x_t, n_t, z), wilson_interval(x_c, n_c, z)
    uplift = p_t - p_c
    return (uplift, uplift - math.sqrt((p_t - low_t) ** 2 + (high_c - p_c) ** 2),
            uplift + math.sqrt((high_t - p_t) ** 2 + (p_c - low_c) ** 2))


def campaign_results(members: pd.DataFrame, costs: Costs) -> pd.DataFrame:
    """members: one row per (campaign_id, cycle, member_id) of the ledger with arm, sent (bool), delivered,
    opened (human opens only), clicked, unsubscribed, spam_reported, retained (bool), revenue_eur.
    Returns one row per campaign, cycle and arm."""
    if members.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    flags = ["sent", "delivered", "opened", "clicked", "unsubscribed", "spam_reported", "retained"]
    grouped = members.assign(**{f: members[f].astype(bool) for f in flags}).groupby(["campaign_id", "cycle", "arm"])
    out = grouped.agg(audience=("member_id", "size"), sent=("sent", "sum"), delivered=("delivered", "sum"),
                      unique_opens=("opened", "sum"), clicks=("clicked", "sum"),
                      unsubscribes=("unsubscribed", "sum"), spam_reports=("spam_reported", "sum"),
                      retained=("retained", "sum"), revenue_eur=("revenue_eur", "sum")).reset_index()
    out["retention_rate"] = out.retained / out.audience
    rows = []
    for (campaign_id, cycle), arms in out.groupby(["campaign_id", "cycle"]):
        by_arm = arms.set_index("arm")
        t = by_arm.loc["treatment"] if "treatment" in by_arm.index else None
        c = by_arm.loc["control"] if "control" in by_arm.index else None
        uplift, low, high = two_proportion_uplift(
            int(t.retained) if t is not None else 0, int(t.audience) if t is not None else 0,
            int(c.retained) if c is not None else 0, int(c.audience) if c is not None else 0)
        incremental = uplift * (int(t.audience) if t is not None else 0)
        cost = (int(t.sent) if t is not None else 0) * costs.per_email_eur
        value = incremental * costs.acquire_member_eur
        for arm, row in by_arm.iterrows():
            treated = arm == "treatment"
            rows.append({**row.to_dict(), "campaign_id": campaign_id, "cycle": cycle, "arm": arm,
                         "uplift": uplift if treated else math.nan,
                         "uplift_ci_low": low if treated else math.nan,
                         "uplift_ci_high": high if treated else math.nan,
                         "incremental_retained": incremental if treated else math.nan,
                         "cost_eur": cost if treated else 0.0,
                         "cost_per_incremental_retained_eur": cost / incremental
                         if treated and incremental and incremental > 0 else math.nan,
                         "roi": (value - cost) / cost if treated and cost else math.nan})
    return pd.DataFrame(rows)[RESULT_COLUMNS]


def against_truth(results: pd.DataFrame, true_uplift: dict[tuple[str, str], float]) -> pd.DataFrame:
    """Each estimated uplift beside the true one (known only in a simulated world), and whether the
    95% interval covers it."""
    treated = results[(results.arm == "treatment") & results.uplift.notna()]
    rows = [{"campaign_id": r.campaign_id, "cycle": r.cycle, "audience": int(r.audience) + int(
                results[(results.campaign_id == r.campaign_id) & (results.cycle == r.cycle)
                        & (results.arm == "control")].audience.sum()),
             "uplift": r.uplift, "uplift_ci_low": r.uplift_ci_low, "uplift_ci_high": r.uplift_ci_high,
             "true_uplift": true_uplift[(r.campaign_id, r.cycle)],
             "covered": bool(r.uplift_ci_low <= true_uplift[(r.campaign_id, r.cycle)] <= r.uplift_ci_high)}
            for r in treated.itertuples() if (r.campaign_id, r.cycle) in true_uplift]
    return pd.DataFrame(rows, columns=["campaign_id", "cycle", "audience", "uplift", "uplift_ci_low", "uplift_ci_high",
                                       "true_uplift", "covered"])
