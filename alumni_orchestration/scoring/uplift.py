"""The dues-reminder uplift model: who a reminder moves, learnt from the randomised arms only. Pure.

Training rows are the members of past cycles' randomised arms (the holdout inside the targeted audience, and
the exploration arms outside it), with `treated`, `p_treat` (the probability of treatment *within those arms*:
1 - holdout for the targeted stratum, 1/2 for the explored one) and `paid` (the cycle's dues paid after the
wave). Features are the dues model's point-in-time features at the cycle's cutoff.

Two learners are compared by Qini on held-out cycles: each cycle in turn is predicted by the learner trained
on the others, and the Qini is taken over all these out-of-cycle predictions together (with one cycle only:
on a held-out share of members). One cycle's randomised arms (a few thousand members, effects of a few
points) are too few to tell two learners apart; all of them together are less so.

- `two_model`: a strongly regularised logistic regression per arm, uplift = P(paid | treated, x) - P(paid | control, x)
  (the control arms are small: a flexible model per arm mostly learns their noise);
- `transformed_outcome`: gradient boosting of Z = paid (T - p) / (p (1 - p)), whose expectation given x is the uplift.

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
CANDIDATES = ("two_model", "transformed_outcome")
QINI_POINTS = 50
MODEL_NAME = "dues_uplift"


class TwoModel:
    def __init__(self, seed: int) -> None:
        self.models = [make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000)) for _ in range(2)]

    def fit(self, x: np.ndarray, treated: np.ndarray, paid: np.ndarray, p_treat: np.ndarray) -> TwoModel:
        for arm, model in zip((0, 1), self.models, strict=True):
            mask = treated == arm
            model.fit(x[mask], paid[mask])
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        control, treatment = (m.predict_proba(x)[:, 1] for m in self.models)
        return treatment - control


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


def learner(name: str, seed: int):
    return {"two_model": TwoModel, "transformed_outcome": TransformedOutcome}[name](seed)


def ipw_contributions(treated: np.ndarray, paid: np.ndarray, p_treat: np.ndarray) -> np.ndarray:
    """Each row's unbiased share of the incremental outcome had its member been treated."""
    return paid * (treated / p_treat - (1 - treated) / (1 - p_treat))


def qini_curve(score: np.ndarray, treated: np.ndarray, paid: np.ndarray, p_treat: np.ndarray,
               points: int = QINI_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(share of members targeted, estimated incremental payments) when treating the top of `score`."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    gains = np.concatenate([[0.0], np.cumsum(ipw_contributions(treated, paid, p_treat)[order])])
    shares = np.linspace(0, 1, points + 1)
    return shares, gains[np.round(shares * len(order)).astype(int)]


def qini_coefficient(score, treated, paid, p_treat) -> float:
    """Mean gain above random targeting along the curve, per member (0: no better than random)."""
    shares, gains = qini_curve(score, treated, paid, p_treat)
    return float(np.mean(gains - shares * gains[-1]) / max(len(treated), 1))


def auuc(score, treated, paid, p_treat) -> float:
    """Area under the uplift (gain) curve, per member."""
    _, gains = qini_curve(score, treated, paid, p_treat)
    return float(np.mean(gains) / max(len(treated), 1))


@dataclass
class UpliftReport:
    chosen: str
    selection_qini: dict[str, float]
    validation: str
    metrics: pd.DataFrame  # model, metric, value, segment
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    data_hash: str = ""


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
    return data_hash(data[LABEL_COLUMNS + columns], index=False)


def fit_uplift_model(data: pd.DataFrame, columns: list[str], seed: int = 0, oracle: pd.Series | None = None):
    """data: LABEL_COLUMNS + columns, one row per randomised member and cycle. oracle (synthetic worlds only):
    the true expected effect indexed by (member_id, cycle). Returns (final model fitted on all rows, report)."""
    if data.treated.nunique() < 2 or len(data) < 200:
        raise ValueError(f"the uplift model needs both arms and at least 200 randomised members, found {len(data)}")
    folds, validation = _folds(data)
    held = np.any(folds, axis=0)
    valid = data[held]
    _, tv, yv, pv = _arrays(valid, columns)
    predictions = {name: out_of_fold(data, columns, name, seed, folds)[held] for name in CANDIDATES}
    selection = {name: qini_coefficient(p, tv, yv, pv) for name, p in predictions.items()}
    chosen = max(selection, key=selection.get)
    rows = [(name, "qini", q, "all") for name, q in selection.items()]
    rows += [(name, "auuc", auuc(p, tv, yv, pv), "all") for name, p in predictions.items()]
    rows += [(MODEL_NAME, "qini", selection[chosen], "all"), (MODEL_NAME, "auuc", auuc(predictions[chosen], tv, yv, pv),
             "all"), (MODEL_NAME, "rows", float(len(valid)), "all"),
             (MODEL_NAME, "random_qini", 0.0, "all")]
    curves = {"model": qini_curve(predictions[chosen], tv, yv, pv)}
    if oracle is not None:
        truth = oracle.reindex(pd.MultiIndex.from_arrays([valid.member_id, valid.cycle])).to_numpy(dtype=float)
        known = ~np.isnan(truth)
        if known.sum() > 20:
            rows.append((MODEL_NAME, "oracle_qini", qini_coefficient(truth[known], tv[known], yv[known], pv[known]),
                         "all"))
            rows.append((MODEL_NAME, "spearman_true_effect",
                         float(spearmanr(predictions[chosen][known], truth[known]).statistic), "all"))
            curves["oracle"] = qini_curve(np.where(known, truth, -np.inf), tv, yv, pv)
    curves["random"] = (curves["model"][0], curves["model"][0] * curves["model"][1][-1])
    final = learner(chosen, seed).fit(*_arrays(data, columns))
    report = UpliftReport(chosen=chosen, selection_qini=selection, validation=validation,
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


def randomised_rows(outcomes: pd.DataFrame, holdout_share: float, as_of_year: int) -> pd.DataFrame:
    """The campaign_member_outcomes rows of a dues campaign's first messages in complete cycles (dues years before
    `as_of_year`) -> LABEL_COLUMNS: paid = the cycle's dues paid after the wave; p_treat within the arms."""
    first = outcomes[(outcomes.step == 1) & (outcomes.dues_year < as_of_year)]
    explored = first.stratum.to_numpy() == "explored"
    return pd.DataFrame({"member_id": first.member_id.astype("int64").to_numpy(),
                         "cycle": first.dues_year.astype(int).to_numpy(),
                         "treated": (first.arm == "treatment").astype(float).to_numpy(),
                         "p_treat": np.where(explored, 0.5, 1 - holdout_share),
                         "paid": first.days_to_dues_paid.notna().astype(float).to_numpy(),
                         "dues_propensity": first.score.astype(float).to_numpy(),
                         "as_of": first.as_of.to_numpy()})
