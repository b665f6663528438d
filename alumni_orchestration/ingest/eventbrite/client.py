"""Eventbrite v3: organisation events and their attendees, continuation pagination, changed_since.

An event carries only `venue_id` unless the venue is expanded: the events listing asks for
`expand=venue`, and any event that still comes without its venue (an expansion the server left out)
gets it from `GET /venues/{venue_id}/`, fetched once per venue.

Attendees are read with the organisation-level listing (`GET /organizations/{id}/attendees/`, which
takes `changed_since` and `status` as the per-event listing does): one pass over every event's
attendees, and each night only those changed since the last sync.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from alumni_orchestration.ingest.http import ProviderError, RetryBudget, request_json

PROVIDER = "Eventbrite"
CHANGED_SINCE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # UTC, as Eventbrite takes it


def changed_since(watermark: dt.datetime | None, overlap: dt.timedelta, full_refresh: bool = False) -> str | None:
    """The `changed_since` of an incremental read: the latest change already loaded (naive UTC) less an
    overlap, so that changes recorded late are not lost. None (read everything) on a first or full load."""
    if full_refresh or watermark is None:
        return None
    return (watermark - overlap).strftime(CHANGED_SINCE_FORMAT)


def paginate(fetch: Callable[[dict[str, Any]], dict[str, Any]], params: dict[str, Any], key: str,
             endpoint: str, max_pages: int = 100_000) -> Iterator[dict[str, Any]]:
    """Follow `pagination.continuation` until `has_more_items` is false."""
    continuation: str | None = None
    seen: set[str] = set()
    for _ in range(max_pages):
        page_params = dict(params)
        if continuation:
            page_params["continuation"] = continuation
        body = fetch(page_params)
        yield from body.get(key, [])
        pagination = body.get("pagination") or {}
        if not pagination.get("has_more_items"):
            return
        continuation = pagination.get("continuation")
        if not continuation or continuation in seen:
            raise ProviderError(PROVIDER, endpoint, "has_more_items is true but the continuation token is missing or repeats")
        seen.add(continuation)
    raise ProviderError(PROVIDER, endpoint, f"more than {max_pages} pages")


def usable_venue_id(event: Any) -> str | None:
    """The venue to fetch for an event listed without its venue: a string or integer `venue_id`."""
    if not isinstance(event, dict) or event.get("venue") is not None:
        return None
    venue_id = event.get("venue_id")
    if isinstance(venue_id, bool) or not isinstance(venue_id, int | str) or not str(venue_id).strip():
        return None
    return str(venue_id).strip()


def with_venues(events: Iterable[Any], venue: Callable[[str], dict[str, Any] | None]) -> Iterator[Any]:
    """The events, each missing venue filled in by `venue(venue_id)` (None when Eventbrite has none)."""
    for event in events:
        venue_id = usable_venue_id(event)
        yield event if venue_id is None else {**event, "venue": venue(venue_id)}


@dataclass
class EventbriteClient:
    base_url: str
    token: str
    organization_id: str
    budget: RetryBudget = field(default_factory=RetryBudget)
    session: requests.Session = field(default_factory=requests.Session)
    venues: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # venue_id -> venue, None if unknown

    def _fetcher(self, path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        url = f"{self.base_url.rstrip('/')}{path}"

        def fetch(params: dict[str, Any]) -> dict[str, Any]:
            return request_json(self.session, PROVIDER, "GET", url, params=params,
                                headers={"Authorization": f"Bearer {self.token}"}, budget=self.budget)

        return fetch

    def events(self, changed_since: str | None = None) -> Iterator[dict[str, Any]]:
        """The organisation's events, each with its `venue` (the city and region are in venue.address)."""
        path = f"/organizations/{self.organization_id}/events/"
        params: dict[str, Any] = {"page_size": 200, "expand": "venue"}
        if changed_since:
            params["changed_since"] = changed_since
        return with_venues(paginate(self._fetcher(path), params, "events", path), self.venue)

    def venue(self, venue_id: str) -> dict[str, Any] | None:
        """`GET /venues/{venue_id}/`, once per venue; None for a venue Eventbrite does not know (404)."""
        if venue_id not in self.venues:
            try:
                body = self._fetcher(f"/venues/{quote(venue_id, safe='')}/")({})
            except ProviderError as error:
                if error.status != 404:
                    raise
                body = None
            self.venues[venue_id] = body if isinstance(body, dict) else None
        return self.venues[venue_id]

    def attendees(self, event_id: str, changed_since: str | None = None) -> Iterator[dict[str, Any]]:
        path = f"/events/{event_id}/attendees/"
        params: dict[str, Any] = {}
        if changed_since:
            params["changed_since"] = changed_since
        return paginate(self._fetcher(path), params, "attendees", path)

    def organization_attendees(self, changed_since: str | None = None) -> Iterator[dict[str, Any]]:
        """Every attendee of every event of the organisation (changed on or after `changed_since`)."""
        path = f"/organizations/{self.organization_id}/attendees/"
        params: dict[str, Any] = {}
        if changed_since:
            params["changed_since"] = changed_since
        return paginate(self._fetcher(path), params, "attendees", path)
