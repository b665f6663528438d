"""The nightly membership asset reads through the mapping that ALUMNI_MEMBERSHIP_MAPPING names, with its
conservation checks; unset, it reads the canonical database as before."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from alumni_orchestration.defs.membership.assets import membership_snapshot
from alumni_orchestration.defs.membership.resources import MembershipDatabaseResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from tests.mapping_layouts import write_cogito_members

pytestmark = pytest.mark.slow  # generated associations, dbt or dagster runs


def materialize(tmp_path: Path, url: str) -> dg.ExecuteInProcessResult:
    return dg.materialize([membership_snapshot], resources={
        "membership_db": MembershipDatabaseResource(url=url),
        "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb")),
    }, instance=dg.DagsterInstance.ephemeral())


def test_the_asset_loads_the_mapped_file(small_association: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALUMNI_MEMBERSHIP_MAPPING", str(write_cogito_members(small_association, tmp_path)))
    result = materialize(tmp_path, f"sqlite:///{tmp_path / 'unused.sqlite'}")
    assert result.success
    assert all(check.passed for check in result.get_asset_check_evaluations())
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:
        members, programmes, groups = conn.execute(
            "select count(*), count(programme), (select count(*) from raw.groups) from raw.members").fetchone()
    assert members > 500 and programmes == 0 and groups == 0, "the layout's members; what it lacks is empty"


def test_an_invalid_mapping_fails_the_run_before_anything_is_read(small_association: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mapping = write_cogito_members(small_association, tmp_path)
    mapping.write_text(mapping.read_text(encoding="utf-8").replace("      member_id: N° membre\n", ""), encoding="utf-8")
    monkeypatch.setenv("ALUMNI_MEMBERSHIP_MAPPING", str(mapping))
    result = dg.materialize([membership_snapshot], resources={
        "membership_db": MembershipDatabaseResource(url=f"sqlite:///{small_association / 'membership.sqlite'}"),
        "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb")),
    }, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    messages = failure.message + (failure.cause.message if failure.cause else "")
    assert "tables.members.columns.member_id: missing required column" in messages
