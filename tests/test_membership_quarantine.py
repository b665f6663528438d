"""Issue 13, finding 8: the membership database loses no value silently, on SQLite and on PostgreSQL.

The source here is a messy export: the membership tables with every column as text and no key
constraint, so a value that does not parse and a duplicated key can reach the loader, as they do
in a real association's database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from alumni_orchestration.defs.membership.assets import membership_snapshot
from alumni_orchestration.defs.membership.resources import MembershipDatabaseResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.ingest.membership import load_membership_snapshot
from alumni_orchestration.synthetic.membership_schema import MEMBERSHIP_TABLES
from alumni_orchestration.warehouse import ensure_raw_schema


def member(member_id: str, **values: str | None) -> dict[str, str | None]:
    row = {"member_id": member_id, "first_name": "Prenom", "last_name": "Nom", "email": f"m{member_id}@example.org",
           "birth_date": "1990-05-01", "graduation_year": "2012", "consent_email": "1", "consent_newsletter": "0",
           "status": "active", "joined_on": "2015-09-01", "left_on": None, "updated_at": "2024-01-01 09:00:00",
           "city": "Lyon"}
    return row | values


# Source order matters: within a duplicated key, the later row is the one with the higher rowid.
MESSY_EXPORT: dict[str, list[dict[str, str | None]]] = {
    "members": [
        member("1"),
        member("2", joined_on="le 3 mars"),
        member("3", left_on="2024-02-30"),
        member("4", graduation_year="deux mille"),
        member("5", consent_email="yes"),
        member("6", consent_email="Oui", consent_newsletter="non"),
        # member 7: the first row is the newer one; member 8: same updated_at, so the later row wins.
        member("7", city="Paris", updated_at="2024-06-01 10:00:00"),
        member("7", city="Lille", updated_at="2023-01-01 10:00:00"),
        member("8", city="Nantes"),
        member("8", city="Rennes"),
    ],
    "groups": [{"group_id": "1", "name": "Club data", "kind": "club", "topic": "data"}],
    "general_assemblies": [{"assembly_id": "1", "held_on": "2024-06-15", "title": "AG 2024", "kind": "ordinary",
                            "voting_opens_on": "2024-06-01", "voting_closes_on": "2024-06-14"}],
    "dues_payments": [
        {"payment_id": "1", "member_id": "7", "dues_year": "2024", "tier": "annual", "amount_eur": "40.00",
         "paid_on": "2024-01-10", "method": "transfer"},
        {"payment_id": "2", "member_id": "8", "dues_year": "2024", "tier": "annual", "amount_eur": "40.00",
         "paid_on": "2024-01-11", "method": "cheque"},
        {"payment_id": "2", "member_id": "8", "dues_year": "2024", "tier": "annual", "amount_eur": "45.00",
         "paid_on": "2024-01-11", "method": "cheque"},
    ],
    "group_memberships": [
        {"group_id": "1", "member_id": "7", "role": "member", "joined_on": "2020-01-01", "left_on": None},
        {"group_id": "1", "member_id": "8", "role": "member", "joined_on": "2021-01-01", "left_on": "demain"},
        {"group_id": "1", "member_id": "8", "role": "leader", "joined_on": "2021-01-01", "left_on": None},
    ],
    "assembly_votes": [
        {"vote_id": "1", "assembly_id": "1", "member_id": "7", "voted_at": "2024-06-03 20:00:00", "channel": "online"},
        {"vote_id": "2", "assembly_id": "1", "member_id": "8", "voted_at": "2024-06-04 20:00:00", "channel": "online"},
    ],
    "volunteer_roles": [],
}


def write_messy_export(url: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """The membership tables, every column text, no primary key; rows inserted in the order given."""
    metadata = sa.MetaData()
    for table in MEMBERSHIP_TABLES:
        sa.Table(table.name, metadata, *(sa.Column(c.name, sa.Text) for c in table.columns))
    engine = sa.create_engine(url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            for name, table_rows in rows.items():
                for row in table_rows:  # one by one, so the source order is the list's order
                    conn.execute(metadata.tables[name].insert().values(row))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def messy_source(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = (f"sqlite:///{tmp_path / 'messy.sqlite'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    write_messy_export(url, MESSY_EXPORT)
    return url


def load(url: str, warehouse: Path) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(warehouse))
    ensure_raw_schema(conn)
    engine = sa.create_engine(url)
    try:
        load_membership_snapshot(conn, engine, chunk_rows=2)  # several chunks per table
    finally:
        engine.dispose()
    return conn


def quarantine(conn: duckdb.DuckDBPyConnection, table: str, scope: str) -> list[tuple[str, str]]:
    return conn.execute("select record_key, reason from raw.quarantine where source = ? and scope = ? order by all",
                        [f"membership.{table}", scope]).fetchall()


def test_unparseable_member_fields_are_quarantined_by_name_and_the_rows_load(messy_source: str, tmp_path: Path) -> None:
    conn = load(messy_source, tmp_path / "w.duckdb")
    assert quarantine(conn, "members", "field") == [
        ("2", "invalid_field_type:joined_on"),
        ("3", "invalid_field_type:left_on"),
        ("4", "invalid_field_type:graduation_year"),
        ("5", "invalid_field_type:consent_email"),
    ]
    loaded = {r[0]: r[1:] for r in conn.execute(
        "select member_id, joined_on, left_on, graduation_year, consent_email, consent_newsletter from raw.members"
    ).fetchall()}
    assert set(loaded) == {1, 2, 3, 4, 5, 6, 7, 8}
    assert loaded[2][0] is None and loaded[3][1] is None and loaded[4][2] is None
    assert loaded[5][3] is None, "a consent that cannot be read must not become a consent"
    assert loaded[6][3:] == (True, False), "the Oui/Non of a French export"
    assert loaded[1][3:] == (True, False)
    # a left_on that does not parse is a field error of group_memberships too, not a lost membership
    assert quarantine(conn, "group_memberships", "field") == []


def test_a_duplicated_member_id_keeps_the_latest_row_and_the_member_keeps_groups_and_votes(
        messy_source: str, tmp_path: Path) -> None:
    conn = load(messy_source, tmp_path / "w.duckdb")
    assert conn.execute("select member_id, city from raw.members where member_id in (7, 8) order by 1").fetchall() == [
        (7, "Paris"),  # the latest updated_at, though read first
        (8, "Rennes"),  # updated_at tied: the later source row
    ]
    assert quarantine(conn, "members", "row") == [("7", "duplicate_member_id"), ("8", "duplicate_member_id")]
    dropped = {json.loads(p)["city"]: json.loads(p) for (p,) in conn.execute(
        "select payload from raw.quarantine where reason = 'duplicate_member_id'").fetchall()}
    assert set(dropped) == {"Lille", "Nantes"}
    # the kept row named by its place in the source: SQLite's rowid, PostgreSQL's ctid (block 0 here)
    place = (lambda n: f"(0,{n})") if messy_source.startswith("postgresql") else str
    assert {c: (row["_source_row"], row["kept_source_row"]) for c, row in dropped.items()} == {
        "Lille": (place(8), place(7)), "Nantes": (place(9), place(10))}
    assert conn.execute("select member_id from raw.assembly_votes order by 1").fetchall() == [(7,), (8,)]
    assert conn.execute("select member_id, role from raw.group_memberships order by 1").fetchall() == [
        (7, "member"), (8, "leader")]
    assert conn.execute("select member_id from raw.dues_payments order by 1").fetchall() == [(7,), (8,)]
    assert conn.execute("select amount_eur from raw.dues_payments where payment_id = 2").fetchone()[0] == 45
    assert quarantine(conn, "dues_payments", "row") == [("2", "duplicate_payment_id")]
    assert quarantine(conn, "group_memberships", "row") == [("1:8", "duplicate_group_membership")]


def test_every_table_conserves_rows_and_reports_field_reasons(messy_source: str, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [membership_snapshot],
            resources={"membership_db": MembershipDatabaseResource(url=messy_source, chunk_rows=3),
                       "warehouse": WarehouseResource(path=str(warehouse))},
            instance=instance,
        )
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    metadata = {m.asset_key.path[-1]: m.materialization.metadata for m in result.get_asset_materialization_events()}
    for table, rows in MESSY_EXPORT.items():
        meta = metadata[table]
        assert meta["rows_read"].value == len(rows)
        assert meta["rows_read"].value == meta["dagster/row_count"].value + meta["rows_quarantined"].value, table
    members = metadata["members"]
    assert members["rows_quarantined"].value == 2 and members["fields_quarantined"].value == 4
    assert members["quarantined_by_reason"].value == {
        "duplicate_member_id": 2,
        "field:invalid_field_type:consent_email": 1,
        "field:invalid_field_type:graduation_year": 1,
        "field:invalid_field_type:joined_on": 1,
        "field:invalid_field_type:left_on": 1,
    }


def test_a_required_field_that_does_not_parse_quarantines_the_row_with_its_name(tmp_path: Path) -> None:
    rows = {name: [] for name in MESSY_EXPORT} | {
        "members": [member("1")],
        "dues_payments": [
            {"payment_id": "1", "member_id": "1", "dues_year": "2024", "tier": "annual", "amount_eur": "quarante",
             "paid_on": "2024-01-10", "method": "transfer"},
            {"payment_id": "2", "member_id": "1", "dues_year": "2024", "tier": "annual", "amount_eur": "40.005",
             "paid_on": "2024-01-10", "method": "transfer"},
            {"payment_id": "3", "member_id": "1", "dues_year": "2024.5", "tier": "annual", "amount_eur": "40",
             "paid_on": "2024-01-10", "method": "transfer"},
            {"payment_id": "x", "member_id": "1", "dues_year": "2024", "tier": "annual", "amount_eur": "40",
             "paid_on": "2024-01-10", "method": "transfer"},
            {"payment_id": "5", "member_id": "1", "dues_year": None, "tier": "annual", "amount_eur": "40",
             "paid_on": "2024-01-10", "method": "transfer"},
        ],
    }
    url = f"sqlite:///{tmp_path / 'messy.sqlite'}"
    write_messy_export(url, rows)
    conn = load(url, tmp_path / "w.duckdb")
    assert conn.execute("select count(*) from raw.dues_payments").fetchone()[0] == 0
    assert quarantine(conn, "dues_payments", "row") == [
        ("1", "invalid_field_type:amount_eur"),
        ("2", "invalid_field_type:amount_eur"),  # 40.005 has no reading in cents: not rounded to 40.01
        ("3", "invalid_field_type:dues_year"),  # not rounded to 2025
        ("5", "missing_field:dues_year"),
        ("x", "invalid_payment_id"),
    ]
