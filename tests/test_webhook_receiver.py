"""The SendGrid webhook receiver: signatures, limits, and durability under SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from sendgrid import EventWebhook

from alumni_orchestration.webhook import signing
from alumni_orchestration.webhook.landing import Landing, read_day_events
from alumni_orchestration.webhook.receiver import WebhookReceiver


def _signed(key, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {signing.SIGNATURE_HEADER: signing.sign(key, ts, body), signing.TIMESTAMP_HEADER: ts,
            "Content-Type": "application/json"}


def _event(i: int, kind: str = "delivered") -> dict:
    return {"email": f"m{i}@example.org", "timestamp": int(time.time()), "event": kind, "sg_event_id": f"ev-{i}",
            "sg_message_id": f"msg-{i}", "member_id": str(i)}


@pytest.fixture
def key():
    return signing.generate_private_key()


def test_receiver_lands_valid_batches_and_rejects_the_rest(tmp_path: Path, key) -> None:
    public = signing.public_key_b64(key)
    body = json.dumps([_event(1), _event(2, "open")]).encode()
    with WebhookReceiver(str(tmp_path), public, max_body=4096) as receiver:
        ok = requests.post(receiver.url, data=body, headers=_signed(key, body), timeout=5)
        assert ok.status_code == 200
        landing = Landing(str(tmp_path))
        [day] = landing.days()
        [name] = landing.list_batches(day)
        assert landing.read_batch(day, name) == body
        assert requests.post(receiver.url, data=body, timeout=5).status_code == 401
        forged = _signed(key, body)
        forged[signing.SIGNATURE_HEADER] = signing.sign(signing.generate_private_key(), forged[signing.TIMESTAMP_HEADER], body)
        assert requests.post(receiver.url, data=body, headers=forged, timeout=5).status_code == 403
        garbage = {**_signed(key, body), signing.SIGNATURE_HEADER: "!!not base64!!"}
        assert requests.post(receiver.url, data=body, headers=garbage, timeout=5).status_code == 403
        stale = _signed(key, body, int(time.time()) - 600)
        assert requests.post(receiver.url, data=body, headers=stale, timeout=5).status_code == 403
        not_json = b"hello"
        assert requests.post(receiver.url, data=not_json, headers=_signed(key, not_json), timeout=5).status_code == 400
        big = json.dumps([_event(i) for i in range(200)]).encode()
        assert requests.post(receiver.url, data=big, headers=_signed(key, big), timeout=5).status_code == 413
        assert landing.list_batches(day) == [name]


def test_sendgrid_library_agrees_with_the_receiver_on_signatures(key) -> None:
    body = json.dumps([_event(3)]).encode()
    headers = _signed(key, body)
    public = signing.public_key_b64(key)
    checker = EventWebhook(public)
    ts, sig = headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER]
    assert checker.verify_signature(body.decode(), sig, ts) and signing.verify(public, ts, body, sig)
    other = signing.sign(signing.generate_private_key(), ts, body)
    assert not checker.verify_signature(body.decode(), other, ts) and not signing.verify(public, ts, body, other)


def test_read_day_events_dedups_quarantines_and_conserves(tmp_path: Path) -> None:
    landing = Landing(str(tmp_path))
    good = [_event(1), _event(2, "click")]
    landing.write_batch("2026-11-20", "1-a.json", json.dumps(good).encode())
    landing.write_batch("2026-11-20", "2-b.json", json.dumps([_event(1), {"event": "open", "timestamp": 1},
                                                             {**_event(5), "event": "opened"}, "x",
                                                             {**_event(6), "timestamp": "soon"}]).encode())
    landing.write_batch("2026-11-20", "3-c.json", b"{not json")
    (tmp_path / "dt=2026-11-20" / ".tmp-partial").write_bytes(b"[")
    events, rejected, stats = read_day_events(landing, "2026-11-20")
    assert [e["sg_event_id"] for e in events] == ["ev-1", "ev-2"]
    assert stats.duplicates == 1 and stats.batches == 3
    assert dict(stats.quarantined) == {"missing_sg_event_id": 1, "unknown_event_type": 1, "not_an_object": 1,
                                       "invalid_timestamp": 1, "malformed_json": 1}
    assert stats.conserved() and stats.events_read == 8
    assert read_day_events(landing, "2026-11-20")[0] == events  # deterministic


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_acknowledged_batches_survive_sigkill(tmp_path: Path, key) -> None:
    """Batches are sent while the receiver is killed with SIGKILL again and again; every batch that
    got a 2xx must be landed, and every event must be read back exactly once."""
    port = _free_port()
    public = signing.public_key_b64(key)
    cmd = [sys.executable, "-m", "alumni_orchestration.cli", "webhook", "--port", str(port),
           "--landing", str(tmp_path / "landing"), "--public-key", public]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    state = {"proc": subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)}
    acknowledged: list[list[dict]] = []
    stop = threading.Event()
    url = f"http://127.0.0.1:{port}/sendgrid/events"

    def send_all() -> None:
        rng = random.Random(7)
        for b in range(150):
            batch = [_event(b * 10 + i) for i in range(rng.randint(1, 10))]
            body = json.dumps(batch).encode()
            if acknowledged and rng.random() < 0.1:  # SendGrid sometimes re-delivers an acknowledged batch
                again = json.dumps(acknowledged[-1]).encode()
                try:
                    requests.post(url, data=again, headers=_signed(key, again), timeout=2)
                except requests.RequestException:
                    pass
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not stop.is_set():
                try:  # SendGrid retries until it gets a 2xx; so do we, with fresh timestamps
                    response = requests.post(url, data=body, headers=_signed(key, body), timeout=2)
                    if response.status_code == 200:
                        acknowledged.append(batch)
                        time.sleep(0.005)
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.02)

    sender = threading.Thread(target=send_all)
    sender.start()
    kills = 0
    started = time.monotonic()
    # Kill at progress points rather than on a clock, so that a fast sender cannot outrun the kills.
    kill_points = sorted(random.Random(3).sample(range(5, 145), 8))
    try:
        while sender.is_alive() and kill_points and time.monotonic() - started < 120:
            if len(acknowledged) < kill_points[0]:
                time.sleep(0.005)
                continue
            kill_points.pop(0)
            time.sleep(random.uniform(0, 0.02))  # land the kill anywhere in the next request
            state["proc"].send_signal(signal.SIGKILL)
            state["proc"].wait()
            kills += 1
            state["proc"] = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sender.join(timeout=60)
    finally:
        stop.set()
        state["proc"].kill()
        state["proc"].wait()
    assert kills >= 5 and len(acknowledged) == 150
    landing = Landing(str(tmp_path / "landing"))
    read = [e for day in landing.days() for e in read_day_events(landing, day)[0]]
    ids = [e["sg_event_id"] for e in read]
    expected = {e["sg_event_id"] for batch in acknowledged for e in batch}
    assert len(ids) == len(set(ids)) and set(ids) == expected


@pytest.mark.slow
def test_a_starting_receiver_removes_the_temporary_files_a_killed_write_left(tmp_path: Path, key) -> None:
    """A real `alumni webhook` process: on start it removes the stale `.tmp-*` files, and nothing else (a
    recent temporary file may be another writer's write in progress; batches are never touched)."""
    landing_dir = tmp_path / "landing"
    landing = Landing(str(landing_dir))
    landing.write_batch("2026-11-20", "1-a.json", json.dumps([_event(1)]).encode())
    day = landing_dir / "dt=2026-11-20"
    hour_ago = time.time() - 3600
    stale = [day / ".tmp-k1ll3d", landing_dir / "dt=2026-11-19" / ".tmp-older"]
    for tmp in stale:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(b'[{"sg_event_id": "half')
        os.utime(tmp, (hour_ago, hour_ago))
    os.utime(day / "1-a.json", (hour_ago, hour_ago))
    in_progress = day / ".tmp-writing"
    in_progress.write_bytes(b"[")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "alumni_orchestration.cli", "webhook", "--port", str(port),
                             "--landing", str(landing_dir), "--public-key", signing.public_key_b64(key)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                assert time.monotonic() < deadline and proc.poll() is None, "the receiver did not start"
                time.sleep(0.1)
        assert not any(tmp.exists() for tmp in stale)
        assert in_progress.exists() and landing.list_batches("2026-11-20") == ["1-a.json"]
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=60)  # generous: a loaded CI machine once took over 10 s
    assert "removed 2 stale temporary file(s)" in output
