"""The `sources` group against the sandbox: complete, idempotent, fault-tolerant, and secret-free."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from alumni_orchestration.sandbox.server import SandboxServer

pytestmark = pytest.mark.slow  # a generated association, dbt or a Dagster subprocess

SECRETS = {
    "SENDGRID_API_KEY": "SG.FAKE-sendgrid-secret-4242",
    "EVENTBRITE_TOKEN": "FAKE-eventbrite-token-4242",
    "HELLOASSO_CLIENT_ID": "FAKE-helloasso-client-4242",
    "HELLOASSO_CLIENT_SECRET": "FAKE-helloasso-secret-4242",
}


@pytest.fixture
def world(small_association: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the association, an isolated ALUMNI_HOME with its landed webhook history, fake secrets."""
    data = tmp_path / "association"
    shutil.copytree(small_association, data)
    home = tmp_path / "home"
    monkeypatch.setenv("ALUMNI_HOME", str(home))
    monkeypatch.setenv("MEMBERSHIP_DATABASE_URL", f"sqlite:///{data / 'membership.sqlite'}")
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    from alumni_orchestration.harness.landing_history import land_history

    land_history(data)
    return data, home


def _run_sources(data: Path, fault_rate: float = 0.0, slow_rate: float = 0.0, selection: str = "group:sources"):
    from alumni_orchestration.definitions import defs
    from alumni_orchestration.defs.resources import build_resources

    manifest = json.loads((data / "manifest.json").read_text())
    with SandboxServer(data, fault_rate=fault_rate, slow_rate=slow_rate, seed=5,
                       sendgrid_keys=lambda key: key == SECRETS["SENDGRID_API_KEY"],
                       eventbrite_token=SECRETS["EVENTBRITE_TOKEN"],
                       helloasso_client=(SECRETS["HELLOASSO_CLIENT_ID"], SECRETS["HELLOASSO_CLIENT_SECRET"])) as sbx:
        import os

        os.environ["ALUMNI_SANDBOX_URL"] = sbx.base_url
        try:
            loaded = defs()
            assets = [a for a in loaded.assets if isinstance(a, dg.AssetsDefinition)
                      and {spec.group_name for spec in a.specs} == {"sources"}]
            job = dg.define_asset_job("sources_job", selection=selection)
            definitions = dg.Definitions(assets=assets, resources=build_resources(), jobs=[job])
            instance = dg.DagsterInstance.ephemeral()
            result = definitions.get_job_def("sources_job").execute_in_process(
                instance=instance, raise_on_error=False,
                tags={"dagster/asset_partition_range_start": manifest["period"]["history_start"],
                      "dagster/asset_partition_range_end": manifest["period"]["end"]})
            faults = sbx.sandbox.faults_injected
        finally:
            del os.environ["ALUMNI_SANDBOX_URL"]
    return result, instance, manifest, faults


def _snapshot(warehouse: Path) -> dict[str, list]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        tables = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema='raw' order by 1").fetchall()]
        snap = {t: conn.execute(f"select * exclude (loaded_at) from raw.{t} order by all").fetchall()
                if t == "quarantine" else conn.execute(f"select * from raw.{t} order by all").fetchall() for t in tables}
    return snap


def _all_text(instance: dg.DagsterInstance, result) -> str:
    logs = [str(entry) for entry in instance.all_logs(result.run_id)]
    return "\n".join(logs)


def test_sources_load_completely_with_warts_quarantined_and_idempotently(world, capfd) -> None:
    data, home = world
    result, instance, manifest, _ = _run_sources(data)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    warehouse = home / "warehouse.duckdb"
    warts, counts = manifest["warts"], manifest["counts"]
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        def one(sql: str) -> int:
            return conn.execute(sql).fetchone()[0]

        reasons = dict(conn.execute("select source || ':' || reason, count(*) from raw.quarantine group by 1").fetchall())
        assert one("select count(*) from raw.eventbrite_attendees") == counts["eventbrite_attendees"]
        assert one("select count(*) from raw.eventbrite_events") == counts["eventbrite_events"]
        assert one("select count(*) from raw.helloasso_orders") == counts["helloasso_orders"]
        assert one("select count(*) from raw.helloasso_forms") == counts["helloasso_forms"]
        assert one("select count(*) from raw.members") + warts["duplicate_member_email"] == counts["members"]
        events = one("select count(*) from raw.sendgrid_events")
        assert events + warts["duplicate_webhook_event"] + warts["unknown_event_type"] + warts["missing_sg_event_id"] \
            == counts["sendgrid_events"]
        assert one("select count(distinct sg_event_id) from raw.sendgrid_events") == events
    assert reasons["sendgrid.webhook:unknown_event_type"] == warts["unknown_event_type"]
    assert reasons["sendgrid.webhook:missing_sg_event_id"] == warts["missing_sg_event_id"]
    assert reasons["membership.dues_payments:unknown_member"] == warts["orphan_payment"]
    assert reasons["membership.dues_payments:impossible_date"] == warts["impossible_payment_date"]
    assert reasons["membership.members:duplicate_member_email"] == warts["duplicate_member_email"]

    metadata = [m.materialization.metadata for m in result.get_asset_materialization_events()]
    assert all("@" not in str(value.value) for md in metadata for value in md.values())
    text = _all_text(instance, result) + capfd.readouterr().out
    assert not any(secret in text for secret in SECRETS.values())

    first = _snapshot(warehouse)
    again, _, _, _ = _run_sources(data)
    second = _snapshot(warehouse)
    assert again.success
    for table in first:
        assert sorted(map(str, second[table])) == sorted(map(str, first[table])), table


def test_sources_give_identical_tables_through_20_percent_faults(world) -> None:
    data, home = world
    assert _run_sources(data)[0].success
    clean = _snapshot(home / "warehouse.duckdb")
    faulty, _, _, faults = _run_sources(data, fault_rate=0.2, slow_rate=0.02)
    assert faulty.success and faults > 0  # the faults really happened
    assert _snapshot(home / "warehouse.duckdb") == clean


def test_sources_fail_cleanly_and_quickly_when_every_call_fails(world, capfd) -> None:
    data, _ = world
    started = time.monotonic()
    result, instance, _, _ = _run_sources(data, fault_rate=1.0, selection="key:raw/helloasso_forms")
    elapsed = time.monotonic() - started
    assert not result.success and elapsed < 120
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.to_string()
    assert "HelloAsso /helloasso/v5/organizations/anciens-exemple/forms: gave up after" in message
    text = _all_text(instance, result) + capfd.readouterr().out + message
    assert not any(secret in text for secret in SECRETS.values())
