"""Targeting policies, and the exploration arm drawn outside them. Pure.

A kind's selection yields an *eligible pool* (for the dues sequence: unpaid members not reminded yet this
period). The campaign's policy (campaigns.yaml `targeting.policy`) picks the members it targets:

- `propensity`: the trigger's score at or above its threshold (the original rule);
- `uplift_top_k`: the k members of the period with the highest predicted uplift;
- `uplift_threshold`: predicted uplift x value per conversion > cost per message.

The targeted members then get the usual holdout. Of the members the policy leaves out, a deterministic hash
puts `exploration_share` in an exploration treatment (sent) and as many in an exploration control (withheld):
randomised data across the whole score range, which the uplift model and offline evaluation need. Both
strata go through the same audience rules afterwards (consent, suppressions, frequency cap...), so an
excluded member is never in any arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alumni_orchestration.campaigns.holdout import CONTROL, TREATMENT, holdout_uniform

POLICIES = ("propensity", "uplift_top_k", "uplift_threshold")
TARGETED, EXPLORED = "targeted", "explored"


@dataclass(frozen=True)
class Targeting:
    policy: str = "propensity"
    exploration_share: float = 0.0       # of the untargeted pool, sent; as many withheld
    top_k: int | None = None             # uplift_top_k: first messages per period
    cost_per_message_eur: float = 1.0    # uplift_threshold: what a message costs, attention included
    value_per_conversion_eur: float = 0.0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"targeting policy must be one of {POLICIES}, not {self.policy!r}")
        if not 0 <= self.exploration_share <= 0.25:
            raise ValueError("exploration_share must be in [0, 0.25]: the arms are two shares of the pool")
        if self.policy == "uplift_top_k" and not self.top_k:
            raise ValueError("uplift_top_k needs top_k")


def targeted_mask(targeting: Targeting, threshold: float, pool: pd.DataFrame, already_sent: int = 0) -> np.ndarray:
    """pool: score, predicted_uplift (NaN where the model has not scored the member). Which members the policy
    targets. Without any uplift score (no model yet) an uplift policy falls back on the propensity rule.
    already_sent: first messages already sent this period (they count towards top_k)."""
    score = pool.score.to_numpy(dtype=float)
    uplift = pool.predicted_uplift.to_numpy(dtype=float) if "predicted_uplift" in pool else np.full(len(pool), np.nan)
    if targeting.policy == "propensity" or np.isnan(uplift).all():
        return score >= threshold
    known = ~np.isnan(uplift)
    if targeting.policy == "uplift_threshold":
        return known & (uplift * targeting.value_per_conversion_eur > targeting.cost_per_message_eur)
    left = max(0, int(targeting.top_k) - already_sent)
    order = np.argsort(-np.where(known, uplift, -np.inf), kind="stable")[:left]
    mask = np.zeros(len(pool), dtype=bool)
    mask[order] = True
    return mask & known


def exploration_arms(member_ids: pd.Series, campaign_id: str, period: str, share: float) -> pd.Series:
    """'treatment' for about `share` of members, 'control' for as many, None for the rest: a hash of
    (member, campaign, period) independent of the holdout's."""
    u = np.fromiter((holdout_uniform(m, f"{campaign_id}:explore", period) for m in member_ids), dtype=float,
                    count=len(member_ids))
    arms = np.where(u < share, TREATMENT, np.where(u < 2 * share, CONTROL, None))
    return pd.Series(arms, index=member_ids.index, dtype=object)


def treatment_probability(stratum: pd.Series, arm: pd.Series, holdout_share: float,
                          exploration_share: float) -> np.ndarray:
    """The probability with which each ledger row's member landed in its arm, from the whole eligible pool:
    targeted members are always observed (treatment 1 - holdout, control holdout); untargeted ones are
    observed only in an exploration arm (each with probability exploration_share)."""
    targeted = stratum.to_numpy() == TARGETED
    treated = arm.to_numpy() == TREATMENT
    return np.where(targeted, np.where(treated, 1 - holdout_share, holdout_share), exploration_share)
