"""Retention: contacts without a member-initiated contact for 3 years are flagged, then anonymised after the
grace period unless current members. The flagged set is compared with one computed independently."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from alumni_orchestration.defs.privacy.assets import retention_flags
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.partitions import AS_OF_TAG
from alumni_orchestration.privacy.retention import RetentionRule, plan_retention

AS_OF = dt.date(2026, 11, 22)
CUTOFF = dt.date(2023, 11, 22)


def test_cutoff_is_the_same_calendar_day_years_before() -> None:
    assert RetentionRule(years=3).cutoff(dt.date(2026, 11, 22)) == dt.date(2023, 11, 22)
    assert RetentionRule(years=3).cutoff(dt.date(2028, 2, 29)) == dt.date(2025, 2, 28)


def test_plan_keeps_the_first_flag_day_and_spares_current_members() -> None:
    flagged = pd.DataFrame({"member_id": [1, 2, 3], "status": ["lapsed", "active", "left"],
                            "last_contact_on": [dt.date(2020, 1, 1)] * 3})
    previous = pd.DataFrame({"member_id": [1, 2, 9], "status": ["lapsed", "active", "left"],
                             "last_contact_on": [dt.date(2020, 1, 1)] * 3,
                             "flagged_on": [dt.date(2026, 10, 1)] * 3})
    plan = plan_retention(flagged, previous, RetentionRule(grace_days=30), AS_OF)
    assert dict(zip(plan.flags.member_id, plan.flags.flagged_on, strict=True)) == {
        1: dt.date(2026, 10, 1), 2: dt.date(2026, 10, 1), 3: AS_OF}
    assert plan.to_anonymise == [1]  # 2 is a current member, 3 was flagged today
    assert (plan.newly_flagged, plan.no_longer_flagged, plan.exempt_current) == (1, 1, 1)


def _plant_known_contacts(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Four lapsed members whose contacts are set: stale; stale but opened last month (an open is no contact);
    stale but voted in 2024; stale but updated their profile in 2025."""
    ids = [r[0] for r in conn.execute("select member_id from raw.members where status = 'lapsed' order by member_id "
                                      "limit 4").fetchall()]
    planted = dict(zip(["stale", "opened", "voted", "updated"], ids, strict=True))
    conn.execute("delete from marts.member_activity_daily where member_id in (select unnest(?))", [ids])
    conn.execute("update raw.members set updated_at = timestamp '2021-03-01 10:00' where member_id in "
                 "(select unnest(?))", [ids])
    rows = [(m, dt.date(2022, 5, 1), "clicks") for m in ids] + [
        (planted["opened"], dt.date(2026, 10, 1), "opens"), (planted["voted"], dt.date(2024, 1, 10), "votes")]
    conn.executemany("insert into marts.member_activity_daily (member_id, activity_date, signal, activity_count) "
                     "values (?, ?, ?, 1)", [list(r) for r in rows])
    conn.execute("update raw.members set updated_at = timestamp '2025-06-01 12:00' where member_id = ?",
                 [planted["updated"]])
    return planted


def _independent_flags(conn: duckdb.DuckDBPyConnection, as_of: dt.date) -> set[int]:
    """Written apart from the asset's SQL: the latest click, payment, attendance, vote or profile update."""
    members = conn.execute("select member_id, updated_at from raw.members").fetchall()
    activity = conn.execute("select member_id, activity_date, signal from marts.member_activity_daily").fetchall()
    last: dict[int, dt.date] = {}
    for member_id, day, signal in activity:
        if signal in {"clicks", "dues_paid", "donations", "events_attended", "votes"} and day <= as_of:
            last[member_id] = max(last.get(member_id, day), day)
    for member_id, updated_at in members:
        if updated_at is not None:
            last[member_id] = max(last.get(member_id, dt.date.min), min(updated_at.date(), as_of))
    cutoff = as_of.replace(year=as_of.year - 3)
    return {m for m, _ in members if m not in last or last[m] < cutoff}


def _run(warehouse: WarehouseResource, as_of: dt.date, **config) -> dg.MaterializeResult:
    result = dg.materialize([retention_flags], resources={"warehouse": warehouse}, tags={AS_OF_TAG: as_of.isoformat()},
                            run_config=dg.RunConfig(ops={"privacy__retention_flags": {"config": config}}))
    assert result.success
    return result.get_asset_materialization_events()[0].materialization.metadata


@pytest.mark.slow
def test_flags_equal_the_independent_set_and_anonymise_after_grace(
        scored_association: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ALUMNI_HOME", str(home))
    shutil.copy(scored_association[1], home / "warehouse.duckdb")
    warehouse = WarehouseResource(path=str(home / "warehouse.duckdb"))
    with duckdb.connect(warehouse.path) as conn:
        planted = _plant_known_contacts(conn)
        expected = _independent_flags(conn, AS_OF)
        later = _independent_flags(conn, AS_OF + dt.timedelta(days=31))
        status = dict(conn.execute("select member_id, status from raw.members").fetchall())

    metadata = _run(warehouse, AS_OF)
    with duckdb.connect(warehouse.path, read_only=True) as conn:
        flagged = {r[0] for r in conn.execute("select member_id from privacy.retention_flags").fetchall()}
    assert flagged == expected and len(expected) > 10
    assert {planted["stale"], planted["opened"]} <= flagged and not {planted["voted"], planted["updated"]} & flagged
    assert metadata["flagged"].value == len(expected) and metadata["anonymised"].value == 0

    metadata = _run(warehouse, AS_OF + dt.timedelta(days=31), anonymise=True)
    due = expected & later
    anonymised = {m for m in due if status[m] != "active"}
    with duckdb.connect(warehouse.path, read_only=True) as conn:
        remaining = {r[0] for r in conn.execute("select member_id from raw.members").fetchall()}
        log = conn.execute("select requested_by, members from privacy.erasure_log").fetchall()
        still_flagged = {r[0] for r in conn.execute("select member_id from privacy.retention_flags").fetchall()}
    assert anonymised and not anonymised & remaining
    assert {m for m in due if status[m] == "active"} <= remaining & still_flagged  # current members are kept
    assert log == [("retention", len(anonymised))]
    assert metadata["anonymised"].value == len(anonymised)
    assert metadata["due_but_current_members"].value == len(due) - len(anonymised)
