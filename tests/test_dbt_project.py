"""The dbt project on a generated association: builds, backfills by window, resolves identities, measures engagement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from scipy.stats import spearmanr

from tests.conftest import TEST_END_DATE

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
DBT = str(Path(sys.executable).parent / "dbt")
AS_OF = "2026-11-22"


def dbt(warehouse: Path, target: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [DBT, *args, "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT), "--target-path", str(target)],
        env={**os.environ, "ALUMNI_WAREHOUSE": str(warehouse)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]
    return result


@pytest.fixture(scope="module")
def built(built_association: tuple[Path, Path, Path]) -> tuple[Path, Path, Path]:
    """The test run's one dbt-built warehouse (tests/conftest.py): (association, warehouse, dbt target).
    Read-only: a test that writes works on its own copy."""
    return built_association


def _rows(warehouse: Path, query: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(query).fetchall()


@pytest.mark.slow
def test_build_passes_with_data_tests_unit_tests_and_contracts(built) -> None:
    _, warehouse, target = built
    results = json.loads((target / "run_results.json").read_text())["results"]
    kinds = {r["unique_id"].split(".")[0] for r in results}
    assert {"model", "test", "unit_test"} <= kinds and all(r["status"] in ("success", "pass") for r in results)
    schemas = {r[0] for r in _rows(warehouse, "select distinct table_schema from information_schema.tables")}
    assert {"staging", "intermediate", "marts"} <= schemas
    members = _rows(warehouse, "select count(*) from marts.member_profile")[0][0]
    assert members == _rows(warehouse, "select count(*) from raw.members")[0][0]
    sums = _rows(warehouse, "select min(s), max(s) from (select sum(affinity) s from marts.member_interests group by member_id)")
    assert sums[0][0] == pytest.approx(1.0) and sums[0][1] == pytest.approx(1.0)


@pytest.mark.slow
def test_a_seven_day_backfill_rebuilds_only_its_window_and_matches_a_full_rebuild(built, tmp_path: Path) -> None:
    _, source, _ = built
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(source.read_bytes())
    inside, outside = "2026-03-10", "2026-02-01"
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("update marts.member_activity_daily set activity_count = 999 where activity_date = ?", [inside])
        conn.execute("update marts.member_activity_daily set activity_count = 777 where activity_date = ?", [outside])
        assert conn.execute("select count(*) from marts.member_activity_daily where activity_date = ?", [inside]).fetchone()[0]
    window = {"min_date": "2026-03-07", "max_date": "2026-03-13", "as_of": AS_OF}
    dbt(warehouse, tmp_path / "t1", "build", "--select", "member_activity_daily+", "--vars", json.dumps(window))
    assert not _rows(warehouse, "select * from marts.member_activity_daily where activity_count = 999")
    assert _rows(warehouse, f"select count(*) from marts.member_activity_daily where activity_date = '{outside}' "
                            "and activity_count <> 777")[0][0] == 0
    # Undo the outside tampering with its own window; the marts must then equal a full rebuild.
    dbt(warehouse, tmp_path / "t2", "build", "--select", "member_activity_daily+",
        "--vars", json.dumps({"min_date": outside, "max_date": outside, "as_of": AS_OF}))
    # The full rebuild to compare with is the run's shared warehouse: a full `dbt build` of the same raw
    # rows with the same vars (building it again here with --full-refresh gives the same marts).
    for mart in ["member_activity_daily", "member_engagement", "member_interests", "dues_history"]:
        assert _rounded(warehouse, mart) == _rounded(source, mart), mart


def _rounded(warehouse: Path, mart: str) -> list[tuple]:
    """A mart's rows as a sorted list, floats rounded: parallel sums may differ in the last bits."""
    rows = _rows(warehouse, f"select * from marts.{mart}")
    return sorted(tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows)


def _multiset(warehouse: Path, relation: str) -> Counter:
    """A relation's rows as a multiset, floats rounded: parallel sums may differ in the last bits."""
    rows = _rows(warehouse, f"select * from {relation}")
    return Counter(tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows)


@pytest.mark.slow
def test_an_incremental_nightly_after_a_full_build_equals_a_full_rebuild(built, tmp_path: Path) -> None:
    """int_email_interactions_filtered rebuilds only the SendGrid days whose raw events changed (a new
    day, a reloaded day, events moved between days), whatever the vars, and then equals a full rebuild."""
    _, source, _ = built
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(source.read_bytes())
    days = [d for (d,) in _rows(warehouse, "select distinct partition_date from raw.sendgrid_events order by 1")]
    night, reloaded, untouched = days[-1], days[-5], days[-10]
    with duckdb.connect(str(warehouse)) as conn:  # the raw data as it stood the evening before
        conn.execute("create table main.later as select * from raw.sendgrid_events where partition_date = ? "
                     "or (partition_date = ? and hash(sg_event_id) % 2 = 0)", [night, reloaded])
        conn.execute("delete from raw.sendgrid_events where sg_event_id in (select sg_event_id from main.later)")
    dbt(warehouse, tmp_path / "t1", "run", "--select", "int_email_interactions_filtered", "--full-refresh")
    with duckdb.connect(str(warehouse)) as conn:  # the night: a new day lands, a day is reloaded, events move
        conn.execute("insert into raw.sendgrid_events select * from main.later")
        conn.execute("update raw.sendgrid_events set partition_date = ? where sg_event_id in (select sg_event_id "
                     "from raw.sendgrid_events where partition_date = ? order by sg_event_id limit 5)",
                     [reloaded, days[-2]])
        marked = conn.execute("update intermediate.int_email_interactions_filtered set topic = 'untouched' "
                              "where partition_date = ? returning sg_event_id", [untouched]).fetchall()
    assert marked
    nightly = {"as_of": AS_OF, "min_date": str(night), "max_date": str(night)}
    dbt(warehouse, tmp_path / "t2", "build", "--select", "int_email_interactions_filtered+",
        "--exclude", "member_activity_daily+", "--vars", json.dumps(nightly))
    assert _rows(warehouse, "select count(*) from intermediate.int_email_interactions_filtered "
                            "where topic = 'untouched'")[0][0] == len(marked), "an unchanged day was rebuilt"
    with duckdb.connect(str(warehouse)) as conn:  # undo the marking with a rebuild of that day only
        conn.execute("update intermediate.int_email_interactions_filtered set day_events = -1 where partition_date = ?",
                     [untouched])
    dbt(warehouse, tmp_path / "t3", "build", "--select", "int_email_interactions_filtered+",
        "--exclude", "member_activity_daily+", "--vars", json.dumps(nightly))
    models = ["intermediate.int_email_interactions_filtered", "intermediate.int_member_activities_unioned",
              "marts.member_interests"]
    incremental = {m: _multiset(warehouse, m) for m in models}
    dbt(warehouse, tmp_path / "t4", "build", "--select", "int_email_interactions_filtered+",
        "--exclude", "member_activity_daily+", "--full-refresh", "--vars", json.dumps({"as_of": AS_OF}))
    for model in models:
        assert _multiset(warehouse, model) == incremental[model], model


@pytest.mark.slow
def test_a_nightly_dagster_run_parses_the_project_at_most_once(built, tmp_path: Path) -> None:
    """The run's three dbt invocations (models, daily mart, member_engagement) get the same vars, so
    the second and third start from the first one's partial parse instead of parsing again."""
    from alumni_orchestration.defs.dbt.assets import (
        DBT_PROJECT_DIR,
        dbt_daily_models,
        dbt_models,
        dbt_project,
    )
    from alumni_orchestration.defs.warehouse.resources import WarehouseResource
    from alumni_orchestration.lib.dbt_cli import LocalDbtCliResource

    _, source, _ = built
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(source.read_bytes())
    resources = {"warehouse": WarehouseResource(path=str(warehouse)),
                 "dbt": LocalDbtCliResource(project_dir=dbt_project, profiles_dir=str(PROJECT), dbt_executable=DBT)}
    before = os.environ.get("ALUMNI_WAREHOUSE")
    result = dg.materialize([dbt_models, dbt_daily_models], resources=resources, partition_key=TEST_END_DATE,
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    # The steps point dbt at their warehouse only while they run: the next in-process run is not redirected.
    assert os.environ.get("ALUMNI_WAREHOUSE") == before
    logs = sorted((DBT_PROJECT_DIR / "target").glob(f"*-{result.run_id[:7]}-*/dbt.log"))
    assert len(logs) == 3
    assert sum("Unable to do partial parsing" in log.read_text() for log in logs) <= 1


@pytest.mark.slow
def test_identity_resolution_attributes_at_least_99_percent_of_activity_rows(built) -> None:
    association, warehouse, _ = built
    truth = pd.read_csv(association / "ground_truth/attributions.csv", dtype=str, keep_default_na=False)
    owners = pd.read_csv(association / "ground_truth/email_owners.csv", dtype=str)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        resolved = conn.execute("select source, record_key, cast(member_id as varchar) as got "
                                "from intermediate.int_members_identity_resolved").df()
        events = conn.execute("select email from staging.stg_sendgrid__events where event in ('open', 'click')").df()
        unmatched = conn.execute("select source, record_key from intermediate.int_identities_unmatched").df()
    provider = truth[truth.member_id != ""].merge(resolved, on=["source", "record_key"], how="left")
    emails = events.merge(owners.assign(email=owners.email.str.lower()), on="email").merge(
        resolved[resolved.source == "sendgrid_recipient"].rename(columns={"record_key": "email"}), on="email", how="left")
    correct = (provider.member_id == provider.got).sum() + (emails.member_id == emails.got).sum()
    attributable = len(provider) + len(emails)
    assert correct / attributable >= 0.99
    wrong = provider[provider.member_id != provider.got]
    assert wrong.got.isna().all(), "a row was attributed to the wrong member"
    listed = set(zip(unmatched.source, unmatched.record_key, strict=True))
    assert all((s, k) in listed for s, k in zip(wrong.source, wrong.record_key, strict=True))
    guests = truth[truth.member_id == ""]
    assert guests.merge(resolved, on=["source", "record_key"]).got.isna().mean() > 0.95


@pytest.mark.slow
def test_engagement_tracks_the_true_engagement(built) -> None:
    association, warehouse, _ = built
    truth = pd.read_csv(association / "ground_truth/members.csv")
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        engagement = conn.execute("select member_id, engagement_index from marts.member_engagement").df()
    current = engagement.merge(truth[truth.status.isin(["active", "lapsed"])], on="member_id")
    assert spearmanr(current.engagement_index, current.true_engagement).statistic >= 0.7


@pytest.mark.slow
def test_sql_lint_passes() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "sqlfluff"), "lint", "models", "--processes", "1"],
                            cwd=PROJECT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_every_model_is_an_asset_in_its_layer_group_and_tests_are_checks() -> None:
    from alumni_orchestration.definitions import defs

    repo = defs().get_repository_def()
    graph = repo.asset_graph
    groups = {key.path[0]: graph.get(key).group_name for key in graph.get_all_asset_keys()
              if key.path[0] in ("staging", "intermediate", "marts")}
    assert groups and all(layer == group for layer, group in groups.items())
    marts = {key.path[-1] for key in graph.get_all_asset_keys() if key.path[0] == "marts"}
    assert {"member_profile", "member_activity_daily", "member_engagement", "member_interests", "dues_history"} <= marts
    checks = {key for key in graph.asset_check_keys if key.asset_key.path[0] in ("staging", "intermediate", "marts")}
    assert len(checks) >= 20
    daily = graph.get(dg.AssetKey(["marts", "member_activity_daily"]))
    assert daily.partitions_def is not None and daily.backfill_policy == dg.BackfillPolicy.single_run()
