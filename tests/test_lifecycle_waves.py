"""Lifecycle waves end to end on the scored association and the local sandbox: the sensor requests the birthday
wave with its run key, the wave (through tests/campaign_wave_runner.py) greets exactly the members whose birthday it
is and who consented, at 08:00 Paris outside quiet hours; a class anniversary carries the class's events; and a
birthday wave killed at random instants, then re-run, leaves exactly one message per treated member."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
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
import pytest
import requests

from alumni_orchestration.campaigns.definitions import campaigns
from alumni_orchestration.campaigns.send_window import PARIS, is_quiet
from alumni_orchestration.defs.campaigns import assets as campaign_assets
from alumni_orchestration.defs.campaigns.assets import campaign_audience, campaign_sends
from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
from alumni_orchestration.defs.campaigns.sensors import build_campaign_sensor
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.sandbox.server import SandboxServer
from tests.campaign_fixture import WAVE_AS_OF, WAVE_DAY

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
AS_OF = dt.date.fromisoformat(WAVE_AS_OF)  # a Sunday: quiet all day, the greetings leave Monday at 08:00
BIRTHDAY, ANNIVERSARY = "birthday_greeting", "class_anniversary"
CELEBRATED = 30   # members given a birthday on the wave's day
KILL_TRIALS = 6


def _copy_world(scored: tuple[Path, Path], root: Path) -> tuple[Path, Path]:
    association, warehouse = scored
    data = root / "association"
    shutil.copytree(association, data, ignore=shutil.ignore_patterns("mail_send.jsonl", "sandbox_state.json",
                                                                      "sent_messages.jsonl"))
    mine = root / "warehouse.duckdb"
    shutil.copy(warehouse, mine)
    return data, mine


def _celebrate(warehouse: Path) -> None:
    """CELEBRATED members with a deliverable address get a birthday on the wave's day; a third of them no consent."""
    with duckdb.connect(str(warehouse)) as conn:
        chosen = [r[0] for r in conn.execute(
            "select member_id from staging.stg_membership__members where email_status = 'valid' and status = "
            "'active' order by hash(member_id) limit ?", [CELEBRATED]).fetchall()]
        conn.execute("update raw.members set birth_date = make_date(year(birth_date), 11, 22) "
                     "where member_id in (select unnest(?))", [chosen])
        conn.execute("update raw.members set consent_email = false where member_id in (select unnest(?))",
                     [chosen[::3]])


def _expected_greeted(warehouse: Path) -> set[int]:
    """Independently of the campaign code: birthday today, consent, active, a valid and unsuppressed address."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return {r[0] for r in conn.execute("""
            select m.member_id from staging.stg_membership__members as m
            where month(m.birth_date) = 11 and day(m.birth_date) = 22 and m.consent_email
              and m.status not in ('left', 'deceased') and m.email_status = 'valid'
              and m.email not in (select email from staging.stg_sendgrid__suppressions where email is not null)
        """).fetchall()}


def _ledger(warehouse: Path, campaign_id: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute("select member_id, cycle, arm, status, send_at from campaigns.campaign_sends "
                            "where campaign_id = ?", [campaign_id]).fetchall()


def _start_wave(warehouse: Path, host: str, campaign_id: str, pause: str = "") -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "tests.campaign_wave_runner", str(warehouse), host,
                                campaign_id, WAVE_DAY, "1", pause], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout.readline().strip() == "READY"
    return process


def _set_clock(base_url: str, moment: dt.datetime) -> None:
    requests.post(f"{base_url}/sandbox/clock", json={"now": moment.timestamp()}, timeout=30).raise_for_status()


def test_the_sensor_requests_the_birthday_wave_which_greets_exactly_todays_consenting_birthdays(
        scored_association, tmp_path) -> None:
    data, warehouse = _copy_world(scored_association, tmp_path)
    _celebrate(warehouse)
    expected = _expected_greeted(warehouse)
    store = WarehouseResource(path=str(warehouse))
    with dg.instance_for_test() as instance, \
            dg.build_sensor_context(instance=instance, cursor=(AS_OF - dt.timedelta(days=1)).isoformat(),
                                    resources={"warehouse": store}) as context:
        [request] = build_campaign_sensor(campaigns()[BIRTHDAY])(context)
        assert request.run_key == f"{BIRTHDAY}:{WAVE_AS_OF}" and context.cursor == WAVE_AS_OF
        assert request.partition_key.keys_by_dimension == {"campaign": BIRTHDAY, "date": WAVE_DAY}
    with SandboxServer(data, port=0) as sandbox:
        _set_clock(sandbox.base_url, dt.datetime.combine(AS_OF, dt.time(2, 30), PARIS))  # after the nightly run
        assert _start_wave(warehouse, f"{sandbox.base_url}/sendgrid", BIRTHDAY).wait(timeout=300) == 0
        assert _start_wave(warehouse, f"{sandbox.base_url}/sendgrid", BIRTHDAY).wait(timeout=300) == 0  # re-run
    rows = _ledger(warehouse, BIRTHDAY)
    assert {m for m, *_ in rows} == expected and len(rows) == len(expected) >= CELEBRATED // 2
    assert {c for _, c, *_ in rows} == {"2026"}
    treated = [r for r in rows if r[2] == "treatment"]
    assert treated and {r[3] for r in treated} == {"scheduled"}
    for *_, send_at in treated:
        assert not is_quiet(send_at)
        assert send_at.astimezone(PARIS) == dt.datetime(2026, 11, 23, 8, 0, tzinfo=PARIS)  # Sunday: Monday 08:00


def test_a_class_anniversary_carries_the_class_events_and_group(scored_association, tmp_path, monkeypatch) -> None:
    data, warehouse = _copy_world(scored_association, tmp_path)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("update raw.members set graduation_year = 2006 where member_id in (select member_id from "
                     "staging.stg_membership__members where email_status = 'valid' and consent_email "
                     "and status = 'active' order by member_id limit 12)")
        conn.execute("insert into raw.eventbrite_events (event_id, name, start_at) "
                     "values ('999000001', 'Soirée des 20 ans — promo 2006', '2026-12-05 18:00:00+01')")
    campaign = campaigns()[ANNIVERSARY]
    today = dataclasses.replace(campaign, lifecycle=dataclasses.replace(campaign.lifecycle, on="11-22"))
    monkeypatch.setattr(campaign_assets, "campaigns", lambda: {**campaigns(), ANNIVERSARY: today})
    store = WarehouseResource(path=str(warehouse))
    with SandboxServer(data, port=0) as sandbox:
        sender = EmailSenderResource(mode="sandbox", api_key="SG.lifecycle-test", host=f"{sandbox.base_url}/sendgrid",
                                     organization="anciens-exemple", warehouse=store)
        result = dg.materialize([campaign_audience, campaign_sends], resources={"warehouse": store, "email_sender": sender},
                                partition_key=dg.MultiPartitionKey({"campaign": ANNIVERSARY, "date": WAVE_DAY}))
        assert result.success
    bodies = [json.loads(line) for line in (data / "mail_send.jsonl").read_text().splitlines()]
    messages = [p for b in bodies for p in b["request"]["personalizations"] if p["custom_args"]["campaign_id"] == ANNIVERSARY]
    assert messages
    by_member = {int(p["custom_args"]["member_id"]): p for p in messages}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        promo_of = dict(conn.execute("select member_id, graduation_year from staging.stg_membership__members "
                                     "where member_id in (select unnest(?))", [list(by_member)]).fetchall())
    assert {2026 - y for y in promo_of.values()} <= {10, 20, 25, 50}
    for member_id, p in by_member.items():
        promo = promo_of[member_id]
        html = p["substitutions"]["-message_html-"]
        assert str(promo) in p["subject"] and f"groupes/promo-{promo}" in html
        assert ("Soirée des 20 ans — promo 2006" in html) == (promo == 2006)


def test_a_birthday_wave_killed_at_random_instants_sends_no_duplicate(scored_association, tmp_path) -> None:
    """As the dues reminder's kill test (tests/test_campaigns.py), on the lifecycle kind: a birthday wave (one
    message per request) is SIGKILLed at random instants or with a chunk in flight, then run again; once the
    sandbox's clock passes the scheduled times, every treated member has exactly one message."""
    data, base = _copy_world(scored_association, tmp_path)
    _celebrate(base)
    rng = random.Random(20261122)
    with SandboxServer(data, port=0) as sandbox:
        host = f"{sandbox.base_url}/sendgrid"
        calibration = tmp_path / "calibration.duckdb"
        shutil.copy(base, calibration)
        started = time.monotonic()
        assert _start_wave(calibration, host, BIRTHDAY).wait(timeout=300) == 0
        duration = time.monotonic() - started
        requests_per_wave = sum(r[2] == "treatment" for r in _ledger(calibration, BIRTHDAY))
        assert requests_per_wave >= 5
        kills = [("", rng.uniform(0, duration)) if trial % 2 else
                 (f"{rng.choice(['before', 'after'])}:{rng.randint(1, requests_per_wave)}", 0.0)
                 for trial in range(KILL_TRIALS)]

        def run_trial(trial: int) -> tuple[set[int], set[str]]:
            warehouse = tmp_path / f"trial{trial}.duckdb"
            shutil.copy(base, warehouse)
            pause, delay = kills[trial]
            process = _start_wave(warehouse, host, BIRTHDAY, pause)
            if pause:
                assert process.stdout.readline().strip() == "PAUSED", f"trial {trial}: never reached {pause}"
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
            assert _start_wave(warehouse, host, BIRTHDAY).wait(timeout=300) == 0, f"trial {trial}: the re-run failed"
            rows = _ledger(warehouse, BIRTHDAY)
            assert {r[3] for r in rows if r[2] == "treatment"} == {"scheduled"}, f"trial {trial}"
            with duckdb.connect(str(warehouse), read_only=True) as conn:
                batches = {r[0] for r in conn.execute("select batch_id from campaigns.campaign_batches").fetchall()}
            return {r[0] for r in rows if r[2] == "treatment"}, batches

        with ThreadPoolExecutor(max_workers=2) as pool:
            trials = list(pool.map(run_trial, range(KILL_TRIALS)))
        requests.post(f"{sandbox.base_url}/sandbox/clock", json={"advance": 4 * 86400}, timeout=10).raise_for_status()
        requests.get(f"{sandbox.base_url}/sandbox/status", timeout=10).raise_for_status()
    sent = [json.loads(line) for line in (data / "sent_messages.jsonl").read_text().splitlines()]
    for trial, (treated, batches) in enumerate(trials):
        mine = Counter(int(m["custom_args"]["member_id"]) for m in sent if m["batch_id"] in batches)
        assert dict(mine) == dict.fromkeys(treated, 1), f"trial {trial}: {kills[trial]}"
        assert {m["custom_args"]["campaign_id"] for m in sent if m["batch_id"] in batches} == {BIRTHDAY}
