"""Eventbrite v3 under /eventbrite/v3: the organization's events and attendees, `changed_since` and
continuation pages, the bearer token, and venues as Eventbrite serves them: an event carries only its
`venue_id` (null for an online event), the `venue` object comes with `expand=venue`, and each venue
answers at /venues/{venue_id}/.

The generator stores each event with its venue's address embedded; the sandbox gives every distinct
place one venue (ids in order of first appearance) and serves the events without it unless asked."""

from __future__ import annotations

import sys
from typing import Any

import orjson

from alumni_orchestration.sandbox.pagination import eventbrite_page
from alumni_orchestration.sandbox.providers.base import Provider, Reply, Request
from alumni_orchestration.sandbox.state import (
    ApiError,
    LazyRows,
    SharedState,
    jsonl_refs,
    read_json,
    read_jsonl,
    record_of,
)

_MISSING: Any = object()


def eventbrite_error(status: int, code: str, description: str) -> ApiError:
    return ApiError(status, {"error": code, "error_description": description, "status_code": status})


class _Attendee:
    """An Eventbrite attendee: the fields the listings filter on, and its JSON line."""

    __slots__ = ("raw", "event_id", "changed", "cancelled")

    def __init__(self, raw: bytes, attendee: dict[str, Any]) -> None:
        event_id = attendee.get("event_id")
        self.raw, self.event_id = raw, sys.intern(event_id) if isinstance(event_id, str) else event_id
        self.changed, self.cancelled = attendee.get("changed", _MISSING), attendee.get("cancelled", _MISSING)

    def record(self) -> dict[str, Any]:
        return orjson.loads(self.raw)


def _attendees(rows: list[_Attendee], changed_since: str | None, status: str | None) -> LazyRows:
    def changed(a: _Attendee) -> Any:
        if a.changed is _MISSING:
            raise KeyError("changed")
        return a.changed

    def cancelled(a: _Attendee) -> Any:
        if a.cancelled is _MISSING:
            raise KeyError("cancelled")
        return a.cancelled

    return LazyRows([a for a in rows if (not changed_since or changed(a) >= changed_since)
                     and (not status or (status == "attending") != cancelled(a))], record_of)


VENUE_ID_BASE = 500_000_000  # venue ids as Eventbrite's: numeric strings


def _venue(venue_id: str, address: dict[str, Any]) -> dict[str, Any]:
    """A venue object as documented (tests/fixtures/providers/eventbrite/venue.json): what the generator
    knows of the place (city, region, country), null for the rest."""
    city, region = address.get("city"), address.get("region")
    area = ", ".join(part for part in (city, region) if part)
    return {
        "address": {"address_1": None, "address_2": None, "city": city, "region": region, "postal_code": None,
                    "country": address.get("country"), "latitude": None, "longitude": None,
                    "localized_address_display": area, "localized_area_display": area,
                    "localized_multi_line_address_display": [area] if area else []},
        "resource_uri": f"https://www.eventbriteapi.com/v3/venues/{venue_id}/", "id": venue_id,
        "age_restriction": None, "capacity": None, "name": city, "latitude": None, "longitude": None,
    }


def split_venues(stored: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(the events as listed, with `venue_id` and no `venue`; the venues by id). An online event, or one
    stored without an address, has no venue."""
    events, venues, ids = [], {}, {}
    for event in stored:
        event = dict(event)
        address = (event.pop("venue", None) or {}).get("address") or {}
        place = (address.get("city"), address.get("region"), address.get("country"))
        venue_id = None
        if not event.get("online_event") and address.get("city"):
            venue_id = ids.setdefault(place, str(VENUE_ID_BASE + len(ids)))
            venues.setdefault(venue_id, _venue(venue_id, address))
        events.append(event | {"venue_id": venue_id})
    return events, venues


class EventbriteProvider(Provider):
    name, prefix, api_root = "eventbrite", "/eventbrite", "/eventbrite/v3"
    ROUTES = {
        ("GET", "/organizations/{org_id}/events"): "events_route",
        ("GET", "/organizations/{org_id}/attendees"): "org_attendees_route",
        ("GET", "/events/{event_id}/attendees"): "event_attendees_route",
        ("GET", "/venues/{venue_id}"): "venue_route",
        ("GET", "/users/me"): "me_route",
        ("GET", "/users/me/organizations"): "my_organizations_route",
    }

    def __init__(self, shared: SharedState, *, eventbrite_token: str | None = None) -> None:
        super().__init__(shared)
        self.token = eventbrite_token
        self.org_id = shared.organization("eventbrite_id")
        folder = shared.data / "providers" / "eventbrite"
        self.events, self.venues = split_venues(read_jsonl(folder / "events.jsonl"))
        # Attendees are kept as their JSON lines plus the fields the listings filter on; a record is
        # parsed only when a page shows it (a million members' records as dicts: ~8 GB).
        self.attendees: list[_Attendee] = jsonl_refs(folder / "attendees.jsonl", _Attendee)
        self.event_ids = {e["id"] for e in self.events}
        self.attendees_by_event: dict[Any, list[_Attendee]] = {}
        for attendee in self.attendees:  # file order within each event, as a scan of the whole list gives
            self.attendees_by_event.setdefault(attendee.event_id, []).append(attendee)

    # ---- the provider's contract ----
    def authenticate(self, request: Request) -> None:
        token = request.bearer()
        if not token:
            raise eventbrite_error(401, "NO_AUTH", "An OAuth token is required for this request.")
        if self.token is not None and token != self.token:
            raise eventbrite_error(403, "NOT_AUTHORIZED", "This token is not authorized for this resource.")

    def not_found(self) -> ApiError:
        return eventbrite_error(404, "NOT_FOUND", "The path you requested does not exist.")

    def bad_json(self) -> ApiError:
        return eventbrite_error(400, "INVALID_BODY", "The body is not valid JSON.")

    def bad_page(self, message: str) -> ApiError:
        return eventbrite_error(400, "BAD_PAGE", message)

    def rate_limited(self, reset: str) -> ApiError:
        return ApiError(429, {"error": "HIT_RATE_LIMIT", "error_description": "Rate limit hit.", "status_code": 429},
                        {"X-RateLimit-Reset": reset})

    # ---- routes ----
    def _check_organization(self, request: Request) -> None:
        if request.params["org_id"] != self.org_id:
            raise eventbrite_error(404, "NOT_FOUND", "The organization you requested does not exist.")

    def events_route(self, request: Request) -> Reply:
        page_size = self._page_size(request)
        self._check_organization(request)
        changed_since = request.arg("changed_since")
        with_venue = "venue" in ",".join(request.query.get("expand", [])).split(",")

        def listing() -> list[dict[str, Any]]:  # built once per query, not once per page
            events = [e for e in self.events if not changed_since or e["changed"] >= changed_since]
            return [e | {"venue": self.venues.get(e["venue_id"])} for e in events] if with_venue else events

        events = self.shared.listing((self.name, "events", changed_since, with_venue), listing)
        return 200, eventbrite_page(events, "events", request.arg("continuation"), page_size,
                                    f"org:{changed_since}")

    def venue_route(self, request: Request) -> Reply:
        venue = self.venues.get(request.params["venue_id"])
        if venue is None:
            raise eventbrite_error(404, "NOT_FOUND", "The venue you requested does not exist.")
        return 200, venue

    def org_attendees_route(self, request: Request) -> Reply:
        page_size = self._page_size(request)
        self._check_organization(request)
        changed_since, status = request.arg("changed_since"), request.arg("status")
        rows = self.shared.listing((self.name, "org-attendees", changed_since, status),
                                   lambda: _attendees(self.attendees, changed_since, status))
        return 200, eventbrite_page(rows, "attendees", request.arg("continuation"), page_size,
                                    f"org-attendees:{changed_since}:{status}")

    def event_attendees_route(self, request: Request) -> Reply:
        event_id, page_size = request.params["event_id"], self._page_size(request)
        if event_id not in self.event_ids:
            raise eventbrite_error(404, "NOT_FOUND", "The event you requested does not exist.")
        changed_since, status = request.arg("changed_since"), request.arg("status")
        event_rows = self.attendees_by_event.get(event_id, [])
        rows = LazyRows(event_rows, record_of) if not changed_since and not status else self.shared.listing(
            (self.name, "attendees", event_id, changed_since, status),
            lambda: _attendees(event_rows, changed_since, status))
        return 200, eventbrite_page(rows, "attendees", request.arg("continuation"), page_size,
                                    f"{event_id}:{changed_since}:{status}")

    @staticmethod
    def _page_size(request: Request) -> int:
        return int(request.arg("page_size", "50"))

    # ---- the token's user and its organisations (what `alumni check` asks) ----
    def _organization(self) -> dict[str, Any]:
        stored = read_json(self.shared.data / "providers" / "eventbrite" / "organization.json", {})
        return {"id": self.org_id, "name": stored.get("name", ""), "vertical": "default", "image_id": None}

    def me_route(self, request: Request) -> Reply:
        return 200, {"id": f"1{self.org_id}", "name": self._organization()["name"], "first_name": "", "last_name": "",
                     "is_public": False, "image_id": None, "emails": []}

    def my_organizations_route(self, request: Request) -> Reply:
        organizations = [self._organization()] if self.org_id else []
        return 200, eventbrite_page(organizations, "organizations", request.arg("continuation"), self._page_size(request),
                                    "users/me/organizations")
