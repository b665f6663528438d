"""Erasure and access on a deployment holding one member's data in every store (tests/privacy_world.py):
nothing left anywhere afterwards, not even after the next nightly load; campaign counts unchanged; every
store needed (skipping any one leaves the member findable); the access export holds all the scan finds."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from alumni_orchestration.defs.privacy.assets import (
    erasure_enforcement,
    no_erased_member_in_source,
    privacy_erasure_job,
)
from alumni_orchestration.ingest.membership import load_membership_snapshot
from alumni_orchestration.privacy.access import export_member
from alumni_orchestration.privacy.erase import erase_member
from alumni_orchestration.privacy.stores import STORE_NAMES
from alumni_orchestration.privacy.subject import email_sha256
from tests.privacy_world import World, build_world, find_member
from tests.warehouse_fixture import build_raw_warehouse_from_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def template(scored_association: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> World:
    association, warehouse = scored_association
    return build_world(association, warehouse, tmp_path_factory.mktemp("privacy_world"))


@pytest.fixture
def world(template: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    mine = template.copy_to(tmp_path)
    monkeypatch.setenv("ALUMNI_HOME", str(mine.home))
    monkeypatch.setenv("ALUMNI_WAREHOUSE", str(mine.warehouse))
    monkeypatch.setenv("SENDGRID_WEBHOOK_LANDING", str(mine.landing))
    return mine


def _campaign_counts(world: World) -> dict[str, list[tuple]]:
    """What campaign results are built from, counted: ledger by arm and status, outbox by campaign, SendGrid
    events of campaigns by event, and the per-member outcomes query's flags summed."""
    from alumni_orchestration.defs.campaigns.results import member_outcomes

    with duckdb.connect(str(world.warehouse), read_only=True) as conn:
        outcomes = member_outcomes(conn, 30)
        return {
            "ledger": conn.execute("select campaign_id, cycle, arm, status, count(*) from campaigns.campaign_sends "
                                   "group by all order by all").fetchall(),
            "outbox": conn.execute("select kind, campaign_id, count(*) from campaigns.outbox group by all "
                                   "order by all").fetchall(),
            "events": conn.execute("select campaign_id, cycle, arm, event, count(*) from raw.sendgrid_events "
                                   "where campaign_id is not null group by all order by all").fetchall(),
            "outcomes": sorted(outcomes.drop(columns=["member_id"]).groupby(["campaign_id", "cycle", "arm"])
                               .sum(numeric_only=True).reset_index().itertuples(index=False, name=None)),
        }


def test_the_world_holds_the_member_in_every_store(template: World) -> None:
    """The premise of the other tests: before erasure the scan finds the member in each kind of store."""
    found = find_member(template)
    assert {"raw.members", "raw.sendgrid_events", "marts.member_profile", "scoring.member_score_history",
            "campaigns.campaign_sends", "campaigns.outbox"} <= set(found["warehouse"])
    folders = {Path(f).parts[0] for f in found["files"]}
    assert {"landing", "exports", "logs", "warehouse.duckdb"} <= folders
    assert found["models"]


def test_erasure_job_leaves_no_trace_and_keeps_campaign_counts(world: World) -> None:
    before = _campaign_counts(world)
    instance = world.instance()
    result = privacy_erasure_job.execute_in_process(
        run_config=dg.RunConfig(ops={"erase_member_op": {"config": {
            "member_id": world.member_id, "requested_by": "dpo@association", "request_reference": "GDPR-2026-17"}}}),
        resources={"warehouse": world.resource()}, instance=instance)
    assert result.success
    assert find_member(world, instance) == {}
    assert _campaign_counts(world) == before  # only identities are gone
    with duckdb.connect(str(world.warehouse), read_only=True) as conn:
        audit = conn.execute("select requested_by, request_reference, rows_erased, rows_anonymised, files_rewritten, "
                             "stores from privacy.erasure_log").fetchall()
        hashes = {r[0] for r in conn.execute("select email_sha256 from privacy.erased_members where member_id = ?",
                                             [world.member_id]).fetchall()}
    [(who, reference, erased, anonymised, files, stores)] = audit
    assert (who, reference) == ("dpo@association", "GDPR-2026-17") and erased > 0 and anonymised > 0 and files >= 3
    assert not world.subject.mentioned_in(stores)  # counts by store and table, never the data
    assert hashes == {email_sha256(e) for e in world.subject.emails}
    # The erasure is recorded against the two declared tables.
    assert instance.get_latest_materialization_event(dg.AssetKey(["privacy", "erasure_log"])) is not None


def _nightly_sources(world: World) -> None:
    """What the next nightly run loads: the membership database (still holding the member) and the
    providers' data (still knowing their address), then the privacy enforcement at the end of the run."""
    build_raw_warehouse_from_files(world.association, world.warehouse)
    instance = world.instance()
    assert dg.materialize([erasure_enforcement], resources={"warehouse": world.resource()}, instance=instance).success


def test_the_next_nightly_run_does_not_bring_the_member_back(world: World) -> None:
    erase_member(world.warehouse, world.home, world.landing, world.member_id, requested_by="dpo")
    _nightly_sources(world)
    assert find_member(world) == {}
    with duckdb.connect(str(world.warehouse), read_only=True) as conn:
        quarantined = conn.execute("select source, record_key, payload from raw.quarantine "
                                   "where reason = 'erased_member'").fetchall()
    assert ("membership.members", str(world.member_id), None) in quarantined
    assert all(payload is None for _, _, payload in quarantined)
    check = dg.materialize([no_erased_member_in_source], resources={"warehouse": world.resource()},
                           selection=dg.AssetSelection.checks(no_erased_member_in_source))
    [evaluation] = check.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["erased_members_in_source"].value == 1


def test_without_the_enforcement_the_providers_bring_the_member_back(world: World) -> None:
    """The nightly enforcement is what keeps provider data (which still knows the member) out."""
    erase_member(world.warehouse, world.home, world.landing, world.member_id, requested_by="dpo")
    build_raw_warehouse_from_files(world.association, world.warehouse)
    found = find_member(world)["warehouse"]
    assert "raw.eventbrite_attendees" in found and "raw.members" not in found


@pytest.mark.parametrize("skipped", STORE_NAMES)
def test_skipping_any_store_leaves_the_member_findable(world: World, skipped: str) -> None:
    erase_member(world.warehouse, world.home, world.landing, world.member_id, requested_by="test",
                 skip=frozenset({skipped}))
    assert find_member(world) != {}, f"an erasure without {skipped} left nothing to find: the scan is blind to it"


def test_access_export_holds_everything_the_scan_finds(world: World) -> None:
    out = export_member(world.warehouse, world.home, world.landing, world.member_id, world.home.parent / "access.json")
    document = json.loads(out.read_text())
    found = find_member(world)
    exported_tables = {t for section in ("profile", "activity", "scores", "messages", "events", "payments", "other")
                       for t in document[section]}
    assert set(found["warehouse"]) <= exported_tables
    landed = {f"landing/sendgrid/dt={e['day']}/{e['batch']}" for e in document["webhook_events"]}
    other_files = set(document["files"])
    for path in found["files"]:
        if path == "warehouse.duckdb":
            continue  # its tables are checked above
        assert path in landed or path in other_files, path
    assert set(found["models"]) == set(document["model_rows"])
    assert document["profile"]["raw.members"][0]["email"].lower() in world.subject.emails
    assert document["scores"]["scoring.member_scores"] and document["payments"]
    assert any(e["event"]["event"] == "click" for e in document["webhook_events"])


def test_erasing_twice_is_a_no_op_and_an_unknown_member_is_refused(world: World) -> None:
    erase_member(world.warehouse, world.home, world.landing, world.member_id, requested_by="dpo")
    again = erase_member(world.warehouse, world.home, world.landing, world.member_id, requested_by="dpo")
    assert not again.member_found
    with pytest.raises(ValueError, match="not in raw.members"):
        erase_member(world.warehouse, world.home, world.landing, 987_654, requested_by="dpo")


def test_membership_load_quarantines_an_erased_member_without_quoting_them(world: World) -> None:
    erase_member(world.warehouse, world.home, world.landing, world.member_id, requested_by="dpo")
    engine = sa.create_engine(f"sqlite:///{world.association / 'membership.sqlite'}")
    with duckdb.connect(str(world.warehouse)) as conn:
        loads = {load.table: load for load in load_membership_snapshot(conn, engine)}
        in_raw = conn.execute("select count(*) from raw.members where member_id = ?", [world.member_id]).fetchone()[0]
    engine.dispose()
    assert in_raw == 0 and loads["members"].quarantined_by_reason.get("erased_member") == 1
    assert all(load.rows_read == load.rows_loaded + load.rows_quarantined for load in loads.values())


def test_cli_exports_then_erases_and_the_erasure_removes_the_export(world: World, capsys) -> None:
    from alumni_orchestration.cli import main

    assert main(["privacy", "export", "--member", str(world.member_id)]) == 0
    exported = Path(capsys.readouterr().out.strip())
    assert exported.is_relative_to(world.home / "exports") and exported.exists()
    assert main(["privacy", "erase", "--member", str(world.member_id), "--requested-by", "dpo"]) == 0
    assert "rows erased" in capsys.readouterr().out
    assert not exported.exists() and find_member(world) == {}
    assert main(["privacy", "export", "--member", str(world.member_id)]) == 2
