"""A generated association exported to each layout (HelloAsso's CSV export, Cogito-Sport's documented
member columns in Windows-1252 with ';', a PostgreSQL database with French names) and loaded through
its mapping gives the same raw membership tables as the canonical path, compared by key. The expected
differences are asserted, not skipped: the columns a layout does not carry, and the tables it leaves out."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from alumni_orchestration.contracts.membership import CONTRACT_TABLES
from alumni_orchestration.ingest.membership import LOAD_ORDER, load_membership_snapshot
from alumni_orchestration.mapping import load_mapping, mapping_reader
from alumni_orchestration.synthetic.generator import GeneratorConfig, generate_association
from alumni_orchestration.warehouse import ensure_raw_schema
from tests.conftest import TEST_END_DATE
from tests.mapping_layouts import (
    write_cogito_members,
    write_cogito_members_with_groups,
    write_cogito_members_xlsx,
    write_french_database,
    write_helloasso_export,
)

pytestmark = pytest.mark.slow  # generated associations, dbt or dagster runs


@pytest.fixture(scope="module")
def association(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mapped_association")
    generate_association(out, GeneratorConfig(members=400, years=2, seed=11, end_date=TEST_END_DATE))
    return out


@pytest.fixture(scope="module")
def canonical(association: Path, tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(tmp_path_factory.mktemp("canonical") / "w.duckdb"))
    ensure_raw_schema(conn)
    engine = sa.create_engine(f"sqlite:///{association / 'membership.sqlite'}")
    load_membership_snapshot(conn, engine)
    engine.dispose()
    # The comparison covers the source's warts: orphan and impossible payments, shared emails.
    reasons = {r for _, r, _ in quarantined(conn, "members") | quarantined(conn, "dues_payments")}
    assert {"unknown_member", "impossible_date", "duplicate_member_email", "missing_email"} <= reasons
    return conn


def load_mapped(mapping_path: Path, url: str | None, warehouse: Path) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(warehouse))
    ensure_raw_schema(conn)
    engine = sa.create_engine(url) if url else None
    try:
        load_membership_snapshot(conn, engine, chunk_rows=40, read=mapping_reader(load_mapping(mapping_path), engine))
    finally:
        if engine is not None:
            engine.dispose()
    return conn


def rows_by_key(conn: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> dict[tuple, tuple]:
    key = [c.name for c in CONTRACT_TABLES[table].columns if c.key]
    result = conn.execute(f"select {', '.join(key + columns)} from raw.{table}").fetchall()
    return {row[:len(key)]: row[len(key):] for row in result}


def quarantined(conn: duckdb.DuckDBPyConnection, table: str) -> set[tuple[str, str, str]]:
    return set(conn.execute("select record_key, reason, scope from raw.quarantine where source = ?",
                            [f"membership.{table}"]).fetchall())


def columns(table: str, without: set[str] = frozenset()) -> list[str]:
    return [c.name for c in CONTRACT_TABLES[table].columns if not c.key and c.name not in without]


def assert_same(canonical: duckdb.DuckDBPyConnection, mapped: duckdb.DuckDBPyConnection, table: str,
                not_carried: set[str] = frozenset()) -> None:
    expected = rows_by_key(canonical, table, columns(table, not_carried))
    assert len(expected) > 0
    assert rows_by_key(mapped, table, columns(table, not_carried)) == expected
    assert quarantined(mapped, table) == quarantined(canonical, table)
    for column in not_carried:  # the expected difference: a column the layout does not carry is empty
        assert mapped.execute(f"select count({column}) from raw.{table}").fetchone()[0] == 0


def assert_left_out(mapped: duckdb.DuckDBPyConnection, tables: set[str]) -> None:
    for table in tables:
        assert mapped.execute(f"select count(*) from raw.{table}").fetchone()[0] == 0, table


def test_helloasso_export_gives_the_canonical_dues(association: Path, canonical, tmp_path: Path) -> None:
    mapping = write_helloasso_export(association, tmp_path)
    mapped = load_mapped(mapping, f"sqlite:///{association / 'membership.sqlite'}", tmp_path / "w.duckdb")
    assert_same(canonical, mapped, "members")
    dues = columns("dues_payments", {"method"})
    assert rows_by_key(mapped, "dues_payments", dues) == rows_by_key(canonical, "dues_payments", dues)
    assert quarantined(mapped, "dues_payments") == quarantined(canonical, "dues_payments")
    # Expected difference: the export is of HelloAsso payments, whatever the canonical method.
    assert mapped.execute("select distinct method from raw.dues_payments").fetchall() == [("helloasso",)]
    assert_left_out(mapped, set(LOAD_ORDER) - {"members", "dues_payments"})


def test_cogito_layout_in_cp1252_gives_the_canonical_members(association: Path, canonical, tmp_path: Path) -> None:
    mapping = write_cogito_members(association, tmp_path)
    raw = (tmp_path / "membres.csv").read_bytes()
    assert "Radié".encode("cp1252") in raw and "Radié".encode() not in raw, "a Windows-1252 file"
    mapped = load_mapped(mapping, None, tmp_path / "w.duckdb")
    assert_same(canonical, mapped, "members", not_carried={
        "secondary_email", "programme", "region", "job_function", "sector", "declared_interests", "updated_at"})
    assert_left_out(mapped, set(LOAD_ORDER) - {"members"})


def test_the_same_members_as_an_excel_workbook(association: Path, canonical, tmp_path: Path) -> None:
    mapping = write_cogito_members_xlsx(association, tmp_path)
    assert "membres.xlsx" in mapping.read_text(encoding="utf-8")
    mapped = load_mapped(mapping, None, tmp_path / "w.duckdb")
    assert_same(canonical, mapped, "members", not_carried={
        "secondary_email", "programme", "region", "job_function", "sector", "declared_interests", "updated_at"})


def test_group_columns_of_the_member_file_give_the_canonical_memberships(association: Path, canonical,
                                                                         tmp_path: Path) -> None:
    mapping = write_cogito_members_with_groups(association, tmp_path)
    mapped = load_mapped(mapping, f"sqlite:///{association / 'membership.sqlite'}", tmp_path / "w.duckdb")
    assert_same(canonical, mapped, "groups")
    assert_same(canonical, mapped, "group_memberships")
    ended, leaders = mapped.execute("select count(left_on), count(*) filter (role = 'leader') "
                                    "from raw.group_memberships").fetchone()
    assert ended > 0 and leaders > 0, "the cells' optional end dates and roles were read"


@pytest.mark.postgres
def test_french_postgres_database_gives_the_canonical_tables(association: Path, canonical, tmp_path: Path,
                                                             postgres_database: str) -> None:
    mapping = write_french_database(association, postgres_database, tmp_path)
    mapped = load_mapped(mapping, postgres_database, tmp_path / "w.duckdb")
    assert_same(canonical, mapped, "members")
    assert_same(canonical, mapped, "dues_payments")
    assert_left_out(mapped, set(LOAD_ORDER) - {"members", "dues_payments"})
