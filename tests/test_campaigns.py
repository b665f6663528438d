"""Campaign waves end to end on a scored association and the local sandbox: sensors, audience rules,
holdout, quiet hours, the published mail-send schema, and no second send."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import requests

from alumni_orchestration.campaigns.definitions import campaigns
from alumni_orchestration.campaigns.send_window import is_quiet
from alumni_orchestration.contracts import mail_send_errors
from alumni_orchestration.defs.campaigns.assets import campaign_audience, campaign_sends
from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
from alumni_orchestration.defs.campaigns.results import campaign_results_asset
from alumni_orchestration.defs.campaigns.sensors import build_campaign_sensor
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.sandbox.server import SandboxServer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
REENGAGEMENT_AS_OF = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def scored(scored_association: tuple[Path, Path]) -> tuple[Path, Path]:
    """The session's scored association, built once for every campaign module; tests copy it before writing."""
    return scored_association


@pytest.fixture
def world(scored, tmp_path: Path):
    """A private copy of the warehouse and of the sandbox's data folder, and the sandbox serving it."""
    association, warehouse = scored
    data = tmp_path / "association"
    shutil.copytree(association, data, ignore=shutil.ignore_patterns("mail_send.jsonl", "sandbox_state.json",
                                                                      "sent_messages.jsonl"))
    mine = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse, mine)
    with SandboxServer(data, port=0) as sandbox:
        yield data, WarehouseResource(path=str(mine)), sandbox.base_url


def _sender(warehouse: WarehouseResource, base_url: str, **options) -> EmailSenderResource:
    return EmailSenderResource(mode="sandbox", api_key="SG.campaign-test", host=f"{base_url}/sendgrid",
                               organization="anciens-exemple", warehouse=warehouse, **options)


def _run_wave(request: dg.RunRequest, warehouse: WarehouseResource, sender: EmailSenderResource,
              instance: dg.DagsterInstance) -> dg.ExecuteInJobResult:
    return dg.materialize([campaign_audience, campaign_sends], partition_key=request.partition_key, instance=instance,
                          resources={"warehouse": warehouse, "email_sender": sender}, tags=request.tags)


def _tick(sensor, instance: dg.DagsterInstance, warehouse: WarehouseResource, cursor: str | None = None):
    """One sensor evaluation; returns (result, the cursor it left). The context is closed after use."""
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"warehouse": warehouse}) as context:
        result = sensor(context)
        return result, context.cursor


def _mail_send(data: Path) -> list[dict]:
    path = data / "mail_send.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _recipients(lines: list[dict]) -> list[int]:
    return [int(p["custom_args"]["member_id"]) for line in lines for p in line["request"]["personalizations"]]


def _expected_reengagement(warehouse: WarehouseResource, as_of: dt.date) -> set[int]:
    """Written independently of the trigger code: below 25 today, at or above 25 the day before, and at or
    above 30 (threshold + margin) at some point before; or the 30-day trend crossing -8 likewise."""
    with warehouse.read() as conn:
        h = conn.execute("select member_id, as_of, engagement_score from scoring.member_score_history").df()
    h["as_of"] = pd.to_datetime(h.as_of).dt.date
    wide = h.pivot(index="member_id", columns="as_of", values="engagement_score")
    today, before = as_of, as_of - dt.timedelta(days=1)
    past = [d for d in wide.columns if d < today]
    score = (wide[before] >= 25) & (wide[today] < 25) & (wide[past].max(axis=1) >= 30)
    trend = wide.sub(wide.shift(30, axis=1).reindex(columns=wide.columns))  # columns are consecutive days
    trend_ok = (trend[before] >= -8) & (trend[today] < -8) & (trend[past].max(axis=1) >= -6)
    return set(wide.index[score | trend_ok.fillna(False)])


def test_reengagement_sensor_fires_for_exactly_the_crossing_members_and_sends_once(world) -> None:
    data, warehouse, base_url = world
    sensor = build_campaign_sensor(campaigns()["reengagement"])
    with dg.instance_for_test() as instance:
        result, cursor = _tick(sensor, instance, warehouse, (REENGAGEMENT_AS_OF - dt.timedelta(days=1)).isoformat())
        [request] = result  # 11-20 crosses; 11-21 and 11-22 do not
        assert request.run_key == f"reengagement:{REENGAGEMENT_AS_OF}"
        assert cursor == "2026-11-22"
        again, _ = _tick(sensor, instance, warehouse, cursor)
        assert isinstance(again, dg.SkipReason) and "no snapshot newer" in again.skip_message
        replay, _ = _tick(sensor, instance, warehouse, "2026-11-19")
        assert [r.run_key for r in replay] == [request.run_key]  # same key: Dagster launches it once

        assert _run_wave(request, warehouse, _sender(warehouse, base_url), instance).success
        with warehouse.read() as conn:
            audience = conn.execute("select * from campaigns.campaign_audience").df()
        expected = _expected_reengagement(warehouse, REENGAGEMENT_AS_OF)
        assert expected and set(audience.member_id) == expected
        treated = set(audience[audience.arm == "treatment"].member_id)
        lines = _mail_send(data)
        assert sorted(_recipients(lines)) == sorted(treated)
        for line in lines:
            assert mail_send_errors(line["request"], line["received_at"]) == []
            assert not is_quiet(dt.datetime.fromtimestamp(line["request"]["send_at"], dt.UTC))
            assert line["request"]["asm"]["group_id"] == 2 and line["request"]["batch_id"]

        assert _run_wave(request, warehouse, _sender(warehouse, base_url), instance).success  # a second run
        assert len(_mail_send(data)) == len(lines)


def _exclude_some(warehouse: WarehouseResource, members: list[int]) -> dict[int, str]:
    """Make three would-be recipients ineligible in three different ways."""
    unconsented, suppressed, capped = members[:3]
    with warehouse.write() as conn:
        conn.execute("update raw.members set consent_email = false where member_id = ?", [unconsented])
        email = conn.execute("select email from staging.stg_membership__members where member_id = ?",
                             [suppressed]).fetchall()[0][0]
        conn.execute("insert into raw.sendgrid_suppressions (email, kind, created_at) values (?, 'bounces', now())",
                     [email])
        conn.execute("create schema if not exists campaigns")
    from alumni_orchestration.campaigns.ledger import ensure_tables

    with warehouse.write() as conn:
        ensure_tables(conn)
        for k in range(3):  # three marketing emails in the last 30 days: the cap
            conn.execute("insert into campaigns.campaign_sends (campaign_id, cycle, member_id, period, as_of, step, arm, "
                         "status, send_at, marketing, updated_at) values ('reengagement', ?, ?, '2026-Q4', ?, 1, "
                         "'treatment', 'scheduled', ?, true, now())",
                         [f"test-{k}", capped, dt.date(2026, 11, 1 + k), dt.datetime(2026, 11, 1 + k, 10, tzinfo=dt.UTC)])
    return {unconsented: "no_consent", suppressed: "suppressed", capped: "frequency_cap"}


def test_dues_reminders_honour_consent_suppressions_cap_and_holdout(world) -> None:
    data, warehouse, base_url = world
    sensor = build_campaign_sensor(campaigns()["dues_reminder"])
    with dg.instance_for_test() as instance:
        [request], cursor = _tick(sensor, instance, warehouse)  # no cursor: the latest snapshot only
        assert request.run_key == "dues_reminder:2026-11-22" and cursor == "2026-11-22"
        with warehouse.read() as conn:
            due = conn.execute("select member_id from scoring.member_score_history where as_of = '2026-11-22' and "
                               "not paid_current_cycle and dues_propensity >= 0.5 order by member_id").df().member_id
        assert int(request.tags["alumni/triggered_members"]) == len(due) >= 5
        excluded = _exclude_some(warehouse, due.tolist())
        assert _run_wave(request, warehouse, _sender(warehouse, base_url), instance).success
        with warehouse.read() as conn:
            audience = conn.execute("select * from campaigns.campaign_audience").df().set_index("member_id")
            ledger = conn.execute("select * from campaigns.campaign_sends where as_of = '2026-11-22'").df()
    assert set(audience.index) == set(due)
    for member, reason in excluded.items():
        assert audience.reason[member] == reason and pd.isna(audience.arm[member])
    recipients = _recipients(_mail_send(data))
    treated = set(audience[audience.arm == "treatment"].index)
    control = set(audience[audience.arm == "control"].index)
    assert sorted(recipients) == sorted(treated) and not control & set(recipients)
    assert set(ledger[ledger.arm == "control"].status) <= {"held_out"} and set(ledger.cycle) == {"2026-r1"}
    results = dg.materialize([campaign_results_asset], resources={"warehouse": warehouse})
    assert results.success
    with warehouse.read() as conn:
        table = conn.execute("select * from campaigns.campaign_results where campaign_id = 'dues_reminder'").df().set_index("arm")
    assert table.audience["treatment"] == table.sent["treatment"] == len(treated)
    assert table.audience.get("control", 0) == len(control) and table.sent.get("control", 0) == 0
    messages = [p for line in _mail_send(data) for p in line["request"]["personalizations"]]
    assert all("90 €" in p["substitutions"]["-message_text-"] or "45 €" in p["substitutions"]["-message_text-"]
               or "15 €" in p["substitutions"]["-message_text-"] for p in messages)


def test_outbox_mode_sends_nothing_and_keeps_the_rendered_messages(world) -> None:
    data, warehouse, base_url = world
    sensor = build_campaign_sensor(campaigns()["dues_reminder"])
    with dg.instance_for_test() as instance:
        [request], _ = _tick(sensor, instance, warehouse)
        outbox = EmailSenderResource(mode="outbox", warehouse=warehouse)
        result = _run_wave(request, warehouse, outbox, instance)
    assert result.success
    with warehouse.read() as conn:
        rows = conn.execute("select o.member_id, o.subject, s.arm from campaigns.outbox o join campaigns.campaign_sends s "
                            "using (member_id) where o.kind = 'campaign'").df()
        treated = conn.execute("select count(*) from campaigns.campaign_audience where arm = 'treatment'").fetchall()[0][0]
    assert len(rows) == treated > 0 and set(rows.arm) == {"treatment"}
    assert not (data / "mail_send.jsonl").exists()
    metadata = result.get_asset_materialization_events()[-1].materialization.metadata
    assert metadata["mode"].value == "outbox" and metadata["sent"].value == treated
    # No personal data in what the UI shows.
    emails = set(rows.member_id.astype(str))
    assert not any("@" in str(v.value) for v in metadata.values()) and emails


def test_live_mode_must_be_asked_for_and_refuses_the_sandbox(world) -> None:
    _, warehouse, base_url = world
    with pytest.raises(ValueError, match="live mode"):
        EmailSenderResource(mode="live", api_key="SG.x", host=f"{base_url}/sendgrid", warehouse=warehouse).transport()
    with pytest.raises(ValueError, match="refuses the real SendGrid host"):
        EmailSenderResource(mode="sandbox", api_key="SG.x", host="https://api.sendgrid.com", warehouse=warehouse).transport()
    assert requests.get(f"{base_url}/sandbox/status", timeout=5).ok


def _start_wave(warehouse: Path, host: str, pause: str = "") -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "tests.campaign_wave_runner", str(warehouse), host,
                                "dues_reminder", "2026-11-21", "1", pause], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout.readline().strip() == "READY"
    return process


def test_a_wave_killed_at_random_instants_ends_with_exactly_one_message_per_treated_member(scored, tmp_path) -> None:
    """20 trials: a wave (one message per request) is SIGKILLed, then run again to the end. Once the sandbox's
    clock passes the scheduled times, every treated member has exactly one delivered message. Half the kills
    fall at random instants of the run; the other half while a chunk is in flight (its batch committed, its
    request about to leave or just accepted), at a random chunk: those are the kills the ledger must repair."""
    association, base = scored
    data = tmp_path / "association"
    shutil.copytree(association, data, ignore=shutil.ignore_patterns("mail_send.jsonl", "sandbox_state.json",
                                                                      "sent_messages.jsonl"))
    rng = random.Random(20261123)
    with SandboxServer(data, port=0) as sandbox:
        host = f"{sandbox.base_url}/sendgrid"
        def timed_run(name: str) -> float:  # from imported to finished, for the kill instants' range
            calibration = tmp_path / f"calibration-{name}.duckdb"
            shutil.copy(base, calibration)
            process = _start_wave(calibration, host)
            started = time.monotonic()
            assert process.wait(timeout=120) == 0
            return time.monotonic() - started

        with ThreadPoolExecutor(max_workers=2) as pool:  # timed as the trials run: two at a time
            duration = max(pool.map(timed_run, ["a", "b"]))
        with duckdb.connect(str(tmp_path / "calibration-a.duckdb"), read_only=True) as conn:
            requests_per_wave = conn.execute("select count(*) from campaigns.campaign_sends "
                                             "where arm = 'treatment'").fetchall()[0][0]
        assert requests_per_wave >= 2
        kills = [("", rng.uniform(0, duration)) if trial % 2 else
                 (f"{rng.choice(['before', 'after'])}:{rng.randint(1, requests_per_wave)}", 0.0)
                 for trial in range(20)]

        def run_trial(trial: int) -> tuple[set[int], set[str]]:
            warehouse = tmp_path / f"trial{trial}.duckdb"
            shutil.copy(base, warehouse)
            pause, delay = kills[trial]
            process = _start_wave(warehouse, host, pause)
            if pause:
                assert process.stdout.readline().strip() == "PAUSED", f"trial {trial}: never reached {pause}"
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
            assert _start_wave(warehouse, host).wait(timeout=120) == 0, f"trial {trial}: the re-run failed"
            with duckdb.connect(str(warehouse), read_only=True) as conn:
                treated = {r[0] for r in conn.execute("select member_id from campaigns.campaign_audience "
                                                      "where arm = 'treatment'").fetchall()}
                batches = {r[0] for r in conn.execute("select batch_id from campaigns.campaign_batches").fetchall()}
                statuses = {r[0] for r in conn.execute("select status from campaigns.campaign_sends "
                                                       "where arm = 'treatment'").fetchall()}
            assert treated and statuses == {"scheduled"}, f"trial {trial}: {statuses}"
            return treated, batches

        with ThreadPoolExecutor(max_workers=2) as pool:  # two trials at a time: each has its own warehouse
            trials = list(pool.map(run_trial, range(20)))
        requests.post(f"{sandbox.base_url}/sandbox/clock", json={"advance": 4 * 86400}, timeout=10).raise_for_status()
        requests.get(f"{sandbox.base_url}/sandbox/status", timeout=10).raise_for_status()
    sent = [json.loads(line) for line in (data / "sent_messages.jsonl").read_text().splitlines()]
    for trial, (treated, batches) in enumerate(trials):
        mine = Counter(int(m["custom_args"]["member_id"]) for m in sent if m["batch_id"] in batches)
        assert dict(mine) == dict.fromkeys(treated, 1), f"trial {trial}"
        delivered_batches = {m["batch_id"] for m in sent if m["batch_id"] in batches}
        if kills[trial][0]:  # killed in flight: that chunk's batch was cancelled and its members sent again
            assert len(batches) == len(delivered_batches) + 1, f"trial {trial}: {kills[trial][0]}"


def test_backfilling_a_campaign_window_from_the_cli_updates_its_results(scored, tmp_path) -> None:
    """The wave is sent, the sandbox's recipients react through the Event Webhook, and a single-run backfill
    of `campaign_window_job` over the window, launched with the `dagster` CLI as the UI would launch it,
    re-ingests the events, rebuilds the marts and the results: delivered and opened messages appear."""
    from alumni_orchestration.harness.demo import INSTANCE_YAML
    from alumni_orchestration.webhook.receiver import WebhookReceiver, paris_day

    association, base = scored
    data = tmp_path / "association"
    shutil.copytree(association, data, ignore=shutil.ignore_patterns("mail_send.jsonl", "sandbox_state.json",
                                                                      "sent_messages.jsonl"))
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    shutil.copy(base, warehouse.path)
    landing = tmp_path / "landing"
    server = SandboxServer(data, port=0)
    receiver = WebhookReceiver(str(landing), server.sandbox.providers["sendgrid"].public_key)
    server.webhook_url = receiver.url
    with receiver, server:
        sensor = build_campaign_sensor(campaigns()["dues_reminder"])
        with dg.instance_for_test() as instance:
            [request], _ = _tick(sensor, instance, warehouse)
            assert _run_wave(request, warehouse, _sender(warehouse, server.base_url), instance).success
        for days in (2, 3):  # past the scheduled send, then past the reactions
            requests.post(f"{server.base_url}/sandbox/clock", json={"advance": days * 86400}, timeout=10)
        deadline = time.monotonic() + 60
        while requests.get(f"{server.base_url}/sandbox/status", timeout=10).json()["outbox"] and time.monotonic() < deadline:
            time.sleep(0.5)
        with warehouse.read() as conn:
            treated = conn.execute("select count(*) from campaigns.campaign_audience where arm = 'treatment'"
                                   ).fetchall()[0][0]
            before = conn.execute("select count(*) from raw.sendgrid_events where campaign_id = 'dues_reminder'"
                                  ).fetchall()[0][0]
        assert treated > 0 and before == 0
        home = tmp_path / "home"
        (home / "dagster").mkdir(parents=True)
        (home / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML)
        today = paris_day(time.time())
        manifest = json.loads((data / "manifest.json").read_text())
        env = {**os.environ, "ALUMNI_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
               "ALUMNI_WAREHOUSE": warehouse.path, "SENDGRID_WEBHOOK_LANDING": str(landing),
               "ALUMNI_SANDBOX_URL": server.base_url, "ALUMNI_PARTITIONS_START": manifest["period"]["history_start"],
               "MEMBERSHIP_DATABASE_URL": f"sqlite:///{data / 'membership.sqlite'}",
               "SENDGRID_API_KEY": "SG.backfill-test", "EVENTBRITE_TOKEN": "sandbox-eventbrite-token",
               "HELLOASSO_CLIENT_ID": "sandbox-client", "HELLOASSO_CLIENT_SECRET": "sandbox-secret"}
        tags = json.dumps({"dagster/asset_partition_range_start": today, "dagster/asset_partition_range_end": today})
        launched = subprocess.run([str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m",
                                   "alumni_orchestration.definitions", "-j", "campaign_window_job", "--tags", tags],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert launched.returncode == 0, (launched.stdout + launched.stderr)[-3000:]
    with warehouse.read() as conn:
        results = conn.execute("select * from campaigns.campaign_results where campaign_id = 'dues_reminder'"
                               ).df().set_index("arm")
    assert results.delivered["treatment"] == results.sent["treatment"] == treated
    assert results.unique_opens["treatment"] > 0
    rebuilt = dg.materialize([campaign_results_asset], resources={"warehouse": warehouse})
    assert rebuilt.success
    with warehouse.read() as conn:
        again = conn.execute("select * from campaigns.campaign_results where campaign_id = 'dues_reminder'"
                             ).df().set_index("arm")
    pd.testing.assert_frame_equal(results, again)


def test_narrowed_history_selects_exactly_what_the_whole_lookback_selects(scored) -> None:
    """The sensors and the audience load only the members who can cross; every snapshot day of the
    fixture must give the same candidates as the whole lookback of every member."""
    from alumni_orchestration.campaigns.definitions import campaigns
    from alumni_orchestration.campaigns.waves import wave_candidates
    from alumni_orchestration.defs.campaigns.assets import load_history, load_ledger

    _, warehouse = scored
    with WarehouseResource(path=str(warehouse)).read() as conn:
        days = [r[0] for r in conn.execute("select distinct as_of from scoring.member_score_history "
                                           "order by as_of").fetchall()]
        compared = 0
        for campaign in campaigns().values():
            ledger = load_ledger(conn, campaign.campaign_id)
            for as_of in days[-20:]:
                whole = wave_candidates(campaign, load_history(conn, as_of), ledger, as_of)
                narrowed_history = load_history(conn, as_of, campaign)
                narrowed = wave_candidates(campaign, narrowed_history, ledger, as_of)
                key = ["member_id", "step", "cycle"]
                assert whole.sort_values(key).reset_index(drop=True)[key].equals(
                    narrowed.sort_values(key).reset_index(drop=True)[key]), (campaign.campaign_id, as_of)
                assert narrowed_history.member_id.nunique() <= load_history(conn, as_of).member_id.nunique()
                compared += len(whole)
        assert compared > 0  # some days do select members
