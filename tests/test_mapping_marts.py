"""The marts are the same whether the membership comes from the canonical database or through a mapping:
a PostgreSQL database with French table and column names, HelloAsso's CSV export of the dues, Cogito-Sport's
member CSV in Windows-1252. The dbt models of the members and their dues are compared mart by mart, by key;
the differences a layout is expected to make (what it does not carry) are asserted, everything else is equal."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from alumni_orchestration.ingest.membership import load_membership_snapshot
from alumni_orchestration.mapping import load_mapping, mapping_reader
from alumni_orchestration.synthetic.generator import GeneratorConfig, generate_association
from tests.conftest import TEST_END_DATE
from tests.mapping_layouts import (
    CANONICAL_REST,
    copy_canonical_tables,
    write_cogito_members,
    write_french_database,
    write_helloasso_export,
)
from tests.test_dbt_project import AS_OF, dbt
from tests.warehouse_fixture import build_raw_warehouse_from_files

pytestmark = pytest.mark.slow  # generated associations, dbt or dagster runs

MART_KEYS = {"member_profile": ("member_id",), "dues_history": ("member_id", "dues_year"),
             "member_engagement": ("member_id",), "member_interests": ("member_id", "topic")}
SELECT = ["--select", "+" + " +".join(MART_KEYS), "--vars", json.dumps({"as_of": AS_OF})]

Mart = dict[tuple, dict[str, object]]


def marts(warehouse: Path) -> dict[str, Mart]:
    """Each mart's rows by key; floats to 9 decimals (a sum over rows read in another order differs in its last bit)."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return {mart: by_key(conn, mart, key) for mart, key in MART_KEYS.items()}


def by_key(conn: duckdb.DuckDBPyConnection, mart: str, key: tuple[str, ...]) -> Mart:
    result = conn.execute(f"select * from marts.{mart}")
    names = [d[0] for d in result.description]
    rows = [dict(zip(names, (round(v, 9) if isinstance(v, float) else v for v in row), strict=True))
            for row in result.fetchall()]
    keyed = {tuple(row[k] for k in key): row for row in rows}
    assert len(keyed) == len(rows), f"{mart}: key {key} is not unique"
    return keyed


def differing_columns(expected: Mart, got: Mart) -> set[str]:
    return {c for k, row in expected.items() for c, v in row.items() if got[k][c] != v}


def assert_marts(expected: dict[str, Mart], got: dict[str, Mart], differences: dict[str, set[str]]) -> None:
    """Same keys in every mart; the columns that differ are exactly the listed ones."""
    for mart in MART_KEYS:
        assert expected[mart], mart
        assert got[mart].keys() == expected[mart].keys(), mart
        assert differing_columns(expected[mart], got[mart]) == differences.get(mart, set()), mart


@pytest.fixture(scope="module")
def association(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("association")
    generate_association(out, GeneratorConfig(members=250, years=1, seed=23, end_date=TEST_END_DATE))
    return out


@pytest.fixture(scope="module")
def canonical(association: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Mart]:
    """One canonical dbt build, shared by every layout."""
    root = tmp_path_factory.mktemp("canonical")
    build_raw_warehouse_from_files(association, root / "w.duckdb")
    dbt(root / "w.duckdb", root / "target", "run", *SELECT)
    return marts(root / "w.duckdb")


def mapped_marts(association: Path, mapping: Path, url: str | None, folder: Path) -> dict[str, Mart]:
    """The providers' raw tables as on the canonical side, the membership tables replaced by the mapped load."""
    warehouse = folder / "mapped.duckdb"
    build_raw_warehouse_from_files(association, warehouse)
    engine = sa.create_engine(url) if url else None
    try:
        with duckdb.connect(str(warehouse)) as conn:
            load_membership_snapshot(conn, engine, read=mapping_reader(load_mapping(mapping), engine))
    finally:
        if engine is not None:
            engine.dispose()
    dbt(warehouse, folder / "target", "run", *SELECT)
    return marts(warehouse)


def with_canonical_tables(mapping: Path, tables: tuple[str, ...]) -> Path:
    """The tables a layout leaves out, read as they are from the association's own database."""
    mapping.write_text(mapping.read_text(encoding="utf-8") + "".join(
        f"  {t}:\n    source: {{table: {t}}}\n    columns: same\n" for t in tables), encoding="utf-8")
    return mapping


@pytest.mark.postgres
def test_the_marts_through_a_french_database_are_the_canonical_ones(association: Path, canonical, tmp_path: Path,
                                                                    postgres_database: str) -> None:
    mapping = write_french_database(association, postgres_database, tmp_path)
    mapping.write_text(mapping.read_text(encoding="utf-8") + copy_canonical_tables(association, postgres_database),
                       encoding="utf-8")
    assert_marts(canonical, mapped_marts(association, mapping, postgres_database, tmp_path), {})


def test_the_marts_through_the_helloasso_export(association: Path, canonical, tmp_path: Path) -> None:
    mapping = with_canonical_tables(write_helloasso_export(association, tmp_path), CANONICAL_REST)
    got = mapped_marts(association, mapping, f"sqlite:///{association / 'membership.sqlite'}", tmp_path)
    assert_marts(canonical, got, {"dues_history": {"channel"}})
    # Expected difference: the export says every payment went through HelloAsso (method "helloasso"), so the
    # cheques and cash the canonical database records ("offline" channel) become database payments.
    changed = {(canonical["dues_history"][k]["channel"], row["channel"])
               for k, row in got["dues_history"].items() if row["channel"] != canonical["dues_history"][k]["channel"]}
    assert changed == {("offline", "membership_db")}


COGITO_NOT_CARRIED = {"programme", "region", "job_function", "sector", "declared_interests"}
WITHOUT_DECLARED = {"declared_only": "segment_fallback", "declared_and_measured": "measured_only"}


def test_the_marts_through_the_cogito_member_file(association: Path, canonical, tmp_path: Path) -> None:
    mapping = with_canonical_tables(write_cogito_members(association, tmp_path), ("dues_payments",) + CANONICAL_REST)
    got = mapped_marts(association, mapping, f"sqlite:///{association / 'membership.sqlite'}", tmp_path)
    assert_marts(canonical, got, {"member_profile": COGITO_NOT_CARRIED,
                                  "member_interests": {"affinity", "declared", "affinity_source"}})
    # Expected differences: the member columns the layout does not carry are NULL in the profile...
    assert all(row[c] is None for row in got["member_profile"].values() for c in COGITO_NOT_CARRIED)
    # ...so no interest is declared: a declared prior is gone from each member's affinity source, and only
    # the members who had no declared interest but measured signals keep their affinities (the others fall
    # back to their segment's profile or are renormalised over what was measured).
    expected, interests = canonical["member_interests"], got["member_interests"]
    assert not any(row["declared"] for row in interests.values())
    assert all(row["affinity_source"] == WITHOUT_DECLARED.get(expected[k]["affinity_source"],
                                                              expected[k]["affinity_source"])
               for k, row in interests.items())
    undeclared = {k[0] for k, row in expected.items() if row["affinity_source"] == "measured_only"}
    assert undeclared
    assert all(row["affinity"] == expected[k]["affinity"] for k, row in interests.items() if k[0] in undeclared)
