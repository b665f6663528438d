"""Deterministic random holdout: the same (member, campaign, cycle) always lands in the same arm."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

TREATMENT, CONTROL = "treatment", "control"


def holdout_uniform(member_id: int | str, campaign_id: str, cycle: str) -> float:
    digest = hashlib.sha256(f"{member_id}:{campaign_id}:{cycle}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_arms(member_ids: pd.Series, campaign_id: str, cycle: str, holdout_share: float) -> pd.Series:
    """'control' for about `holdout_share` of members, 'treatment' for the rest."""
    u = np.fromiter((holdout_uniform(m, campaign_id, cycle) for m in member_ids), dtype=float, count=len(member_ids))
    return pd.Series(np.where(u < holdout_share, CONTROL, TREATMENT), index=member_ids.index)
