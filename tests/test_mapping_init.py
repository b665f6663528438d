"""`alumni init` on each of the three sources (HelloAsso's export, the Cogito-Sport layout in cp1252, a
PostgreSQL database with French names): every required column is proposed as the example mappings map
it, or flagged; the closing note shows the proposals; no secret is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from alumni_orchestration.cli import main
from alumni_orchestration.mapping import load_mapping
from alumni_orchestration.mapping.propose import propose
from tests.mapping_layouts import write_cogito_members, write_french_database, write_helloasso_export

pytestmark = pytest.mark.slow  # generated associations, dbt or dagster runs


def required_columns(mapping_path: Path) -> dict[tuple[str, str], str | None]:
    """(table, required column) -> the source column that a reviewed mapping reads for it."""
    return {(t, c): rule.column for t, table in load_mapping(mapping_path).tables.items()
            for c, rule in table.columns.items() if c in table.fatal}


def proposed(source: str) -> dict[tuple[str, str], str | None]:
    out = {}
    for p in propose(source):
        out |= {(p.target, c): g.rule["column"] for c, g in p.guesses.items()}
        out |= {(p.target, c): None for c in p.missing_required}
    return out


def assert_required_right_or_flagged(reviewed: Path, source: str, tables: set[str]) -> None:
    """For the tables that the reviewed mapping reads from this source."""
    guesses = proposed(source)
    for (table, column), expected in required_columns(reviewed).items():
        if table in tables:
            assert (table, column) in guesses, (table, column)  # proposed right, or flagged (None)
            assert guesses[(table, column)] in (expected, None), (table, column, guesses[(table, column)])
    assert any(v is not None for v in guesses.values())


def test_the_cogito_layout_is_proposed_as_reviewed_and_loads(small_association: Path, tmp_path: Path, capsys) -> None:
    reviewed = write_cogito_members(small_association, tmp_path)
    source = str(tmp_path / "membres.csv")
    assert_required_right_or_flagged(reviewed, source, {"members"})
    assert main(["init", source, "--out", str(tmp_path / "init")]) == 0
    note = capsys.readouterr().out
    assert "status               <- Statut" in note and "4 labels recognised" in note
    written = load_mapping(tmp_path / "init" / "membership_mapping.yaml")  # valid as proposed
    assert written.tables["members"].columns["birth_date"].date == "%d.%m.%Y"
    assert written.tables["members"].columns["status"].values["Radié"] == "left"


def test_the_helloasso_export_flags_what_it_cannot_guess(small_association: Path, tmp_path: Path, capsys) -> None:
    reviewed = write_helloasso_export(small_association, tmp_path)
    source = str(tmp_path / "helloasso_adhesions.csv")
    assert_required_right_or_flagged(reviewed, source, {"dues_payments"})  # its members come from a database
    assert proposed(source)[("dues_payments", "dues_year")] is None, "a year inside the tariff's label: flagged"
    assert main(["init", source, "--out", str(tmp_path / "init")]) == 1
    note = capsys.readouterr().out
    assert "dues_year            <- ?  REQUIRED" in note and "1 required column(s) to map by hand" in note
    text = (tmp_path / "init" / "membership_mapping.yaml").read_text(encoding="utf-8")
    assert "# dues_year: REQUIRED, no source column found" in text
    assert "CHECK: labels without a contract value: ['Validé']" in text  # the order status is no member status


@pytest.mark.postgres
def test_the_french_database_is_proposed_as_reviewed(small_association: Path, tmp_path: Path, capsys,
                                                     postgres_database: str) -> None:
    reviewed = write_french_database(small_association, postgres_database, tmp_path)
    guesses = proposed(postgres_database)
    assert {k: v for k, v in guesses.items() if k in required_columns(reviewed)} == required_columns(reviewed)
    url_with_password = postgres_database.replace("postgres@", "postgres:s3cret-pw@")
    assert main(["init", url_with_password, "--out", str(tmp_path / "init")]) == 0
    out = capsys.readouterr().out
    env = (tmp_path / "init" / "alumni.env.template").read_text(encoding="utf-8")
    assert "s3cret-pw" not in out + env + (tmp_path / "init" / "membership_mapping.yaml").read_text(encoding="utf-8")
    assert "SENDGRID_API_KEY=  # secret" in env and "HELLOASSO_CLIENT_SECRET=  # secret" in env
    assert f"ALUMNI_MEMBERSHIP_MAPPING={(tmp_path / 'init' / 'membership_mapping.yaml').resolve()}" in env
