"""Successive dues-reminder cycles in the simulated world: propensity targeting with exploration first, then the
learned uplift policy; incremental payments at equal volume for the oracle, uplift, propensity and random
policies; the offline (IPW) estimate of each beside the simulated value.

This simulates the cycles directly from the generator's truth rather than through Dagster runs (a 20,000-member
association through dbt, the models, the sensors and the sandbox for four dues years would take hours here).
The product code is the real one: the audience rules (consent, address, status), the targeting policies, the
holdout and exploration draws, the uplift learners and their Qini selection, and the offline estimator. What is
simplified: one wave per cycle to the whole eligible pool (no spring timing, no follow-up reminders), and the
features are observable proxies drawn from the truth (past payments, newsletter opens and clicks with machine
opens, events, life stage, tier), not the warehouse's point-in-time features.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alumni_orchestration.campaigns.audience import INCLUDED, audience_reasons
from alumni_orchestration.campaigns.definitions import campaigns
from alumni_orchestration.campaigns.evaluation import estimate_policy, random_score
from alumni_orchestration.campaigns.holdout import TREATMENT, assign_arms
from alumni_orchestration.campaigns.policies import (
    EXPLORED,
    TARGETED,
    Targeting,
    exploration_arms,
    targeted_mask,
)
from alumni_orchestration.sandbox.world import reminded_to_pay
from alumni_orchestration.scoring.dues_model import candidates as propensity_candidates
from alumni_orchestration.scoring.uplift import CANDIDATES, LABEL_COLUMNS, WEIGHT, fit_uplift_model, learner
from alumni_orchestration.synthetic.behaviour import dues_reminder_uplift, hash_uniform
from alumni_orchestration.synthetic.taxonomy import LIFE_STAGES

POLICIES = ("oracle", "uplift", "propensity", "random")
CAMPAIGN = "dues_reminder"


@dataclass(frozen=True)
class SimConfig:
    cycles: tuple[int, ...] = (2023, 2024, 2025, 2026)
    learned_from: int = 2025          # cycles from this one use the learned uplift policy
    holdout_share: float = 0.10
    exploration_share: float = 0.05
    early_exploration_share: float | None = None  # the share before `learned_from` (None: exploration_share)
    threshold: float = 0.5            # the propensity rule
    value_per_conversion_eur: float = 90.0  # uplift_threshold: campaigns.yaml's dues_reminder (annual dues) ...
    cost_per_message_eur: float = 2.0       # ... and its cost per message

    def exploration(self, cycle: int) -> float:
        early = self.early_exploration_share
        return self.exploration_share if early is None or cycle >= self.learned_from else early


@dataclass
class World:
    seed: int
    members: pd.DataFrame             # indexed by member_id
    p_pay: pd.DataFrame               # member_id x dues_year
    paid: pd.DataFrame                # member_id x dues_year: the generator's draws (no reminder)


def load_world(data_dir: Path) -> World:
    seed = int(json.loads((data_dir / "manifest.json").read_text())["config"]["seed"])
    truth = pd.read_csv(data_dir / "ground_truth" / "members.csv", dtype={"email": str}).set_index("member_id")
    with sqlite3.connect(data_dir / "membership.sqlite") as conn:
        consent = pd.read_sql("select member_id, consent_email from members", conn).set_index("member_id")
    members = truth.join(consent, how="left")
    dues = pd.read_csv(data_dir / "ground_truth" / "dues_probabilities.csv")
    return World(seed, members, dues.pivot(index="member_id", columns="dues_year", values="p_pay"),
                 dues.pivot(index="member_id", columns="dues_year", values="paid"))


def draw(world: World, ids: np.ndarray, cycle: int, purpose: str) -> np.ndarray:
    return hash_uniform(world.seed, ids.astype(np.uint64), cycle, purpose)


def observable_features(world: World, ids: np.ndarray, cycle: int, observed_paid: pd.DataFrame) -> pd.DataFrame:
    """What the warehouse would see before `cycle`: payments of the three previous cycles, a year of newsletter
    opens (machine openers open everything) and clicks, events, life stage and tier."""
    m = world.members.loc[ids]
    out = pd.DataFrame(index=pd.Index(ids, name="member_id"))
    for lag in (1, 2, 3):
        year = cycle - lag
        out[f"paid_lag{lag}"] = observed_paid[year].reindex(ids).fillna(0).to_numpy() if year in observed_paid else 0.0
    rng = np.random.default_rng([world.seed, cycle])
    opens = rng.binomial(12, m.open_prob.clip(0, 1).to_numpy())
    out["opens_365"] = np.where(m.machine_opener.to_numpy() == 1, 12, opens)
    click_given_open = (m.click_prob / m.open_prob.clip(lower=1e-6)).clip(0, 1).to_numpy()
    out["clicks_365"] = rng.binomial(opens, click_given_open)
    out["events_365"] = rng.poisson(4.5 * m.attachment.to_numpy() ** 2)
    for stage in LIFE_STAGES:
        out[f"segment_{stage}"] = (m.life_stage.to_numpy() == stage).astype(float)
    for tier in ("reduced", "student"):
        out[f"tier_{tier}"] = (m.dues_tier.to_numpy() == tier).astype(float)
    return out


def eligible_pool(world: World, cycle: int) -> np.ndarray:
    """Members of the cycle who may receive a reminder, by the campaign's real audience rules."""
    m = world.members[world.members.index.isin(world.p_pay[cycle].dropna().index)]
    m = m[m.dues_tier != "lifetime"]
    people = pd.DataFrame({"member_id": m.index, "status": m.status.to_numpy(),
                           "consent_email": m.consent_email.fillna(0).astype(bool).to_numpy(),
                           "email_valid": m.email.fillna("").str.strip().ne("").to_numpy(), "suppressed": False,
                           "paid_current_cycle": False})
    sends = pd.DataFrame({"member_id": pd.Series(dtype="int64"), "campaign_id": pd.Series(dtype=object),
                          "sent_at": pd.Series(dtype="datetime64[ns, UTC]"), "marketing": pd.Series(dtype=bool)})
    reasons = audience_reasons(people, sends, CAMPAIGN, pd.Timestamp(f"{cycle}-03-02", tz="UTC"),
                               campaigns()[CAMPAIGN].policy)
    return reasons.index[reasons == INCLUDED].to_numpy(dtype=np.int64)


def true_effects(world: World, ids: np.ndarray, cycle: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(paid without a reminder, expected effect of one reminder, realised effect) per member."""
    m = world.members.loc[ids]
    p = world.p_pay[cycle].reindex(ids).fillna(0).to_numpy()
    u = hash_uniform(world.seed, ids.astype(np.uint64), cycle)  # the generator's own number for this payment
    scale = dues_reminder_uplift(m.responsiveness.to_numpy(), p)
    delivered = 1.0 - m.bounce_prob.fillna(1.0).to_numpy()
    expected = np.minimum(scale, 1 - p) * delivered
    realised = reminded_to_pay(p, u, scale) & (draw(world, ids, cycle, "bounce") < delivered)
    return (u < p).astype(float), expected, realised.astype(float)


def top_k_value(score: np.ndarray, value: np.ndarray, k: int) -> float:
    return float(value[np.argsort(-score, kind="stable")[:k]].sum())


def sends_for(score: np.ndarray, value: np.ndarray, target: float) -> int:
    """The fewest messages, by this score, whose value reaches `target`."""
    reached = np.cumsum(value[np.argsort(-score, kind="stable")]) >= target
    return int(np.argmax(reached)) + 1 if reached.any() else len(score)


def run_cycle(world: World, config: SimConfig, cycle: int, observed_paid: pd.DataFrame, history: list[pd.DataFrame],
              uplift_model, candidates: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """candidates: every learner fitted on the same rows as `uplift_model` (a diagnostic: what each would have
    achieved at the same volume, whichever the selection chose)."""
    ids = eligible_pool(world, cycle)
    features = observable_features(world, ids, cycle, observed_paid)
    train_years = [y for y in (cycle - 2, cycle - 1) if y in observed_paid]
    train = pd.concat([observable_features(world, world.p_pay[y].dropna().index.to_numpy(), y, observed_paid)
                       .assign(label=observed_paid[y].reindex(world.p_pay[y].dropna().index).fillna(0).to_numpy())
                       for y in train_years])
    columns = list(features.columns)
    propensity_model = propensity_candidates(world.seed)["logistic_regression"].fit(train[columns], train.label)
    propensity = propensity_model.predict_proba(features[columns])[:, 1]
    features["dues_propensity"] = propensity  # the score at the wave, as the audience table records it
    columns = list(features.columns)
    predicted = uplift_model.predict(features[columns].to_numpy(float)) if uplift_model else np.full(len(ids), np.nan)
    volume = int((propensity >= config.threshold).sum())
    learned = cycle >= config.learned_from and uplift_model is not None
    targeting = Targeting("uplift_top_k", top_k=volume) if learned else Targeting("propensity")
    pool = pd.DataFrame({"member_id": ids, "score": propensity, "predicted_uplift": predicted})
    targeted = targeted_mask(targeting, config.threshold, pool)
    arm = pd.Series(None, index=pool.index, dtype=object)
    arm[targeted] = assign_arms(pool.member_id[targeted], CAMPAIGN, str(cycle), config.holdout_share)
    share = config.exploration(cycle)
    arm[~targeted] = exploration_arms(pool.member_id[~targeted], CAMPAIGN, str(cycle), share)
    paid_without, expected, realised = true_effects(world, ids, cycle)
    treated = (arm == TREATMENT).to_numpy()
    paid = np.maximum(paid_without, treated * realised)
    observed_paid[cycle] = pd.Series(paid, index=ids).reindex(observed_paid.index).fillna(0)
    randomised = arm.notna().to_numpy()
    stratum = np.where(targeted, TARGETED, EXPLORED)
    rows = features[randomised].reset_index().assign(
        cycle=cycle, treated=treated[randomised].astype(float), paid=paid[randomised],
        p_treat=np.where(targeted[randomised], 1 - config.holdout_share, 0.5),
        weight=np.where(targeted[randomised], 1.0, 1 / (2 * share)))
    scores = {"oracle": expected, "uplift": predicted if learned or uplift_model else propensity,
              "propensity": propensity, "random": random_score(pool.member_id, str(cycle))}
    records = pd.DataFrame({"member_id": ids, "cycle": str(cycle), "stratum": stratum, "arm": arm.to_numpy(),
                            "outcome": paid})[randomised]
    measures = {"cycle": cycle, "policy_in_force": targeting.policy, "eligible": len(ids), "volume": volume,
                "sent": int(treated.sum()), "explored": int((randomised & ~targeted).sum()),
                "exploration_share": share}
    explore_sent = treated & ~targeted
    measures["explore_sent"] = int(explore_sent.sum())
    measures["explore_expected"] = float(expected[explore_sent].sum())
    measures["targeted_sent_expected"] = float(expected[treated & targeted].sum())
    for name, score in scores.items():
        measures[f"{name}_realised"] = top_k_value(score, realised, volume)
        measures[f"{name}_expected"] = top_k_value(score, expected, volume)
        estimate = estimate_policy(records, score[randomised], volume, config.holdout_share, share)
        measures[f"{name}_offline"] = estimate.incremental
        measures[f"{name}_offline_low"], measures[f"{name}_offline_high"] = estimate.low, estimate.high
    measures["uplift_sends_for_propensity_value"] = sends_for(scores["uplift"], expected,
                                                              measures["propensity_expected"])
    measures["oracle_sends_for_propensity_value"] = sends_for(expected, expected, measures["propensity_expected"])
    # uplift_threshold: send where predicted uplift x value > cost; propensity's value at as many sends
    if uplift_model is not None:
        worth = predicted * config.value_per_conversion_eur > config.cost_per_message_eur
        measures["threshold_sends"] = int(worth.sum())
        measures["threshold_expected"] = float(expected[worth].sum())
        measures["threshold_realised"] = float(realised[worth].sum())
        measures["propensity_at_threshold_sends_expected"] = top_k_value(propensity, expected, int(worth.sum()))
    oracle_worth = expected * config.value_per_conversion_eur > config.cost_per_message_eur
    measures["oracle_threshold_sends"] = int(oracle_worth.sum())
    measures["oracle_threshold_expected"] = float(expected[oracle_worth].sum())
    # Ceilings (diagnostics): rankings by parts of the truth, and by the propensity's own p (1 - p)
    m = world.members.loc[ids]
    p_true = world.p_pay[cycle].reindex(ids).fillna(0).to_numpy()
    for name, score in {"truth_without_delivery": dues_reminder_uplift(m.responsiveness.to_numpy(), p_true),
                        "true_p_only": p_true * (1 - p_true), "propensity_peak": propensity * (1 - propensity)}.items():
        measures[f"ceiling_{name}_expected"] = top_k_value(score, expected, volume)
        measures[f"ceiling_{name}_sends_for_propensity_value"] = sends_for(score, expected,
                                                                           measures["propensity_expected"])
    for name, model in (candidates or {}).items():
        measures[f"learner_{name}_expected"] = top_k_value(model.predict(features[columns].to_numpy(float)),
                                                           expected, volume)
    history.append(rows)
    return rows, measures


def simulate(data_dir: Path, config: SimConfig = SimConfig()) -> tuple[pd.DataFrame, dict]:
    """Every cycle's measures (one row per cycle) and the last uplift model's report."""
    world = load_world(data_dir)
    observed_paid = world.paid.copy()
    history: list[pd.DataFrame] = []
    model, report, measures, candidates, chosen = None, None, [], None, []
    for cycle in config.cycles:
        _, row = run_cycle(world, config, cycle, observed_paid, history, model, candidates)
        measures.append(row)
        data = pd.concat(history, ignore_index=True)
        columns = [c for c in data.columns if c not in (*LABEL_COLUMNS, WEIGHT)]
        oracle = pd.concat([pd.Series(true_effects(world, h.member_id.to_numpy(), int(h.cycle.iloc[0]))[1],
                                      index=pd.MultiIndex.from_arrays([h.member_id, h.cycle])) for h in history])
        model, report = fit_uplift_model(data, columns, seed=world.seed, oracle=oracle)
        x = data[columns].to_numpy(float), data.treated.to_numpy(float), data.paid.to_numpy(float), \
            data.p_treat.to_numpy(float)
        candidates = {name: learner(name, world.seed).fit(*x) for name in CANDIDATES}
        chosen.append(report.chosen)
    frame = pd.DataFrame(measures).assign(chosen_before=[None] + chosen[:-1])
    return frame, {"chosen": report.chosen, "selection_qini": report.selection_qini, "metrics": report.metrics}


def write_expected_effects(data_dir: Path, truth_dir: Path) -> Path:
    """Every member's true *expected* effect of one delivered dues reminder per dues year of the generated world
    (behaviour.dues_reminder_uplift x delivery), as <truth_dir>/expected_effects.csv (member_id, dues_year,
    expected_effect): the yardstick the uplift model asset reads through ALUMNI_SIMULATED_TRUTH_DIR for its
    oracle_qini and its Spearman correlation with the true effect."""
    from alumni_orchestration.defs.scoring.uplift_assets import EXPECTED_EFFECTS_FILE

    world = load_world(data_dir)
    frames = []
    for cycle in world.p_pay.columns:
        ids = world.p_pay[cycle].dropna().index.to_numpy(dtype=np.int64)
        frames.append(pd.DataFrame({"member_id": ids, "dues_year": int(cycle),
                                    "expected_effect": true_effects(world, ids, int(cycle))[1]}))
    truth_dir.mkdir(parents=True, exist_ok=True)
    path = truth_dir / EXPECTED_EFFECTS_FILE
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path
