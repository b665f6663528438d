"""What a campaign achieved: per campaign, cycle, stratum and arm, the funnel and the outcomes, and the
uplift of treatment over control with a 95% two-proportion confidence interval (Newcombe). Pure.

The outcome of a cycle is "retained": the campaign's declared outcome (campaigns.yaml `outcome`, a
days_to_<outcome> column of the campaign_member_outcomes mart) within N days of the send (control
members: of their held-out date). ROI compares the incremental members retained, valued at what
acquiring a member would otherwise cost, with the cost of the emails sent. The targeted and the
explored strata are kept apart: their arms are drawn with different probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

Z_95 = 1.959963984540054
RESULT_COLUMNS = ["campaign_id", "cycle", "stratum", "arm", "audience", "sent", "delivered", "unique_opens", "clicks",
                  "unsubscribes", "spam_reports", "retained", "retention_rate", "revenue_eur", "uplift",
                  "uplift_ci_low", "uplift_ci_high", "incremental_retained", "cost_eur",
                  "cost_per_incremental_retained_eur", "roi", "reaction_rate"]


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


def outcomes_within_window(mart: pd.DataFrame, outcome_of: dict[str, str], window_days: int,
                           delivered_statuses: tuple[str, ...]) -> pd.DataFrame:
    """The campaign_member_outcomes mart -> campaign_results' input: `retained` is the campaign's declared
    outcome (outcome_of: campaign_id -> 'dues_paid' | 'reengaged') seen within `window_days` of the wave;
    revenue counts dues paid within the window."""
    if mart.empty:
        return pd.DataFrame(columns=["campaign_id", "cycle", "member_id", "stratum", "arm", "sent", "delivered",
                                     "opened", "clicked", "unsubscribed", "spam_reported", "retained", "revenue_eur"])
    within = {o: pd.to_numeric(mart[f"days_to_{o}"], errors="coerce").lt(window_days).to_numpy()
              for o in set(outcome_of.values())}
    outcome = mart.campaign_id.map(outcome_of)
    retained = pd.Series(False, index=mart.index)
    for name, hit in within.items():
        retained |= (outcome == name).to_numpy() & hit
    paid_in_window = pd.to_numeric(mart.days_to_dues_paid, errors="coerce").lt(window_days).to_numpy()
    return mart.assign(sent=mart.status.isin(delivered_statuses), retained=retained.to_numpy(),
                       revenue_eur=mart.dues_revenue_eur.astype(float).where(paid_in_window, 0.0),
                       stratum=mart.stratum.fillna("targeted"))


def campaign_results(members: pd.DataFrame, costs: Costs) -> pd.DataFrame:
    """members: one row per (campaign_id, cycle, member_id) of the ledger with arm, stratum (default targeted),
    sent (bool), delivered, opened (human opens only), clicked, unsubscribed, spam_reported, retained (bool),
    revenue_eur. Returns one row per campaign, cycle, stratum and arm."""
    if members.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    if "stratum" not in members:
        members = members.assign(stratum="targeted")
    flags = ["sent", "delivered", "opened", "clicked", "unsubscribed", "spam_reported", "retained"]
    keys = ["campaign_id", "cycle", "stratum", "arm"]
    grouped = members.assign(**{f: members[f].astype(bool) for f in flags}).groupby(keys)
    out = grouped.agg(audience=("member_id", "size"), sent=("sent", "sum"), delivered=("delivered", "sum"),
                      unique_opens=("opened", "sum"), clicks=("clicked", "sum"),
                      unsubscribes=("unsubscribed", "sum"), spam_reports=("spam_reported", "sum"),
                      retained=("retained", "sum"), revenue_eur=("revenue_eur", "sum")).reset_index()
    out["retention_rate"] = out.retained / out.audience
    out["reaction_rate"] = (out.clicks / out.sent.where(out.sent > 0)).astype(float)  # clicks per message sent
    rows = []
    for (campaign_id, cycle, stratum), arms in out.groupby(["campaign_id", "cycle", "stratum"]):
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
            rows.append({**row.to_dict(), "campaign_id": campaign_id, "cycle": cycle, "stratum": stratum, "arm": arm,
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
    if "stratum" in treated:  # the truth is an audience's mean effect: the targeted audience's
        treated = treated[treated.stratum == "targeted"]
    rows = [{"campaign_id": r.campaign_id, "cycle": r.cycle, "audience": int(r.audience) + int(
                results[(results.campaign_id == r.campaign_id) & (results.cycle == r.cycle)
                        & (results.get("stratum", "targeted") == "targeted")
                        & (results.arm == "control")].audience.sum()),
             "uplift": r.uplift, "uplift_ci_low": r.uplift_ci_low, "uplift_ci_high": r.uplift_ci_high,
             "true_uplift": true_uplift[(r.campaign_id, r.cycle)],
             "covered": bool(r.uplift_ci_low <= true_uplift[(r.campaign_id, r.cycle)] <= r.uplift_ci_high)}
            for r in treated.itertuples() if (r.campaign_id, r.cycle) in true_uplift]
    return pd.DataFrame(rows, columns=["campaign_id", "cycle", "audience", "uplift", "uplift_ci_low", "uplift_ci_high",
                                       "true_uplift", "covered"])
