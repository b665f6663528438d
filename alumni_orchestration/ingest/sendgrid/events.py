"""SendGrid Event Webhook batches from the landing to raw rows, a day at a time and column by column.

`read_day` gives what `webhook.landing.read_day_batches` gives (the same clean events, quarantine and
counts), without copying each event; `events_table` gives, as one Arrow table, the rows `flatten_sendgrid_event`
gives one by one; `stage_events` writes a range of days to a Parquet file, one day in memory at a time,
for the warehouse to merge in one statement; `drop_later_copies` keeps the first copy of an event landed on
several days of the range. No Dagster here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from alumni_orchestration.ingest.collector import collector_paused
from alumni_orchestration.ingest.records import RAW_DDL, arrow_schema
from alumni_orchestration.ingest.sendgrid.records import category_json, custom_args_json, epoch_micros
from alumni_orchestration.warehouse import duckdb_settings, parquet_source
from alumni_orchestration.webhook.landing import DayStats, Landing, read_day_batches

SCHEMA = arrow_schema(RAW_DDL["sendgrid_events"])
COLUMNS = SCHEMA.names


@dataclass
class Day:
    """One landing day: its usable events (first occurrence of each sg_event_id), the batch each came
    in, the rejected records and the counts."""

    day: str
    events: list[dict[str, Any]]
    batches: list[str]
    rejected: list[dict[str, Any]]
    stats: DayStats


def read_day(landing: Landing, day: str, seen: set[str] | None = None) -> Day:
    """`read_day_batches` as a Day: the events are not copied."""
    return Day(day, *read_day_batches(landing, day, seen))


def _category(value: list[str] | None, seen: dict[tuple[str, ...], str | None]) -> str | None:
    if value is None:
        return None
    key = tuple(value)
    if key not in seen:
        seen[key] = category_json(value)
    return seen[key]


def events_table(day: Day) -> pa.Table:
    """The day's raw rows, column by column; exactly the rows of `flatten_sendgrid_event`. The events
    are clean (read by `read_day`), so every value already has its column's type."""
    events, partition_date = day.events, dt.date.fromisoformat(day.day)
    categories: dict[tuple[str, ...], str | None] = {}  # a few distinct values, each serialised once
    offsets = [e.get("url_offset") or {} for e in events]
    columns = {
        "sg_event_id": [e["sg_event_id"] for e in events],
        "partition_date": pa.array([partition_date] * len(events), pa.date32()),
        "event": [e["event"] for e in events],
        "event_at": pa.array([epoch_micros(e["timestamp"]) for e in events], pa.int64()).cast(pa.timestamp("us")),
        "email": [e.get("email") for e in events],
        "sg_message_id": [e.get("sg_message_id") for e in events],
        "category": [_category(e.get("category"), categories) for e in events],
        "url": [e.get("url") for e in events],
        "url_offset_index": [o.get("index") for o in offsets],
        "useragent": [e.get("useragent") for e in events],
        "ip": [e.get("ip") for e in events],
        "sg_machine_open": [e["sg_machine_open"] for e in events],
        "bounce_type": [e.get("type") if e["event"] == "bounce" else None for e in events],
        "reason": [e.get("reason") for e in events],
        "status": [e.get("status") for e in events],
        "asm_group_id": [e.get("asm_group_id") for e in events],
        "member_id": [e.get("member_id") for e in events],
        "campaign_id": [e.get("campaign_id") for e in events],
        "cycle": [e.get("cycle") for e in events],
        "arm": [e.get("arm") for e in events],
        "custom_args": [custom_args_json(e) for e in events],
        "batch_name": day.batches,
    }
    return pa.table([pa.array(columns[f.name], f.type) if isinstance(columns[f.name], list) else columns[f.name]
                     for f in SCHEMA], schema=SCHEMA)


@dataclass
class Staged:
    """What staging read: counts over all the days, and the quarantined records with their day."""

    batches: int = 0
    events_read: int = 0
    events_kept: int = 0
    duplicates: int = 0
    quarantined: list[dict[str, Any]] = field(default_factory=list)


def drop_later_copies(days_file: Path, path: Path) -> int:
    """`days_file` (each day's events, in the order read) to `path` without the later copies of an
    sg_event_id landed on several days: the first copy stays, the rows keep their order. Returns how many
    copies were dropped. DuckDB does it under the warehouse's memory cap (spilling if it must), so that
    memory never holds the range's ids (34M at 1,000,000 members: over 4 GB as a Python set)."""
    source = parquet_source(days_file)
    with duckdb.connect(config=duckdb_settings()) as conn:
        # Distinct 64-bit hashes, a quarter of the strings' memory: all distinct means all ids distinct (the
        # usual case: SendGrid re-delivers a failed batch within the day); otherwise the exact pass below.
        total, hashes = conn.execute(f"select count(*), count(distinct hash(sg_event_id)) from {source}").fetchone()
        if total == hashes:
            days_file.replace(path)
            return 0
        # COPY answers the number of rows it wrote.
        kept = conn.execute(f"""copy (select * exclude (file_row_number)
                                      from read_parquet(?, file_row_number = true)
                                      qualify row_number() over (partition by sg_event_id
                                                                 order by file_row_number) = 1
                                      order by file_row_number)
                                 to '{str(path).replace("'", "''")}' (format parquet)""",
                            [str(days_file)]).fetchone()[0]
    days_file.unlink()
    return total - kept


def stage_events(landing: Landing, days: list[str], path: Path) -> Staged:
    """Read the days in order into a Parquet file of raw rows: memory holds one day, not the range; the
    garbage collector is paused meanwhile (see ingest/collector.py). An event landed on several days of the
    range is staged once, under the first; the later copies count as duplicates (`drop_later_copies`)."""
    staged = Staged()
    days_file = path.with_name(f"{path.stem}.days{path.suffix}")
    with collector_paused(), pq.ParquetWriter(days_file, SCHEMA) as writer:
        for name in days:
            day = read_day(landing, name)
            staged.batches += day.stats.batches
            staged.events_read += day.stats.events_read
            staged.events_kept += day.stats.events_kept
            staged.duplicates += day.stats.duplicates
            staged.quarantined += [{**q, "scope": "row", "partition_key": name} for q in day.rejected]
            if day.events:
                writer.write_table(events_table(day))
    later = drop_later_copies(days_file, path)
    staged.events_kept -= later
    staged.duplicates += later
    return staged
