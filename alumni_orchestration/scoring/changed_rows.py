"""Predictions for the same members day after day, computing only the rows whose prediction can have changed.

A histogram gradient-boosting model (calibrated or not) sees a row only through comparisons
`value <= threshold` on the thresholds its trees split on. Two rows that fall on the same side of every
threshold of every tree take the same path in every tree, hence get the same raw score, the same
calibrated probability and the same average over the calibration folds: bit for bit, since each row is
computed on its own. So a member whose features, mapped to "how many thresholds lie below", are the same
as the day before keeps the day before's probability. From one day to the next most features move a
little (ages, tenures, decayed sums) and cross no threshold: only the few members that do are predicted,
and of those, each distinct row of codes once.

Any other model (the logistic regression, which reads values, not thresholds) is predicted in full.
tests/test_perf_equality.py holds the result to `model.predict_proba` on every day.
"""

from __future__ import annotations

import numpy as np


def _forests(model) -> list | None:
    """The fitted gradient-boosting estimators the model averages over, or None if it is anything else."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier

    if isinstance(model, CalibratedClassifierCV):
        estimators = [c.estimator for c in model.calibrated_classifiers_]
    else:
        estimators = [model]
    if not all(isinstance(e, HistGradientBoostingClassifier) and e.is_categorical_ is None for e in estimators):
        return None
    return estimators


def split_thresholds(model, n_features: int) -> list[np.ndarray] | None:
    """Per feature, the sorted distinct thresholds any tree of the model splits on (None: not a tree model)."""
    forests = _forests(model)
    if forests is None:
        return None
    found: list[list[np.ndarray]] = [[] for _ in range(n_features)]
    for estimator in forests:
        for iteration in estimator._predictors:
            for predictor in iteration:
                nodes = predictor.nodes[predictor.nodes["is_leaf"] == 0]
                if nodes["is_categorical"].any():
                    return None
                for feature in np.unique(nodes["feature_idx"]):
                    found[feature].append(nodes["num_threshold"][nodes["feature_idx"] == feature])
    return [np.unique(np.concatenate(t)) if t else np.empty(0) for t in found]


class ChangedRowsPredictor:
    """`model.predict_proba(x)[:, 1]` for rows that belong to fixed slots (members) across calls: a slot whose
    threshold codes did not change since its last call keeps its probability."""

    def __init__(self, model, n_slots: int, n_features: int) -> None:
        self.model = model
        self.thresholds = split_thresholds(model, n_features)
        self.codes = np.zeros((n_slots, n_features), dtype=np.int32)
        self.probability = np.zeros(n_slots)
        self.seen = np.zeros(n_slots, dtype=bool)
        self.predicted_rows = 0  # how many rows went through the model, for the log

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Per value, how many thresholds of its feature are below it (x <= t exactly for the thresholds from there
        on); a missing value gets -1 (it takes the missing-value branch wherever it goes)."""
        codes = np.empty(x.shape, dtype=np.int32)
        for j, thresholds in enumerate(self.thresholds):
            column = x[:, j]
            codes[:, j] = np.where(np.isnan(column), -1, np.searchsorted(thresholds, column, side="left"))
        return codes

    def predict(self, slots: np.ndarray, x: np.ndarray) -> np.ndarray:
        if self.thresholds is None:
            self.predicted_rows += len(x)
            return self.model.predict_proba(x)[:, 1] if len(x) else np.empty(0)
        codes = self.encode(x)
        changed = np.flatnonzero(~self.seen[slots] | (codes != self.codes[slots]).any(axis=1))
        if len(changed):
            # Members with the same codes share a probability: each distinct row is predicted once.
            rows = np.ascontiguousarray(codes[changed]).view(np.dtype((np.void, codes.itemsize * codes.shape[1])))
            _, first, inverse = np.unique(rows.ravel(), return_index=True, return_inverse=True)
            self.probability[slots[changed]] = self.model.predict_proba(x[changed[first]])[:, 1][inverse.ravel()]
            self.predicted_rows += len(first)
        self.codes[slots] = codes
        self.seen[slots] = True
        return self.probability[slots].copy()
