"""HelloAsso v5: OAuth2 client credentials (refreshed on expiry), forms, orders, payments.

Pagination follows `continuationToken` and ends on an EMPTY `data` list: HelloAsso keeps
returning a token, and totalCount/totalPages are often -1, so neither can be trusted to stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from alumni_orchestration.ingest.http import ProviderError, RetryBudget, request_json

PROVIDER = "HelloAsso"


def paginate(fetch: Callable[[dict[str, Any]], dict[str, Any]], params: dict[str, Any], endpoint: str,
             max_pages: int = 100_000) -> Iterator[dict[str, Any]]:
    token: str | None = None
    for _ in range(max_pages):
        page_params = dict(params)
        if token:
            page_params["continuationToken"] = token
        body = fetch(page_params)
        data = body.get("data") or []
        if not data:
            return
        yield from data
        new_token = (body.get("pagination") or {}).get("continuationToken")
        if not new_token or new_token == token:
            raise ProviderError(PROVIDER, endpoint, "a non-empty page came without a new continuationToken")
        token = new_token
    raise ProviderError(PROVIDER, endpoint, f"more than {max_pages} pages")


@dataclass
class HelloAssoClient:
    api_url: str
    token_url: str
    client_id: str
    client_secret: str
    organization_slug: str
    budget: RetryBudget = field(default_factory=RetryBudget)
    session: requests.Session = field(default_factory=requests.Session)
    _access: str | None = None
    _refresh: str | None = None
    _expires_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _token(self, force: bool = False) -> str:
        with self._lock:
            if not force and self._access and time.time() < self._expires_at - 60:
                return self._access
            body = None
            if self._refresh:
                try:
                    body = request_json(self.session, PROVIDER, "POST", self.token_url, budget=self.budget,
                                        data={"grant_type": "refresh_token", "refresh_token": self._refresh,
                                              "client_id": self.client_id})
                except ProviderError:
                    body = None  # an expired refresh token: start again from the client credentials
            if body is None:
                body = request_json(self.session, PROVIDER, "POST", self.token_url, budget=self.budget,
                                    data={"grant_type": "client_credentials", "client_id": self.client_id,
                                          "client_secret": self.client_secret})
            self._access = body["access_token"]
            self._refresh = body.get("refresh_token")
            self._expires_at = time.time() + float(body.get("expires_in", 1800))
            return self._access

    def _fetcher(self, path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        url = f"{self.api_url.rstrip('/')}{path}"

        def fetch(params: dict[str, Any]) -> dict[str, Any]:
            return request_json(
                self.session, PROVIDER, "GET", url, params=params, budget=self.budget,
                headers={"Authorization": f"Bearer {self._token()}"},
                on_unauthorized=lambda: {"Authorization": f"Bearer {self._token(force=True)}"},
            )

        return fetch

    def forms(self) -> Iterator[dict[str, Any]]:
        path = f"/organizations/{self.organization_slug}/forms"
        return paginate(self._fetcher(path), {"formTypes": ["Event", "Membership"], "pageSize": 100}, path)

    def orders(self, date_from: str, date_to: str) -> Iterator[dict[str, Any]]:
        """Orders (with items) dated in [date_from, date_to)."""
        path = f"/organizations/{self.organization_slug}/orders"
        params = {"from": date_from, "to": date_to, "withDetails": "true", "pageSize": 100,
                  "formTypes": ["Event", "Membership"], "sortOrder": "Asc"}
        return paginate(self._fetcher(path), params, path)

    def payments(self, date_from: str, date_to: str) -> Iterator[dict[str, Any]]:
        path = f"/organizations/{self.organization_slug}/payments"
        params = {"from": date_from, "to": date_to, "pageSize": 100, "sortOrder": "Asc"}
        return paginate(self._fetcher(path), params, path)
