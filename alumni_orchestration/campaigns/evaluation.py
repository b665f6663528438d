"""Offline policy evaluation: what a targeting policy would have achieved, from past randomised arms only. Pure.

Every ledger row of a sequence campaign's first message belongs to a randomised arm drawn with a known
probability from the cycle's eligible pool:

- targeted stratum (the policy in force): always observed; treatment with probability 1 - holdout;
- explored stratum (outside the policy): observed with probability 2 x exploration share; each arm with
  probability exploration share.

A policy P sending `volume` messages treats the top of its score. The Horvitz-Thompson estimate of its
incremental outcomes is the sum, over the observed rows in that top, of outcome x (T / pi_T - C / pi_C),
and the top itself is found by the same weights (each observed row stands for 1 / P(observed) members).
The variance is the Poisson-sampling one, sum of (1 - pi) x contribution^2: an approximation that ignores
that the arms are drawn jointly (they are exclusive), so the intervals are on the conservative side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alumni_orchestration.campaigns.holdout import TREATMENT
from alumni_orchestration.campaigns.policies import TARGETED

Z_95 = 1.959963984540054
RECORD_COLUMNS = ["member_id", "cycle", "stratum", "arm", "outcome"]


@dataclass(frozen=True)
class PolicyEstimate:
    policy: str
    volume: float
    incremental: float
    low: float
    high: float

    @property
    def per_100(self) -> tuple[float, float, float]:
        scale = 100.0 / self.volume if self.volume else float("nan")
        return self.incremental * scale, self.low * scale, self.high * scale


def arm_probability(stratum: pd.Series, arm: pd.Series, holdout_share: float, exploration_share: float) -> np.ndarray:
    """The probability, from the whole eligible pool, of each row's member being in its arm."""
    targeted = stratum.to_numpy() == TARGETED
    treated = arm.to_numpy() == TREATMENT
    return np.where(targeted, np.where(treated, 1 - holdout_share, holdout_share), exploration_share)


def observed_probability(stratum: pd.Series, exploration_share: float) -> np.ndarray:
    return np.where(stratum.to_numpy() == TARGETED, 1.0, 2 * exploration_share)


def estimate_policy(records: pd.DataFrame, score: pd.Series | np.ndarray, volume: float, holdout_share: float,
                    exploration_share: float, policy: str = "", z: float = Z_95) -> PolicyEstimate:
    """records: RECORD_COLUMNS (one cycle's randomised first messages); score: the policy's score per row
    (higher first). The incremental outcomes of sending `volume` messages by that score, with a 95% interval."""
    score = np.asarray(score, dtype=float)
    order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
    rows = records.iloc[order]
    stands_for = 1.0 / observed_probability(rows.stratum, exploration_share)
    reached = np.cumsum(stands_for) - stands_for / 2 <= volume  # a row is in the top if its middle is
    pi = arm_probability(rows.stratum, rows.arm, holdout_share, exploration_share)
    sign = np.where(rows.arm.to_numpy() == TREATMENT, 1.0, -1.0)
    contribution = rows.outcome.to_numpy(dtype=float) * sign / pi
    estimate = float(contribution[reached].sum())
    half = z * float(np.sqrt(((1 - pi[reached]) * contribution[reached] ** 2).sum()))
    return PolicyEstimate(policy, float(volume), estimate, estimate - half, estimate + half)


def eligible_pool_size(records: pd.DataFrame, exploration_share: float) -> float:
    """How many members the cycle's eligible pool held, estimated from the observed rows."""
    return float((1.0 / observed_probability(records.stratum, exploration_share)).sum())


def compare_policies(records: pd.DataFrame, scores: dict[str, np.ndarray], volume: float, holdout_share: float,
                     exploration_share: float) -> pd.DataFrame:
    """One row per policy: incremental outcomes at `volume` messages, with its interval, and per 100 messages."""
    rows = []
    for name, score in scores.items():
        e = estimate_policy(records, score, volume, holdout_share, exploration_share, name)
        per, low, high = e.per_100
        rows.append({"policy": name, "volume": round(volume), "incremental": e.incremental, "ci_low": e.low,
                     "ci_high": e.high, "per_100_messages": per, "per_100_low": low, "per_100_high": high})
    return pd.DataFrame(rows)


def random_score(member_ids: pd.Series, cycle: str) -> np.ndarray:
    """A fixed pseudo-random ranking (random targeting), reproducible."""
    from alumni_orchestration.campaigns.holdout import holdout_uniform

    return np.fromiter((holdout_uniform(m, "random-policy", cycle) for m in member_ids), dtype=float,
                       count=len(member_ids))


def policy_volume(records: pd.DataFrame, selected: np.ndarray, exploration_share: float) -> float:
    """How many members of the eligible pool a policy would message, estimated from the observed rows."""
    return float((selected / observed_probability(records.stratum, exploration_share)).sum())


def policy_report(records: pd.DataFrame, targeting, threshold: float, holdout_share: float) -> pd.DataFrame:
    """Each named policy's incremental outcomes per 100 messages, at the volume it would send, per period.
    records: RECORD_COLUMNS + period, score (the propensity at the wave), predicted_uplift (NaN without a model).
    targeting: the campaign's policies.Targeting (top_k, value and cost per message)."""
    rows = []
    e = targeting.exploration_share
    for period, group in records.groupby("period"):
        group = group.reset_index(drop=True)
        uplift = group.predicted_uplift.to_numpy(dtype=float)
        policies = {"propensity": (group.score.to_numpy(dtype=float),
                                   policy_volume(group, group.score.to_numpy(dtype=float) >= threshold, e)),
                    "random": (random_score(group.member_id, str(period)), None)}
        if not np.isnan(uplift).all():
            policies["uplift_top_k"] = (uplift, float(targeting.top_k or 0))
            worth = uplift * targeting.value_per_conversion_eur > targeting.cost_per_message_eur
            policies["uplift_threshold"] = (uplift, policy_volume(group, worth, e))
        current = policies["propensity"][1]
        for name, (score, volume) in policies.items():
            volume = current if volume is None else volume  # random: at the current policy's volume
            if not volume:
                continue
            estimate = estimate_policy(group, score, volume, holdout_share, e, name)
            per, low, high = estimate.per_100
            rows.append({"period": period, "policy": name, "messages": round(volume),
                         "incremental": estimate.incremental, "per_100_messages": per, "per_100_low": low,
                         "per_100_high": high})
    return pd.DataFrame(rows, columns=["period", "policy", "messages", "incremental", "per_100_messages",
                                       "per_100_low", "per_100_high"])
