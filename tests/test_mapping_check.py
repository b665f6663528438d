"""`alumni check` reads the membership source through the mapping when ALUMNI_MEMBERSHIP_MAPPING names one:
a mapping that does not validate, or that reads a column the file lacks, fails with its fix."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alumni_orchestration.operations.check import FAIL, OK, Connections, check_membership
from tests.mapping_layouts import write_cogito_members

pytestmark = pytest.mark.slow  # generated associations, dbt or dagster runs

MISSING_DB = "sqlite:////nonexistent/membership.sqlite"


def test_a_mapped_file_is_loaded_and_its_rows_shown(small_association: Path, tmp_path: Path) -> None:
    mapping = write_cogito_members(small_association, tmp_path)
    verdicts = check_membership(MISSING_DB, str(mapping))  # a files-only mapping needs no database
    assert verdicts[0].verdict == OK and "membership_mapping.yaml" in verdicts[0].detail
    members = next(v for v in verdicts if v.check == "membership.members")
    with sqlite3.connect(small_association / "membership.sqlite") as db:
        source_rows = db.execute("select count(*) from members").fetchone()[0]
    assert members.detail.startswith(f"{source_rows} rows, ")


def test_an_invalid_mapping_fails_with_its_errors_and_fix(small_association: Path, tmp_path: Path) -> None:
    mapping = write_cogito_members(small_association, tmp_path)
    mapping.write_text(mapping.read_text(encoding="utf-8").replace("Radié: left", "Radié: gone"), encoding="utf-8")
    [verdict] = check_membership(MISSING_DB, str(mapping))
    assert verdict.verdict == FAIL
    assert "tables.members.columns.status.values.Radié: 'gone' is not an allowed value" in verdict.detail
    assert "ALUMNI_MEMBERSHIP_MAPPING" in verdict.fix


def test_a_column_the_file_lacks_fails_the_load(small_association: Path, tmp_path: Path) -> None:
    mapping = write_cogito_members(small_association, tmp_path)
    mapping.write_text(mapping.read_text(encoding="utf-8").replace("first_name: FIRST_NAME", "first_name: PRENOM"),
                       encoding="utf-8")
    [verdict] = check_membership(MISSING_DB, str(mapping))
    assert verdict.verdict == FAIL
    assert "reads columns that the source does not have: ['PRENOM']" in verdict.detail


def test_the_environment_names_the_mapping(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALUMNI_MEMBERSHIP_MAPPING", str(tmp_path / "membership_mapping.yaml"))
    assert Connections.from_environment().membership_mapping == str(tmp_path / "membership_mapping.yaml")
