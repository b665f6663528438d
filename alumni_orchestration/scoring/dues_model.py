"""The dues propensity model: time-based validation, honest model choice, calibration, metrics.

- Model choice: each candidate (gradient boosting, logistic regression) is trained on the cycles
  before the penultimate one and compared on the penultimate (with a single training cycle: by
  cross-validation within it); the winner is then retrained on all cycles before the latest
  complete one, calibrated, and evaluated once on that latest cycle.
- The baseline is the "paid last year" heuristic, as a probability: the training rate of paying
  given whether one paid last year.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from alumni_orchestration.scoring.features import feature_columns

ISOTONIC_MIN_ROWS = 2000  # below this, isotonic regression overfits its calibration folds


def candidates(seed: int) -> dict:
    return {
        "gradient_boosting": HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                                            l2_regularization=1.0, random_state=seed),
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5)),
    }


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(total)


def lift_top_decile(y: np.ndarray, p: np.ndarray) -> float:
    if y.mean() == 0:
        return float("nan")
    top = p >= np.quantile(p, 0.9)
    return float(y[top].mean() / y.mean())


def score_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "lift_top_decile": lift_top_decile(y, p),
        "rows": float(len(y)),
        "positive_rate": float(y.mean()),
    }


def heuristic_probability(train: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    rates = train.groupby("paid_lag1").paid.mean()
    return rows.paid_lag1.map(rates).fillna(train.paid.mean()).to_numpy()


def data_hash(frame: pd.DataFrame, index: bool = True) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=index).to_numpy().tobytes()).hexdigest()


@dataclass
class DuesModelReport:
    chosen: str
    selection_auc: dict[str, float]
    validation_cycle: int
    calibration_method: str
    metrics: pd.DataFrame  # model, metric, value, segment
    calibration_table: pd.DataFrame
    lift_table: pd.DataFrame
    importances: pd.DataFrame
    data_hash: str
    validation_predictions: pd.DataFrame = field(repr=False)


def training_data_hash(data: pd.DataFrame) -> str:
    """The hash fit_dues_model records for this training set."""
    columns = feature_columns(data.drop(columns=["cycle", "paid"]))
    return data_hash(data[columns + ["paid", "cycle"]])


def require_two_cycles(data: pd.DataFrame) -> None:
    cycles = sorted(data.cycle.unique()) if "cycle" in data else []
    if len(cycles) < 2:
        raise ValueError(f"the dues model needs at least 2 complete cycles of history, found {[int(c) for c in cycles]}")


def fit_dues_model(data: pd.DataFrame, seed: int = 0, oracle: pd.Series | None = None):
    """Returns (final calibrated model fitted on every cycle, report). `data` is a training_set()."""
    require_two_cycles(data)
    cycles = sorted(data.cycle.unique())
    columns = feature_columns(data.drop(columns=["cycle", "paid"]))
    validation_cycle = cycles[-1]

    def xy(frame: pd.DataFrame):
        return frame[columns].to_numpy(dtype=float), frame.paid.to_numpy()

    selection_auc = {}
    if len(cycles) >= 3:  # choose on the penultimate cycle, trained on the older ones
        inner_train, inner_valid = data[data.cycle < cycles[-2]], data[data.cycle == cycles[-2]]
        for name, model in candidates(seed).items():
            model.fit(*xy(inner_train))
            selection_auc[name] = float(roc_auc_score(inner_valid.paid, model.predict_proba(xy(inner_valid)[0])[:, 1]))
    else:  # one training cycle: choose by cross-validation within it
        from sklearn.model_selection import cross_val_score

        older = data[data.cycle < validation_cycle]
        for name, model in candidates(seed).items():
            selection_auc[name] = float(cross_val_score(model, *xy(older), cv=3, scoring="roc_auc").mean())
    chosen = max(selection_auc, key=selection_auc.get)

    train, valid = data[data.cycle < validation_cycle], data[data.cycle == validation_cycle]
    method = "isotonic" if len(train) >= ISOTONIC_MIN_ROWS else "sigmoid"
    model = CalibratedClassifierCV(candidates(seed)[chosen], method=method, cv=3)
    model.fit(*xy(train))
    x_valid, y_valid = xy(valid)
    p_valid = model.predict_proba(x_valid)[:, 1]
    p_heuristic = heuristic_probability(train, valid)
    uncalibrated = {name: m.fit(*xy(train)) for name, m in candidates(seed).items()}

    rows = []
    segments = valid.segment.to_numpy()
    for segment in ["all", *sorted(set(segments))]:
        mask = np.ones(len(valid), dtype=bool) if segment == "all" else segments == segment
        if mask.sum() < 20:
            continue
        for metric, value in score_metrics(y_valid[mask], p_valid[mask]).items():
            rows.append(("dues_propensity", metric, value, segment))
        base = score_metrics(y_valid[mask], p_heuristic[mask])
        rows.append(("dues_propensity", "baseline_roc_auc", base["roc_auc"], segment))
        rows.append(("dues_propensity", "baseline_brier", base["brier"], segment))
        for name, fitted in uncalibrated.items():
            p = fitted.predict_proba(x_valid[mask])[:, 1]
            both = len(np.unique(y_valid[mask])) == 2
            rows.append((name, "roc_auc", float(roc_auc_score(y_valid[mask], p)) if both else float("nan"), segment))
        if oracle is not None:
            truth = oracle.reindex(pd.MultiIndex.from_arrays([valid.index[mask], np.full(mask.sum(), validation_cycle)]))
            known = truth.notna().to_numpy()
            if known.sum() > 20 and len(np.unique(y_valid[mask][known])) == 2:
                rows.append(("dues_propensity", "oracle_roc_auc",
                             float(roc_auc_score(y_valid[mask][known], truth.to_numpy()[known])), segment))
    metrics = pd.DataFrame(rows, columns=["model", "metric", "value", "segment"])

    edges = np.linspace(0, 1, 11)
    bins = np.clip(np.digitize(p_valid, edges[1:-1]), 0, 9)
    calibration = pd.DataFrame({"bin": bins, "predicted": p_valid, "observed": y_valid}).groupby("bin").agg(
        members=("observed", "size"), mean_predicted=("predicted", "mean"), observed_rate=("observed", "mean")).reset_index()
    deciles = pd.qcut(pd.Series(p_valid).rank(method="first"), 10, labels=False)
    lift = pd.DataFrame({"decile": 10 - deciles, "paid": y_valid}).groupby("decile").agg(
        members=("paid", "size"), paid_rate=("paid", "mean")).reset_index()
    lift["lift"] = lift.paid_rate / max(y_valid.mean(), 1e-9)

    sample = np.random.default_rng(seed).choice(len(valid), size=min(len(valid), 4000), replace=False)
    importance = permutation_importance(model, x_valid[sample], y_valid[sample], scoring="roc_auc", n_repeats=3,
                                        random_state=seed)
    importances = pd.DataFrame({"feature": columns, "importance": importance.importances_mean}).sort_values(
        "importance", ascending=False).reset_index(drop=True)

    final = CalibratedClassifierCV(candidates(seed)[chosen], method="isotonic" if len(data) >= ISOTONIC_MIN_ROWS
                                   else "sigmoid", cv=3)
    final.fit(*xy(data))
    report = DuesModelReport(
        chosen=chosen, selection_auc=selection_auc, validation_cycle=int(validation_cycle), calibration_method=method,
        metrics=metrics, calibration_table=calibration, lift_table=lift, importances=importances,
        data_hash=data_hash(data[columns + ["paid", "cycle"]]),
        validation_predictions=pd.DataFrame({"member_id": valid.index, "p": p_valid, "paid": y_valid,
                                             "segment": segments}),
    )
    return final, columns, report
