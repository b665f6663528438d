"""The sandbox's Eventbrite against the documented shapes (tests/fixtures/providers/eventbrite/), field by
field: every key it serves is a documented key with a documented JSON type (or null), the keys the
sources read are there, and the venue comes only when `expand=venue` is asked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from alumni_orchestration.sandbox.server import SandboxServer
from tests.fixture_server import fixture

TOKEN = "FAKE-eventbrite-token-contract"
# What the sources read (ingest/eventbrite/records.py): the sandbox must serve these keys.
EVENT_KEYS = {"id", "name", "summary", "description", "start", "end", "url", "created", "changed", "status",
              "online_event", "is_free", "venue_id"}
ATTENDEE_KEYS = {"id", "event_id", "order_id", "created", "changed", "status", "checked_in", "cancelled",
                 "refunded", "ticket_class_name", "profile", "answers", "costs"}
MONEY_KEYS = {"currency", "value", "major_value", "display"}
VENUE_KEYS = {"id", "name", "address"}
ADDRESS_KEYS = {"city", "region", "country"}
# A page with more to come also carries `continuation` (the example of api_overview/pagination, SOURCES.md).
MORE_TO_COME = {"continuation": "dGhpcyBpcyBhIGNvbnRpbnVhdGlvbiB0b2tlbg", "has_more_items": True}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {dict: "object", list: "array", str: "string", float: "number"}.get(type(value), "null")


def _documented(examples: list[Any]) -> dict[str, Any]:
    """The schema the documented examples show: for each key path, the JSON types seen there."""
    schema: dict[str, Any] = {"types": set(), "keys": {}, "items": None}
    for example in examples:
        schema["types"].add(_kind(example))
        if isinstance(example, dict):
            for key, value in example.items():
                schema["keys"].setdefault(key, []).append(value)
        elif isinstance(example, list):
            schema["items"] = (schema["items"] or []) + example
    schema["keys"] = {key: _documented(values) for key, values in schema["keys"].items()}
    schema["items"] = _documented(schema["items"]) if schema["items"] else None
    return schema


def _departures(served: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Where a served value leaves the documented schema: an undocumented key or another JSON type."""
    kind = _kind(served)
    if kind == "null":
        return []  # Eventbrite sends null for what it does not know
    if kind not in schema["types"] and not (kind == "integer" and "number" in schema["types"]):
        return [f"{path or '.'}: {kind}, documented {sorted(schema['types'] - {'null'})}"]
    found = []
    if kind == "object" and schema["keys"]:
        for key, value in served.items():
            if key not in schema["keys"]:
                found.append(f"{path}.{key}: not documented")
            else:
                found += _departures(value, schema["keys"][key], f"{path}.{key}")
    if kind == "array" and schema["items"]:
        for value in served:
            found += _departures(value, schema["items"], f"{path}[]")
    return found


@pytest.fixture(scope="module")
def sandbox(small_association: Path, tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("contract") / "association"
    shutil.copytree(small_association, data)
    org = json.loads((data / "manifest.json").read_text())["organization"]["eventbrite_id"]
    with SandboxServer(data, eventbrite_token=TOKEN) as sbx:
        base = f"{sbx.base_url}/eventbrite/v3"

        def get(path: str, **params: Any) -> requests.Response:
            return requests.get(f"{base}{path}", params=params, headers={"Authorization": f"Bearer {TOKEN}"},
                                timeout=30)

        yield get, org


def _page(get, path: str, key: str, **params: Any) -> dict[str, Any]:
    response = get(path, **params)
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    documented = fixture("eventbrite", f"organization_{key}.json")
    assert set(body) == set(documented)  # the list and `pagination`, nothing else
    pagination = _documented([documented["pagination"], documented["pagination"] | MORE_TO_COME])
    assert _departures(body["pagination"], pagination, "pagination") == []
    assert {"page_number", "page_size", "has_more_items"} <= set(body["pagination"])
    assert body[key], f"the sandbox listed no {key}"
    return body


@pytest.mark.slow
def test_the_events_listing_carries_venue_id_and_no_venue_unless_asked(sandbox) -> None:
    get, org = sandbox
    body = _page(get, f"/organizations/{org}/events/", "events", page_size=200)
    schema = _documented(fixture("eventbrite", "organization_events.json")["events"])
    for event in body["events"]:
        assert _departures(event, schema) == []
        assert EVENT_KEYS <= set(event), EVENT_KEYS - set(event)
        assert "venue" not in event  # the venue is an expansion
        assert (event["venue_id"] is None) == event["online_event"]  # an online event has no venue


@pytest.mark.slow
def test_the_expanded_events_listing_embeds_each_venue(sandbox) -> None:
    get, org = sandbox
    body = _page(get, f"/organizations/{org}/events/", "events", page_size=200, expand="venue")
    schema = _documented(fixture("eventbrite", "organization_events_expand_venue.json")["events"])
    for event in body["events"]:
        assert _departures(event, schema) == []
        assert EVENT_KEYS | {"venue"} <= set(event), (EVENT_KEYS | {"venue"}) - set(event)
        if event["venue_id"] is None:
            assert event["venue"] is None
        else:
            assert VENUE_KEYS <= set(event["venue"]) and ADDRESS_KEYS <= set(event["venue"]["address"])
            assert event["venue"]["id"] == event["venue_id"]


@pytest.mark.slow
def test_each_venue_answers_at_its_own_endpoint_as_documented(sandbox) -> None:
    get, org = sandbox
    events = _page(get, f"/organizations/{org}/events/", "events", page_size=200, expand="venue")["events"]
    venues = {e["venue_id"]: e["venue"] for e in events if e["venue_id"] is not None}
    assert venues, "no event of the sandbox has a venue"
    schema = _documented([fixture("eventbrite", "venue.json"), fixture("eventbrite", "venue_without_region.json")])
    for venue_id, expanded in venues.items():
        response = get(f"/venues/{venue_id}/")
        assert response.status_code == 200, response.text[:300]
        venue = response.json()
        assert _departures(venue, schema) == [] and venue == expanded
        assert VENUE_KEYS <= set(venue) and ADDRESS_KEYS <= set(venue["address"])
        assert isinstance(venue["address"]["city"], str) and venue["address"]["city"]
    missing = get("/venues/000/")
    assert missing.status_code == 404 and missing.json()["error"] == "NOT_FOUND"


@pytest.mark.slow
def test_the_attendees_listing_matches_the_documented_attendee(sandbox) -> None:
    get, org = sandbox
    body = _page(get, f"/organizations/{org}/attendees/", "attendees", page_size=200)
    schema = _documented(fixture("eventbrite", "organization_attendees.json")["attendees"])
    for attendee in body["attendees"]:
        assert _departures(attendee, schema) == []
        assert ATTENDEE_KEYS <= set(attendee), ATTENDEE_KEYS - set(attendee)
        assert MONEY_KEYS <= set(attendee["costs"]["gross"])
        assert isinstance(attendee["costs"]["gross"]["value"], int)  # minor units, an integer


def test_the_departure_finder_sees_what_it_is_meant_to_see() -> None:
    schema = _documented(fixture("eventbrite", "organization_events.json")["events"])
    event = fixture("eventbrite", "organization_events.json")["events"][1]
    assert _departures(event, schema) == []
    assert _departures(event | {"venue": {"address": {}}}, schema) == [".venue: not documented"]
    assert _departures(event | {"online_event": "false"}, schema) == [".online_event: string, documented ['boolean']"]
    assert _departures(event | {"start": {"utc": 1}}, schema) == [".start.utc: integer, documented ['string']"]
