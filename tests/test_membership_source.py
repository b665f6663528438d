"""The membership source against SQLite and the real PostgreSQL: counts, quarantine, idempotence, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from alumni_orchestration.defs.membership.assets import membership_snapshot
from alumni_orchestration.defs.membership.resources import MembershipDatabaseResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.synthetic.generator import GeneratorConfig, generate_association
from tests.conftest import TEST_END_DATE

pytestmark = pytest.mark.slow  # a generated association, dbt or a Dagster subprocess

FAKE_PASSWORD = "FAKE-pg-secret-7f3a9"


def _materialize(url: str, warehouse: Path, instance: dg.DagsterInstance) -> dg.ExecuteInJobResult:
    return dg.materialize(
        [membership_snapshot],
        resources={"membership_db": MembershipDatabaseResource(url=url), "warehouse": WarehouseResource(path=str(warehouse))},
        instance=instance,
    )


def _tables(warehouse: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        names = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema='raw' order by 1").fetchall()]
        out = {n: conn.execute(f"select * from raw.{n} order by all").fetchall() for n in names if n != "quarantine"}
        out["quarantine"] = conn.execute(
            "select source, record_key, reason, scope, payload from raw.quarantine order by all").fetchall()
        return out


def _assert_loaded_like_generator(result: dg.ExecuteInJobResult, manifest: dict, warehouse: Path) -> None:
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 7 and all(c.passed for c in checks)
    warts = manifest["warts"]
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        reasons = dict(conn.execute(
            "select source || ':' || reason, count(*) from raw.quarantine group by 1").fetchall())
        row_reasons = dict(conn.execute(
            "select source || ':' || reason, count(*) from raw.quarantine where scope = 'row' group by 1").fetchall())
        for table in ("members", "dues_payments", "groups", "group_memberships", "general_assemblies",
                      "assembly_votes", "volunteer_roles"):
            loaded = conn.execute(f"select count(*) from raw.{table}").fetchone()[0]
            quarantined = sum(v for k, v in row_reasons.items() if k.startswith(f"membership.{table}:"))
            assert loaded + quarantined == manifest["counts"][table], table
        # The generator writes typed values: nothing but the email warts (and future birth dates) is a field error.
        fields = conn.execute("select distinct reason from raw.quarantine where scope = 'field'").fetchall()
        assert {r for (r,) in fields} <= {"missing_email", "invalid_email", "impossible_date"}
    assert reasons["membership.members:duplicate_member_email"] == warts["duplicate_member_email"]
    assert reasons["membership.members:missing_email"] == warts["missing_email"]
    assert reasons["membership.members:invalid_email"] == warts["invalid_email"]
    assert reasons["membership.dues_payments:unknown_member"] == warts["orphan_payment"]
    assert reasons["membership.dues_payments:impossible_date"] == warts["impossible_payment_date"]
    materializations = result.get_asset_materialization_events()
    metadata = {m.asset_key.path[-1]: m.materialization.metadata for m in materializations}
    assert metadata["members"]["rows_quarantined"].value == warts["duplicate_member_email"]
    assert "@" not in json.dumps({k: str(v) for m in metadata.values() for k, v in m.items()})


def test_membership_snapshot_from_sqlite_is_complete_and_idempotent(small_association: Path, tmp_path: Path) -> None:
    manifest = json.loads((small_association / "manifest.json").read_text())
    warehouse = tmp_path / "warehouse.duckdb"
    url = f"sqlite:///{small_association / 'membership.sqlite'}"
    with dg.instance_for_test() as instance:
        result = _materialize(url, warehouse, instance)
        _assert_loaded_like_generator(result, manifest, warehouse)
        first = _tables(warehouse)
        assert _materialize(url, warehouse, instance).success
        assert _tables(warehouse) == first


@pytest.mark.postgres
def test_membership_snapshot_from_postgres_matches_sqlite(tmp_path: Path, postgres_database: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = GeneratorConfig(members=400, years=2, seed=21, end_date=TEST_END_DATE)
    manifest = generate_association(tmp_path / "gen", config, membership_url=postgres_database)
    generate_association(tmp_path / "gen_sqlite", config)
    secret_url = postgres_database.replace("postgres@", f"postgres:{FAKE_PASSWORD}@")
    with dg.instance_for_test() as instance:
        result = _materialize(secret_url, tmp_path / "pg.duckdb", instance)
        _assert_loaded_like_generator(result, manifest, tmp_path / "pg.duckdb")
        logs = "\n".join(str(record) for record in instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION)))
        logs += "\n".join(str(e) for e in instance.all_logs(result.run_id))
        assert FAKE_PASSWORD not in logs
        sqlite_result = _materialize(f"sqlite:///{tmp_path / 'gen_sqlite' / 'membership.sqlite'}",
                                     tmp_path / "lite.duckdb", instance)
        assert sqlite_result.success
    pg_tables, lite_tables = _tables(tmp_path / "pg.duckdb"), _tables(tmp_path / "lite.duckdb")
    assert {k: len(v) for k, v in pg_tables.items()} == {k: len(v) for k, v in lite_tables.items()}
    assert pg_tables["dues_payments"] == lite_tables["dues_payments"]
    assert FAKE_PASSWORD not in capsys.readouterr().out
