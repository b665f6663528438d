"""Issue 15: the data-quality view of the membership source, night after night (counts and rates only)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from alumni_orchestration.defs.membership.assets import membership_snapshot
from alumni_orchestration.defs.membership.quality import membership_quality_checks
from alumni_orchestration.defs.membership.resources import MembershipDatabaseResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.ingest.membership import load_membership_snapshot
from alumni_orchestration.ingest.membership_quality import (
    MembershipQuality,
    QualityThresholds,
    assess,
    profile_membership,
    quality_table,
)
from alumni_orchestration.warehouse import ensure_raw_schema
from tests.test_membership_quarantine import member as base_member
from tests.test_membership_quarantine import write_messy_export

FIRST_NAME, LAST_NAME = "Zelie", "Quintard"


def member(member_id: str, **values: str | None) -> dict[str, str | None]:
    return base_member(member_id, first_name=FIRST_NAME, last_name=LAST_NAME, **values)


def first_night() -> dict[str, list[dict[str, str | None]]]:
    return {
        "members": [
            member("1"),
            member("2", consent_email="0", graduation_year=None),
            member("3", status="lapsed", email=None, consent_email=None, graduation_year="2010", birth_date=None),
            member("4", email="pas-un-email", birth_date="2999-01-01"),  # two field quarantines
            member("5", status="left"),  # not a current member
            member("6", email=" M1@Example.org "),  # member 1's email: row quarantined
            member("7", consent_email="yes"),  # consent unreadable: NULL, field quarantined
            member("8", status="deceased"),
            member("9"),
            member("10", status="ghost"),  # row quarantined
        ],
        "groups": [{"group_id": "1", "name": "Club data", "kind": "club", "topic": "data"}],
        "general_assemblies": [],
        "dues_payments": [
            {"payment_id": "1", "member_id": "1", "dues_year": "2024", "tier": "annual", "amount_eur": "40.00",
             "paid_on": "2024-01-10", "method": "transfer"},
            {"payment_id": "2", "member_id": "99", "dues_year": "2024", "tier": "annual", "amount_eur": "40.00",
             "paid_on": "2024-01-10", "method": "transfer"},  # no such member: row quarantined
        ],
        "group_memberships": [],
        "assembly_votes": [],
        "volunteer_roles": [],
    }


def degraded_night() -> dict[str, list[dict[str, str | None]]]:
    """The next night: an import wiped three current members' emails, and one more row has an unknown status."""
    night = first_night()
    night["members"] = [row | {"email": None} if row["member_id"] in ("2", "7", "9") else row
                        for row in night["members"]] + [member("11", status="ghost")]
    return night


def repaired_night() -> dict[str, list[dict[str, str | None]]]:
    night = first_night()
    night["dues_payments"] = night["dues_payments"][:1]
    return night


# Counted by hand from first_night(): current members are 1, 2, 3, 4, 7, 9 (active or lapsed).
FIRST_NIGHT = MembershipQuality(
    current_members=6,
    with_valid_email=4,  # 1, 2, 7, 9 (3 has none, 4's is not an email)
    consent_email_known=4,  # 1, 2, 4, 9 (3 unset, 7 unreadable)
    consent_email_granted=3,  # 1, 4, 9
    with_graduation_year=5,  # all but 2
    with_birth_date=4,  # 1, 2, 7, 9 (3 has none, 4's is in the future)
    members_read=10,
    members_sharing_email=2,  # 1 and 6
    rows_read=13,  # 10 members, 1 group, 2 payments
    rows_quarantined=3,  # members 6 and 10, payment 2
    fields_quarantined=4,
    quarantine_by_reason={
        "dues_payments:unknown_member": 1,
        "members:duplicate_member_email": 1,
        "members:field:impossible_date": 1,
        "members:field:invalid_email": 1,
        "members:field:invalid_field_type:consent_email": 1,
        "members:field:missing_email": 1,
        "members:unknown_status": 1,
    },
)


def _write_source(path: Path, night: dict) -> str:
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    write_messy_export(url, night)
    return url


def test_profile_of_a_crafted_membership_database_matches_the_hand_count(tmp_path: Path) -> None:
    url = _write_source(tmp_path / "membership.sqlite", first_night())
    engine = sa.create_engine(url)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        ensure_raw_schema(conn)
        load_membership_snapshot(conn, engine)
        quality = profile_membership(conn)
    engine.dispose()
    assert quality == FIRST_NIGHT
    assert quality.rates() == {
        "email_completeness": 66.67, "consent_email_known": 66.67, "consent_email_granted": 50.0,
        "graduation_year_completeness": 83.33, "birth_date_completeness": 66.67,
        "duplicate_email_rate": 20.0, "quarantine_rate": 23.08,
    }
    assert quality.metrics()["quality/quarantine/members:unknown_status"] == 1


def test_thresholds_come_from_the_environment_and_default_to_the_documented_ones() -> None:
    assert QualityThresholds.from_env({}) == QualityThresholds(90.0, 5.0, 1.0, 5.0, 2.0)
    assert QualityThresholds.from_env({"ALUMNI_QUALITY_MIN_EMAIL_COMPLETENESS": "75"}).min_email_completeness == 75.0
    # Tonight alone: 66.67% with a valid email is under the default 90%, 20% sharing an email over 1%.
    verdicts = {v.check: v.passed for v in assess(FIRST_NIGHT.metrics(), QualityThresholds())}
    assert verdicts == {"email_completeness": False, "duplicate_emails": False, "quarantine_rate": False}
    # Before any snapshot there is nothing to judge: a warning that says so, not a 0% score.
    assert {(v.passed, v.summary) for v in assess({}, QualityThresholds())} == {
        (False, "No quality metrics yet: materialize raw/members first")}
    table = quality_table(FIRST_NIGHT.metrics(), None)
    assert "| Current members with a valid email (%) | 66.67 |  |  |" in table


def _materialize(url: str, warehouse: Path, instance: dg.DagsterInstance) -> dg.ExecuteInJobResult:
    return dg.materialize(
        [membership_snapshot, membership_quality_checks],
        resources={"membership_db": MembershipDatabaseResource(url=url),
                   "warehouse": WarehouseResource(path=str(warehouse))},
        instance=instance,
    )


def _members_metadata(result: dg.ExecuteInJobResult) -> dict[str, object]:
    (event,) = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "members"]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _checks(result: dg.ExecuteInJobResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations() if c.check_name != "rows_conserved"}


def test_a_degraded_night_shows_its_change_and_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Thresholds a small association might set, under which the first night is acceptable.
    # Three nights: a first one, a degraded one, a repaired one.
    monkeypatch.setenv("ALUMNI_QUALITY_MIN_EMAIL_COMPLETENESS", "60")
    monkeypatch.setenv("ALUMNI_QUALITY_MAX_DUPLICATE_EMAILS", "25")
    monkeypatch.setenv("ALUMNI_QUALITY_MAX_QUARANTINE_RATE", "30")
    source, warehouse = tmp_path / "membership.sqlite", tmp_path / "w.duckdb"
    with dg.instance_for_test() as instance:
        first = _materialize(_write_source(source, first_night()), warehouse, instance)
        second = _materialize(_write_source(source, degraded_night()), warehouse, instance)
        third = _materialize(_write_source(source, repaired_night()), warehouse, instance)

    assert first.success and second.success and third.success  # the quality checks warn, they do not fail the run
    night1, night2 = _members_metadata(first), _members_metadata(second)
    assert {k: v for k, v in night1.items() if k.startswith("quality/") and k != "quality/summary"} == \
        FIRST_NIGHT.metrics()  # no change on a first night: there is nothing to compare with
    assert night2["quality/email_completeness"] == 16.67  # only member 1 of the six current members
    assert night2["quality/email_completeness_change"] == -50.0
    assert night2["quality/quarantine_rate"] == 28.57  # 4 of 14 rows
    assert night2["quality/quarantine_rate_change"] == 5.49
    assert night2["quality/duplicate_email_rate_change"] == -1.82  # 2 of 11
    assert night2["quality/consent_email_granted_change"] == 0.0
    assert night2["quality/quarantine/members:unknown_status"] == 2
    assert night2["quality/quarantine/members:field:missing_email"] == 4
    assert "| Current members with a valid email (%) | 16.67 | 66.67 | -50.00 |" in night2["quality/summary"]

    assert {name: c.passed for name, c in _checks(first).items()} == {
        "email_completeness": True, "duplicate_emails": True, "quarantine_rate": True}
    checks = _checks(second)
    assert {name: c.passed for name, c in checks.items()} == {
        "email_completeness": False, "duplicate_emails": True, "quarantine_rate": False}
    assert {c.severity for c in checks.values()} == {dg.AssetCheckSeverity.WARN}
    assert checks["email_completeness"].metadata["change"].value == -50.0
    assert checks["quarantine_rate"].metadata["change"].value == 5.49

    # Repaired: the emails are back and the orphan payment is gone; its reason's plot falls to 0, it does not stop.
    night3 = _members_metadata(third)
    assert night3["quality/email_completeness_change"] == 50.0
    assert night3["quality/quarantine/dues_payments:unknown_member"] == 0
    assert night3["quality/quarantine_rate"] == 16.67  # 2 of 12 rows
    assert {name: c.passed for name, c in _checks(third).items()} == {
        "email_completeness": True, "duplicate_emails": True, "quarantine_rate": True}

    # Counts and rates only: no email, no name, anywhere in the metadata of either night.
    results = (first, second, third)
    shown = json.dumps([str(v.value) for result in results for m in result.get_asset_materialization_events()
                        for v in m.materialization.metadata.values()]
                       + [str(v.value) for result in results for c in result.get_asset_check_evaluations()
                          for v in c.metadata.values()])
    assert "@" not in shown and "example.org" not in shown.lower() and "pas-un-email" not in shown
    assert FIRST_NAME not in shown and LAST_NAME not in shown
