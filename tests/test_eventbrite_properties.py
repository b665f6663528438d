"""Property: whatever JSON value lands in whatever field of a documented Eventbrite event, venue or
attendee, the flatteners never raise, every record is either a row or a named quarantine, and the rows
fit the raw tables' types."""

from __future__ import annotations

import copy
from typing import Any

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from alumni_orchestration.ingest.eventbrite.records import (
    flatten_eventbrite_attendees,
    flatten_eventbrite_events,
)
from alumni_orchestration.ingest.records import RAW_DDL, arrow_schema
from tests.fixture_server import fixture
from tests.json_documents import field_paths, json_values

JSON = json_values(max_leaves=8)
EVENTS = fixture("eventbrite", "organization_events_expand_venue.json")["events"]
ATTENDEES = fixture("eventbrite", "organization_attendees.json")["attendees"]


def _replaced(record: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(record)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


EVENT_PATHS = [(i, p) for i, e in enumerate(EVENTS) for p in field_paths(e)]  # venue and its address included
ATTENDEE_PATHS = [(i, p) for i, a in enumerate(ATTENDEES) for p in field_paths(a)]
REASON_PREFIXES = ("invalid_field_type:", "missing_id", "missing_event_id")


def _check(records: list[Any], flatten: Any, table: str) -> None:
    rows, bad = flatten(records)
    assert len(rows) + len(bad) == len(records)
    assert all(b["reason"].startswith(REASON_PREFIXES) for b in bad)
    assert all(b["record_key"] is None or isinstance(b["record_key"], str) for b in bad)
    assert pa.Table.from_pylist(rows, schema=arrow_schema(RAW_DDL[table])).num_rows == len(rows)  # typed as the table


@given(st.sampled_from(EVENT_PATHS), JSON)
def test_any_value_in_any_event_or_venue_field_is_a_row_or_a_named_quarantine(where: tuple, value: Any) -> None:
    index, path = where
    records = [*EVENTS]
    records[index] = _replaced(EVENTS[index], path, value)
    _check(records, flatten_eventbrite_events, "eventbrite_events")


@given(st.sampled_from(ATTENDEE_PATHS), JSON)
def test_any_value_in_any_attendee_field_is_a_row_or_a_named_quarantine(where: tuple, value: Any) -> None:
    index, path = where
    records = [*ATTENDEES]
    records[index] = _replaced(ATTENDEES[index], path, value)
    _check(records, flatten_eventbrite_attendees, "eventbrite_attendees")


@given(st.lists(JSON | st.sampled_from(EVENTS), max_size=4))
def test_any_json_as_a_whole_event_record_never_raises(records: list[Any]) -> None:
    _check(records, flatten_eventbrite_events, "eventbrite_events")


@given(st.lists(JSON | st.sampled_from(ATTENDEES), max_size=4))
def test_any_json_as_a_whole_attendee_record_never_raises(records: list[Any]) -> None:
    _check(records, flatten_eventbrite_attendees, "eventbrite_attendees")
