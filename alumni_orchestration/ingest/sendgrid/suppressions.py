"""SendGrid suppressions: bounces, blocks, spam reports, invalid addresses, global and group unsubscribes:
the client, and the flattener to raw rows (each documented field read by a typed parser; a record with a
field that has no single reading is quarantined alone)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from alumni_orchestration.ingest import typed
from alumni_orchestration.ingest.http import ProviderError, RetryBudget, request_json
from alumni_orchestration.ingest.typed import FieldError

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


GROUP_LIST = "group_unsubscribes"
_INT32 = (-(2**31), 2**31)


def _text(record: dict[str, Any], field: str) -> str | None:
    value = typed.as_text(record.get(field), field)
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate: no UTF-8 reading, cannot be stored
            raise FieldError(field, "not UTF-8 text") from error
    return value


def _group_id(value: Any) -> int | None:
    group = typed.as_int(value, "group_id")
    if group is not None and not _INT32[0] <= group < _INT32[1]:
        raise FieldError("group_id", "out of range")
    return group


def suppression_row(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """One suppression: the global lists document `created` (unix seconds), the group list `created_at`."""
    created_field = "created_at" if kind == GROUP_LIST else "created"
    return {
        "email": _text(record, "email"), "kind": kind, "group_id": _group_id(record.get("group_id")),
        "group_name": _text(record, "group_name"), "reason": _text(record, "reason"),
        "status": _text(record, "status"),
        "created_at": typed.as_epoch_seconds(record.get(created_field), created_field),
    }


def _payload(record: Any) -> str:
    text = json.dumps(record, ensure_ascii=False, default=str, sort_keys=True)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, so the quarantine can store it
        text = json.dumps(record, default=str, sort_keys=True)
    return text[:4000]


def flatten_suppressions(lists: dict[str, list[Any]], groups: list[Any]) -> tuple[list[dict], list[dict]]:
    """Raw rows and quarantined records; every record read is one or the other."""
    rows, bad = [], []
    for kind, records in [*lists.items(), (GROUP_LIST, groups)]:
        for record in records:
            if not isinstance(record, dict):
                reason = "not_an_object"
            elif record.get("email") is None or (isinstance(record["email"], str) and not record["email"].strip()):
                reason = "missing_email"
            else:
                try:
                    rows.append(suppression_row(kind, record))
                    continue
                except FieldError as error:
                    reason = error.reason
            bad.append({"source": f"sendgrid.suppressions.{kind}", "record_key": None, "reason": reason,
                        "scope": "row", "payload": _payload(record)})
    return rows, bad
