"""scoring.member_score_reasons is incremental: a second run explains only the members whose inputs changed,
keeps the others' stored rows, and equals a from-scratch run row for row (whatever the chunk size)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from alumni_orchestration.defs.workbench.reasons import PENDING, refresh_order
from alumni_orchestration.scoring.explain import (
    background_members,
    input_hashes,
    needs_explaining,
    still_standing,
)

NODE = "scoring__member_score_reasons"


def test_needs_explaining_the_new_the_changed_and_all_after_a_version_change() -> None:
    x = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.5]])
    hashes = input_hashes(x)
    stored = pd.DataFrame({"member_id": [1, 2], "dues_input_hash": [hashes[0], "old"],
                           "dues_explain_version": ["v1", "v1"]})
    ids = pd.Index([1, 2, 3])
    assert needs_explaining(hashes, "v1", stored, ids).tolist() == [False, True, True]
    assert needs_explaining(hashes, "v2", stored, ids).tolist() == [True, True, True]
    assert input_hashes(x + np.array([0.0, 1e-12]))[0] != hashes[0]  # the exact floats


def test_the_background_is_the_same_members_whichever_order_the_ids_come_in() -> None:
    ids = np.arange(100, 400)
    assert sorted(background_members(ids, 8, 3)) == sorted(background_members(ids[::-1].copy(), 8, 3))


def test_a_run_explains_the_never_explained_first_then_the_longest_unrefreshed_within_its_budget() -> None:
    explained_on = pd.Series(pd.to_datetime([None, "2026-01-03", "2026-01-01", None, "2026-01-02"]))
    todo = np.array([50, 10, 20, 40, 30])
    assert refresh_order(todo, explained_on, 3).tolist() == [20, 40, 50]
    assert refresh_order(todo, explained_on, 4).tolist() == [20, 30, 40, 50]
    assert refresh_order(todo, explained_on, 0).tolist() == []


def test_stored_reasons_stand_while_the_score_stays_close_and_they_are_young() -> None:
    stored = pd.DataFrame({"member_id": [1, 2, 3, 4, 5], "dues_explain_version": ["v1", "v1", "v1", "v0", "v1"],
                           "dues_explained_score": [0.40, 0.40, 0.40, 0.40, np.nan],
                           "dues_explained_on": pd.to_datetime(["2026-03-01", "2026-03-01", "2026-01-01",
                                                                "2026-03-01", None])})
    scores = pd.Series([0.41, 0.43, 0.40, 0.40, 0.40, 0.40], index=[1, 2, 3, 4, 5, 6])
    ids = pd.Index([1, 2, 3, 4, 5, 6])
    day = pd.Timestamp("2026-03-10").date()
    # 1 stands; 2 moved 0.03; 3 is 68 days old; 4 has another explain version; 5 is pending; 6 was never explained
    assert still_standing(stored, ids, "v1", scores, day, 0.02, 60).tolist() == [True, False, False, False, False,
                                                                                  False]
    assert not still_standing(stored, ids, "v1", scores, day, 0.0, 60).any()  # tolerance 0: the exact mode


def _materialise(warehouse: Path, models: str, chunk_size: int, budget: int = 25_000,
                 tolerance: float = 0.0) -> dict:
    from alumni_orchestration.defs.scoring.resources import ScoringResource
    from alumni_orchestration.defs.warehouse.resources import WarehouseResource
    from alumni_orchestration.defs.workbench.reasons import ReasonsConfig, member_score_reasons

    result = dg.materialize([member_score_reasons],
                            resources={"warehouse": WarehouseResource(path=str(warehouse)),
                                       "scoring": ScoringResource(model_dir=models)},
                            run_config=dg.RunConfig({NODE: ReasonsConfig(chunk_size=chunk_size,
                                                                         max_explained_per_run=budget,
                                                                         score_tolerance=tolerance)}))
    assert result.success
    metadata = result.asset_materializations_for_node(NODE)[0].metadata
    return {key: metadata[key].value for key in ("members_explained", "members_reused", "dagster/row_count",
                                                 "members_left_for_next_nights",
                                                 "members_reused_score_within_tolerance")}


def _reasons(warehouse: Path) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute("select * from scoring.member_score_reasons order by member_id").df()


def _add_clicks(warehouse: Path, member_ids: list[int]) -> None:
    """New email clicks the day before the scores' as_of: these members' features change, nobody else's."""
    with duckdb.connect(str(warehouse)) as conn:
        as_of = conn.execute("select max(as_of) from scoring.dues_propensity").fetchone()[0]
        for member_id in member_ids:
            conn.execute("insert into marts.member_activity_daily select * replace (?::bigint as member_id, "
                         "(?::date - 1) as activity_date, 'clicks' as signal, 3 as activity_count) "
                         "from marts.member_activity_daily limit 1", [member_id, as_of])


@pytest.mark.slow
def test_a_second_run_explains_only_the_changed_members_and_equals_a_fresh_run(scored_association,
                                                                                tmp_path) -> None:
    from alumni_orchestration.defs.scoring.resources import ScoringResource

    _, source = scored_association
    models = str(source.parent / "models")
    incremental, fresh = tmp_path / "incremental.duckdb", tmp_path / "fresh.duckdb"
    shutil.copy(source, incremental)
    shutil.copy(source, fresh)

    first = _materialise(incremental, models, chunk_size=150)
    assert first["members_explained"] == first["dagster/row_count"] > 500 and first["members_reused"] == 0
    before = _reasons(incremental)
    again = _materialise(incremental, models, chunk_size=150)
    assert again["members_explained"] == 0 and again["members_reused"] == first["dagster/row_count"]
    pd.testing.assert_frame_equal(_reasons(incremental), before)

    with duckdb.connect(str(incremental), read_only=True) as conn:
        ids = conn.execute("select member_id from scoring.member_scores").df().member_id.to_numpy()
    reference = set(background_members(ids, 8, ScoringResource(model_dir=models).seed).tolist())
    changed = [int(m) for m in np.sort(ids) if int(m) not in reference][::97][:3]
    _add_clicks(incremental, changed)
    _add_clicks(fresh, changed)
    third = _materialise(incremental, models, chunk_size=150)
    assert third["members_explained"] == 3 and third["members_reused"] == first["dagster/row_count"] - 3
    _materialise(fresh, models, chunk_size=20_000)

    after, scratch = _reasons(incremental), _reasons(fresh)
    pd.testing.assert_frame_equal(after, scratch)
    moved = after.set_index("member_id").dues_input_hash != before.set_index("member_id").dues_input_hash
    assert sorted(moved[moved].index.tolist()) == sorted(changed)


@pytest.mark.slow
def test_a_bounded_run_leaves_the_rest_for_the_next_nights_and_catches_up_to_a_fresh_run(scored_association,
                                                                                         tmp_path) -> None:
    """With a budget of 400 members a run, the first night explains 400 (the others say they are pending),
    the next nights the next ones across chunks; once caught up, the table equals an unbounded run's."""
    _, source = scored_association
    models = str(source.parent / "models")
    bounded, fresh = tmp_path / "bounded.duckdb", tmp_path / "fresh.duckdb"
    shutil.copy(source, bounded)
    shutil.copy(source, fresh)
    first = _materialise(bounded, models, chunk_size=250, budget=400)
    members = first["dagster/row_count"]
    assert members > 800 and first["members_explained"] == 400 and first["members_left_for_next_nights"] == members - 400
    rows = _reasons(bounded)
    assert (rows.dues_reasons == PENDING).sum() == members - 400 and rows.dues_base.notna().sum() == 400
    second = _materialise(bounded, models, chunk_size=250, budget=400)
    assert second["members_explained"] == 400 and second["members_reused"] == 400
    explained_twice = _reasons(bounded).dues_base.notna().sum()
    assert explained_twice == 800
    nights = 2
    while _materialise(bounded, models, chunk_size=250, budget=400)["members_left_for_next_nights"]:
        nights += 1
    assert nights == -(-members // 400) - 1 or nights == -(-members // 400)
    _materialise(fresh, models, chunk_size=20_000)
    pd.testing.assert_frame_equal(_reasons(bounded), _reasons(fresh))


@pytest.mark.slow
def test_a_member_whose_inputs_moved_is_re_explained_only_if_the_score_moved_or_the_reasons_aged(
        scored_association, tmp_path) -> None:
    """New clicks for three members (their inputs change): the one whose score moved by 0.05 is explained again,
    the one whose score moved by 0.005 keeps its reasons, the one whose reasons are 61 days old is explained again."""
    _, source = scored_association
    models = str(source.parent / "models")
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(source, warehouse)
    first = _materialise(warehouse, models, chunk_size=20_000, tolerance=0.02)
    assert first["members_explained"] == first["dagster/row_count"]
    before = _reasons(warehouse).set_index("member_id")
    moved, still, aged = [int(m) for m in before.index[before.dues_base.notna()][[5, 50, 100]]]
    _add_clicks(warehouse, [moved, still, aged])
    with duckdb.connect(str(warehouse)) as conn:
        for member_id, delta in ((moved, 0.05), (still, 0.005)):
            conn.execute("update scoring.dues_propensity set dues_propensity = dues_propensity + ? "
                         "where member_id = ?", [delta, member_id])
        conn.execute("update scoring.member_score_reasons set dues_explained_on = dues_explained_on - interval 61 day "
                     "where member_id = ?", [aged])
    second = _materialise(warehouse, models, chunk_size=20_000, tolerance=0.02)
    assert second["members_explained"] == 2 and second["members_reused_score_within_tolerance"] == 1
    after = _reasons(warehouse).set_index("member_id")
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        score = dict(conn.execute("select member_id, dues_propensity from scoring.dues_propensity").fetchall())
    assert after.loc[moved, "dues_explained_score"] == pytest.approx(score[moved])
    assert after.loc[still, "dues_explained_score"] == before.loc[still, "dues_explained_score"]
    assert after.loc[still, "dues_explained_on"] == before.loc[still, "dues_explained_on"]
    assert after.loc[aged, "dues_explained_on"] == before.loc[aged, "dues_explained_on"]  # aged 61 days, then today
    untouched = after.index.difference([moved, still, aged])
    pd.testing.assert_frame_equal(after.loc[untouched, ["dues_reasons", "dues_explained_on"]],
                                  before.loc[untouched, ["dues_reasons", "dues_explained_on"]])
