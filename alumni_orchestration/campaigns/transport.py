"""How campaign messages leave: SendGrid (the real API or the local sandbox) over the official client.

Mail send is never retried blindly: a timeout or a 5xx leaves SendGrid's outcome unknown, and a
second request could send twice. Only a 429 (rejected, nothing sent) is retried here; an unknown
outcome is raised as `OutcomeUnknown`, and the ledger cancels that batch before sending again.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
from collections.abc import Callable
from typing import Any

import requests
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from alumni_orchestration.ingest.http import ProviderError, RetryBudget, rate_limit_wait

PROVIDER = "SendGrid"
REAL_HOSTS = ("https://api.sendgrid.com", "https://api.eu.sendgrid.com")


def is_real_host(host: str) -> bool:
    return host.rstrip("/") in REAL_HOSTS


class OutcomeUnknown(RuntimeError):
    """The request may or may not have been accepted."""


class Rejected(RuntimeError):
    """SendGrid refused the request for good (4xx other than 429): nothing was scheduled."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ActivityUnavailable(RuntimeError):
    """The account has no Email Activity API (a paid add-on), or the key lacks its scope."""


# What SendGrid answers /v3/messages without the add-on: 400 "authorization required" (sic), 401 or 403.
ACTIVITY_REFUSALS = (401, 403, 404)


def _error_message(exc: HTTPError) -> str:
    try:
        errors = json.loads(exc.body or b"{}").get("errors") or []
        return "; ".join(str(e.get("message", ""))[:200] for e in errors[:3]) or f"HTTP {exc.status_code}"
    except (ValueError, AttributeError):
        return f"HTTP {exc.status_code}"


class SendGridTransport:
    """Batches, scheduled sends and mail send through `sendgrid.SendGridAPIClient`."""

    local = False

    def __init__(self, api_key: str, host: str, timeout: float = 30.0, max_rate_limit_wait: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = SendGridAPIClient(api_key, host=host.rstrip("/"))
        self.client.client.timeout = timeout
        self.max_rate_limit_wait = max_rate_limit_wait
        self.budget = RetryBudget(max_delay=8.0)  # the providers' jittered backoff, for idempotent calls
        self.sleep = sleep

    def _call(self, endpoint: str, call: Callable[[], Any], idempotent: bool) -> Any:
        """Retries 429s always, and timeouts/5xx only for idempotent calls."""
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except HTTPError as exc:
                status = exc.status_code
                if status == 429:
                    wait = rate_limit_wait(dict(exc.headers or {}), time.time(), 1.0)
                elif status >= 500 and idempotent and attempt < 5:
                    wait = self.budget.backoff(attempt)
                elif status >= 500:
                    raise OutcomeUnknown(f"{PROVIDER} {endpoint}: HTTP {status}") from None
                else:
                    raise Rejected(f"{PROVIDER} {endpoint}: {_error_message(exc)}", status) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if not idempotent or attempt >= 5:
                    raise OutcomeUnknown(f"{PROVIDER} {endpoint}: {type(exc).__name__}") from None
                wait = self.budget.backoff(attempt)
            if waited + wait > self.max_rate_limit_wait:
                raise ProviderError(PROVIDER, endpoint, f"gave up after {attempt} attempts") from None
            waited += wait
            self.sleep(wait)

    def new_batch(self) -> str:
        response = self._call("/v3/mail/batch", lambda: self.client.client.mail.batch.post(), idempotent=True)
        return json.loads(response.body)["batch_id"]

    def send(self, body: dict[str, Any]) -> None:
        self._call("/v3/mail/send", lambda: self.client.client.mail.send.post(request_body=body), idempotent=False)

    def send_now(self, body: dict[str, Any]) -> None:
        """A one-off transactional message (an alert): a 429 is retried, anything else raises."""
        try:
            self.send(body)
        except OutcomeUnknown as exc:
            raise ProviderError(PROVIDER, "/v3/mail/send", str(exc)) from None

    def cancel(self, batch_id: str) -> None:
        """Cancel a scheduled batch; cancelling it again is harmless."""
        scheduled = self.client.client.user.scheduled_sends
        try:
            self._call("/v3/user/scheduled_sends", lambda: scheduled.post(
                request_body={"batch_id": batch_id, "status": "cancel"}), idempotent=True)
        except Rejected:  # already paused or cancelled: make sure it ends cancelled
            current = json.loads(self._call("/v3/user/scheduled_sends/{batch_id}",
                                            lambda: scheduled._(batch_id).get(), idempotent=True).body or b"[]")
            if not any(s.get("status") == "cancel" for s in current):
                self._call("/v3/user/scheduled_sends/{batch_id}",
                           lambda: scheduled._(batch_id).patch(request_body={"status": "cancel"}), idempotent=True)


    def scheduled_send_status(self, batch_id: str) -> str | None:
        """`pause` or `cancel` when the batch has been paused or cancelled, None otherwise."""
        scheduled = self.client.client.user.scheduled_sends
        try:
            response = self._call("/v3/user/scheduled_sends/{batch_id}", lambda: scheduled._(batch_id).get(),
                                  idempotent=True)
        except Rejected as exc:
            if exc.status == 404:  # no pause or cancel was ever set on it
                return None
            raise
        found = [s.get("status") for s in json.loads(response.body or b"[]") if s.get("batch_id") == batch_id]
        return found[0] if found else None

    def search_messages(self, query: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Email Activity: the messages matching `query` (SendGrid's query language), at most `limit`."""
        messages = self.client.client.messages
        try:
            response = self._call("/v3/messages", lambda: messages.get(query_params={"query": query, "limit": limit}),
                                  idempotent=True)
        except Rejected as exc:
            if exc.status in ACTIVITY_REFUSALS or (exc.status == 400 and "authoriz" in str(exc).lower()):
                raise ActivityUnavailable(str(exc)) from None
            raise
        return list(json.loads(response.body or b"{}").get("messages") or [])


def sendgrid_now(mode: str, host: str) -> dt.datetime:
    """SendGrid's clock. In sandbox mode it is the sandbox's own, which a demo may move to replay a past
    month: send times must be valid for the SendGrid that receives them."""
    if mode != "sandbox":
        return dt.datetime.now(dt.UTC)
    root = host.rstrip("/").removesuffix("/sendgrid")
    response = requests.get(f"{root}/sandbox/status", timeout=30)
    response.raise_for_status()
    return dt.datetime.fromtimestamp(float(response.json()["now"]), dt.UTC)


class OutboxTransport:
    """Nothing leaves: the ledger writes the rendered messages to campaigns.outbox instead."""

    local = True

    def new_batch(self) -> str:
        import uuid

        return f"outbox-{uuid.uuid4().hex}"

    def send(self, body: dict[str, Any]) -> None:  # pragma: no cover - the ledger never calls it
        raise AssertionError("the outbox transport writes through the ledger, never over the network")

    def cancel(self, batch_id: str) -> None:
        return None
