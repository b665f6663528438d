"""The uplift learners, the Qini measures and the offline policy evaluation, on small generated data (pure, fast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alumni_orchestration.campaigns.evaluation import estimate_policy
from alumni_orchestration.campaigns.policies import EXPLORED, TARGETED
from alumni_orchestration.scoring.uplift import (
    CANDIDATES,
    MODEL_NAME,
    WEIGHT,
    SLearner,
    XLearner,
    bootstrap_qini,
    fit_uplift_model,
    one_standard_error_choice,
    qini_coefficient,
    randomised_rows,
)


def _randomised(n: int, seed: int, holdout: float = 0.1) -> tuple[pd.DataFrame, np.ndarray]:
    """Members with two features; paying anyway depends on x1, the reminder's effect on x2 (0.25 where x2 > 0)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    effect = np.where(x2 > 0, 0.25, 0.0)
    explored = rng.random(n) < 0.4
    p_treat = np.where(explored, 0.5, 1 - holdout)
    treated = (rng.random(n) < p_treat).astype(float)
    base = 1 / (1 + np.exp(-(x1 - 0.5)))
    paid = (rng.random(n) < np.clip(base * 0.6 + treated * effect, 0, 1)).astype(float)
    frame = pd.DataFrame({"member_id": np.arange(n), "cycle": np.where(np.arange(n) < n // 2, 2024, 2025),
                          "treated": treated, "p_treat": p_treat, "paid": paid, "x1": x1, "x2": x2})
    return frame, effect


def test_the_chosen_learner_finds_who_the_reminder_moves_and_reports_its_metrics() -> None:
    data, effect = _randomised(4000, seed=1)
    oracle = pd.Series(effect, index=pd.MultiIndex.from_arrays([data.member_id, data.cycle]))
    model, report = fit_uplift_model(data, ["x1", "x2"], seed=0, oracle=oracle)
    assert report.chosen in CANDIDATES and report.validation == "each of cycles 2024, 2025"
    metrics = report.metrics[report.metrics.model == MODEL_NAME].set_index("metric").value
    assert {"qini", "auuc", "oracle_qini", "spearman_true_effect"} <= set(metrics.index)
    assert metrics.qini > 0.005 and metrics.spearman_true_effect > 0.3
    predicted = model.predict(np.column_stack([np.zeros(2), [-1.0, 1.0]]))
    assert predicted[1] - predicted[0] > 0.1  # the member with x2 > 0 is the one moved
    assert report.data_hash == fit_uplift_model(data, ["x1", "x2"], seed=0)[1].data_hash


def test_qini_ranks_a_perfect_score_above_a_random_one() -> None:
    data, effect = _randomised(6000, seed=2)
    args = data.treated.to_numpy(), data.paid.to_numpy(), data.p_treat.to_numpy()
    perfect = qini_coefficient(effect, *args)
    shuffled = qini_coefficient(np.random.default_rng(0).random(len(effect)), *args)
    assert perfect > 0.02 and abs(shuffled) < perfect / 2


def test_too_little_randomised_data_is_refused_in_a_sentence() -> None:
    data, _ = _randomised(100, seed=3)
    with pytest.raises(ValueError, match="at least 200 randomised members"):
        fit_uplift_model(data, ["x1", "x2"])


def test_the_offline_estimate_covers_the_true_incremental_outcomes_of_a_policy() -> None:
    """A pool of 8,000, a policy targeting the top propensity, 10% holdout and 5% + 5% exploration: the estimate of
    another policy's incremental payments at equal volume covers the pool's true value in most draws."""
    covered, n, holdout, share = 0, 8000, 0.1, 0.05
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        propensity = rng.random(n)
        effect = 0.3 * propensity * (1 - propensity) * 2 * rng.random(n)
        targeted = propensity >= 0.7
        u = rng.random(n)
        arm = np.where(targeted, np.where(u < holdout, "control", "treatment"),
                       np.where(u < share, "treatment", np.where(u < 2 * share, "control", None)))
        paid_anyway = rng.random(n) < propensity * 0.5
        moved = rng.random(n) < effect
        outcome = (paid_anyway | ((arm == "treatment") & moved)).astype(float)
        observed = arm != None  # noqa: E711 - numpy elementwise
        records = pd.DataFrame({"member_id": np.arange(n), "cycle": "2025", "arm": arm,
                                "stratum": np.where(targeted, TARGETED, EXPLORED), "outcome": outcome})[observed]
        volume = int(targeted.sum())
        score = -np.abs(propensity - 0.5)  # a policy aiming at the middle, not the one in force
        estimate = estimate_policy(records, score[observed], volume, holdout, share)
        top = np.argsort(-score, kind="stable")[:volume]
        true_value = float((moved & ~paid_anyway)[top].sum())
        covered += estimate.low <= true_value <= estimate.high
    assert covered >= 10


def _arrays(frame: pd.DataFrame):
    return (frame[["x1", "x2"]].to_numpy(), frame.treated.to_numpy(), frame.paid.to_numpy(), frame.p_treat.to_numpy())


def test_the_x_learner_finds_who_the_reminder_moves() -> None:
    data, _ = _randomised(6000, seed=4)
    model = XLearner(seed=0).fit(*_arrays(data))
    predicted = model.predict(np.column_stack([np.zeros(2), [-1.0, 1.0]]))
    assert predicted[1] - predicted[0] > 0.1
    assert 0.05 < model.g < 0.95  # the blend weight is the share of treated rows


def test_the_s_learner_moves_members_near_even_odds_most_and_sure_things_least() -> None:
    """A reminder that shifts everyone's log-odds by the same amount: the shared-baseline S-learner predicts the
    largest effect for members who were near even odds, little for sure things and lost causes."""
    rng = np.random.default_rng(5)
    n = 8000
    x1, x2 = rng.normal(scale=2.0, size=n), rng.normal(size=n)
    treated = (rng.random(n) < 0.7).astype(float)
    paid = (rng.random(n) < 1 / (1 + np.exp(-(x1 + 0.8 * treated)))).astype(float)
    model = SLearner(seed=0).fit(np.column_stack([x1, x2]), treated, paid, np.full(n, 0.7))
    lost, even, sure = model.predict(np.column_stack([[-4.0, -0.4, 4.0], np.zeros(3)]))
    assert even > 0.12 and even > 3 * max(lost, sure)


def test_the_one_standard_error_rule_keeps_the_constrained_learner_unless_another_is_clearly_better() -> None:
    noisy = {"constrained": np.array([0.010, 0.012, 0.008]), "flexible": np.array([0.020, 0.002, 0.014])}
    chosen, errors = one_standard_error_choice({"constrained": 0.010, "flexible": 0.012}, noisy)
    assert chosen == "constrained" and errors["flexible"] == 0.0 and errors["constrained"] > 0.002
    clear = {"constrained": np.array([0.010, 0.011, 0.009]), "flexible": np.array([0.030, 0.031, 0.029])}
    assert one_standard_error_choice({"constrained": 0.010, "flexible": 0.030}, clear)[0] == "flexible"


def test_bootstrap_qinis_are_paired_and_centred_on_the_qini() -> None:
    data, effect = _randomised(4000, seed=6)
    args = data.treated.to_numpy(), data.paid.to_numpy(), data.p_treat.to_numpy()
    resampled = bootstrap_qini({"a": effect, "same": effect.copy(), "random": np.arange(len(effect)) % 7}, *args)
    assert np.array_equal(resampled["a"], resampled["same"])  # the same score on the same resamples
    assert abs(resampled["a"].mean() - qini_coefficient(effect, *args)) < 2 * resampled["a"].std()
    assert np.mean(resampled["a"] > resampled["random"]) > 0.9


def test_rows_weighted_by_the_members_they_stand_for() -> None:
    """A constant weight changes nothing; weighting the explored rows up measures the pool they were drawn from."""
    data, effect = _randomised(6000, seed=7)
    args = data.treated.to_numpy(), data.paid.to_numpy(), data.p_treat.to_numpy()
    assert qini_coefficient(effect, *args, np.full(len(effect), 3.0)) == pytest.approx(qini_coefficient(effect, *args))
    explored = data.p_treat.to_numpy() == 0.5
    weighted = qini_coefficient(effect, *args, np.where(explored, 10.0, 1.0))
    assert weighted != pytest.approx(qini_coefficient(effect, *args))

    outcomes = pd.DataFrame({"member_id": [1, 2, 3], "dues_year": [2024, 2024, 2025], "step": 1,
                             "stratum": ["targeted", "explored", "explored"], "arm": ["treatment", "control", "treatment"],
                             "days_to_dues_paid": [3.0, None, None], "score": [0.6, 0.2, 0.3],
                             "as_of": pd.Timestamp("2024-03-02")})
    rows = randomised_rows(outcomes, 0.1, 2026, exploration_share=0.05)
    assert rows[WEIGHT].tolist() == [1.0, 10.0, 10.0] and rows.p_treat.tolist() == [0.9, 0.5, 0.5]
    assert WEIGHT not in randomised_rows(outcomes, 0.1, 2026).columns
