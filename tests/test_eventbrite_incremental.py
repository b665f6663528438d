"""Eventbrite: one organisation-level listing, in full on a first load, then only what changed since the
last sync, merged into raw.eventbrite_attendees; conservation and quarantine as before."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from alumni_orchestration.defs.eventbrite.assets import OVERLAP, eventbrite_sync
from alumni_orchestration.defs.eventbrite.resources import EventbriteResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.ingest.eventbrite.client import changed_since
from alumni_orchestration.ingest.eventbrite.records import flatten_eventbrite_attendees
from alumni_orchestration.ingest.records import RAW_DDL, flatten_to_arrow
from alumni_orchestration.sandbox.server import SandboxServer

TOKEN = "FAKE-eventbrite-token-77"


def test_changed_since_is_the_watermark_less_the_overlap_and_nothing_on_a_first_or_full_load() -> None:
    watermark = dt.datetime(2026, 1, 10, 22, 59, 59)
    assert changed_since(watermark, dt.timedelta(days=1)) == "2026-01-09T22:59:59Z"
    assert changed_since(None, dt.timedelta(days=1)) is None
    assert changed_since(watermark, dt.timedelta(days=1), full_refresh=True) is None


def _attendee(attendee_id: str, **changes: Any) -> dict[str, Any]:
    return {"id": attendee_id, "event_id": "7", "order_id": "o1", "created": "2025-01-01T10:00:00Z",
            "changed": "2025-01-02T10:00:00Z", "status": "Attending", "checked_in": False, "cancelled": False,
            "refunded": False, "ticket_class_name": "Membre", "costs": {"gross": {"currency": "EUR", "value": 1500}},
            "profile": {"first_name": "A", "last_name": "B", "email": "a@example.org"},
            "answers": [{"question": "Promo", "answer": "2010"}]} | changes


def test_flattening_in_chunks_gives_the_rows_and_quarantine_of_one_pass() -> None:
    records = [_attendee(str(i)) for i in range(25)] + [_attendee("bad", changed="never"), "junk",
                                                        _attendee("num", order_id=123456)]
    table, bad, read = flatten_to_arrow(iter(records), flatten_eventbrite_attendees, RAW_DDL["eventbrite_attendees"],
                                        chunk_size=4)
    rows, expected_bad = flatten_eventbrite_attendees(records)
    assert read == len(records) == table.num_rows + len(bad)
    assert bad == expected_bad and [b["reason"] for b in bad] == ["invalid_field_type:changed", "missing_id"]
    as_rows = table.to_pylist()
    assert [r["attendee_id"] for r in as_rows] == [r["attendee_id"] for r in rows]
    assert as_rows[0] == rows[0]  # same values, same types (naive UTC timestamps, cents)
    assert as_rows[-1]["order_id"] == "123456"  # a number where text is expected is kept, as text
    empty, none_bad, none_read = flatten_to_arrow(iter([]), flatten_eventbrite_attendees,
                                                  RAW_DDL["eventbrite_attendees"])
    assert (empty.num_rows, none_bad, none_read) == (0, [], 0)


def _write_jsonl(path: Path, rows: list[Any]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _sync(data: Path, warehouse: Path, full_refresh: bool = False) -> tuple[dict[str, Any], dict[str, bool]]:
    org = json.loads((data / "manifest.json").read_text())["organization"]["eventbrite_id"]
    with SandboxServer(data, eventbrite_token=TOKEN) as sbx:
        result = dg.materialize(
            [eventbrite_sync], instance=dg.DagsterInstance.ephemeral(),
            resources={"eventbrite": EventbriteResource(token=TOKEN, organization_id=org,
                                                        base_url=f"{sbx.base_url}/eventbrite/v3"),
                       "warehouse": WarehouseResource(path=str(warehouse))},
            run_config={"ops": {"eventbrite_sync": {"config": {"full_refresh": full_refresh}}}})
    assert result.success
    metadata = {e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
                for e in result.get_asset_materialization_events()}
    checks = {c.asset_key.path[-1]: c.passed for c in result.get_asset_check_evaluations()}
    return metadata, checks


def _table(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.slow
def test_the_nightly_sync_reads_only_the_changes_and_merges_them(small_association: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "association"
    shutil.copytree(small_association, data)
    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("ALUMNI_HOME", str(tmp_path / "home"))
    attendees_file = data / "providers/eventbrite/attendees.jsonl"
    attendees = [json.loads(line) for line in attendees_file.read_text().splitlines()]

    first, checks = _sync(data, warehouse)
    assert first["eventbrite_attendees"]["rows_read"] == len(attendees) and all(checks.values())
    assert first["eventbrite_attendees"]["window"] == "full history"
    assert _table(warehouse, "select count(*) from raw.eventbrite_attendees") == [(len(attendees),)]
    watermark = max(a["changed"] for a in attendees)

    # On Eventbrite meanwhile: one registration cancelled, one new, one unusable record.
    later = (dt.datetime.strptime(watermark, "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(hours=5)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    cancelled = {**attendees[0], "status": "Not Attending", "cancelled": True, "changed": later}
    new = {**attendees[1], "id": "999000001", "order_id": "1999000001", "created": later, "changed": later}
    broken = {**attendees[2], "id": "999000002", "event_id": None, "changed": later}
    _write_jsonl(attendees_file, [cancelled, *attendees[1:], new, broken])

    nightly, checks = _sync(data, warehouse)
    since = (dt.datetime.strptime(watermark, "%Y-%m-%dT%H:%M:%SZ") - OVERLAP).strftime("%Y-%m-%dT%H:%M:%SZ")
    expected_read = sum(a["changed"] >= since for a in [cancelled, *attendees[1:], new, broken])
    read = nightly["eventbrite_attendees"]
    assert read["window"] == f"changed_since {since}"
    assert read["rows_read"] == expected_read < len(attendees) / 2  # only the changes, not the history
    assert read["rows_read"] == read["rows_loaded"] + read["rows_quarantined"] and read["rows_quarantined"] == 1
    assert all(checks.values())
    assert read["total_rows"] == len(attendees) + 1
    assert _table(warehouse, f"select status, cancelled from raw.eventbrite_attendees where attendee_id = "
                             f"'{cancelled['id']}'") == [("Not Attending", True)]
    assert _table(warehouse, "select count(*) from raw.eventbrite_attendees where attendee_id = '999000001'") == [(1,)]
    assert _table(warehouse, "select record_key, reason from raw.quarantine where asset_key = 'raw/eventbrite_attendees'"
                  ) == [("999000002", "missing_event_id")]

    full, checks = _sync(data, warehouse, full_refresh=True)  # a full re-read is still possible
    assert full["eventbrite_attendees"]["rows_read"] == len(attendees) + 2 and all(checks.values())
    assert full["eventbrite_attendees"]["total_rows"] == len(attendees) + 1
    assert _table(warehouse, "select count(*) from raw.quarantine where asset_key = 'raw/eventbrite_attendees'") == [(1,)]
