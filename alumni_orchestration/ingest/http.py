"""HTTP calls to the providers with a bounded retry budget.

- 429: wait until X-RateLimit-Reset (unix seconds), as SendGrid documents; Retry-After if given.
- 5xx, timeouts, dropped connections: exponential backoff with full jitter.
- Past the budget, or on any other error, raise ProviderError naming the provider and the
  endpoint (path only: never the query string, headers or token).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

_LONG_NUMBER = re.compile(rb"\d{19}")  # an integer orjson might not hold in 64 bits (or a long fraction: harmless)


class ProviderError(RuntimeError):
    """A provider call that failed for good. Its message is safe to show: no secret, no personal data."""

    def __init__(self, provider: str, endpoint: str, detail: str, status: int | None = None) -> None:
        self.provider, self.endpoint, self.status = provider, endpoint, status
        super().__init__(f"{provider} {endpoint}: {detail}")


@dataclass(frozen=True)
class RetryBudget:
    max_attempts: int = 8
    max_total_seconds: float = 90.0
    base_delay: float = 0.5
    max_delay: float = 15.0
    timeout: float = 30.0

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Full-jitter exponential backoff for the given (1-based) attempt."""
        return rand() * min(self.max_delay, self.base_delay * 2 ** (attempt - 1))


def rate_limit_wait(headers: Mapping[str, str], now: float, fallback: float) -> float:
    """Seconds to wait after a 429, from X-RateLimit-Reset (epoch seconds) or Retry-After."""
    reset = headers.get("X-RateLimit-Reset") or headers.get("x-ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - now) + 0.05
        except ValueError:
            pass
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    return fallback


def endpoint_of(url: str) -> str:
    return urlsplit(url).path


def request_json(
    session: requests.Session,
    provider: str,
    method: str,
    url: str,
    *,
    params: Any = None,
    data: Any = None,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    budget: RetryBudget = RetryBudget(),
    sleep: Callable[[float], None] = time.sleep,
    on_unauthorized: Callable[[], Mapping[str, str]] | None = None,
) -> Any:
    """One logical call with retries; returns the decoded JSON (None for an empty body)."""
    endpoint = endpoint_of(url)
    started = time.monotonic()
    last = "no attempt made"
    last_status: int | None = None
    refreshed = False
    request_headers = dict(headers or {})
    for attempt in range(1, budget.max_attempts + 1):
        wait = 0.0
        try:
            response = session.request(method, url, params=params, data=data, json=json_body,
                                       headers=request_headers, timeout=budget.timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            last, last_status = f"{type(exc).__name__}", None
            wait = budget.backoff(attempt)
        else:
            status = response.status_code
            if status < 300:
                return decoded_json(response)
            last_status = status
            if status == 401 and on_unauthorized is not None and not refreshed:
                request_headers.update(on_unauthorized())  # e.g. an expired OAuth2 token
                refreshed = True
                continue
            if status == 429:
                last = "429 rate limited"
                wait = rate_limit_wait(response.headers, time.time(), budget.backoff(attempt))
            elif status >= 500:
                last = f"{status} server error"
                wait = budget.backoff(attempt)
            else:
                raise ProviderError(provider, endpoint, f"HTTP {status}: {error_summary(response)}", status)
        elapsed = time.monotonic() - started
        if attempt == budget.max_attempts or elapsed + wait > budget.max_total_seconds:
            break
        sleep(wait)
    elapsed = time.monotonic() - started
    raise ProviderError(provider, endpoint,
                        f"gave up after {attempt} attempts in {elapsed:.0f} s (last: {last})", last_status)


def decoded_json(response: requests.Response) -> Any:
    """The body as `response.json()` reads it (None when empty), through orjson: at 1,000,000 members, the
    standard decoder took a quarter of the HelloAsso staging's time. What orjson refuses (NaN, a body not in
    UTF-8) or reads otherwise (an integer past 64 bits becomes a float) goes to `response.json()`, as before."""
    body = response.content
    if not body.strip():
        return None
    if _LONG_NUMBER.search(body):
        return response.json()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return response.json()


def error_summary(response: requests.Response) -> str:
    """The provider's error code and message, without echoing the request."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or "error"
    if isinstance(body, dict):
        if "errors" in body and isinstance(body["errors"], list) and body["errors"]:
            first = body["errors"][0]
            return str(first.get("message", first))[:200] if isinstance(first, dict) else str(first)[:200]
        for key in ("error", "message", "error_description"):
            if key in body:
                return str(body[key])[:200]
    return "error"
