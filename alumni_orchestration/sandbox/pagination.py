"""How the sandbox pages, as each provider does. Pure functions."""

from __future__ import annotations

import base64
import json
from typing import Any


class BadPage(ValueError):
    pass


def encode_token(offset: int, query: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "q": query}).encode()).decode().rstrip("=")


def decode_token(token: str, query: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset = int(data["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadPage("invalid continuation token") from exc
    if data.get("q") != query or offset < 0:
        raise BadPage("continuation token does not belong to this query")
    return offset


def eventbrite_page(items: list[Any], key: str, continuation: str | None, page_size: int, query: str) -> dict[str, Any]:
    """Eventbrite: `pagination.has_more_items` and an opaque `continuation`."""
    offset = decode_token(continuation, query) if continuation else 0
    page = items[offset: offset + page_size]
    more = offset + page_size < len(items)
    pagination = {"object_count": len(items), "page_number": offset // page_size + 1, "page_size": page_size,
                  "page_count": max(1, -(-len(items) // page_size)), "has_more_items": more}
    if more:
        pagination["continuation"] = encode_token(offset + page_size, query)
    return {key: page, "pagination": pagination}


def helloasso_page(items: list[Any], token: str | None, page_size: int, query: str) -> dict[str, Any]:
    """HelloAsso: the end is an empty `data`; the token is always there; totals are -1."""
    offset = decode_token(token, query) if token else 0
    page = items[offset: offset + page_size]
    return {"data": page, "pagination": {"pageSize": page_size, "totalCount": -1, "pageIndex": offset // page_size + 1,
                                         "totalPages": -1, "continuationToken": encode_token(offset + len(page), query)}}
