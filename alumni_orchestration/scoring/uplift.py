"""The dues-reminder uplift model: who a reminder moves, learnt from the randomised arms only. Pure.

Training rows are the members of past cycles' randomised arms (the holdout inside the targeted audience, and
the exploration arms outside it), with `treated`, `p_treat` (the probability of treatment *within those arms*:
1 - holdout for the targeted stratum, 1/2 for the explored one) and `paid` (the cycle's dues paid after the
wave). Features are the dues model's point-in-time features at the cycle's cutoff.

Four learners, from the most constrained to the most flexible (CANDIDATES, in that order):

- `s_learner`: one logistic regression on both arms, logit P(paid) = a + b.x + T (c + d.x), the interactions d
  heavily penalised: the baseline is learnt from every row (strength shared between the arms), the effect is
  mostly a shift of the log-odds -- largest for members near even odds, none for sure things and lost causes;
- `two_model`: a strongly regularised logistic regression per arm, uplift = P(paid | treated, x) - P(paid | control, x)
  (the control arms are small: a flexible model per arm mostly learns their noise);
- `x_learner`: the X-learner (outcome model per arm, then the imputed effects regressed on x, blended);
- `transformed_outcome`: gradient boosting of Z = paid (T - p) / (p (1 - p)), whose expectation given x is the uplift.

They are compared by Qini on held-out cycles: each cycle in turn is predicted by the learner trained on the
others, and the Qini is taken over all these out-of-cycle predictions pooled (with one cycle only: on a held-out
share of members). Even pooled, the Qinis of close learners differ by less than their noise (a few thousand
randomised members a cycle, effects of a few points), so the choice follows the one-standard-error rule: the
most constrained learner whose Qini is within one (paired bootstrap) standard error of the best one's. Rows may
carry a WEIGHT, the number of eligible members each stands for (an explored row 1 / (2 x exploration share)): the
Qini then measures the ranking over the pool a policy picks from, not over the randomised sample, where the
targeted stratum dominates.

The dues propensity at the wave is one of the features: the effect of a reminder depends on how likely the
member was to pay anyway (sure things and lost causes are not moved).

The Qini gain of treating a ranked prefix S is estimated by inverse-propensity weighting over the arms:
sum over S of paid (T / p - (1 - T) / (1 - p)) — the incremental payments had S been treated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from alumni_orchestration.scoring.dues_model import data_hash
from alumni_orchestration.scoring.plots import figure_png

LABEL_COLUMNS = ["member_id", "cycle", "treated", "p_treat", "paid"]
WEIGHT = "weight"  # optional: how many members of the cycle's eligible pool a row stands for
CANDIDATES = ("s_learner", "two_model", "x_learner", "transformed_outcome")  # most constrained first
QINI_POINTS = 50
BOOTSTRAP = 200  # paired bootstrap resamples for the selection's standard errors
MODEL_NAME = "dues_uplift"


def _logistic(c: float):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))


class TwoModel:
    """One logistic regression per arm; uplift = P(paid | treated, x) - P(paid | control, x). `c`: the inverse
    regularisation strength (the control arms are small: a flexible or weakly regularised model per arm mostly
    learns their noise)."""

    def __init__(self, seed: int, c: float = 0.01) -> None:
        self.models = [_logistic(c) for _ in range(2)]

    def fit(self, x: np.ndarray, treated: np.ndarray, paid: np.ndarray, p_treat: np.ndarray) -> TwoModel:
        for arm, model in zip((0, 1), self.models, strict=True):
            mask = treated == arm
            model.fit(x[mask], paid[mask])
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        control, treatment = (m.predict_proba(x)[:, 1] for m in self.models)
        return treatment - control


class SLearner:
    """One logistic regression on both arms together: logit P(paid) = a + b.x + T (c + d.x). The baseline (a, b) is
    learnt from every row, so the small control arms are not left to fit it alone; the treatment terms are
    penalised `shrink`^-2 times more than the baseline (their columns scaled by `shrink`), so the effect's
    heterogeneity d is kept small unless the data insist. On the probability scale a constant c already gives an
    effect that is largest for members near P(paid) = 1/2 and vanishes for sure things and lost causes."""

    def __init__(self, seed: int, c: float = 1.0, shrink: float = 0.02) -> None:
        self.scaler, self.shrink = StandardScaler(), shrink
        self.model = LogisticRegression(C=c, max_iter=3000)

    def _design(self, z: np.ndarray, treated: np.ndarray) -> np.ndarray:
        t = treated[:, None]
        return np.hstack([z, t, self.shrink * t * z])

    def fit(self, x: np.ndarray, treated: np.ndarray, paid: np.ndarray, p_treat: np.ndarray) -> SLearner:
        z = self.scaler.fit_transform(x)
        self.model.fit(self._design(z, treated), paid)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = self.scaler.transform(x)
        ones, zeros = np.ones(len(z)), np.zeros(len(z))
        return (self.model.predict_proba(self._design(z, ones))[:, 1]
                - self.model.predict_proba(self._design(z, zeros))[:, 1])


class XLearner:
    """Kunzel et al.'s X-learner. Stage 1: a regularised logistic outcome model per arm (mu0, mu1). Stage 2: the
    imputed effects, D1 = paid - mu0(x) on the treated and D0 = mu1(x) - paid on the controls, each regressed on x
    (shallow, strongly regularised boosting). The two are blended with the share of treated rows g:
    tau = g tau0 + (1 - g) tau1 -- the effect learnt on the (small) control arm, whose imputation uses the well
    estimated mu1, weighs most when most rows are treated."""

    def __init__(self, seed: int, c: float = 0.01) -> None:
        self.outcome = [_logistic(c) for _ in range(2)]
        self.effect = [HistGradientBoostingRegressor(max_iter=100, learning_rate=0.04, max_leaf_nodes=6,
                                                     min_samples_leaf=200, l2_regularization=5.0,
                                                     random_state=seed) for _ in range(2)]
        self.g = 0.5

    def fit(self, x: np.ndarray, treated: np.ndarray, paid: np.ndarray, p_treat: np.ndarray) -> XLearner:
        arms = [treated == 0, treated == 1]
        for mask, model in zip(arms, self.outcome, strict=True):
            model.fit(x[mask], paid[mask])
        mu0, mu1 = (m.predict_proba(x)[:, 1] for m in self.outcome)
        self.effect[0].fit(x[arms[0]], (mu1 - paid)[arms[0]])
        self.effect[1].fit(x[arms[1]], (paid - mu0)[arms[1]])
        self.g = float(treated.mean())
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        tau0, tau1 = (m.predict(x) for m in self.effect)
        return self.g * tau0 + (1 - self.g) * tau1


class TransformedOutcome:
    def __init__(self, seed: int) -> None:
        self.model = HistGradientBoostingRegressor(max_iter=150, learning_rate=0.04, max_leaf_nodes=8,
                                                   min_samples_leaf=150, l2_regularization=5.0, random_state=seed)

    def fit(self, x: np.ndarray, treated: np.ndarray, paid: np.ndarray, p_treat: np.ndarray) -> TransformedOutcome:
        z = paid * (treated - p_treat) / (p_treat * (1 - p_treat))
        self.model.fit(x, z)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)


LEARNERS = {"two_model": TwoModel, "s_learner": SLearner, "x_learner": XLearner,
            "transformed_outcome": TransformedOutcome}


def learner(name: str, seed: int):
    return LEARNERS[name](seed)


def ipw_contributions(treated: np.ndarray, paid: np.ndarray, p_treat: np.ndarray) -> np.ndarray:
    """Each row's unbiased share of the incremental outcome had its member been treated."""
    return paid * (treated / p_treat - (1 - treated) / (1 - p_treat))


def qini_curve(score: np.ndarray, treated: np.ndarray, paid: np.ndarray, p_treat: np.ndarray,
               points: int = QINI_POINTS, weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(share of members targeted, estimated incremental payments) when treating the top of `score`. weight: how
    many members of the eligible pool each row stands for (1 / its probability of being randomised; default 1)."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    w = np.ones(len(order)) if weight is None else np.asarray(weight, dtype=float)
    gains = np.concatenate([[0.0], np.cumsum((w * ipw_contributions(treated, paid, p_treat))[order])])
    reached = np.concatenate([[0.0], np.cumsum(w[order])])
    shares = np.linspace(0, 1, points + 1)
    return shares, gains[np.searchsorted(reached, shares * reached[-1] - 1e-9)]


def qini_coefficient(score, treated, paid, p_treat, weight=None) -> float:
    """Mean gain above random targeting along the curve, per member (0: no better than random)."""
    shares, gains = qini_curve(score, treated, paid, p_treat, weight=weight)
    total = len(treated) if weight is None else float(np.sum(weight))
    return float(np.mean(gains - shares * gains[-1]) / max(total, 1))


def auuc(score, treated, paid, p_treat, weight=None) -> float:
    """Area under the uplift (gain) curve, per member."""
    _, gains = qini_curve(score, treated, paid, p_treat, weight=weight)
    total = len(treated) if weight is None else float(np.sum(weight))
    return float(np.mean(gains) / max(total, 1))


@dataclass
class UpliftReport:
    chosen: str
    selection_qini: dict[str, float]
    validation: str
    metrics: pd.DataFrame  # model, metric, value, segment
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    data_hash: str = ""
    selection_se: dict[str, float] = field(default_factory=dict)  # of each Qini's difference from the best


def _folds(data: pd.DataFrame) -> tuple[list[np.ndarray], str]:
    """Held-out folds: each cycle when there are two or more; else a hashed 30% of members."""
    cycles = sorted(data.cycle.unique())
    if len(cycles) >= 2:
        return [data.cycle.to_numpy() == c for c in cycles], f"each of cycles {', '.join(str(int(c)) for c in cycles)}"
    held = (pd.util.hash_array(data.member_id.to_numpy().astype(np.int64)) % 10) < 3
    return [held], "30% of members (a single cycle)"


def out_of_fold(data: pd.DataFrame, columns: list[str], name: str, seed: int, folds: list[np.ndarray]) -> np.ndarray:
    """Each held-out row's prediction by the learner trained without its fold (NaN outside every fold)."""
    predicted = np.full(len(data), np.nan)
    for held in folds:
        model = learner(name, seed).fit(*_arrays(data[~held], columns))
        predicted[held] = model.predict(_arrays(data[held], columns)[0])
    return predicted


def _arrays(frame: pd.DataFrame, columns: list[str]):
    return (frame[columns].to_numpy(dtype=float), frame.treated.to_numpy(dtype=float),
            frame.paid.to_numpy(dtype=float), frame.p_treat.to_numpy(dtype=float))


def training_hash(data: pd.DataFrame, columns: list[str]) -> str:
    """What identifies a fit: the labels and features, not the frame's row labels."""
    return data_hash(data[LABEL_COLUMNS + ([WEIGHT] if WEIGHT in data else []) + columns], index=False)


def bootstrap_qini(scores: dict[str, np.ndarray], treated, paid, p_treat, weight=None, resamples: int = BOOTSTRAP,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Each score's Qini coefficient on `resamples` paired Poisson-bootstrap resamples of the rows (the same
    resample weights for every score, so differences between scores are paired)."""
    contribution = ipw_contributions(np.asarray(treated, float), np.asarray(paid, float), np.asarray(p_treat, float))
    n = len(contribution)
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=float)
    weights = np.random.default_rng(seed).poisson(1.0, size=(resamples, n)) * w
    shares = np.linspace(0, 1, QINI_POINTS + 1)
    out = {}
    for name, score in scores.items():
        order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
        ordered = weights[:, order]
        gains = np.concatenate([np.zeros((resamples, 1)), np.cumsum(ordered * contribution[order], axis=1)], axis=1)
        reached = np.concatenate([np.zeros((resamples, 1)), np.cumsum(ordered, axis=1)], axis=1)
        at = [np.searchsorted(r, shares * r[-1] - 1e-9) for r in reached]
        sampled = np.take_along_axis(gains, np.asarray(at), axis=1)
        out[name] = np.mean(sampled - shares * sampled[:, -1:], axis=1) / np.maximum(reached[:, -1], 1.0)
    return out


def one_standard_error_choice(qini: dict[str, float], resampled: dict[str, np.ndarray]) -> tuple[str, dict[str, float]]:
    """The first learner (in the dict's order: most constrained first) whose Qini is within one standard error
    of the best one's, the standard error being that of the paired difference. Returns (choice, standard errors)."""
    best = max(qini, key=qini.get)
    errors = {name: float(np.std(resampled[best] - resampled[name], ddof=1)) for name in qini}
    chosen = next(name for name in qini if qini[name] >= qini[best] - errors[name])
    return chosen, errors


def fit_uplift_model(data: pd.DataFrame, columns: list[str], seed: int = 0, oracle: pd.Series | None = None):
    """data: LABEL_COLUMNS + columns, one row per randomised member and cycle. oracle (synthetic worlds only):
    the true expected effect indexed by (member_id, cycle). Returns (final model fitted on all rows, report)."""
    if data.treated.nunique() < 2 or len(data) < 200:
        raise ValueError(f"the uplift model needs both arms and at least 200 randomised members, found {len(data)}")
    folds, validation = _folds(data)
    held = np.any(folds, axis=0)
    valid = data[held]
    _, tv, yv, pv = _arrays(valid, columns)
    wv = valid[WEIGHT].to_numpy(dtype=float) if WEIGHT in valid else None
    predictions = {name: out_of_fold(data, columns, name, seed, folds)[held] for name in CANDIDATES}
    selection = {name: qini_coefficient(p, tv, yv, pv, wv) for name, p in predictions.items()}
    chosen, errors = one_standard_error_choice(selection, bootstrap_qini(predictions, tv, yv, pv, wv, seed=seed))
    rows = [(name, "qini", q, "all") for name, q in selection.items()]
    rows += [(name, "qini_se_vs_best", errors[name], "all") for name in selection]
    rows += [(name, "auuc", auuc(p, tv, yv, pv, wv), "all") for name, p in predictions.items()]
    rows += [(MODEL_NAME, "qini", selection[chosen], "all"), (MODEL_NAME, "auuc", auuc(predictions[chosen], tv, yv, pv, wv),
             "all"), (MODEL_NAME, "rows", float(len(valid)), "all"),
             (MODEL_NAME, "random_qini", 0.0, "all")]
    curves = {"model": qini_curve(predictions[chosen], tv, yv, pv, weight=wv)}
    if oracle is not None:
        truth = oracle.reindex(pd.MultiIndex.from_arrays([valid.member_id, valid.cycle])).to_numpy(dtype=float)
        known = ~np.isnan(truth)
        if known.sum() > 20:
            rows.append((MODEL_NAME, "oracle_qini", qini_coefficient(truth[known], tv[known], yv[known], pv[known],
                                                                     None if wv is None else wv[known]), "all"))
            rows.append((MODEL_NAME, "spearman_true_effect",
                         float(spearmanr(predictions[chosen][known], truth[known]).statistic), "all"))
            curves["oracle"] = qini_curve(np.where(known, truth, -np.inf), tv, yv, pv, weight=wv)
    curves["random"] = (curves["model"][0], curves["model"][0] * curves["model"][1][-1])
    final = learner(chosen, seed).fit(*_arrays(data, columns))
    report = UpliftReport(chosen=chosen, selection_qini=selection, validation=validation, selection_se=errors,
                          metrics=pd.DataFrame(rows, columns=["model", "metric", "value", "segment"]), curves=curves,
                          data_hash=training_hash(data, columns))
    return final, report


def qini_plot_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> bytes:

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=100)
    styles = {"model": ("uplift model", "-", "tab:blue"), "oracle": ("oracle (true effect)", "--", "crimson"),
              "random": ("random targeting", ":", "grey")}
    for name, (shares, gains) in curves.items():
        label, style, colour = styles.get(name, (name, "-", None))
        ax.plot(100 * shares, gains, style, color=colour, label=label, linewidth=1.6)
    ax.set_xlabel("members reminded, % of the held-out randomised members (ranked by score)")
    ax.set_ylabel("incremental payments (IPW)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return figure_png(fig)


def randomised_rows(outcomes: pd.DataFrame, holdout_share: float, as_of_year: int,
                    exploration_share: float | None = None) -> pd.DataFrame:
    """The campaign_member_outcomes rows of a dues campaign's first messages in complete cycles (dues years before
    `as_of_year`) -> LABEL_COLUMNS: paid = the cycle's dues paid after the wave; p_treat within the arms; with
    `exploration_share`, WEIGHT: an explored row stands for 1 / (2 x share) members of the eligible pool."""
    first = outcomes[(outcomes.step == 1) & (outcomes.dues_year < as_of_year)]
    explored = first.stratum.to_numpy() == "explored"
    weight = {} if not exploration_share else {WEIGHT: np.where(explored, 1 / (2 * exploration_share), 1.0)}
    return pd.DataFrame({"member_id": first.member_id.astype("int64").to_numpy(),
                         "cycle": first.dues_year.astype(int).to_numpy(),
                         "treated": (first.arm == "treatment").astype(float).to_numpy(),
                         "p_treat": np.where(explored, 0.5, 1 - holdout_share),
                         "paid": first.days_to_dues_paid.notna().astype(float).to_numpy(), **weight,
                         "dues_propensity": first.score.astype(float).to_numpy(),
                         "as_of": first.as_of.to_numpy()})
