"""The mapping file is validated before anything is read, and every error says where it is and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from alumni_orchestration.mapping import MAPPING_ENV, MappingSpecError, configured_mapping, load_mapping
from alumni_orchestration.mapping.read import MappingFailure, evaluate
from alumni_orchestration.mapping.spec import ColumnRule, FileSource, TableSource

VALID = """
tables:
  members:
    source: {file: adherents.csv, encoding: cp1252, separator: ";"}
    columns:
      member_id: N° adhérent
      status: {column: Statut, values: {Actif: active, Radié: left}}
      birth_date: {column: Naissance, date: "%d/%m/%Y"}
  dues_payments:
    source: {table: cotisations}
    columns:
      payment_id: id
      member_id: adherent
      dues_year: annee
      tier: formule
      amount_eur: {column: montant, decimal: ","}
      paid_on: date
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "membership_mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(MappingSpecError) as raised:
        load_mapping(write(tmp_path, text))
    assert str(tmp_path / "membership_mapping.yaml") in str(raised.value)
    return raised.value.errors


def test_a_valid_mapping_is_loaded_with_its_sources_relative_to_the_file(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, VALID))
    assert mapping.tables["members"].source == FileSource(tmp_path / "adherents.csv", "cp1252", ";")
    assert mapping.tables["dues_payments"].source == TableSource("cotisations")
    assert mapping.tables["members"].columns["status"].values == {"Actif": "active", "Radié": "left"}
    assert mapping.tables["members"].fatal == {"member_id", "status"}


def test_the_environment_names_the_mapping_and_unset_means_canonical(tmp_path: Path) -> None:
    assert configured_mapping({}) is None
    assert configured_mapping({MAPPING_ENV: str(write(tmp_path, VALID))}).tables.keys() == {"members", "dues_payments"}


@pytest.mark.parametrize(("change", "expected"), [
    (("member_id: N° adhérent", "member_id: N° adhérent\n      nickname: Surnom"),
     "tables.members.columns.nickname: unknown contract column"),
    (("      member_id: N° adhérent\n", ""),
     "tables.members.columns.member_id: missing required column"),
    (("      paid_on: date\n", ""),
     "tables.dues_payments.columns.paid_on: missing required column"),
    (('date: "%d/%m/%Y"', 'date: "%d/%m"'),
     "tables.members.columns.birth_date.date: '%d/%m' is not a date format that reads back a full date"),
    (("Radié: left", "Radié: gone"),
     "tables.members.columns.status.values.Radié: 'gone' is not an allowed value (allowed: active, lapsed, left, deceased)"),
    (("encoding: cp1252", "encoding: latin-42"), "tables.members.source.encoding: unknown encoding 'latin-42'"),
    (('separator: ";"', 'separator: "|"'), "tables.members.source.separator: '|' is not one of ; ,"),
    (("adherents.csv", "adherents.ods"), "tables.members.source.file: 'adherents.ods' is neither a .csv nor a .xlsx file"),
    (("{table: cotisations}", "{table: cotisations, file: x.csv}"),
     "tables.dues_payments.source: expected either 'file' (a CSV or XLSX file) or 'table'"),
    (("  dues_payments:", "  payments:"), "tables.payments: unknown contract table"),
    (("paid_on: date", "paid_on: {column: date, constant: '2024-01-01'}"),
     "tables.dues_payments.columns.paid_on: expected exactly one of column, constant, concat"),
    (("tier: formule", "tier: {column: formule, regx: x}"), "tables.dues_payments.columns.tier: unknown keys ['regx']"),
    (("tier: formule", "tier: {column: formule, regex: '\\\\d+'}"),
     "tables.dues_payments.columns.tier.regex: expected exactly one capture group, the part kept (got 0)"),
    (('decimal: ","', 'decimal: ";"'), "tables.dues_payments.columns.amount_eur.decimal: expected ',' or '.'"),
    (("tier: formule", "tier: {column: formule, date: '%Y'}"),
     "tables.dues_payments.columns.tier.date: a date format on a column that is not a date"),
])
def test_each_mistake_is_named_with_its_place(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in VALID
    errors = errors_of(tmp_path, VALID.replace(old, new))
    assert any(e.startswith(expected) for e in errors), errors


WIDE = """
tables:
  group_memberships:
    source: {file: membres.csv}
    wide: {key: group_id, columns: {Club Numérique: 3, Groupe Bretagne: 7}}
    columns:
      member_id: N° membre
      joined_on: {column: _cell, date: "%d/%m/%Y"}
"""


def test_wide_columns_give_the_key_and_count_as_mapping_it(tmp_path: Path) -> None:
    table = load_mapping(write(tmp_path, WIDE)).tables["group_memberships"]
    assert table.wide.columns == {"Club Numérique": "3", "Groupe Bretagne": "7"}
    assert table.columns["group_id"].column == "_wide_key"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("key: group_id", "key: club", "tables.group_memberships.wide.key: unknown contract column 'club'"),
    ("wide: {key: group_id, ", "wide: {", "tables.group_memberships.wide: expected {key: <contract column>"),
    ("      member_id", "      group_id: Groupe\n      member_id",
     "tables.group_memberships.wide.key: group_id is given by the wide columns"),
])
def test_wide_mistakes_are_named(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in WIDE
    errors = errors_of(tmp_path, WIDE.replace(old, new.replace("\\n", "\n")))
    assert any(e.startswith(expected) for e in errors), errors


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    broken = VALID.replace("Radié: left", "Radié: gone").replace('separator: ";"', 'separator: "|"')
    assert len(errors_of(tmp_path, broken)) == 2


def test_not_yaml_is_an_error_too(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "tables: [unclosed")[0].startswith("not valid YAML")
    assert errors_of(tmp_path, "columns: {}")[0].startswith("tables: expected a mapping of contract tables")


def rule(target: str = "graduation_year", kind: str = "small_int", **given) -> ColumnRule:
    return ColumnRule(target, kind=kind, **given)


def test_expressions_derive_what_the_source_does_not_hold() -> None:
    assert evaluate(rule(column="Promo", regex=r"Promo (\d{4})"), {"Promo": "Promo 2012"}) == "2012"
    assert evaluate(rule("programme", "text", constant="MBA"), {}) == "MBA"
    concat = rule("declared_interests", "text", concat=({"column": "A"}, ";", {"column": "B"}))
    assert evaluate(concat, {"A": "sante", "B": "energie"}) == "sante;energie"
    assert evaluate(concat, {"A": None, "B": ""}) is None, "no value, not a lone separator"
    assert evaluate(rule("joined_on", "date", column="d", date="%d/%m/%Y"), {"d": "31/12/2024"}) == "2024-12-31"
    # An Excel date cell (read as ISO) is a date whatever the format; the same text in a CSV is not.
    assert evaluate(rule("joined_on", "date", column="d", date="%d/%m/%Y"), {"d": "2024-12-31"}, True) == "2024-12-31"
    assert evaluate(rule("updated_at", "timestamp", column="d", date="%d/%m/%Y %H:%M"),
                    {"d": "31/12/2024 08:05"}) == "2024-12-31 08:05:00"
    assert evaluate(rule("amount_eur", "euros", column="m", decimal=","), {"m": "1 234,50 €"}) == "1234.50"
    yes_no = rule("consent_email", "flag", column="c", boolean=(("Oui",), ("Non",)))
    assert [evaluate(yes_no, {"c": v}) for v in ("Oui", " non ", "")] == ["1", "0", None]
    status = rule("status", "text", column="s", values={"À renouveler": "lapsed"})
    assert evaluate(status, {"s": " à renouveler "}) == "lapsed", "labels match whatever their case and spaces"


@pytest.mark.parametrize(("given", "value", "failed"), [
    ({"regex": r"Promo (\d{4})"}, "Promotion", "regex"),
    ({"values": {"Actif": "active"}}, "Suspendu", "vocabulary"),
    ({"date": "%d/%m/%Y"}, "2024-12-31", "date_format"),
    ({"boolean": (("Oui",), ("Non",))}, "Peut-être", "boolean"),
])
def test_a_value_that_a_rule_cannot_read_names_the_rule(given: dict, value: str, failed: str) -> None:
    with pytest.raises(MappingFailure) as raised:
        evaluate(rule("joined_on", "date", column="x", **given), {"x": value})
    assert (raised.value.rule, raised.value.value) == (failed, value)
