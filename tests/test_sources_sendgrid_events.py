"""SendGrid webhook events, read a day at a time and flattened column by column: the same events,
quarantine, counts and raw rows as the row by row path (read_day_events + flatten_sendgrid_event)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from alumni_orchestration.ingest.records import RAW_DDL
from alumni_orchestration.ingest.sendgrid.events import COLUMNS, events_table, read_day, stage_events
from alumni_orchestration.ingest.sendgrid.records import flatten_sendgrid_event
from alumni_orchestration.webhook.landing import Landing, read_day_events

DAY = "2026-11-20"
T = 1_763_650_000


def _event(n: int, **fields) -> dict:
    return {"sg_event_id": f"e{n}", "event": "delivered", "timestamp": T + n, "email": f"m{n}@example.org",
            "sg_message_id": f"m{n}.filter", "member_id": str(n), "campaign_id": "reengagement"} | fields


def _landing(tmp_path: Path) -> Landing:
    landing = Landing(tmp_path / "landing")
    first = [_event(1, category="newsletter"), _event(2, event="click", url="https://x.fr/é", url_offset={"index": 2},
                                                       category=["a", "b"], useragent="UA", ip="1.2.3.4"),
             _event(3, event="bounce", type="blocked", reason=550, status="5.1.1"),
             _event(4, event="group_unsubscribe", asm_group_id="12", source_list="prix-été"),
             _event(5, event="open", sg_machine_open=True, asm_group_id=True, category=[1, "x"]),
             _event(1), {"event": "open", "timestamp": T}, _event(6, event="teleported"), "not an event",
             _event(7, timestamp="soon"), _event(8, cycle=2026, arm="treatment", url_offset="3")]
    landing.write_batch(DAY, "100-a.json", json.dumps(first, ensure_ascii=False).encode())
    landing.write_batch(DAY, "200-b.json", b"[{\"sg_event_id\": \"e2\", \"event\": \"open\", \"timestamp\": 1763650009}, "
                                           b"{\"sg_event_id\": \"e9\", \"event\": \"open\", \"timestamp\": 1763650009, "
                                           b"\"score\": NaN}]")  # NaN: json reads it, orjson does not
    landing.write_batch(DAY, "300-c.json", b"{not json")
    landing.write_batch(DAY, "400-d.json", json.dumps([_event(10, email=42)]).encode())  # an email that is a number
    return landing


def test_read_day_gives_the_events_quarantine_and_counts_of_read_day_events(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    events, rejected, stats = read_day_events(landing, DAY)
    day = read_day(landing, DAY)
    assert [{**e, "_batch": b} for e, b in zip(day.events, day.batches, strict=True)] == events
    assert day.rejected == rejected and day.stats == stats
    assert stats.conserved() and stats.duplicates == 2 and stats.batches == 4
    assert dict(stats.quarantined) == {"missing_sg_event_id": 1, "unknown_event_type": 1, "not_an_object": 1,
                                       "invalid_timestamp": 1, "malformed_json": 1,
                                       "invalid_field_type:asm_group_id": 1, "invalid_field_type:url_offset": 1}


def _typed(frame) -> list[tuple]:
    """Rows as the warehouse stores them: inserted by name into the raw table's DDL."""
    with duckdb.connect() as conn:
        conn.execute(f"create table t ({RAW_DDL['sendgrid_events']})")
        conn.register("f", frame)
        conn.execute("insert into t by name select * from f")
        return conn.execute("select * from t order by sg_event_id").fetchall()


def test_the_columnar_rows_are_those_of_flatten_sendgrid_event(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    events, _, _ = read_day_events(landing, DAY)
    date = dt.date.fromisoformat(DAY)
    expected = _typed(pd.DataFrame.from_records([flatten_sendgrid_event(e, date, e["_batch"]) for e in events],
                                                columns=COLUMNS))
    day = read_day(landing, DAY)
    assert _typed(events_table(day)) == expected
    rows = {r[0]: r for r in expected}
    row = rows["e4"]
    assert row[COLUMNS.index("asm_group_id")] == 12 and "prix-été" in row[COLUMNS.index("custom_args")]
    # Values read once, when the day is read: a numeric email or cycle as text, categories always a list.
    assert rows["e10"][COLUMNS.index("email")] == "42" and "e8" not in rows and "e5" not in rows
    assert rows["e3"][COLUMNS.index("reason")] == "550" and rows["e3"][COLUMNS.index("bounce_type")] == "blocked"
    assert rows["e2"][COLUMNS.index("category")] == '["a", "b"]' and rows["e2"][COLUMNS.index("url_offset_index")] == 2
    assert rows["e1"][COLUMNS.index("category")] == '["newsletter"]'
    # The landing batch is a column of its own, never mistaken for a custom argument sent with the message.
    custom = [r[COLUMNS.index("custom_args")] for r in expected]
    assert None in custom and not any("_batch" in c for c in custom if c)
    assert {r[COLUMNS.index("batch_name")] for r in expected} >= {"100-a.json"}


def test_staging_writes_every_day_and_counts_like_the_day_reader(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    landing.write_batch("2026-11-21", "500-e.json", json.dumps([_event(20), _event(21)]).encode())
    staged = stage_events(landing, [DAY, "2026-11-21", "2026-11-22"], tmp_path / "events.parquet")
    table = pq.read_table(tmp_path / "events.parquet")
    assert table.num_rows == staged.events_kept == 6 + 2
    assert staged.events_read == staged.events_kept + staged.duplicates + len(staged.quarantined)
    assert {q["partition_key"] for q in staged.quarantined} == {DAY}
    assert all(q["scope"] == "row" for q in staged.quarantined)
    assert sorted(set(table.column("partition_date").to_pylist())) == [dt.date(2026, 11, 20), dt.date(2026, 11, 21)]


def test_staging_with_the_collector_paused_gives_the_same_file_and_restores_the_collector(tmp_path: Path,
                                                                                        monkeypatch) -> None:
    import gc

    landing = _landing(tmp_path)
    paused = stage_events(landing, [DAY], tmp_path / "paused.parquet")
    assert gc.isenabled()
    monkeypatch.setattr(gc, "disable", lambda: None)  # the previous implementation: the collector stays on
    collecting = stage_events(landing, [DAY], tmp_path / "collecting.parquet")
    assert pq.read_table(tmp_path / "paused.parquet").equals(pq.read_table(tmp_path / "collecting.parquet"))
    assert (paused.events_read, paused.events_kept, paused.duplicates, paused.quarantined) == (
        collecting.events_read, collecting.events_kept, collecting.duplicates, collecting.quarantined)


def test_the_collector_comes_back_as_it_was_even_after_an_error() -> None:
    import gc

    import pytest

    from alumni_orchestration.ingest.collector import collector_paused

    with pytest.raises(ValueError), collector_paused():
        assert not gc.isenabled()
        raise ValueError("a parse error")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # it was off: it stays off
    finally:
        gc.enable()


def _staged_with_one_id_set(landing: Landing, days: list[str]) -> list[tuple]:
    """The rows as staging kept them before 2026-12-01's change: one set of every sg_event_id of the range."""
    import pyarrow as pa

    seen: set[str] = set()
    tables = [events_table(day) for day in (read_day(landing, name, seen) for name in days) if day.events]
    return pa.concat_tables(tables).to_pylist()


def test_staging_drops_later_copies_as_the_whole_range_id_set_did(tmp_path: Path) -> None:
    """An event re-delivered on a later day (or twice later), and one repeated within a day: the staged rows
    (in order) and counts equal those of the former staging, which held every id of the range in a set."""
    landing = _landing(tmp_path)
    landing.write_batch("2026-11-21", "500-e.json",
                        json.dumps([_event(20), _event(2, event="click"), _event(21), _event(4)]).encode())
    landing.write_batch("2026-11-22", "600-f.json", json.dumps([_event(2), _event(22), _event(22), _event(20)]).encode())
    days = [DAY, "2026-11-21", "2026-11-22"]
    staged = stage_events(landing, days, tmp_path / "events.parquet")
    rows = pq.read_table(tmp_path / "events.parquet").to_pylist()
    assert rows == _staged_with_one_id_set(landing, days)
    assert [r["sg_event_id"] for r in rows if r["partition_date"] != dt.date(2026, 11, 20)] == ["e20", "e21", "e22"]
    assert staged.events_kept == len(rows) and staged.duplicates == 2 + 2 + 3
    assert staged.events_read == staged.events_kept + staged.duplicates + len(staged.quarantined)
    assert not list(tmp_path.glob("events.days*"))  # the per-day file is gone


def test_staging_without_copies_across_days_keeps_the_file_as_written(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    landing.write_batch("2026-11-21", "500-e.json", json.dumps([_event(20), _event(21)]).encode())
    days = [DAY, "2026-11-21"]
    staged = stage_events(landing, days, tmp_path / "events.parquet")
    assert pq.read_table(tmp_path / "events.parquet").to_pylist() == _staged_with_one_id_set(landing, days)
    assert staged.duplicates == 2
