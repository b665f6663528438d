"""Provider records to typed raw rows, or to quarantine with a reason. Pure functions.

Each `flatten_*` takes the records as the API returned them and gives back (rows, quarantined):
rows are dicts matching the raw table's DDL; quarantined are dicts for raw.quarantine.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from alumni_orchestration.ingest.collector import collector_paused
from alumni_orchestration.warehouse import payload_json

PARIS = ZoneInfo("Europe/Paris")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_TOPIC = re.compile(r"#([a-z][a-z0-9-]+)")

RAW_DDL: dict[str, str] = {
    "eventbrite_events": """
        event_id varchar primary key, name varchar, summary varchar, topic varchar, start_at timestamp,
        end_at timestamp, start_local varchar, city varchar, region varchar, online_event boolean,
        is_free boolean, status varchar, url varchar, created_at timestamp, changed_at timestamp""",
    "eventbrite_attendees": """
        attendee_id varchar primary key, event_id varchar, order_id varchar, created_at timestamp,
        changed_at timestamp, status varchar, checked_in boolean, cancelled boolean, refunded boolean,
        ticket_class varchar, first_name varchar, last_name varchar, email varchar, promo varchar,
        gross_cents bigint, currency varchar""",
    "helloasso_forms": """
        form_slug varchar, form_type varchar, title varchar, description varchar, topic varchar,
        start_at timestamp, end_at timestamp, city varchar, created_at timestamp, updated_at timestamp""",
    "helloasso_orders": """
        order_id bigint, order_at timestamp, partition_date date, form_slug varchar, form_type varchar,
        payer_email varchar, payer_first_name varchar, payer_last_name varchar, total_cents bigint,
        updated_at timestamp""",
    "helloasso_items": """
        item_id bigint, order_id bigint, order_at timestamp, partition_date date, form_slug varchar,
        form_type varchar, item_type varchar, state varchar, amount_cents bigint, name varchar,
        user_first_name varchar, user_last_name varchar, email varchar, promo varchar""",
    "sendgrid_events": """
        sg_event_id varchar, partition_date date, event varchar, event_at timestamp, email varchar,
        sg_message_id varchar, category varchar, url varchar, url_offset_index integer, useragent varchar,
        ip varchar, sg_machine_open boolean, bounce_type varchar, reason varchar, status varchar,
        asm_group_id integer, member_id varchar, campaign_id varchar, cycle varchar, arm varchar,
        custom_args varchar, batch_name varchar""",
    "helloasso_payments": """
        payment_id bigint, order_id bigint, paid_at timestamp, partition_date date, amount_cents bigint,
        state varchar, payment_type varchar, payment_means varchar""",
}


_ARROW_TYPES = {"varchar": pa.string(), "timestamp": pa.timestamp("us"), "boolean": pa.bool_(),
                "bigint": pa.int64(), "integer": pa.int32(), "date": pa.date32()}


def arrow_schema(ddl: str) -> pa.Schema:
    """The Arrow schema of a raw table's DDL (`name type [primary key], ...`)."""
    return pa.schema([pa.field(column.split()[0], _ARROW_TYPES[column.split()[1].lower()]) for column in ddl.split(",")])


def rows_cast_by_duckdb(rows: list[dict[str, Any]], ddl: str, schema: pa.Schema | None = None) -> pa.Table:
    """Flattened rows cast by DuckDB into a raw table's DDL, as the loads always cast them: for rows whose
    fields do not fit the Arrow types as they are (e.g. a number where text is expected)."""
    import duckdb
    import pandas as pd

    schema = schema or arrow_schema(ddl)
    frame = pd.DataFrame.from_records(rows, columns=schema.names)
    with duckdb.connect() as conn:
        conn.execute(f"create table rows ({ddl})")
        conn.register("frame", frame)
        conn.execute("insert into rows by name select * from frame")
        return conn.sql("select * from rows").to_arrow_table().cast(schema)


def rows_to_arrow(rows: list[dict[str, Any]], ddl: str, schema: pa.Schema | None = None) -> pa.Table:
    """Flattened rows as an Arrow table of a raw table's types; through DuckDB's casts when they do not fit."""
    schema = schema or arrow_schema(ddl)
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return rows_cast_by_duckdb(rows, ddl, schema)


def chunked(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """The records `size` at a time, consumed as they come (e.g. page by page)."""
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


@collector_paused()  # parsing pages allocates millions of objects: see ingest/collector.py
def flatten_to_arrow(records: Iterable[Any], flatten: Callable[[list[Any]], tuple[list[dict], list[dict]]], ddl: str,
                     chunk_size: int = 20_000) -> tuple[pa.Table, list[dict], int]:
    """(rows as one Arrow table, quarantined, records read), flattening `chunk_size` records at a time: the
    records are consumed as they come (e.g. page by page) and only the columnar rows stay in memory."""
    schema = arrow_schema(ddl)
    tables: list[pa.Table] = []
    bad: list[dict] = []
    read = 0
    for chunk in chunked(records, chunk_size):
        read += len(chunk)
        rows, rejected = flatten(chunk)
        bad.extend(rejected)
        if rows:
            tables.append(rows_to_arrow(rows, ddl, schema))
    return (pa.concat_tables(tables) if tables else schema.empty_table()), bad, read


def parse_timestamp(value: Any) -> dt.datetime | None:
    """ISO 8601 (with 'Z', an offset, or up to 7 fractional digits) to naive UTC; None if unusable."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).replace(tzinfo=None)


def paris_date(utc_naive: dt.datetime) -> dt.date:
    return utc_naive.replace(tzinfo=dt.UTC).astimezone(PARIS).date()


def topic_of(*texts: Any) -> str | None:
    for text in texts:
        if isinstance(text, str) and (match := _TOPIC.search(text)):
            return match.group(1)
    return None


def quarantine_record(source: str, key: Any, reason: str, record: Any) -> dict[str, Any]:
    return {"source": source, "record_key": None if key is None else str(key), "reason": reason,
            "scope": "row", "payload": payload_json(record if isinstance(record, dict) else {"value": record})}


def custom_answer(answers: Iterable[dict[str, Any]] | None, *names: str) -> str | None:
    for answer in answers or []:
        label = str(answer.get("question") or answer.get("name") or "").lower()
        if any(name in label for name in names):
            value = answer.get("answer")
            return None if value in (None, "") else str(value)
    return None
