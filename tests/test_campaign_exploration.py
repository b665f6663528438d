"""The exploration arm and the targeting policies: pure, on small generated frames."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from alumni_orchestration.campaigns.audience import INCLUDED
from alumni_orchestration.campaigns.definitions import campaigns
from alumni_orchestration.campaigns.holdout import CONTROL, TREATMENT
from alumni_orchestration.campaigns.kinds import KINDS, OUTCOMES
from alumni_orchestration.campaigns.policies import EXPLORED, TARGETED, Targeting, targeted_mask
from alumni_orchestration.campaigns.send_window import PARIS
from alumni_orchestration.campaigns.waves import build_audience, wave_candidates

DUES = campaigns()["dues_reminder"]
AS_OF = dt.date(2026, 6, 15)
MOMENT = dt.datetime.combine(AS_OF, dt.time(0), PARIS)
N = 6000


def _history(propensity: np.ndarray, uplift: np.ndarray | None = None) -> pd.DataFrame:
    ids = np.arange(1, len(propensity) + 1)
    frames = [pd.DataFrame({"member_id": ids, "as_of": day, "engagement_score": 50.0, "dues_propensity": propensity,
                            "paid_current_cycle": False, **({"predicted_uplift": uplift} if uplift is not None else {})})
              for day in (AS_OF - dt.timedelta(days=1), AS_OF)]
    return pd.concat(frames, ignore_index=True)


def _members(rng: np.random.Generator) -> pd.DataFrame:
    """Members with about a fifth without consent, some suppressed or with an invalid address."""
    return pd.DataFrame({"member_id": np.arange(1, N + 1), "status": "active",
                         "consent_email": rng.random(N) > 0.2, "email_valid": rng.random(N) > 0.05,
                         "suppressed": rng.random(N) < 0.03, "paid_current_cycle": False})


def _capped_sends(member_ids: np.ndarray) -> pd.DataFrame:
    """Three marketing emails of another campaign in the last 30 days: at the frequency cap."""
    rows = [{"member_id": int(m), "campaign_id": "newsletter", "cycle": "", "period": "",
             "sent_at": pd.Timestamp(MOMENT - dt.timedelta(days=d)).tz_convert("UTC"), "marketing": True}
            for m in member_ids for d in (3, 10, 20)]
    return pd.DataFrame(rows)


def test_no_member_outside_consent_or_over_the_frequency_cap_is_ever_in_an_exploration_arm() -> None:
    rng = np.random.default_rng(3)
    history = _history(rng.uniform(0.0, 1.0, N))
    members = _members(rng)
    capped = np.arange(1, N + 1)[rng.random(N) < 0.15]
    empty_ledger = pd.DataFrame(columns=["member_id", "cycle", "period", "as_of", "step", "arm", "stratum"])
    candidates = wave_candidates(DUES, history, empty_ledger, AS_OF)
    audience = build_audience(DUES, candidates, members, _capped_sends(capped), AS_OF, MOMENT)

    explored = audience[audience.stratum == EXPLORED]
    in_arm = explored[explored.arm.notna()]
    no_consent = set(members.member_id[~members.consent_email])
    blocked = no_consent | set(capped) | set(members.member_id[members.suppressed | ~members.email_valid])
    assert not set(in_arm.member_id) & blocked
    assert (explored[explored.member_id.isin(no_consent)].reason == "no_consent").all()
    assert set(explored[explored.member_id.isin(capped) & ~explored.member_id.isin(no_consent)].reason) <= {
        "frequency_cap", "no_valid_email", "suppressed"}
    # Both arms exist, about the configured share each, outside the targeting rule only.
    share = DUES.targeting.exploration_share
    below = int((history[history.as_of == AS_OF].dues_propensity < 0.5).sum())
    assert {TREATMENT, CONTROL} <= set(in_arm.arm)
    assert abs(len(explored) / below - 2 * share) < 0.02
    assert (explored.score < 0.5).all() and (audience[audience.stratum == TARGETED].score >= 0.5).all()


def test_exploration_is_deterministic_and_independent_of_the_holdout() -> None:
    rng = np.random.default_rng(5)
    history = _history(rng.uniform(0.0, 1.0, N))
    empty_ledger = pd.DataFrame(columns=["member_id", "cycle", "period", "as_of", "step", "arm", "stratum"])
    first = wave_candidates(DUES, history, empty_ledger, AS_OF)
    again = wave_candidates(DUES, history.sample(frac=1.0, random_state=1), empty_ledger, AS_OF)
    key = ["member_id", "stratum", "explore_arm"]
    pd.testing.assert_frame_equal(first[key].sort_values("member_id", ignore_index=True),
                                  again[key].sort_values("member_id", ignore_index=True))


def test_a_later_reminder_keeps_the_explored_members_arm() -> None:
    history = _history(np.full(20, 0.47))  # within the margin: follow-ups are due
    earlier = pd.DataFrame({"member_id": range(1, 21), "step": 1, "as_of": pd.Timestamp("2026-06-01"),
                            "period": "2026", "cycle": "2026-r1", "stratum": EXPLORED,
                            "arm": [CONTROL if m % 2 else TREATMENT for m in range(1, 21)]})
    found = wave_candidates(DUES, history, earlier, AS_OF).set_index("member_id")
    assert (found.step == 2).all() and (found.stratum == EXPLORED).all()
    assert found.explore_arm.to_dict() == {m: CONTROL if m % 2 else TREATMENT for m in range(1, 21)}
    members = pd.DataFrame({"member_id": range(1, 21), "status": "active", "consent_email": True,
                            "email_valid": True, "suppressed": False, "paid_current_cycle": False})
    sends = pd.DataFrame({"member_id": pd.Series(dtype="int64"), "campaign_id": pd.Series(dtype=object),
                          "cycle": pd.Series(dtype=object), "period": pd.Series(dtype=object),
                          "sent_at": pd.Series(dtype="datetime64[ns, UTC]"), "marketing": pd.Series(dtype=bool)})
    audience = build_audience(DUES, found.reset_index(), members, sends, AS_OF, MOMENT).set_index("member_id")
    assert (audience.reason == INCLUDED).all()
    assert audience.arm.to_dict() == found.explore_arm.to_dict()


def test_uplift_policies_rank_on_predicted_uplift_and_fall_back_without_a_model() -> None:
    pool = pd.DataFrame({"score": [0.9, 0.4, 0.6, 0.3], "predicted_uplift": [0.001, 0.08, 0.03, np.nan]})
    top = Targeting(policy="uplift_top_k", top_k=3)
    assert targeted_mask(top, 0.5, pool).tolist() == [True, True, True, False]
    assert targeted_mask(top, 0.5, pool, already_sent=1).tolist() == [False, True, True, False]
    threshold = Targeting(policy="uplift_threshold", value_per_conversion_eur=90, cost_per_message_eur=2.0)
    assert targeted_mask(threshold, 0.5, pool).tolist() == [False, True, True, False]  # 0.03 x 90 > 2
    no_model = pool.assign(predicted_uplift=np.nan)
    assert targeted_mask(threshold, 0.5, no_model).tolist() == [True, False, True, False]


def test_every_campaign_names_a_registered_kind_and_outcome() -> None:
    for campaign in campaigns().values():
        assert campaign.kind in KINDS.values()
        assert campaign.outcome in OUTCOMES
    assert DUES.kind.name == "sequence" and campaigns()["reengagement"].kind.name == "crossing"
    with pytest.raises(ValueError, match="exploration_share"):
        dataclasses.replace(DUES.targeting, exploration_share=0.4)
