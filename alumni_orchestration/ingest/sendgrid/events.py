"""SendGrid Event Webhook batches from the landing to raw rows, a day at a time and column by column.

`read_day` gives what `webhook.landing.read_day_batches` gives (the same events, quarantine and counts),
without copying each event; `events_table` gives, as one Arrow table, the rows `flatten_sendgrid_event`
gives one by one; `stage_events` writes a range of days to a Parquet file, one day in memory at a time,
for the warehouse to merge in one statement. No Dagster here.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from alumni_orchestration.ingest.records import RAW_DDL, arrow_schema, rows_cast_by_duckdb
from alumni_orchestration.ingest.sendgrid.records import (
    LANDING_BATCH_KEY,
    SENDGRID_STANDARD_FIELDS,
    flatten_sendgrid_event,
)
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


def read_day(landing: Landing, day: str) -> Day:
    """`read_day_batches` as a Day: the events are not copied."""
    return Day(day, *read_day_batches(landing, day))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _custom_args(event: dict[str, Any]) -> str | None:
    extra = event.keys() - SENDGRID_STANDARD_FIELDS - {LANDING_BATCH_KEY}
    if not extra:  # the usual case: no custom argument beyond the standard ones
        return None
    return json.dumps({key: event[key] for key in extra}, ensure_ascii=False, sort_keys=True)


def _category(value: Any, seen: dict[Any, str | None]) -> str | None:
    if value is None:
        return None
    key = value if isinstance(value, str) else tuple(value) if isinstance(value, list) and all(
        isinstance(v, str) for v in value) else None
    if key is not None and key in seen:
        return seen[key]
    text = json.dumps(value if isinstance(value, list) else [value], ensure_ascii=False)
    if key is not None:
        seen[key] = text
    return text


def _group(value: Any) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def events_table(day: Day) -> pa.Table:
    """The day's raw rows, column by column; exactly the rows of `flatten_sendgrid_event`."""
    events, partition_date = day.events, dt.date.fromisoformat(day.day)
    categories: dict[Any, str | None] = {}  # a few distinct values, each serialised once
    try:
        offsets = [e.get("url_offset") for e in events]
        columns = {
            "sg_event_id": [str(e["sg_event_id"]) for e in events],
            "partition_date": pa.array([partition_date] * len(events), pa.date32()),
            "event": [e["event"] for e in events],
            "event_at": pa.array([int(e["timestamp"]) * 1_000_000 for e in events], pa.int64())
            .cast(pa.timestamp("us")),
            "email": [e.get("email") for e in events],
            "sg_message_id": [e.get("sg_message_id") for e in events],
            "category": [_category(e.get("category"), categories) for e in events],
            "url": [e.get("url") for e in events],
            "url_offset_index": [o.get("index") if isinstance(o, dict) else None for o in offsets],
            "useragent": [e.get("useragent") for e in events],
            "ip": [e.get("ip") for e in events],
            "sg_machine_open": [bool(e.get("sg_machine_open", False)) for e in events],
            "bounce_type": [e.get("type") if e.get("event") == "bounce" else None for e in events],
            "reason": [_text(e.get("reason")) for e in events],
            "status": [_text(e.get("status")) for e in events],
            "asm_group_id": [_group(e.get("asm_group_id")) for e in events],
            "member_id": [_text(e.get("member_id")) for e in events],
            "campaign_id": [_text(e.get("campaign_id")) for e in events],
            "cycle": [_text(e.get("cycle")) for e in events],
            "arm": [_text(e.get("arm")) for e in events],
            "custom_args": [_custom_args(e) for e in events],
            "batch_name": day.batches,
        }
        return pa.table([pa.array(columns[f.name], f.type) if isinstance(columns[f.name], list) else columns[f.name]
                         for f in SCHEMA], schema=SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # A field of an unexpected type (e.g. a number as the email): flattened row by row, and cast by
        # the warehouse, as before.
        return day_rows_table(day)


def day_rows_table(day: Day) -> pa.Table:
    """The day's rows flattened one by one and cast by DuckDB into the raw table's types, as the load
    always did: for the rare day whose fields do not fit the column types as they are."""
    partition_date = dt.date.fromisoformat(day.day)
    rows = [flatten_sendgrid_event(e, partition_date, b) for e, b in zip(day.events, day.batches, strict=True)]
    return rows_cast_by_duckdb(rows, RAW_DDL["sendgrid_events"], SCHEMA)


@dataclass
class Staged:
    """What staging read: counts over all the days, and the quarantined records with their day."""

    batches: int = 0
    events_read: int = 0
    events_kept: int = 0
    duplicates: int = 0
    quarantined: list[dict[str, Any]] = field(default_factory=list)


def stage_events(landing: Landing, days: list[str], path: Path) -> Staged:
    """Read the days one at a time into a Parquet file of raw rows: memory holds one day, not the range."""
    staged = Staged()
    with pq.ParquetWriter(path, SCHEMA) as writer:
        for name in days:
            day = read_day(landing, name)
            staged.batches += day.stats.batches
            staged.events_read += day.stats.events_read
            staged.events_kept += day.stats.events_kept
            staged.duplicates += day.stats.duplicates
            staged.quarantined += [{**q, "scope": "row", "partition_key": name} for q in day.rejected]
            if day.events:
                writer.write_table(events_table(day))
    return staged
