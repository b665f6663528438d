"""Eventbrite's documented shapes flattened: venues from the expansion, money in cents, booleans read as
written; one odd field quarantines its one record, and the rest of the batch loads."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from alumni_orchestration.ingest.eventbrite.records import (
    flatten_eventbrite_attendees,
    flatten_eventbrite_events,
)
from tests.fixture_server import fixture


def _events(name: str = "organization_events_expand_venue.json") -> list[dict[str, Any]]:
    return fixture("eventbrite", name)["events"]


def _attendees() -> list[dict[str, Any]]:
    return fixture("eventbrite", "organization_attendees.json")["attendees"]


def test_documented_events_flatten_with_city_and_region_from_the_expanded_venue() -> None:
    rows, bad = flatten_eventbrite_events(_events())
    assert bad == []
    by_id = {r["event_id"]: r for r in rows}
    assert (by_id["2"]["city"], by_id["2"]["region"]) == ("Miami", "FL")
    assert (by_id["3"]["city"], by_id["3"]["region"]) == ("Lyon", None)  # the venue knows no region
    assert (by_id["1"]["city"], by_id["1"]["region"], by_id["1"]["online_event"]) == (None, None, True)
    assert by_id["2"]["start_at"] == dt.datetime(2021, 12, 10, 0, 0) and by_id["2"]["start_local"] == "2021-12-09T19:00:00"
    assert by_id["2"]["topic"] == "networking" and by_id["2"]["is_free"] is False and by_id["1"]["is_free"] is True
    assert by_id["1"]["name"] == "GEEKTALKS - PRESENTACIÓN DE PROYECTOS FINALES"
    assert by_id["1"]["changed_at"] == dt.datetime(2021, 11, 19, 4, 27, 58)


def test_documented_attendees_flatten_with_gross_in_cents() -> None:
    rows, bad = flatten_eventbrite_attendees(_attendees())
    assert bad == []
    by_id = {r["attendee_id"]: r for r in rows}
    assert (by_id["1"]["gross_cents"], by_id["1"]["currency"], by_id["1"]["checked_in"]) == (0, "CAD", True)
    assert (by_id["2"]["gross_cents"], by_id["2"]["currency"], by_id["2"]["promo"]) == (1250, "EUR", "2012")
    assert (by_id["3"]["cancelled"], by_id["3"]["refunded"], by_id["3"]["promo"]) == (True, True, None)
    assert by_id["2"]["event_id"] == "2" and by_id["2"]["order_id"] == "2" and by_id["2"]["ticket_class"] == "Membre"
    assert by_id["1"]["created_at"] == dt.datetime(2018, 11, 2, 19, 7, 24)


def _with(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(record)
    *parents, leaf = path.split(".")
    target = changed
    for key in parents:
        target = target[key]
    target[leaf] = value
    return changed


@pytest.mark.parametrize(("path", "value", "reason"), [
    ("costs.gross.value", "12.50", "invalid_field_type:costs.gross.value"),  # a decimal string is not minor units
    ("costs.gross.value", 12.5, "invalid_field_type:costs.gross.value"),  # was truncated to 12, silently
    ("costs.gross.value", "douze", "invalid_field_type:costs.gross.value"),
    ("costs.gross", "12.50", "invalid_field_type:costs.gross"),
    ("order_id", ["1"], "invalid_field_type:order_id"),
    ("event_id", {"id": "2"}, "invalid_field_type:event_id"),
    ("checked_in", "maybe", "invalid_field_type:checked_in"),
    ("answers", {"question": "Promo"}, "invalid_field_type:answers"),
    ("profile", "Léa Roux", "invalid_field_type:profile"),
])
def test_one_odd_attendee_field_quarantines_that_record_and_the_rest_loads(path: str, value: Any, reason: str) -> None:
    records = _attendees()
    records[1] = _with(records[1], path, value)
    rows, bad = flatten_eventbrite_attendees(records)
    assert [r["attendee_id"] for r in rows] == ["1", "3"]
    assert [(b["record_key"], b["reason"]) for b in bad] == [("2", reason)]
    assert len(records) == len(rows) + len(bad)


@pytest.mark.parametrize(("path", "value", "reason"), [
    ("venue", ["Miami"], "invalid_field_type:venue"),
    ("venue.address", "11200 Southwest 8th Street, Miami", "invalid_field_type:venue.address"),
    ("venue.address.city", {"name": "Miami"}, "invalid_field_type:venue.address.city"),
    ("start.utc", 1638403200, "invalid_field_type:start.utc"),
    ("online_event", "sometimes", "invalid_field_type:online_event"),
    ("name", ["Afterwork"], "invalid_field_type:name"),
    ("id", 2.5, "invalid_field_type:id"),
])
def test_one_odd_event_field_quarantines_that_event_and_the_rest_loads(path: str, value: Any, reason: str) -> None:
    records = _events()
    key = records[1]["id"]
    records[1] = _with(records[1], path, value)
    rows, bad = flatten_eventbrite_events(records)
    assert [r["event_id"] for r in rows] == ["1", "3"]
    assert [(b["record_key"], b["reason"]) for b in bad] == [(None if path == "id" else key, reason)]


def test_booleans_written_as_text_are_read_as_written() -> None:
    attendees = _attendees()
    attendees[0] = _with(_with(attendees[0], "checked_in", "false"), "refunded", "true")
    events = _events()
    events[0] = _with(_with(events[0], "online_event", "false"), "is_free", "False")
    (attendee, *_), _ = flatten_eventbrite_attendees(attendees)
    (event, *_), _ = flatten_eventbrite_events(events)
    assert (attendee["checked_in"], attendee["refunded"]) == (False, True)
    assert (event["online_event"], event["is_free"]) == (False, False)


def test_an_absent_gross_is_unknown_rather_than_free() -> None:
    attendees = _attendees()
    del attendees[1]["costs"]["gross"]["value"]
    del attendees[2]["costs"]
    rows, bad = flatten_eventbrite_attendees(attendees)
    assert bad == [] and [r["gross_cents"] for r in rows] == [0, None, None]
