"""Run config cannot change the sending mode by accident: a deployment configured for the sandbox keeps
sending to it when a run config sets another field, and another mode must be asked for explicitly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from alumni_orchestration.campaigns import ledger
from alumni_orchestration.defs.campaigns.assets import SENDS, campaign_audience, campaign_sends
from alumni_orchestration.defs.campaigns.results import campaign_results_asset
from alumni_orchestration.defs.resources import email_sender
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.sandbox.server import SandboxServer
from alumni_orchestration.warehouse import table_exists
from tests.campaign_fixture import WAVE_DAY

pytestmark = pytest.mark.slow
WAVE = dg.MultiPartitionKey({"campaign": "dues_reminder", "date": WAVE_DAY})


@pytest.fixture(scope="module")
def scored(scored_association: tuple[Path, Path]) -> tuple[Path, Path]:
    """The session's scored association, built once for every campaign module; tests copy it before writing."""
    return scored_association


@pytest.fixture
def deployment(scored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A deployment configured for the sandbox (ALUMNI_SEND_MODE=sandbox), its own warehouse and sandbox."""
    association, warehouse = scored
    data = tmp_path / "association"
    shutil.copytree(association, data, ignore=shutil.ignore_patterns("mail_send.jsonl", "sandbox_state.json",
                                                                      "sent_messages.jsonl"))
    mine = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse, mine)
    with SandboxServer(data, port=0) as sandbox:
        host = f"{sandbox.base_url}/sendgrid"
        for name, value in {"ALUMNI_SEND_MODE": "sandbox", "SENDGRID_API_KEY": "SG.send-mode-test",
                            "SENDGRID_HOST": host}.items():
            monkeypatch.setenv(name, value)
        warehouse = WarehouseResource(path=str(mine))
        # The sender exactly as the code location binds it from the environment.
        yield data, warehouse, email_sender(warehouse, host)


def _wave(warehouse: WarehouseResource, sender, config: dict | None = None) -> dg.ExecuteInJobResult:
    run_config = {"resources": {"email_sender": {"config": config}}} if config is not None else None
    return dg.materialize([campaign_audience, campaign_sends], partition_key=WAVE, run_config=run_config,
                          resources={"warehouse": warehouse, "email_sender": sender}, raise_on_error=False)


def _requests(data: Path) -> list[dict]:
    path = data / "mail_send.jsonl"
    return [json.loads(line)["request"] for line in path.read_text().splitlines()] if path.exists() else []


def _recipients(data: Path) -> list[int]:
    return [int(p["custom_args"]["member_id"]) for r in _requests(data) for p in r["personalizations"]]


def _treated_statuses(warehouse: WarehouseResource) -> dict[int, str]:
    with warehouse.read() as conn:
        if not table_exists(conn, ledger.SENDS):
            return {}
        return dict(conn.execute("select member_id, status from campaigns.campaign_sends "
                                 "where arm = 'treatment'").fetchall())


def _results_sent(warehouse: WarehouseResource) -> int:
    assert dg.materialize([campaign_results_asset], resources={"warehouse": warehouse}).success
    with warehouse.read() as conn:
        return conn.execute("select coalesce(sum(sent), 0) from campaigns.campaign_results "
                            "where campaign_id = 'dues_reminder' and arm = 'treatment'").fetchall()[0][0]


def test_run_config_setting_only_chunk_size_keeps_the_configured_mode(deployment) -> None:
    data, warehouse, sender = deployment
    result = _wave(warehouse, sender, {"chunk_size": 1})
    assert result.success
    statuses = _treated_statuses(warehouse)
    metadata = [e.materialization for e in result.get_asset_materialization_events()
                if e.asset_key == SENDS][-1].metadata
    assert metadata["mode"].value == "sandbox"
    assert len(statuses) >= 2 and set(statuses.values()) == {ledger.SCHEDULED}
    assert sorted(_recipients(data)) == sorted(statuses)  # the sandbox received every treated member, once
    assert all(len(r["personalizations"]) == 1 for r in _requests(data))  # and the one field given applied


def test_a_mode_override_must_be_asked_for_and_an_outboxed_wave_is_sent_later(deployment) -> None:
    data, warehouse, sender = deployment
    refused = _wave(warehouse, sender, {"mode": "outbox"})
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.is_step_failure]
    assert failure.step_key == "campaigns__campaign_sends"
    message, error = "", failure.step_failure_data.error
    while error is not None:
        message, error = message + error.message, error.cause
    assert "allow_mode_override" in message and "'sandbox'" in message
    assert set(_treated_statuses(warehouse).values()) <= {ledger.PLANNED}  # nothing rendered, nothing sent
    assert _requests(data) == []

    preview = _wave(warehouse, sender, {"mode": "outbox", "allow_mode_override": True})
    assert preview.success
    outboxed = _treated_statuses(warehouse)
    assert outboxed and set(outboxed.values()) == {ledger.OUTBOXED} and _requests(data) == []
    assert _results_sent(warehouse) == 0  # rendered to the outbox is not sent, in a sandbox deployment

    sent = _wave(warehouse, sender)  # the deployment's own mode: what was only rendered now leaves
    assert sent.success
    assert sorted(_recipients(data)) == sorted(outboxed)
    assert set(_treated_statuses(warehouse).values()) == {ledger.SCHEDULED}
    assert _results_sent(warehouse) == len(outboxed)


def test_delivered_statuses_follow_the_deployments_mode() -> None:
    assert ledger.OUTBOXED in ledger.delivered_statuses("outbox")
    for mode in ("sandbox", "live"):
        assert ledger.delivered_statuses(mode) == (ledger.SCHEDULED,)
