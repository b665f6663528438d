"""A value the mapping cannot read is quarantined with its file, row, column, value and the rule that
failed: the row when the column is a key or required, the field otherwise (loaded as NULL). The rest of
the load (typing, duplicates, the tables' own rules) is the canonical one, and rows in = loaded + quarantined."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from alumni_orchestration.ingest.membership import load_membership_snapshot
from alumni_orchestration.mapping import load_mapping, mapping_reader
from alumni_orchestration.warehouse import ensure_raw_schema

MAPPING = """
tables:
  members:
    source: {file: membres.csv, encoding: cp1252, separator: ";"}
    columns:
      member_id: N° membre
      email: E-mail
      birth_date: {column: Naissance, date: "%d/%m/%Y"}
      graduation_year: {column: Promo, regex: "Promo (\\\\d{4})"}
      status: {column: Statut, values: {Actif: active, Radié: left, Décédé: deceased, À renouveler: lapsed}}
  dues_payments:
    source: {file: cotisations.csv, separator: ","}
    columns:
      payment_id: Numéro
      member_id: Adhérent
      dues_year: Année
      tier: {constant: annual}
      amount_eur: {column: Montant, decimal: ","}
      paid_on: {column: Payée le, date: "%d/%m/%Y"}
"""
MEMBERS = """N° membre;E-mail;Naissance;Promo;Statut
1;a@example.org;02/01/1990;Promo 2012;Actif
2;b@example.org;03/01/1990;Promo 2013;Suspendu
3;c@example.org;1990-01-04;Promo 2014;Radié
x;d@example.org;05/01/1990;Promo 2015;Actif
5;e@example.org;06/01/1990;Promotion;À renouveler
"""
DUES = """Numéro,Adhérent,Année,Montant,Payée le
10,1,2024,"90,00",15/01/2024
11,2,2024,"90,00",15/01/2024
12,3,2024,"90,00",2024-01-15
"""


@pytest.fixture
def loaded(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    (tmp_path / "membership_mapping.yaml").write_text(MAPPING, encoding="utf-8")
    (tmp_path / "membres.csv").write_bytes(MEMBERS.encode("cp1252"))
    (tmp_path / "cotisations.csv").write_text(DUES, encoding="utf-8")
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_raw_schema(conn)
    mapping = load_mapping(tmp_path / "membership_mapping.yaml")
    loads = {load.table: load for load in load_membership_snapshot(conn, None, chunk_rows=2,
                                                                    read=mapping_reader(mapping, None))}
    for load in loads.values():
        assert load.rows_read == load.rows_loaded + load.rows_quarantined
    assert (loads["members"].rows_read, loads["members"].rows_loaded) == (5, 3)
    return conn


def quarantine(conn: duckdb.DuckDBPyConnection, source: str) -> list[tuple]:
    return conn.execute("select record_key, reason, scope, payload from raw.quarantine where source = ? "
                        "order by record_key, reason", [f"membership.{source}"]).fetchall()


def test_a_required_value_the_mapping_cannot_read_quarantines_the_row_with_its_place(loaded) -> None:
    rows = [(key, reason) for key, reason, scope, _ in quarantine(loaded, "members") if scope == "row"]
    assert rows == [("2", "mapping:vocabulary:status"), ("x", "invalid_member_id")]
    payload = json.loads(next(p for k, r, s, p in quarantine(loaded, "members") if k == "2"))
    assert payload["mapping_error"] == {"file": "membres.csv", "row": "3", "column": "status",
                                        "value": "Suspendu", "rule": "vocabulary"}


def test_an_optional_value_the_mapping_cannot_read_is_a_field_quarantine_and_the_row_loads(loaded) -> None:
    fields = {(k, r): json.loads(p)["mapping_error"] for k, r, s, p in quarantine(loaded, "members") if s == "field"}
    assert fields == {
        ("3", "mapping:date_format:birth_date"): {"file": "membres.csv", "row": "4", "column": "birth_date",
                                                  "value": "1990-01-04", "rule": "date_format"},
        ("5", "mapping:regex:graduation_year"): {"file": "membres.csv", "row": "6", "column": "graduation_year",
                                                 "value": "Promotion", "rule": "regex"},
    }
    members = loaded.execute("select member_id, birth_date, graduation_year, status from raw.members "
                             "order by member_id").fetchall()
    assert [(m[0], m[1] is None, m[2], m[3]) for m in members] == [
        (1, False, 2012, "active"), (3, True, 2014, "left"), (5, False, None, "lapsed")]


def test_the_canonical_rules_apply_after_the_mapping(loaded) -> None:
    dues = quarantine(loaded, "dues_payments")
    assert [(k, r, s) for k, r, s, _ in dues] == [
        ("11", "unknown_member", "row"),  # member 2 was quarantined: its dues are orphans, as on the canonical path
        ("12", "mapping:date_format:paid_on", "row"),  # paid_on is required
    ]
    assert json.loads(dues[1][3])["mapping_error"]["file"] == "cotisations.csv"
    assert loaded.execute("select payment_id, amount_eur from raw.dues_payments").fetchall() == [(10, 90)]
