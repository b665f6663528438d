"""An unknown outcome is never silent: a wave killed with its chunk committed but never requested, then run
again after send_at, fails its blocking check `no_unknown_outcomes` (batch id and counts in the failure and in
the alert), and `alumni campaigns resolve --batch ID` settles it from what SendGrid says, without a duplicate.

SendGrid is the local sandbox: scheduled sends, and the Email Activity API over what it really sent (or
refused, as for an account without that add-on)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import requests

from alumni_orchestration.campaigns import ledger
from alumni_orchestration.defs.campaigns.assets import SENDS, campaign_audience, campaign_job, campaign_sends
from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
from alumni_orchestration.defs.operations.sensors import alumni_run_failure_alert
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.sandbox.server import SandboxServer
from tests.campaign_fixture import WAVE_DAY

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
NO_UNKNOWN_OUTCOMES = "no_unknown_outcomes"
NOT_SENT = "not-sent"
WAVE = dg.MultiPartitionKey({"campaign": "dues_reminder", "date": WAVE_DAY})


@pytest.fixture(scope="module")
def scored(scored_association: tuple[Path, Path]) -> tuple[Path, Path]:
    """The session's scored association, built once for every campaign module; tests copy it before writing."""
    return scored_association


@pytest.fixture
def world(scored, tmp_path: Path):
    association, warehouse = scored
    data = tmp_path / "association"
    shutil.copytree(association, data, ignore=shutil.ignore_patterns("mail_send.jsonl", "sandbox_state.json",
                                                                      "sent_messages.jsonl"))
    mine = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse, mine)
    with SandboxServer(data, port=0) as sandbox:
        yield data, mine, sandbox


def _sandbox_now(base_url: str) -> float:
    return float(requests.get(f"{base_url}/sandbox/status", timeout=10).json()["now"])


def _advance_past(base_url: str, moment: dt.datetime, margin: dt.timedelta) -> None:
    seconds = moment.timestamp() + margin.total_seconds() - _sandbox_now(base_url)
    if seconds > 0:
        requests.post(f"{base_url}/sandbox/clock", json={"advance": seconds}, timeout=10).raise_for_status()


def _killed_with_its_chunk_committed(warehouse: Path, host: str) -> None:
    """A wave process (one chunk for all its members) SIGKILLed after the chunk's batch was committed as
    `scheduling` and before its request left: the test runner's transport stops there for the kill."""
    process = subprocess.Popen([sys.executable, "-m", "tests.campaign_wave_runner", str(warehouse), host,
                                "dues_reminder", WAVE_DAY, "1000", "before:1"], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout.readline().strip() == "READY"
    assert process.stdout.readline().strip() == "PAUSED"
    process.send_signal(signal.SIGKILL)
    process.wait()


def _treatment(warehouse: Path) -> dict[int, tuple[str, str | None]]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return {m: (s, b) for m, s, b in conn.execute("select member_id, status, batch_id from campaigns.campaign_sends "
                                                      "where arm = 'treatment'").fetchall()}


def _sent_by_member(data: Path) -> Counter:
    path = data / "sent_messages.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(int(json.loads(line)["custom_args"]["member_id"]) for line in lines)


def _wave_definitions(warehouse: Path, host: str, alert_sender: EmailSenderResource) -> dg.Definitions:
    store = WarehouseResource(path=str(warehouse))
    sender = EmailSenderResource(mode="sandbox", api_key="SG.unknown-test", host=host, warehouse=store)
    return dg.Definitions(assets=[campaign_audience, campaign_sends], jobs=[campaign_job],
                          sensors=[alumni_run_failure_alert], resources={"warehouse": store, "email_sender": sender})


def _alert_tick(definitions: dg.Definitions, instance: dg.DagsterInstance, sender, cursor: str | None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=definitions,
                                 resources={"email_sender": sender}) as context:
        alumni_run_failure_alert.evaluate_tick(context)
        return context.cursor


def _resolve_cli(warehouse: Path, host: str, batch_id: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ALUMNI_WAREHOUSE": str(warehouse), "SENDGRID_API_KEY": "SG.unknown-test",
           "SENDGRID_HOST": host, "ALUMNI_SEND_MODE": "sandbox"}
    return subprocess.run([sys.executable, "-m", "alumni_orchestration.cli", "campaigns", "resolve", "--batch",
                           batch_id, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_late_rerun_fails_the_check_alerts_and_the_command_resolves_it_without_a_duplicate(world) -> None:
    data, warehouse, sandbox = world
    base_url, host = sandbox.base_url, f"{sandbox.base_url}/sendgrid"
    _killed_with_its_chunk_committed(warehouse, host)
    before = _treatment(warehouse)
    [batch_id] = {b for _, b in before.values()}
    assert len(before) >= 2 and {s for s, _ in before.values()} == {ledger.SCHEDULING}
    assert not (data / "mail_send.jsonl").exists()  # the request never left
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        [send_at] = conn.execute("select send_at from campaigns.campaign_batches where batch_id = ?",
                                 [batch_id]).fetchone()
    _advance_past(base_url, send_at, dt.timedelta(minutes=15))  # the re-run comes after send_at

    alert_sender = EmailSenderResource(mode="outbox", warehouse=WarehouseResource(path=str(warehouse)),
                                       alert_recipient="lead@association.test")
    definitions = _wave_definitions(warehouse, host, alert_sender)
    job = definitions.resolve_job_def("campaign_job")
    with dg.instance_for_test() as instance:
        cursor = _alert_tick(definitions, instance, alert_sender, None)
        rerun = job.execute_in_process(instance=instance, partition_key=WAVE, raise_on_error=False)
        assert not rerun.success  # the old ledger reported "0 sent, 0 failed" and succeeded
        [check] = [e for e in rerun.get_asset_check_evaluations() if e.check_name == NO_UNKNOWN_OUTCOMES]
        assert not check.passed and check.asset_key == SENDS
        assert check.metadata["batch_ids"].value == [batch_id]
        assert check.metadata["unknown_rows"].value == len(before)
        [failure] = [e for e in rerun.all_events if e.is_step_failure]
        error = failure.step_failure_data.user_failure_data
        assert batch_id in error.description and f"{len(before)} members" in error.description
        _alert_tick(definitions, instance, alert_sender, cursor)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        alerts = conn.execute("select subject, text from campaigns.outbox where kind = 'alert'").fetchall()
    assert len(alerts) == 1
    subject, text = alerts[0]
    assert rerun.run_id in text and batch_id in text and f"{len(before)} members" in text
    assert "@" not in subject + text  # no address, no personal data
    assert {s for s, _ in _treatment(warehouse).values()} == {ledger.UNKNOWN}

    resolved = _resolve_cli(warehouse, host, batch_id)
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    assert f"{len(before)} re-planned" in resolved.stdout and "Email Activity: available" in resolved.stdout
    assert {s for s, _ in _treatment(warehouse).values()} == {ledger.PLANNED}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        decision = conn.execute("select decision, members_replanned, members_closed, email_activity "
                                "from campaigns.campaign_decisions where batch_id = ?", [batch_id]).fetchall()
        batch_status = conn.execute("select status from campaigns.campaign_batches where batch_id = ?",
                                    [batch_id]).fetchone()[0]
    assert decision == [("closed and re-planned from Email Activity", len(before), 0, "available")]
    assert batch_status == ledger.RESOLVED

    with dg.instance_for_test() as instance:  # the next run sends them under a new batch, and passes its check
        again = job.execute_in_process(instance=instance, partition_key=WAVE, raise_on_error=False)
        assert again.success
        [check] = again.get_asset_check_evaluations()
        assert check.passed
    after = _treatment(warehouse)
    assert {s for s, _ in after.values()} == {ledger.SCHEDULED} and batch_id not in {b for _, b in after.values()}
    [new_send_at] = {json.loads(line)["send_at"] for line in (data / "mail_send.jsonl").read_text().splitlines()}
    _advance_past(base_url, dt.datetime.fromtimestamp(new_send_at, dt.UTC), dt.timedelta(minutes=1))
    _sandbox_now(base_url)  # the status call releases what is due
    assert _sent_by_member(data) == Counter(dict.fromkeys(before, 1))  # exactly one message each, no duplicate

    assert _resolve_cli(warehouse, host, batch_id).returncode == 0  # resolving again changes nothing
    assert _sent_by_member(data) == Counter(dict.fromkeys(before, 1))


def test_members_the_provider_shows_a_message_for_are_closed_and_the_rest_re_planned(world) -> None:
    """A batch that did reach SendGrid, for part of its members: those are closed as sent, never sent twice."""
    data, warehouse, sandbox = world
    base_url, host = sandbox.base_url, f"{sandbox.base_url}/sendgrid"
    sender = EmailSenderResource(mode="sandbox", api_key="SG.unknown-test", host=host,
                                 warehouse=WarehouseResource(path=str(warehouse)))
    assert dg.materialize([campaign_audience, campaign_sends], partition_key=WAVE,
                          resources={"warehouse": sender.warehouse, "email_sender": sender}).success
    treated = _treatment(warehouse)
    [batch_id] = {b for _, b in treated.values()}
    with duckdb.connect(str(warehouse)) as conn:  # as a late re-run would have left it
        conn.execute("update campaigns.campaign_sends set status = 'unknown' where batch_id = ?", [batch_id])
        [send_at] = conn.execute("select send_at from campaigns.campaign_batches where batch_id = ?",
                                 [batch_id]).fetchone()
    _advance_past(base_url, send_at, dt.timedelta(minutes=11))
    _sandbox_now(base_url)
    lost = sorted(treated)[: len(treated) // 2]  # take some out of what SendGrid shows: as if never accepted
    sent = [json.loads(line) for line in (data / "sent_messages.jsonl").read_text().splitlines()]
    (data / "sent_messages.jsonl").write_text("".join(json.dumps(m) + "\n" for m in sent
                                                      if int(m["custom_args"]["member_id"]) not in lost))

    resolved = _resolve_cli(warehouse, host, batch_id)
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    statuses = _treatment(warehouse)
    assert {m for m, (s, _) in statuses.items() if s == ledger.PLANNED} == set(lost)
    assert {m for m, (s, _) in statuses.items() if s == ledger.SCHEDULED} == set(treated) - set(lost)
    assert "@" not in resolved.stdout


def test_without_email_activity_it_stays_unknown_until_the_operator_says(world) -> None:
    data, warehouse, sandbox = world
    sandbox.sandbox.providers["sendgrid"].email_activity = False  # an account without the add-on
    base_url, host = sandbox.base_url, f"{sandbox.base_url}/sendgrid"
    _killed_with_its_chunk_committed(warehouse, host)
    [batch_id] = {b for _, b in _treatment(warehouse).values()}
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("update campaigns.campaign_sends set status = 'unknown' where batch_id = ?", [batch_id])
        [send_at] = conn.execute("select send_at from campaigns.campaign_batches where batch_id = ?",
                                 [batch_id]).fetchone()
    _advance_past(base_url, send_at, dt.timedelta(minutes=11))

    undetermined = _resolve_cli(warehouse, host, batch_id)
    assert undetermined.returncode == 1 and "not available on this account" in undetermined.stdout
    assert "--assume" in undetermined.stdout
    assert {s for s, _ in _treatment(warehouse).values()} == {ledger.UNKNOWN}

    decided = _resolve_cli(warehouse, host, batch_id, "--assume", NOT_SENT)
    assert decided.returncode == 0, decided.stdout + decided.stderr
    assert {s for s, _ in _treatment(warehouse).values()} == {ledger.PLANNED}
    status = requests.get(f"{base_url}/sendgrid/v3/user/scheduled_sends/{batch_id}", timeout=10,
                          headers={"Authorization": "Bearer SG.unknown-test"}).json()
    assert status == [{"batch_id": batch_id, "status": "cancel"}]  # cancelled before the re-send
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        decisions = conn.execute("select decision, assumed from campaigns.campaign_decisions where batch_id = ? "
                                 "order by decided_at", [batch_id]).fetchall()
    assert decisions == [("undetermined", None), ("operator's decision: the batch was not sent", NOT_SENT)]


def test_activity_query_pages_a_full_window_by_halves() -> None:
    """Email Activity has no cursor: a full page is split into two windows until each holds less."""
    from alumni_orchestration.campaigns.resolve import activity_query, messaged_addresses
    from alumni_orchestration.sandbox.providers.sendgrid import parse_activity_query
    from alumni_orchestration.sandbox.state import ApiError

    start = dt.datetime(2026, 11, 22, 8, tzinfo=dt.UTC)
    messages = [(f"m{i}@example.org", start + dt.timedelta(seconds=3 * i)) for i in range(2500)]

    class Provider:
        calls = 0

        def search_messages(self, query: str, limit: int = 1000) -> list[dict]:
            Provider.calls += 1
            wanted, (since, until) = parse_activity_query(query)  # the sandbox's reading of SendGrid's syntax
            assert wanted == {"unique_args['campaign_id']": "dues_reminder", "unique_args['cycle']": "2026-r1"}
            return [{"to_email": e} for e, at in messages if since <= at.timestamp() <= until][:limit]

    found = messaged_addresses(Provider(), "dues_reminder", "2026-r1", start, start + dt.timedelta(hours=3))
    assert found == {e for e, _ in messages} and Provider.calls > 3
    assert activity_query("c", "y", start, start).count("unique_args") == 2
    with pytest.raises(ApiError):
        parse_activity_query('bad_field="x"')


def test_resolve_refuses_an_unknown_batch(tmp_path) -> None:
    from alumni_orchestration.campaigns.resolve import resolve_batch
    from alumni_orchestration.warehouse import connect

    path = tmp_path / "w.duckdb"
    with pytest.raises(ValueError, match="not in campaigns.campaign_batches"):
        resolve_batch(lambda: connect(path), None, "nope", dt.datetime.now(dt.UTC), lambda ids: {})
