"""Provider records to typed raw rows, or to quarantine with a reason. Pure functions.

Each `flatten_*` takes the records as the API returned them and gives back (rows, quarantined):
rows are dicts matching the raw table's DDL; quarantined are dicts for raw.quarantine.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

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


def _quarantine(source: str, key: Any, reason: str, record: Any) -> dict[str, Any]:
    return {"source": source, "record_key": None if key is None else str(key), "reason": reason,
            "scope": "row", "payload": payload_json(record if isinstance(record, dict) else {"value": record})}


def _answer(answers: Iterable[dict[str, Any]] | None, *names: str) -> str | None:
    for answer in answers or []:
        label = str(answer.get("question") or answer.get("name") or "").lower()
        if any(name in label for name in names):
            value = answer.get("answer")
            return None if value in (None, "") else str(value)
    return None


def flatten_eventbrite_events(records: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for r in records:
        if not isinstance(r, dict) or not r.get("id"):
            bad.append(_quarantine("eventbrite.events", None, "missing_id", r))
            continue
        start = parse_timestamp((r.get("start") or {}).get("utc"))
        if start is None:
            bad.append(_quarantine("eventbrite.events", r["id"], "invalid_date", r))
            continue
        address = ((r.get("venue") or {}).get("address")) or {}
        rows.append({
            "event_id": str(r["id"]), "name": (r.get("name") or {}).get("text"), "summary": r.get("summary"),
            "topic": topic_of(r.get("summary"), (r.get("description") or {}).get("text")),
            "start_at": start, "end_at": parse_timestamp((r.get("end") or {}).get("utc")),
            "start_local": (r.get("start") or {}).get("local"), "city": address.get("city"),
            "region": address.get("region"), "online_event": bool(r.get("online_event")),
            "is_free": bool(r.get("is_free")), "status": r.get("status"), "url": r.get("url"),
            "created_at": parse_timestamp(r.get("created")), "changed_at": parse_timestamp(r.get("changed")),
        })
    return rows, bad


def flatten_eventbrite_attendees(records: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for r in records:
        if not isinstance(r, dict) or not r.get("id"):
            bad.append(_quarantine("eventbrite.attendees", None, "missing_id", r))
            continue
        if not r.get("event_id"):
            bad.append(_quarantine("eventbrite.attendees", r["id"], "missing_event_id", r))
            continue
        changed = parse_timestamp(r.get("changed"))
        created = parse_timestamp(r.get("created"))
        if changed is None or created is None:
            bad.append(_quarantine("eventbrite.attendees", r["id"], "invalid_date", r))
            continue
        profile = r.get("profile") or {}
        gross = ((r.get("costs") or {}).get("gross")) or {}
        rows.append({
            "attendee_id": str(r["id"]), "event_id": str(r["event_id"]), "order_id": r.get("order_id"),
            "created_at": created, "changed_at": changed, "status": r.get("status"),
            "checked_in": bool(r.get("checked_in")), "cancelled": bool(r.get("cancelled")),
            "refunded": bool(r.get("refunded")), "ticket_class": r.get("ticket_class_name"),
            "first_name": profile.get("first_name"), "last_name": profile.get("last_name"),
            "email": profile.get("email"), "promo": _answer(r.get("answers"), "promo"),
            "gross_cents": int(gross.get("value") or 0), "currency": gross.get("currency"),
        })
    return rows, bad


def flatten_helloasso_forms(records: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for r in records:
        if not isinstance(r, dict) or not r.get("formSlug") or not r.get("formType"):
            bad.append(_quarantine("helloasso.forms", None, "missing_id", r))
            continue
        meta = r.get("meta") or {}
        rows.append({
            "form_slug": r["formSlug"], "form_type": r["formType"], "title": r.get("title"),
            "description": r.get("description"), "topic": topic_of(r.get("description"), r.get("title")),
            "start_at": parse_timestamp(r.get("startDate")), "end_at": parse_timestamp(r.get("endDate")),
            "city": (r.get("place") or {}).get("city"), "created_at": parse_timestamp(meta.get("createdAt")),
            "updated_at": parse_timestamp(meta.get("updatedAt")),
        })
    return rows, bad


def flatten_helloasso_orders(records: Iterable[Any]) -> tuple[list[dict], list[dict], list[dict]]:
    """Orders (with details) to (orders, items, quarantined)."""
    orders, items, bad = [], [], []
    for r in records:
        if not isinstance(r, dict) or r.get("id") is None:
            bad.append(_quarantine("helloasso.orders", None, "missing_id", r))
            continue
        order_at = parse_timestamp(r.get("date"))
        if order_at is None:
            bad.append(_quarantine("helloasso.orders", r["id"], "invalid_date", r))
            continue
        payer = r.get("payer") or {}
        day = paris_date(order_at)
        orders.append({
            "order_id": int(r["id"]), "order_at": order_at, "partition_date": day, "form_slug": r.get("formSlug"),
            "form_type": r.get("formType"), "payer_email": payer.get("email"),
            "payer_first_name": payer.get("firstName"), "payer_last_name": payer.get("lastName"),
            "total_cents": int((r.get("amount") or {}).get("total") or 0),
            "updated_at": parse_timestamp((r.get("meta") or {}).get("updatedAt")),
        })
        for item in r.get("items") or []:
            if not isinstance(item, dict) or item.get("id") is None:
                bad.append(_quarantine("helloasso.items", None, "missing_id", item))
                continue
            user = item.get("user") or {}
            items.append({
                "item_id": int(item["id"]), "order_id": int(r["id"]), "order_at": order_at, "partition_date": day,
                "form_slug": r.get("formSlug"), "form_type": r.get("formType"), "item_type": item.get("type"),
                "state": item.get("state"), "amount_cents": int(item.get("amount") or 0), "name": item.get("name"),
                "user_first_name": user.get("firstName"), "user_last_name": user.get("lastName"),
                "email": _answer(item.get("customFields"), "email", "e-mail", "courriel"),
                "promo": _answer(item.get("customFields"), "promo"),
            })
    return orders, items, bad


def flatten_helloasso_payments(records: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for r in records:
        if not isinstance(r, dict) or r.get("id") is None:
            bad.append(_quarantine("helloasso.payments", None, "missing_id", r))
            continue
        paid_at = parse_timestamp(r.get("date"))
        if paid_at is None:
            bad.append(_quarantine("helloasso.payments", r["id"], "invalid_date", r))
            continue
        order = r.get("order") or {}
        rows.append({
            "payment_id": int(r["id"]), "order_id": int(order["id"]) if order.get("id") is not None else None,
            "paid_at": paid_at, "partition_date": paris_date(paid_at), "amount_cents": int(r.get("amount") or 0),
            "state": r.get("state"), "payment_type": r.get("type"), "payment_means": r.get("paymentMeans"),
        })
    return rows, bad


SENDGRID_STANDARD_FIELDS = {
    "email", "timestamp", "event", "sg_event_id", "sg_message_id", "category", "url", "url_offset", "useragent",
    "ip", "sg_machine_open", "type", "reason", "status", "asm_group_id", "smtp-id", "response", "attempt",
    "tls", "cert_err", "bounce_classification", "marketing_campaign_id", "marketing_campaign_name",
    "sg_template_id", "sg_template_name", "sg_content_type", "pool", "member_id", "campaign_id", "cycle", "arm",
}
# The landing batch an event came in: the reader adds it under this key; it goes to batch_name, not custom_args.
LANDING_BATCH_KEY = "_batch"


def flatten_sendgrid_event(event: dict[str, Any], partition_date: dt.date, batch_name: str = "") -> dict[str, Any]:
    """One validated webhook event to a raw row; custom args stay as columns or in `custom_args`."""
    category = event.get("category")
    offset = event.get("url_offset") if isinstance(event.get("url_offset"), dict) else {}
    custom = {k: v for k, v in event.items() if k not in SENDGRID_STANDARD_FIELDS and k != LANDING_BATCH_KEY}
    group = event.get("asm_group_id")

    def text(key: str) -> str | None:
        value = event.get(key)
        return None if value is None else str(value)

    return {
        "sg_event_id": str(event["sg_event_id"]), "partition_date": partition_date, "event": event["event"],
        "event_at": dt.datetime.fromtimestamp(int(event["timestamp"]), dt.UTC).replace(tzinfo=None),
        "email": event.get("email"), "sg_message_id": event.get("sg_message_id"),
        "category": json.dumps(category if isinstance(category, list) else [category], ensure_ascii=False)
        if category is not None else None,
        "url": event.get("url"), "url_offset_index": offset.get("index"), "useragent": event.get("useragent"),
        "ip": event.get("ip"), "sg_machine_open": bool(event.get("sg_machine_open", False)),
        "bounce_type": event.get("type") if event.get("event") == "bounce" else None,
        "reason": text("reason"), "status": text("status"),
        "asm_group_id": int(group) if isinstance(group, int | str) and str(group).isdigit() else None,
        "member_id": text("member_id"), "campaign_id": text("campaign_id"), "cycle": text("cycle"), "arm": text("arm"),
        "custom_args": json.dumps(custom, ensure_ascii=False, sort_keys=True) if custom else None,
        "batch_name": batch_name,
    }
