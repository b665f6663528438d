"""The API sandbox against the providers' contracts, over real sockets, with the official clients."""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from python_http_client.exceptions import HTTPError
from sendgrid import EventWebhook, SendGridAPIClient
from sendgrid.helpers.mail import Asm, CustomArg, Mail

from alumni_orchestration.ingest.eventbrite.client import EventbriteClient
from alumni_orchestration.ingest.helloasso.client import HelloAssoClient
from alumni_orchestration.ingest.http import ProviderError, RetryBudget
from alumni_orchestration.sandbox.server import SandboxServer
from alumni_orchestration.webhook import signing

pytestmark = pytest.mark.slow  # a generated association, dbt or a Dagster subprocess

API_KEY = "SG.test-key-abc"


@pytest.fixture
def data_dir(small_association: Path, tmp_path: Path) -> Path:
    target = tmp_path / "association"
    shutil.copytree(small_association, target)
    return target


def _mail(to: str, **extra) -> Mail:
    message = Mail(from_email="bureau@anciens-exemple.fr", to_emails=to)
    message.template_id = "d-0123456789abcdef"
    message.dynamic_template_data = {"first_name": "Léa"}
    message.custom_arg = [CustomArg("member_id", "7"), CustomArg("campaign_id", "reengagement")]
    message.asm = Asm(1, [1, 2])
    for key, value in extra.items():
        setattr(message, key, value)
    return message


def test_official_sendgrid_client_gets_202_then_400_with_the_error_envelope(data_dir: Path) -> None:
    with SandboxServer(data_dir) as sbx:
        client = SendGridAPIClient(API_KEY, host=f"{sbx.base_url}/sendgrid")
        response = client.send(_mail("lea@example.org"))
        assert response.status_code == 202
        invalid = _mail("lea@example.org").get()
        del invalid["from"]
        with pytest.raises(HTTPError) as error:
            client.client.mail.send.post(request_body=invalid)
        assert error.value.status_code == 400
        envelope = json.loads(error.value.body)
        assert envelope["errors"][0]["message"] and "field" in envelope["errors"][0]
        too_far = _mail("lea@example.org").get() | {"send_at": int(time.time()) + 80 * 3600}
        with pytest.raises(HTTPError) as error:
            client.client.mail.send.post(request_body=too_far)
        assert error.value.status_code == 400 and "72 hours" in error.value.body.decode()
        with pytest.raises(HTTPError) as error:
            SendGridAPIClient("not-a-key", host=f"{sbx.base_url}/sendgrid").send(_mail("lea@example.org"))
        assert error.value.status_code == 401
    accepted = (data_dir / "mail_send.jsonl").read_text().splitlines()
    assert len(accepted) == 1 and json.loads(accepted[0])["request"]["template_id"].startswith("d-")


class _Capture(BaseHTTPRequestHandler):
    batches: list[tuple[bytes, str, str]] = []

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).batches.append((raw, self.headers[signing.SIGNATURE_HEADER], self.headers[signing.TIMESTAMP_HEADER]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_webhook_batches_verify_with_sendgrid_event_webhook(data_dir: Path) -> None:
    import csv

    with (data_dir / "ground_truth/members.csv").open() as handle:
        emails = [r["email"] for r in csv.DictReader(handle) if r["email"] and float(r["bounce_prob"]) < 1][:20]
    _Capture.batches = []
    capture = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=capture.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{capture.server_address[1]}/"
        with SandboxServer(data_dir, webhook_url=url, tick_seconds=0.05) as sbx:
            client = SendGridAPIClient(API_KEY, host=f"{sbx.base_url}/sendgrid")
            assert client.send(_mail(emails)).status_code == 202
            requests.post(f"{sbx.base_url}/sandbox/clock", json={"advance": 3 * 86400}, timeout=5)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and requests.get(f"{sbx.base_url}/sandbox/status", timeout=5).json()["outbox"]:
                time.sleep(0.1)
            public_key = requests.get(f"{sbx.base_url}/sendgrid/v3/user/webhooks/event/settings/signed/x",
                                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5).json()["public_key"]
    finally:
        capture.shutdown()
    assert _Capture.batches
    checker = EventWebhook(public_key)
    events = []
    for raw, signature, timestamp in _Capture.batches:
        assert checker.verify_signature(raw.decode(), signature, timestamp)
        events += json.loads(raw)
    delivered = [e for e in events if e["event"] == "delivered"]
    assert len(delivered) == 20 and all(e["member_id"] == "7" and e["campaign_id"] == "reengagement" for e in delivered)
    assert len({e["sg_event_id"] for e in events}) == len(events)


def test_eventbrite_pagination_ends_on_has_more_items_false(data_dir: Path) -> None:
    manifest = json.loads((data_dir / "manifest.json").read_text())
    expected = [json.loads(line) for line in (data_dir / "providers/eventbrite/attendees.jsonl").read_text().splitlines()]
    with SandboxServer(data_dir) as sbx:
        client = EventbriteClient(f"{sbx.base_url}/eventbrite/v3", "tok", manifest["organization"]["eventbrite_id"])
        events = list(client.events())
        busiest = max(events, key=lambda e: sum(a["event_id"] == e["id"] for a in expected))
        page = requests.get(f"{sbx.base_url}/eventbrite/v3/events/{busiest['id']}/attendees/",
                            params={"page_size": 5}, headers={"Authorization": "Bearer tok"}, timeout=5).json()
        assert page["pagination"]["has_more_items"] is True
        seen = [a["id"] for e in events for a in client.attendees(e["id"])]
        assert sorted(seen) == sorted(a["id"] for a in expected) and len(seen) == len(set(seen))
        recent = list(client.attendees(busiest["id"], changed_since="2030-01-01T00:00:00Z"))
        assert recent == []
        missing = requests.get(f"{sbx.base_url}/eventbrite/v3/events/{busiest['id']}/attendees/", timeout=5)
        assert missing.status_code == 401 and missing.json()["error"] == "NO_AUTH"


def test_helloasso_pagination_ends_on_empty_data_and_expired_tokens_answer_401(data_dir: Path) -> None:
    expected = [json.loads(line) for line in (data_dir / "providers/helloasso/orders.jsonl").read_text().splitlines()]
    with SandboxServer(data_dir, token_lifetime=2) as sbx:
        client = HelloAssoClient(f"{sbx.base_url}/helloasso/v5", f"{sbx.base_url}/helloasso/oauth2/token",
                                 "sandbox-client", "sandbox-secret", "anciens-exemple")
        orders = list(client.orders("2000-01-01T00:00:00+01:00", "2100-01-01T00:00:00+01:00"))
        assert sorted(o["id"] for o in orders) == sorted(o["id"] for o in expected)
        token = client._access
        page = requests.get(f"{sbx.base_url}/helloasso/v5/organizations/anciens-exemple/orders",
                            params={"pageSize": 100000, "from": "2000-01-01", "to": "2100-01-01"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
        last = requests.get(f"{sbx.base_url}/helloasso/v5/organizations/anciens-exemple/orders",
                            params={"pageSize": 100000, "from": "2000-01-01", "to": "2100-01-01",
                                    "continuationToken": page["pagination"]["continuationToken"]},
                            headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
        assert last["data"] == [] and last["pagination"]["continuationToken"]
        requests.post(f"{sbx.base_url}/sandbox/clock", json={"advance": 5}, timeout=5)
        expired = requests.get(f"{sbx.base_url}/helloasso/v5/organizations/anciens-exemple/forms",
                               headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert expired.status_code == 401
        assert len(list(client.forms())) > 0  # the client refreshes and carries on


def test_scheduled_sends_can_be_cancelled_and_survive_a_restart(data_dir: Path) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with SandboxServer(data_dir) as sbx:
        client = SendGridAPIClient(API_KEY, host=f"{sbx.base_url}/sendgrid")
        cancelled = requests.post(f"{sbx.base_url}/sendgrid/v3/mail/batch", headers=headers, timeout=5).json()["batch_id"]
        kept = requests.post(f"{sbx.base_url}/sendgrid/v3/mail/batch", headers=headers, timeout=5).json()["batch_id"]
        send_at = int(time.time()) + 3600
        for batch_id, to in ((cancelled, "a@example.org"), (kept, "b@example.org")):
            body = _mail(to).get() | {"batch_id": batch_id, "send_at": send_at}
            assert client.client.mail.send.post(request_body=body).status_code == 202
        assert requests.post(f"{sbx.base_url}/sendgrid/v3/user/scheduled_sends", headers=headers, timeout=5,
                             json={"batch_id": cancelled, "status": "cancel"}).status_code == 201
    with SandboxServer(data_dir) as sbx:  # a restarted sandbox keeps its batches and held sends
        listed = requests.get(f"{sbx.base_url}/sendgrid/v3/user/scheduled_sends", headers=headers, timeout=5).json()
        assert listed == [{"batch_id": cancelled, "status": "cancel"}]
        requests.post(f"{sbx.base_url}/sandbox/clock", json={"advance": 7200}, timeout=5)
        status = requests.get(f"{sbx.base_url}/sandbox/status", timeout=5).json()
    sent = [json.loads(line) for line in (data_dir / "sent_messages.jsonl").read_text().splitlines()]
    assert [m["email"] for m in sent] == ["b@example.org"] and status["held"] == 0


def test_faults_every_request_fails_at_rate_one_and_clients_recover_at_rate_point_two(data_dir: Path) -> None:
    with SandboxServer(data_dir, fault_rate=1.0) as sbx:
        for _ in range(10):
            response = requests.get(f"{sbx.base_url}/sendgrid/v3/suppression/bounces",
                                    headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
            assert response.status_code in (429, 500)
            if response.status_code == 429:
                assert response.headers["X-RateLimit-Reset"] and response.json()["errors"][0]["message"]
        client = HelloAssoClient(f"{sbx.base_url}/helloasso/v5", f"{sbx.base_url}/helloasso/oauth2/token",
                                 "sandbox-client", "sandbox-secret", "anciens-exemple",
                                 budget=RetryBudget(max_attempts=3, base_delay=0.01, max_total_seconds=5))
        with pytest.raises(ProviderError, match=r"HelloAsso /helloasso/v5/organizations/anciens-exemple/forms"):
            list(client.forms())
    with SandboxServer(data_dir, fault_rate=0.2, slow_rate=0.0, seed=3) as sbx:
        client = HelloAssoClient(f"{sbx.base_url}/helloasso/v5", f"{sbx.base_url}/helloasso/oauth2/token",
                                 "sandbox-client", "sandbox-secret", "anciens-exemple",
                                 budget=RetryBudget(base_delay=0.01, max_delay=0.1))
        forms = list(client.forms())
    assert len(forms) == len((data_dir / "providers/helloasso/forms.jsonl").read_text().splitlines())


def test_a_reminded_member_whose_draw_says_so_pays_through_helloasso(data_dir: Path) -> None:
    from alumni_orchestration.sandbox.world import load_dues_truth, load_recipients
    from alumni_orchestration.synthetic.behaviour import hash_uniform

    manifest = json.loads((data_dir / "manifest.json").read_text())
    seed, cycle = manifest["config"]["seed"], manifest["dues_cycles"]["current"]
    truth, recipients = load_dues_truth(data_dir), load_recipients(data_dir)
    payer = next(r for r in recipients.values() if (r.member_id, cycle) in truth
                 and truth[(r.member_id, cycle)][0] <= float(hash_uniform(seed, r.member_id, cycle))
                 < truth[(r.member_id, cycle)][0] + r.dues_reminder_uplift and r.bounce_prob < 1)
    with SandboxServer(data_dir) as sbx:
        client = SendGridAPIClient(API_KEY, host=f"{sbx.base_url}/sendgrid")
        body = _mail(payer.email).get() | {"categories": ["dues_reminder"],
                                           "custom_args": {"member_id": str(payer.member_id), "cycle": str(cycle)}}
        assert client.client.mail.send.post(request_body=body).status_code == 202
        requests.post(f"{sbx.base_url}/sandbox/clock", json={"advance": 10 * 86400}, timeout=5)
        ha = HelloAssoClient(f"{sbx.base_url}/helloasso/v5", f"{sbx.base_url}/helloasso/oauth2/token",
                             "sandbox-client", "sandbox-secret", "anciens-exemple")
        orders = list(ha.orders("2000-01-01T00:00:00+01:00", "2100-01-01T00:00:00+01:00"))
    created = [o for o in orders if o["id"] >= 990_000_000]
    assert len(created) == 1 and created[0]["payer"]["email"] == payer.email
    assert created[0]["formSlug"] == f"adhesion-{cycle}"
