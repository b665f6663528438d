"""SendGrid suppressions: bounces, blocks, spam reports, global and group unsubscribes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from alumni_orchestration.ingest.http import ProviderError, RetryBudget, request_json

PROVIDER = "SendGrid"
GLOBAL_LISTS = ("bounces", "blocks", "spam_reports", "unsubscribes", "invalid_emails")
PAGE_LIMIT = 500


def paginate_offset(fetch: Callable[[dict[str, Any]], Any], endpoint: str, limit: int = PAGE_LIMIT,
                    max_pages: int = 100_000) -> Iterator[dict[str, Any]]:
    """The suppression lists answer plain arrays: page by offset until a page is shorter than the limit."""
    offset = 0
    for _ in range(max_pages):
        page = fetch({"limit": limit, "offset": offset})
        if not isinstance(page, list):
            raise ProviderError(PROVIDER, endpoint, "expected a JSON array")
        yield from page
        if len(page) < limit:
            return
        offset += limit
    raise ProviderError(PROVIDER, endpoint, f"more than {max_pages} pages")


@dataclass
class SendGridSuppressionsClient:
    host: str  # e.g. https://api.sendgrid.com, or http://127.0.0.1:8765/sendgrid
    api_key: str
    budget: RetryBudget = field(default_factory=RetryBudget)
    session: requests.Session = field(default_factory=requests.Session)

    def _get(self, path: str) -> Callable[[dict[str, Any]], Any]:
        url = f"{self.host.rstrip('/')}/v3{path}"

        def fetch(params: dict[str, Any]) -> Any:
            return request_json(self.session, PROVIDER, "GET", url, params=params, budget=self.budget,
                                headers={"Authorization": f"Bearer {self.api_key}"})

        return fetch

    def global_list(self, kind: str) -> Iterator[dict[str, Any]]:
        path = f"/suppression/{kind}"
        return paginate_offset(self._get(path), path)

    def group_suppressions(self) -> list[dict[str, Any]]:
        body = self._get("/asm/suppressions")({})
        if not isinstance(body, list):
            raise ProviderError(PROVIDER, "/v3/asm/suppressions", "expected a JSON array")
        return body
