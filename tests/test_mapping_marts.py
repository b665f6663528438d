"""The marts are the same whether the membership comes from the canonical database or through a mapping
of a PostgreSQL database with French table and column names (members and dues; the other tables as they
are): the dbt models of the members and their dues, compared table by table, row by row."""

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
from tests.mapping_layouts import copy_canonical_tables, write_french_database
from tests.test_dbt_project import AS_OF, dbt
from tests.warehouse_fixture import build_raw_warehouse_from_files

pytestmark = pytest.mark.slow  # generated associations, dbt or dagster runs

MARTS = ("member_profile", "dues_history", "member_engagement", "member_interests")


def marts(warehouse: Path) -> dict[str, list[tuple]]:
    """Each mart's rows; floats to 9 decimals (a sum over rows read in another order differs in its last bit)."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return {m: sorted((tuple(round(v, 9) if isinstance(v, float) else v for v in row)
                          for row in conn.execute(f"select * from marts.{m}").fetchall()), key=repr) for m in MARTS}


@pytest.mark.postgres
def test_the_marts_through_a_french_database_are_the_canonical_ones(tmp_path: Path, postgres_database: str) -> None:
    association = tmp_path / "association"
    generate_association(association, GeneratorConfig(members=250, years=1, seed=23, end_date=TEST_END_DATE))
    select = ["--select", "+" + " +".join(MARTS), "--vars", json.dumps({"as_of": AS_OF})]

    canonical = tmp_path / "canonical.duckdb"
    build_raw_warehouse_from_files(association, canonical)
    dbt(canonical, tmp_path / "target_canonical", "run", *select)

    mapped = tmp_path / "mapped.duckdb"
    build_raw_warehouse_from_files(association, mapped)  # the providers' raw tables, the same on both sides
    mapping = write_french_database(association, postgres_database, tmp_path)
    mapping.write_text(mapping.read_text(encoding="utf-8") + copy_canonical_tables(association, postgres_database),
                       encoding="utf-8")
    engine = sa.create_engine(postgres_database)
    with duckdb.connect(str(mapped)) as conn:  # the membership tables replaced by the mapped load
        load_membership_snapshot(conn, engine, read=mapping_reader(load_mapping(mapping), engine))
    engine.dispose()
    dbt(mapped, tmp_path / "target_mapped", "run", *select)

    expected, got = marts(canonical), marts(mapped)
    assert all(expected[m] for m in MARTS)
    for mart in MARTS:
        assert got[mart] == expected[mart], mart
