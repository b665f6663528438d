"""Issue 13's SendGrid findings, each reproduced: a batch re-delivered after midnight stored twice by a
multi-day run (1), one odd event blocking its whole day (2), and "false" read as TRUE (7)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from alumni_orchestration.defs.sendgrid.assets import EVENTS, sendgrid_events
from alumni_orchestration.defs.sendgrid.resources import SendGridResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.ingest.sendgrid.events import events_table, read_day
from alumni_orchestration.ingest.sendgrid.records import flatten_sendgrid_event
from alumni_orchestration.webhook.landing import Landing

DAY1, DAY2, DAY3 = "2026-11-19", "2026-11-20", "2026-11-21"
T = 1_763_560_000


def _event(n: int, **fields) -> dict:
    return {"sg_event_id": f"ev-{n}", "event": "delivered", "timestamp": T + n, "email": f"m{n}@example.org",
            "sg_message_id": f"msg-{n}.filter"} | fields


def _materialize(tmp_path: Path, first: str, last: str) -> dg.ExecuteInProcessResult:
    resources = {"warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
                 "sendgrid": SendGridResource(api_key="unused", webhook_landing=str(tmp_path / "landing"))}
    return dg.materialize([sendgrid_events], resources=resources, raise_on_error=False,
                          tags={"dagster/asset_partition_range_start": first,
                                "dagster/asset_partition_range_end": last})


def _rows(tmp_path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations() if e.asset_key == EVENTS}


def test_a_batch_landed_on_two_days_is_stored_once_by_a_multi_day_run(tmp_path: Path) -> None:
    landing = Landing(tmp_path / "landing")
    batch = json.dumps([_event(1), _event(2, event="open")]).encode()
    landing.write_batch(DAY1, "100-a.json", batch)
    landing.write_batch(DAY2, "200-a.json", batch)  # re-delivered after midnight: the same events
    landing.write_batch(DAY2, "300-b.json", json.dumps([_event(3)]).encode())
    result = _materialize(tmp_path, DAY1, DAY3)
    assert result.success
    rows = _rows(tmp_path, "select sg_event_id, partition_date from raw.sendgrid_events order by 1")
    assert rows == [("ev-1", dt.date(2026, 11, 19)), ("ev-2", dt.date(2026, 11, 19)), ("ev-3", dt.date(2026, 11, 20))]
    assert _checks(result) == {"rows_conserved": True, "sg_event_id_unique": True}
    metadata = result.asset_materializations_for_node("raw__sendgrid_events")[0].metadata
    assert metadata["duplicates_merged"].value == 2 and metadata["rows_read"].value == 5

    # The blocking check looks at every day, not only the run's: a duplicate stored outside the range
    # (here put there by hand, as the old loads did) fails it.
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        conn.execute("insert into raw.sendgrid_events select * replace (date '2026-11-01' as partition_date) "
                     "from raw.sendgrid_events where sg_event_id = 'ev-1'")
    again = _materialize(tmp_path, DAY2, DAY2)
    assert _checks(again)["sg_event_id_unique"] is False
    assert not again.success  # blocking: the run fails, nothing downstream would run on it


@pytest.mark.parametrize("field,value", [("event", ["open", "click"]), ("event", {"type": "open"}),
                                         ("sg_event_id", ["ev-9"]), ("sg_event_id", {"id": "ev-9"})])
def test_an_event_with_a_list_or_object_field_is_quarantined_and_the_day_still_loads(
        tmp_path: Path, field: str, value) -> None:
    landing = Landing(tmp_path / "landing")
    landing.write_batch(DAY2, "100-a.json", json.dumps([_event(1), _event(9, **{field: value}), _event(2)]).encode())
    day = read_day(landing, DAY2)
    assert [e["sg_event_id"] for e in day.events] == ["ev-1", "ev-2"]
    assert [q["reason"] for q in day.rejected] == [f"invalid_field_type:{field}"]
    assert day.stats.conserved()
    result = _materialize(tmp_path, DAY2, DAY2)
    assert result.success
    assert _rows(tmp_path, "select sg_event_id from raw.sendgrid_events order by 1") == [("ev-1",), ("ev-2",)]
    assert _rows(tmp_path, "select reason from raw.quarantine where asset_key = 'raw/sendgrid_events'") == [
        (f"invalid_field_type:{field}",)]


@pytest.mark.parametrize("value,expected", [("false", False), ("true", True), ("0", False), (True, True),
                                            (False, False), (None, False)])
def test_sg_machine_open_is_read_as_a_boolean(tmp_path: Path, value, expected: bool) -> None:
    event = _event(1, event="open", sg_machine_open=value)
    assert flatten_sendgrid_event(event, dt.date(2026, 11, 20))["sg_machine_open"] is expected
    landing = Landing(tmp_path / "landing")
    landing.write_batch(DAY2, "100-a.json", json.dumps([event]).encode())
    assert events_table(read_day(landing, DAY2)).column("sg_machine_open").to_pylist() == [expected]
