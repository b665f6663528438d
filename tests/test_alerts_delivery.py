"""The run-failure alert is delivered at least once: with SendGrid unreachable the alert lands in the outbox,
it is sent once SendGrid is back, and the sensor's cursor never moves past a failure whose alert is not
durably recorded. Real Dagster instance, real failed runs, a real local HTTP server (and a port that refuses
connections while "SendGrid is down"), a real second process holding the warehouse's lock."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from alumni_orchestration.campaigns.transport import Rejected
from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
from alumni_orchestration.defs.operations.sensors import alumni_run_failure_alert
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.operations.alert_delivery import (
    OUTBOXED,
    PENDING,
    SENT,
    TICK_BUDGET_SECONDS,
    Alert,
    AlertChannel,
    AlertNotRecorded,
    deliver,
    delivery_statuses,
)
from alumni_orchestration.warehouse import connect

LEAD = "lead@association.test"
PII_EMAIL = "jean.dupont@example.org"


@dg.asset
def broken_member_load() -> None:
    raise ValueError(f"could not load member {PII_EMAIL}")


@dg.asset
def broken_score() -> None:
    raise RuntimeError("scores diverged")


JOB = dg.define_asset_job("failing_job", selection=[broken_member_load])
OTHER_JOB = dg.define_asset_job("other_failing_job", selection=[broken_score])


class MailServer:
    """SendGrid's mail/send on a fixed port: answers 202 and keeps every body it received."""

    def __init__(self, port: int) -> None:
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/v3/mail/send" and self.headers.get("Authorization") == "Bearer SG.test-key":
                    outer.bodies.append(json.loads(raw))
                    self.send_response(202)
                else:
                    self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MailServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def subjects(self) -> list[str]:
        return [body["subject"] for body in self.bodies]


@contextmanager
def refusing_port() -> Iterator[tuple[socket.socket, int]]:
    """A port bound but not listening: every connection to it is refused, as when SendGrid is down."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock, sock.getsockname()[1]
    finally:
        sock.close()


@contextmanager
def warehouse_held_by_another_process(path: Path) -> Iterator[None]:
    """A second process with the DuckDB file open for writing (a run in progress): nobody else can write."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                               "sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def _sender(port: int, warehouse: Path) -> EmailSenderResource:
    return EmailSenderResource(mode="sandbox", api_key="SG.test-key", host=f"http://127.0.0.1:{port}",
                               alert_recipient=LEAD, webserver_url="http://dagster.test:3000",
                               warehouse=WarehouseResource(path=str(warehouse), wait_seconds=1.0))


def _definitions(sender: EmailSenderResource) -> dg.Definitions:
    return dg.Definitions(assets=[broken_member_load, broken_score], jobs=[JOB, OTHER_JOB],
                          sensors=[alumni_run_failure_alert], resources={"email_sender": sender})


def _tick(instance: dg.DagsterInstance, definitions: dg.Definitions, sender: EmailSenderResource,
          cursor: str | None) -> str | None:
    """One evaluation as the daemon runs it: a failing tick raises here, and its cursor is not kept."""
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=definitions,
                                 resources={"email_sender": sender}) as context:
        try:
            return alumni_run_failure_alert.evaluate_tick(context).cursor
        except Exception:  # noqa: BLE001 - the daemon records the failed tick and keeps the previous cursor
            return cursor


def _fail(instance: dg.DagsterInstance, definitions: dg.Definitions, job: str = "failing_job",
          tags: dict[str, str] | None = None) -> str:
    result = definitions.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    assert not result.success
    return result.run_id


def _outbox_alerts(warehouse: Path) -> list[tuple[str, str, str]]:
    if not warehouse.exists():
        return []
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        tables = {row[0] for row in conn.execute("select table_schema || '.' || table_name from "
                                                  "information_schema.tables").fetchall()}
        if "campaigns.outbox" not in tables:
            return []
        return conn.execute("select to_email, subject, text from campaigns.outbox where kind = 'alert' "
                            "order by created_at").fetchall()


def _statuses(warehouse: Path) -> dict[str, str]:
    return delivery_statuses(lambda: connect(warehouse, read_only=True))


@pytest.mark.slow
def test_an_alert_sendgrid_refused_goes_to_the_outbox_and_is_sent_once_sendgrid_is_back(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with refusing_port() as (refusing, port), dg.instance_for_test() as instance:
        sender = _sender(port, warehouse)
        definitions = _definitions(sender)
        cursor = _tick(instance, definitions, sender, None)  # the first tick starts from now
        run_id = _fail(instance, definitions)

        cursor = _tick(instance, definitions, sender, cursor)  # SendGrid refuses every connection
        [(to_email, subject, text)] = _outbox_alerts(warehouse)
        assert to_email == LEAD and "failing_job" in subject and f"/runs/{run_id}" in text
        assert PII_EMAIL not in subject + text
        log = capfd.readouterr().err
        [loud] = [line for line in log.splitlines() if "FAILURE ALERT NOT SENT" in line]
        assert run_id in loud and "campaigns.outbox" in loud and "URLError" in loud
        assert LEAD not in loud and "SG.test-key" not in loud and PII_EMAIL not in loud

        assert _statuses(warehouse) == {run_id: PENDING}
        cursor = _tick(instance, definitions, sender, cursor)  # still down: still one alert, not two
        assert len(_outbox_alerts(warehouse)) == 1 and _statuses(warehouse) == {run_id: PENDING}

        refusing.close()
        with MailServer(port) as sendgrid:  # SendGrid is back, on the same address
            cursor = _tick(instance, definitions, sender, cursor)
            assert sendgrid.subjects() == [subject] and _statuses(warehouse) == {run_id: SENT}
            [body] = sendgrid.bodies
            assert body["personalizations"][0]["to"] == [{"email": LEAD}]
            assert f"/runs/{run_id}" in body["content"][0]["value"]
            cursor = _tick(instance, definitions, sender, cursor)  # sent is sent: no second message
            cursor = _tick(instance, definitions, sender, cursor)
            assert sendgrid.subjects() == [subject]
    assert len(_outbox_alerts(warehouse)) == 1  # the outbox keeps the record of what was sent late


@pytest.mark.slow
def test_regression_the_tick_whose_send_failed_does_not_lose_the_alert(tmp_path: Path) -> None:
    """The finding: the tick failed on `ProviderError: SendGrid /v3/mail/send: URLError`, the cursor moved past
    the run anyway, and once SendGrid was back every tick saw nothing to do."""
    with refusing_port() as (refusing, port), dg.instance_for_test() as instance:
        sender = _sender(port, tmp_path / "warehouse.duckdb")
        definitions = _definitions(sender)
        cursor = _tick(instance, definitions, sender, None)
        run_id = _fail(instance, definitions)
        cursor = _tick(instance, definitions, sender, cursor)  # SendGrid down
        refusing.close()
        with MailServer(port) as sendgrid:
            cursor = _tick(instance, definitions, sender, cursor)
            cursor = _tick(instance, definitions, sender, cursor)
            assert [f"/runs/{run_id}" in body["content"][0]["value"] for body in sendgrid.bodies] == [True]


@pytest.mark.slow
def test_the_cursor_never_skips_a_failure_whose_alert_is_recorded_nowhere(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()
    with refusing_port() as (refusing, port), dg.instance_for_test() as instance:
        sender = _sender(port, warehouse)
        definitions = _definitions(sender)
        cursor = _tick(instance, definitions, sender, None)
        first = _fail(instance, definitions)

        # SendGrid down and the warehouse busy with another writer: the alert can be recorded nowhere.
        with warehouse_held_by_another_process(warehouse):
            cursor = _tick(instance, definitions, sender, cursor)
            cursor = _tick(instance, definitions, sender, cursor)
        assert _outbox_alerts(warehouse) == []
        second = _fail(instance, definitions, "other_failing_job")

        cursor = _tick(instance, definitions, sender, cursor)  # the warehouse is free again, SendGrid still down
        texts = [text for _, _, text in _outbox_alerts(warehouse)]
        assert len(texts) == 2
        assert f"/runs/{first}" in texts[0] and f"/runs/{second}" in texts[1]

        refusing.close()
        with MailServer(port) as sendgrid:
            cursor = _tick(instance, definitions, sender, cursor)
            cursor = _tick(instance, definitions, sender, cursor)
            sent = [body["content"][0]["value"] for body in sendgrid.bodies]
    assert len(sent) == 2 and f"/runs/{first}" in sent[0] and f"/runs/{second}" in sent[1]


def test_an_alert_that_sendgrid_accepts_is_sent_once_and_not_outboxed(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with refusing_port() as (refusing, port):
        refusing.close()
        with MailServer(port) as sendgrid, dg.instance_for_test() as instance:
            sender = _sender(port, warehouse)
            definitions = _definitions(sender)
            cursor = _tick(instance, definitions, sender, None)
            run_id = _fail(instance, definitions)
            cursor = _tick(instance, definitions, sender, cursor)
            cursor = _tick(instance, definitions, sender, cursor)
            assert len(sendgrid.bodies) == 1 and f"/runs/{run_id}" in sendgrid.bodies[0]["content"][0]["value"]
    assert _outbox_alerts(warehouse) == []  # sent at once: the warehouse was not even needed


def test_in_outbox_mode_the_outbox_is_the_channel(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    sender = EmailSenderResource(mode="outbox", alert_recipient=LEAD, warehouse=WarehouseResource(path=str(warehouse)))
    definitions = _definitions(sender)
    with dg.instance_for_test() as instance:
        cursor = _tick(instance, definitions, sender, None)
        run_id = _fail(instance, definitions, tags={"dagster/will_retry": "true"})  # as run retries tag it
        cursor = _tick(instance, definitions, sender, cursor)
        cursor = _tick(instance, definitions, sender, cursor)
    [(to_email, _, text)] = _outbox_alerts(warehouse)
    assert to_email == LEAD and f"/runs/{run_id}" in text and _statuses(warehouse) == {run_id: OUTBOXED}
    assert "re-executes it automatically" in text


# --- the retry policy, on a clock the test moves ---------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _channel(send, clock: FakeClock) -> AlertChannel:
    return AlertChannel(send=send, connect=None, sleep=clock.sleep, clock=lambda: clock.now)


def _failing(clock: FakeClock, exc: Exception, takes: float = 0.0):
    attempts = []

    def send(subject: str, text: str) -> None:
        attempts.append(subject)
        clock.now += takes
        raise exc
    return send, attempts


ALERT = Alert("run-1", LEAD, "[alumni] Dagster run failed: j", "text")
NOW = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)


def test_a_refused_send_is_tried_three_times_with_a_short_backoff() -> None:
    clock = FakeClock()
    send, attempts = _failing(clock, ConnectionRefusedError("refused for lead@association.test"))
    channel = _channel(send, clock)
    with pytest.raises(AlertNotRecorded) as raised:
        deliver(channel, ALERT, NOW)
    assert len(attempts) == 3 and clock.sleeps == [1.0, 2.0]
    assert "lead@association.test" not in str(raised.value) + (channel.down or "")  # masked: no address in logs
    deliver_again, again = _failing(clock, ConnectionRefusedError("refused"))
    channel.send = deliver_again
    with pytest.raises(AlertNotRecorded):
        deliver(channel, ALERT, NOW)  # SendGrid already failed in this tick: straight to the outbox
    assert again == []


def test_a_frozen_sendgrid_costs_one_attempt_and_a_rejection_is_not_retried() -> None:
    clock = FakeClock()
    send, attempts = _failing(clock, TimeoutError("timed out"), takes=30.0)  # the resource's request timeout
    with pytest.raises(AlertNotRecorded):
        deliver(_channel(send, clock), ALERT, NOW)
    assert len(attempts) == 1 and clock.sleeps == []
    send, attempts = _failing(clock, Rejected("SendGrid /v3/mail/send: The from address is not verified"))
    with pytest.raises(AlertNotRecorded):
        deliver(_channel(send, clock), ALERT, NOW)
    assert len(attempts) == 1


def test_a_tick_starts_no_new_alert_past_its_budget() -> None:
    clock = FakeClock()
    channel = _channel(lambda subject, text: None, clock)
    assert not channel.out_of_time()
    clock.now += TICK_BUDGET_SECONDS + 0.1
    assert channel.out_of_time()
