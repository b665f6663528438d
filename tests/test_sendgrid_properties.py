"""Property tests: any JSON value in any field of a documented SendGrid record is loaded or quarantined by
name, never raised; records read = kept + duplicates + quarantined."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from alumni_orchestration.ingest.sendgrid.events import SCHEMA, events_table, read_day
from alumni_orchestration.ingest.sendgrid.records import (
    RejectedEvent,
    clean_sendgrid_event,
    flatten_sendgrid_event,
)
from alumni_orchestration.ingest.sendgrid.suppressions import GLOBAL_LISTS, flatten_suppressions
from alumni_orchestration.webhook.landing import Landing
from tests.json_documents import json_values
from tests.test_sendgrid_fixtures import documented_events, documented_suppressions

DAY = "2026-11-20"
EVENTS = list(documented_events().values())
LISTS, GROUPS = documented_suppressions()
NAMED = {"not_an_object", "missing_sg_event_id", "unknown_event_type", "invalid_timestamp", "malformed_json",
         "missing_email"}

JSON = json_values(max_leaves=6, max_text=None)
event_fields = st.sampled_from(sorted({key for e in EVENTS for key in e} | {
    "sg_machine_open", "asm_group_id", "url_offset", "type", "member_id", "campaign_id", "cycle", "arm", "custom"}))


def _named(reason: str) -> bool:
    return reason in NAMED or reason.startswith("invalid_field_type:")


@st.composite
def odd_events(draw) -> dict[str, Any]:
    """A documented event with one field (or url_offset.index) set to any JSON value."""
    event = dict(draw(st.sampled_from(EVENTS)))
    value = draw(JSON)
    if draw(st.booleans()) and "url_offset" in event:
        event["url_offset"] = {**event["url_offset"], "index": value}
    else:
        event[draw(event_fields)] = value
    return event


@given(odd_events())
def test_flattening_any_field_value_gives_a_typed_row_or_a_named_reason(event: dict) -> None:
    try:
        row = flatten_sendgrid_event(event, dt.date(2026, 11, 20), "b.json")
    except RejectedEvent as rejected:
        assert _named(rejected.reason)
        return
    assert set(row) == set(SCHEMA.names)
    assert isinstance(row["sg_event_id"], str) and isinstance(row["sg_machine_open"], bool)
    assert all(row[k] is None or isinstance(row[k], int) and not isinstance(row[k], bool)
               for k in ("asm_group_id", "url_offset_index"))
    assert all(row[k] is None or isinstance(row[k], str) for k in ("email", "category", "reason", "custom_args"))


@given(st.lists(odd_events() | st.sampled_from(EVENTS) | JSON, min_size=1, max_size=5),
       st.sampled_from([0, 1, 2]))
def test_a_landed_batch_with_odd_events_loads_the_rest_and_conserves(batch: list, copies: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        landing = Landing(Path(folder))
        landing.write_batch(DAY, "100-a.json", json.dumps(batch).encode())
        for n in range(copies):  # the same batch re-delivered
            landing.write_batch(DAY, f"{200 + n}-a.json", json.dumps(batch).encode())
        day = read_day(landing, DAY)
    stats = day.stats
    assert stats.events_read == len(batch) * (1 + copies)
    assert stats.events_read == stats.events_kept + stats.duplicates + sum(stats.quarantined.values())
    assert all(_named(q["reason"]) for q in day.rejected) and len(day.rejected) == sum(stats.quarantined.values())
    table = events_table(day)  # every kept value fits its column
    assert table.num_rows == stats.events_kept == len(set(table.column("sg_event_id").to_pylist()))
    date = dt.date.fromisoformat(DAY)
    assert table.to_pylist() == [flatten_sendgrid_event(e, date, b) for e, b in zip(day.events, day.batches,
                                                                                    strict=True)]
    assert all(clean_sendgrid_event(e) == e for e in day.events)  # cleaning is idempotent


@given(st.sampled_from([*GLOBAL_LISTS, "group_unsubscribes"]), st.data())
def test_any_field_value_in_a_suppression_is_a_row_or_a_named_reason(kind: str, data) -> None:
    lists = {k: list(v) for k, v in LISTS.items()}
    records = GROUPS if kind == "group_unsubscribes" else lists[kind]
    index = data.draw(st.integers(0, len(records) - 1))
    field = data.draw(st.sampled_from(sorted(set(records[index]) | {"group_id", "created_at", "status", "x"})))
    odd = {**records[index], field: data.draw(JSON)}
    groups = list(GROUPS)
    (groups if kind == "group_unsubscribes" else lists[kind])[index] = odd
    rows, bad = flatten_suppressions(lists, groups)
    assert len(rows) + len(bad) == sum(map(len, lists.values())) + len(groups)
    assert all(_named(b["reason"]) for b in bad) and len(bad) <= 1
    assert all(isinstance(r["email"], str) and (r["created_at"] is None or isinstance(r["created_at"], dt.datetime))
               for r in rows)
