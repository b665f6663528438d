"""`alumni check` against a real sandbox over a small association: every connection gets a verdict, each
broken setting fails its own row with a fix, the exit code says so, and no secret is ever printed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from alumni_orchestration.cli import main
from alumni_orchestration.sandbox.server import SandboxServer

pytestmark = pytest.mark.slow  # a generated association, dbt or a Dagster subprocess

SENDGRID_KEY = "SG.check-full-access-0123456789"
LIMITED_KEY = "SG.check-mail-send-only-9876543210"
EVENTBRITE_TOKEN = "eb-private-token-ABCDEF123456"
HELLOASSO_SECRET = "ha-client-secret-XYZ987654"
PG_PASSWORD = "pg-password-QWERTY"
SECRETS = (SENDGRID_KEY, LIMITED_KEY, EVENTBRITE_TOKEN, HELLOASSO_SECRET, PG_PASSWORD)


@pytest.fixture(scope="module")
def sandbox(small_association: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    data = tmp_path_factory.mktemp("check") / "association"
    shutil.copytree(small_association, data)
    with SandboxServer(data, sendgrid_keys=lambda key: key in (SENDGRID_KEY, LIMITED_KEY),
                       sendgrid_key_scopes={LIMITED_KEY: ["mail.send", "mail.batch.create"]},
                       eventbrite_token=EVENTBRITE_TOKEN,
                       helloasso_client=("check-client", HELLOASSO_SECRET)) as server:
        yield server


@pytest.fixture
def configured(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment of an association whose every connection is right."""
    data = sandbox.sandbox.shared.data
    for name, value in {
        "ALUMNI_SANDBOX_URL": sandbox.base_url,
        "MEMBERSHIP_DATABASE_URL": f"sqlite:///{data / 'membership.sqlite'}",
        "SENDGRID_API_KEY": SENDGRID_KEY,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": sandbox.sandbox.providers["sendgrid"].public_key,
        "EVENTBRITE_TOKEN": EVENTBRITE_TOKEN,
        "HELLOASSO_CLIENT_ID": "check-client",
        "HELLOASSO_CLIENT_SECRET": HELLOASSO_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("SENDGRID_HOST", "EVENTBRITE_BASE_URL", "EVENTBRITE_ORGANIZATION_ID", "HELLOASSO_API_URL",
                 "HELLOASSO_TOKEN_URL", "HELLOASSO_ORGANIZATION_SLUG"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _check(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, tuple[str, str]], str]:
    """Run `alumni check`: exit code, {check: (verdict, rest of its line)}, the whole output."""
    code = main(["check"])
    out = capsys.readouterr().out
    for secret in SECRETS:
        assert secret not in out
        assert secret[-8:] not in out  # not even partially
    rows = {}
    for line in out.splitlines():
        for verdict in (" ok ", " warn ", " FAIL "):
            if verdict in line:
                name, rest = line.split(verdict, 1)
                rows.setdefault(name.strip(), (verdict.strip(), rest.strip()))
                break
    return code, rows, out


def _failed_only(rows: dict[str, tuple[str, str]], *names: str) -> None:
    assert {name for name, (verdict, _) in rows.items() if verdict == "FAIL"} == set(names)


def test_every_connection_passes_on_a_well_configured_sandbox(configured, capsys) -> None:
    code, rows, out = _check(capsys)
    assert code == 0, out
    assert {"membership source", "membership.members", "membership.dues_payments", "SendGrid API key",
            "SendGrid scopes: campaign sends", "SendGrid scopes: suppression sync", "SendGrid webhook public key",
            "Eventbrite token", "Eventbrite organisation", "HelloAsso client", "HelloAsso organisation"} <= set(rows)
    assert all(verdict == "ok" for verdict, _ in rows.values()), out
    assert "quarantined" in rows["membership.members"][1]
    assert out.rstrip().endswith(f"OK: all {len(rows)} checks passed")


def test_a_wrong_sendgrid_key_fails_with_its_fix(configured, capsys) -> None:
    configured.setenv("SENDGRID_API_KEY", "SG.not-the-key-000000000000")
    code, rows, out = _check(capsys)
    assert code == 1
    _failed_only(rows, "SendGrid API key")
    assert "refused (HTTP 401)" in rows["SendGrid API key"][1] and "SENDGRID_API_KEY" in out
    assert "not-the-key-000000000000" not in out


def test_a_key_without_the_needed_scopes_names_them(configured, capsys) -> None:
    configured.setenv("SENDGRID_API_KEY", LIMITED_KEY)
    code, rows, out = _check(capsys)
    assert code == 1
    _failed_only(rows, "SendGrid scopes: campaign sends", "SendGrid scopes: suppression sync")
    assert rows["SendGrid API key"][0] == "ok"
    assert "user.scheduled_sends.create" in rows["SendGrid scopes: campaign sends"][1]
    assert "mail.send," not in rows["SendGrid scopes: campaign sends"][1]  # granted, so not listed
    assert "suppression.bounces.read" in out and "Edit API Key" in out


def test_a_wrong_eventbrite_token_fails(configured, capsys) -> None:
    configured.setenv("EVENTBRITE_TOKEN", "eb-wrong-token-0000000000")
    code, rows, out = _check(capsys)
    assert code == 1
    _failed_only(rows, "Eventbrite token")
    assert "refused (HTTP 403)" in rows["Eventbrite token"][1] and "EVENTBRITE_TOKEN" in out
    assert "eb-wrong-token-0000000000" not in out


def test_unknown_organisations_fail_on_both_platforms(configured, capsys) -> None:
    configured.setenv("EVENTBRITE_ORGANIZATION_ID", "2718281828")
    configured.setenv("HELLOASSO_ORGANIZATION_SLUG", "association-inconnue")
    code, rows, out = _check(capsys)
    assert code == 1
    _failed_only(rows, "Eventbrite organisation", "HelloAsso organisation")
    assert rows["Eventbrite token"][0] == rows["HelloAsso client"][0] == "ok"
    assert "2718281828 is not one of the token's organisations (3141592653)" in rows["Eventbrite organisation"][1]
    assert "association-inconnue is not a known organisation" in rows["HelloAsso organisation"][1]
    assert "EVENTBRITE_ORGANIZATION_ID" in out and "HELLOASSO_ORGANIZATION_SLUG" in out


def test_a_wrong_helloasso_secret_fails(configured, capsys) -> None:
    configured.setenv("HELLOASSO_CLIENT_SECRET", "ha-wrong-secret-11111111")
    code, rows, out = _check(capsys)
    assert code == 1
    _failed_only(rows, "HelloAsso client")
    assert "client credentials refused (HTTP 400)" in rows["HelloAsso client"][1]
    assert "HelloAsso organisation" not in rows  # nothing to ask without a token
    assert "ha-wrong-secret-11111111" not in out


def test_an_unreachable_membership_database_fails_without_showing_its_password(configured, capsys) -> None:
    configured.setenv("MEMBERSHIP_DATABASE_URL", f"postgresql+psycopg2://alumni:{PG_PASSWORD}@127.0.0.1:1/members")
    code, rows, out = _check(capsys)
    assert code == 1
    _failed_only(rows, "membership source")
    assert "unreachable" in rows["membership source"][1] and "MEMBERSHIP_DATABASE_URL" in out
    assert "membership.members" not in rows


def test_a_missing_membership_file_fails_and_is_not_created(configured, capsys, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.sqlite"
    configured.setenv("MEMBERSHIP_DATABASE_URL", f"sqlite:///{missing}")
    code, rows, _ = _check(capsys)
    assert code == 1 and rows["membership source"] [0] == "FAIL" and "no such file" in rows["membership source"][1]
    assert not missing.exists()  # read-only: SQLite would have created it


def test_a_malformed_webhook_public_key_fails(configured, capsys) -> None:
    configured.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE-not-a-key")
    code, rows, _ = _check(capsys)
    assert code == 1
    _failed_only(rows, "SendGrid webhook public key")
    assert "does not parse" in rows["SendGrid webhook public key"][1]
