"""The performance changes of issue 19 give the results of the code they replace, on small generated data.

- ChangedRowsPredictor (score history: only members whose features crossed a split threshold are predicted)
  against `model.predict_proba` on every row of every day, and the score history with a calibrated gradient
  boosting model against the day-by-day loop as first written (tests/test_scoring_history.py's reference).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from alumni_orchestration.scoring.changed_rows import ChangedRowsPredictor, split_thresholds
from alumni_orchestration.scoring.features import feature_columns, point_in_time_features
from alumni_orchestration.scoring.history import score_history
from tests.test_scoring_history import DAYS, assert_same_history, reference_history, synthetic


def calibrated_boosting(x: np.ndarray, y: np.ndarray, method: str = "isotonic") -> CalibratedClassifierCV:
    booster = HistGradientBoostingClassifier(max_iter=40, learning_rate=0.1, max_leaf_nodes=15, random_state=0)
    return CalibratedClassifierCV(booster, method=method, cv=3).fit(x, y)


def drifting_days(rng: np.random.Generator, members: int = 3000, days: int = 12) -> list[np.ndarray]:
    """Feature rows of the same members on consecutive days: ages and decayed sums move a little each day, a few
    members jump, one column is a 0/1 flag, and some values are missing."""
    x = np.column_stack([rng.normal(size=members), rng.exponential(size=members), rng.integers(0, 2, members),
                         rng.uniform(18, 90, members)])
    frames = []
    for _ in range(days):
        x = x.copy()
        x[:, 1] *= 0.99  # a decayed sum
        x[:, 3] += 1 / 365.25  # an age
        jump = rng.random(members) < 0.02
        x[jump, 0] = rng.normal(size=jump.sum())
        day = x.copy()
        day[rng.random(members) < 0.01, 1] = np.nan
        frames.append(day)
    return frames


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_changed_rows_predictor_equals_predict_proba_to_the_last_bit(method: str) -> None:
    rng = np.random.default_rng(0)
    days = drifting_days(rng)
    first = np.nan_to_num(days[0])
    y = (first[:, 0] + first[:, 1] * 0.5 + rng.normal(scale=0.5, size=len(first)) > 0.5).astype(int)
    model = calibrated_boosting(days[0], y, method)
    predictor = ChangedRowsPredictor(model, len(first), first.shape[1])
    assert predictor.thresholds is not None
    for day in days:
        present = np.flatnonzero(rng.random(len(day)) < 0.97)  # members come and go
        np.testing.assert_array_equal(predictor.predict(present, day[present]), model.predict_proba(day[present])[:, 1])
    total = sum(len(d) for d in days)
    assert predictor.predicted_rows < 0.8 * total  # the point: many rows were not predicted again


def test_a_model_without_split_thresholds_is_predicted_in_full() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 3))
    model = LogisticRegression().fit(x, x[:, 0] > 0)
    assert split_thresholds(model, 3) is None
    predictor = ChangedRowsPredictor(model, 500, 3)
    for _ in range(3):
        np.testing.assert_array_equal(predictor.predict(np.arange(500), x), model.predict_proba(x)[:, 1])
    assert predictor.predicted_rows == 1500


def test_thresholds_cover_every_split_of_every_fold() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 2))
    model = calibrated_boosting(x, (x.sum(axis=1) > 0).astype(int))
    thresholds = split_thresholds(model, 2)
    for fold in model.calibrated_classifiers_:
        for iteration in fold.estimator._predictors:
            nodes = iteration[0].nodes[iteration[0].nodes["is_leaf"] == 0]
            for feature, threshold in zip(nodes["feature_idx"], nodes["num_threshold"], strict=True):
                assert threshold in thresholds[feature]


def test_score_history_with_a_calibrated_booster_equals_the_day_by_day_loop() -> None:
    data = synthetic(members=300, seed=5)
    training = point_in_time_features(data["activity"], data["dues"], data["members"], dt.date(2024, 12, 31))
    columns = feature_columns(training)
    label = training.index.isin(data["dues"].member_id[(data["dues"].dues_year == 2025) & data["dues"].paid])
    model = calibrated_boosting(training[columns].to_numpy(dtype=float), label.astype(int), "sigmoid")
    days = [DAYS[0] + dt.timedelta(days=i) for i in range(30)] + DAYS[5:]
    expected = reference_history(data, days, model, columns)
    actual = pd.concat(score_history(data["activity"], data["roles"], data["memberships"], data["profile"],
                                     data["dues"], data["members"], days, model, columns, "v1"), ignore_index=True)
    assert actual.dues_propensity.nunique() > 20
    assert_same_history(expected, actual)


def test_warehouse_connections_cap_duckdb_memory_and_spill_under_alumni_home(tmp_path, monkeypatch) -> None:
    from alumni_orchestration.warehouse import connect

    monkeypatch.setenv("ALUMNI_HOME", str(tmp_path))
    monkeypatch.delenv("ALUMNI_DUCKDB_TEMP_DIR", raising=False)
    monkeypatch.setenv("ALUMNI_DUCKDB_MEMORY_LIMIT", "300MB")
    with connect(tmp_path / "w.duckdb") as conn:
        limit, temp = conn.execute("select current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
        # A sort bigger than the cap spills instead of failing or growing.
        spilled = conn.execute("select count(*) from (select random() r, repeat('x', 40) s from range(6000000) "
                               "order by r)").fetchone()[0]
    assert limit.replace(" ", "").upper().startswith(("286", "300")) and temp == str(tmp_path / "duckdb_tmp")
    assert spilled == 6_000_000


def test_top_interests_from_the_ranked_query_equal_those_from_every_row() -> None:
    """member_scores reads each member's top rows ranked by DuckDB instead of the whole interests mart."""
    import duckdb

    from alumni_orchestration.defs.scoring.assets import TOP_INTERESTS, TOP_INTERESTS_QUERY, top_interests

    rng = np.random.default_rng(4)
    topics = ["alumni_news", "careers", "mentoring", "sports", "culture", "research", "été"]
    rows = [(member, topic) for member in range(1, 400) for topic in topics if rng.random() < 0.6]
    interests = pd.DataFrame(rows, columns=["member_id", "topic"]).astype({"member_id": "int32"})
    interests["affinity"] = rng.choice([0.1, 0.25, 0.333333333, 0.05, 0.4], len(interests))  # many ties: topic decides
    interests.loc[interests.index[::37], "affinity"] = np.nan
    with duckdb.connect() as conn:
        conn.execute("create schema marts")
        conn.register("frame", interests)
        conn.execute("create table marts.member_interests as select * from frame")
        conn.execute("update marts.member_interests set affinity = 'nan'::double where member_id % 50 = 0 "
                     "and affinity is null")  # a NaN stored as such, not as NULL
        stored = conn.execute("select * from marts.member_interests").df()
        ranked = conn.execute(TOP_INTERESTS_QUERY, [TOP_INTERESTS]).df()
    assert len(ranked) < len(stored)
    pd.testing.assert_series_equal(top_interests(ranked), top_interests(stored))
