"""The sandbox's provider registry over real sockets: a provider is one class (here one defined in this
file) whose routes, auth and error bodies the HTTP layer serves through the same dispatch as SendGrid's,
Eventbrite's and HelloAsso's; and every route of each built-in provider refuses bad credentials in that
provider's own error body shape."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests

from alumni_orchestration.sandbox.providers.base import Provider, Reply, Request
from alumni_orchestration.sandbox.server import PROVIDERS, Sandbox, SandboxServer
from alumni_orchestration.sandbox.state import ApiError, SharedState


class LedgerProvider(Provider):
    """A made-up provider: a key in its own header, its own error body, state kept in the shared store."""

    name, prefix, api_root = "ledger", "/ledger", "/ledger/v2"
    ROUTES = {
        ("GET", "/entries/{entry_id}"): "entry_route",
        ("POST", "/entries"): "add_entry_route",
    }
    PUBLIC_ROUTES = {("GET", "/ledger/health"): "health_route"}

    def __init__(self, shared: SharedState, *, ledger_key: str = "ledger-secret") -> None:
        super().__init__(shared)
        self.key = ledger_key
        self.entries = shared.store.setdefault("ledger_entries", {})

    def authenticate(self, request: Request) -> None:
        if request.headers.get("X-Ledger-Key") != self.key:
            raise ApiError(403, {"fault": "bad-key"})

    def not_found(self) -> ApiError:
        return ApiError(404, {"fault": "no-such-resource"})

    def bad_json(self) -> ApiError:
        return ApiError(422, {"fault": "unreadable-body"})

    def status(self) -> dict[str, Any]:
        return {"ledger_entries": len(self.entries)}

    def health_route(self, request: Request) -> Reply:
        return 200, {"ok": True}

    def entry_route(self, request: Request) -> Reply:
        entry = self.entries.get(request.params["entry_id"])
        if entry is None:
            raise self.not_found()
        return 200, entry

    def add_entry_route(self, request: Request) -> Reply:
        body = request.json()
        with self.shared.lock:
            entry_id = str(len(self.entries) + 1)
            self.entries[entry_id] = {"id": entry_id, "amount": body["amount"]}
            self.shared.save()
        return 201, self.entries[entry_id]


def test_a_provider_is_one_class_served_through_the_same_dispatch(tmp_path: Path) -> None:
    key = {"X-Ledger-Key": "k-42"}
    with SandboxServer(tmp_path, providers=(*PROVIDERS, LedgerProvider), ledger_key="k-42") as sbx:
        base = f"{sbx.base_url}/ledger/v2"
        created = requests.post(f"{base}/entries", json={"amount": 1250}, headers=key, timeout=10)
        assert created.status_code == 201 and created.json() == {"id": "1", "amount": 1250}
        fetched = requests.get(f"{base}/entries/1", headers=key, timeout=10)
        assert fetched.status_code == 200 and fetched.json() == {"id": "1", "amount": 1250}
        # its own auth and its own error bodies, not any built-in provider's
        refused = requests.get(f"{base}/entries/1", headers={"X-Ledger-Key": "wrong"}, timeout=10)
        assert refused.status_code == 403 and refused.json() == {"fault": "bad-key"}
        sendgrid_key = requests.get(f"{base}/entries/1", headers={"Authorization": "Bearer SG.valid"}, timeout=10)
        assert sendgrid_key.status_code == 403 and sendgrid_key.json() == {"fault": "bad-key"}
        assert requests.get(f"{base}/entries/9", headers=key, timeout=10).json() == {"fault": "no-such-resource"}
        unknown = requests.get(f"{base}/accounts", headers=key, timeout=10)
        assert unknown.status_code == 404 and unknown.json() == {"fault": "no-such-resource"}
        unreadable = requests.post(f"{base}/entries", data=b"{amount", headers=key, timeout=10)
        assert unreadable.status_code == 422 and unreadable.json() == {"fault": "unreadable-body"}
        # a public route needs no key; only SendGrid's answers carry rate-limit headers
        health = requests.get(f"{sbx.base_url}/ledger/health", timeout=10)
        assert health.status_code == 200 and health.json() == {"ok": True}
        assert "X-RateLimit-Limit" not in health.headers
        # its counts join the sandbox's status; the built-in providers still answer beside it
        status = requests.get(f"{sbx.base_url}/sandbox/status", timeout=10).json()
        assert status["ledger_entries"] == 1 and status["held"] == 0
        groups = requests.get(f"{sbx.base_url}/sendgrid/v3/asm/groups", headers={"Authorization": "Bearer SG.x"},
                              timeout=10)
        assert groups.status_code == 200 and groups.headers["X-RateLimit-Limit"] == "600"
    # its state lives in the shared state file: a restarted sandbox still has the entry
    with SandboxServer(tmp_path, providers=(LedgerProvider,), ledger_key="k-42") as sbx:
        again = requests.get(f"{sbx.base_url}/ledger/v2/entries/1", headers=key, timeout=10)
        assert again.status_code == 200 and again.json()["amount"] == 1250
        # without SendGrid registered, its paths are nobody's
        assert requests.get(f"{sbx.base_url}/sendgrid/v3/asm/groups", timeout=10).status_code == 404


def test_options_go_to_the_provider_that_takes_them(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path, providers=(*PROVIDERS, LedgerProvider), ledger_key="k", eventbrite_token="t",
                      token_lifetime=5)
    assert sandbox.providers["ledger"].key == "k" and sandbox.providers["eventbrite"].token == "t"
    assert sandbox.providers["helloasso"].token_lifetime == 5
    with pytest.raises(TypeError, match="ledger_key"):
        Sandbox(tmp_path, ledger_key="k")  # no registered provider takes it


def test_a_route_to_a_missing_handler_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match="entries_route"):
        class Broken(Provider):  # noqa: F841
            name, prefix, api_root = "broken", "/broken", "/broken/v1"
            ROUTES = {("GET", "/entries"): "entries_route"}


def _concrete(pattern: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", pattern)


def _sendgrid_shape(body: dict[str, Any]) -> bool:
    errors = body.get("errors")
    return (set(body) == {"errors", "id"} and isinstance(errors, list) and len(errors) == 1
            and set(errors[0]) == {"message", "field", "help"} and isinstance(errors[0]["message"], str))


def _eventbrite_shape(status: int, code: str):
    def check(body: dict[str, Any]) -> bool:
        return (set(body) == {"error", "error_description", "status_code"} and body["error"] == code
                and body["status_code"] == status and isinstance(body["error_description"], str))
    return check


def _helloasso_shape(body: dict[str, Any]) -> bool:
    return set(body) == {"message"} and isinstance(body["message"], str)


BAD_CREDENTIALS = [  # (provider, headers, expected status, body shape)
    ("sendgrid", {}, 401, _sendgrid_shape),
    ("sendgrid", {"Authorization": "Bearer not-a-sendgrid-key"}, 401, _sendgrid_shape),
    ("eventbrite", {}, 401, _eventbrite_shape(401, "NO_AUTH")),
    ("eventbrite", {"Authorization": "Bearer someone-elses-token"}, 403, _eventbrite_shape(403, "NOT_AUTHORIZED")),
    ("helloasso", {}, 401, _helloasso_shape),
    ("helloasso", {"Authorization": "Bearer never-issued"}, 401, _helloasso_shape),
]


@pytest.mark.parametrize(("name", "headers", "status", "shape"), BAD_CREDENTIALS)
def test_every_route_refuses_bad_credentials_in_its_providers_error_shape(tmp_path: Path, name: str,
                                                                          headers: dict[str, str], status: int,
                                                                          shape) -> None:
    with SandboxServer(tmp_path, eventbrite_token="the-right-token") as sbx:
        provider = sbx.sandbox.providers[name]
        assert provider.ROUTES
        for method, pattern in provider.ROUTES:
            answer = requests.request(method, f"{sbx.base_url}{provider.api_root}{_concrete(pattern)}",
                                      headers=headers, timeout=10)
            assert answer.status_code == status, (method, pattern)
            assert shape(answer.json()), (method, pattern, answer.json())
