"""Eventbrite v3 events and attendees to raw rows, or to quarantine with a reason. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alumni_orchestration.ingest.records import (
    custom_answer,
    parse_timestamp,
    quarantine_record,
    topic_of,
)


def flatten_eventbrite_events(records: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for r in records:
        if not isinstance(r, dict) or not r.get("id"):
            bad.append(quarantine_record("eventbrite.events", None, "missing_id", r))
            continue
        start = parse_timestamp((r.get("start") or {}).get("utc"))
        if start is None:
            bad.append(quarantine_record("eventbrite.events", r["id"], "invalid_date", r))
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
            bad.append(quarantine_record("eventbrite.attendees", None, "missing_id", r))
            continue
        if not r.get("event_id"):
            bad.append(quarantine_record("eventbrite.attendees", r["id"], "missing_event_id", r))
            continue
        changed = parse_timestamp(r.get("changed"))
        created = parse_timestamp(r.get("created"))
        if changed is None or created is None:
            bad.append(quarantine_record("eventbrite.attendees", r["id"], "invalid_date", r))
            continue
        profile = r.get("profile") or {}
        gross = ((r.get("costs") or {}).get("gross")) or {}
        rows.append({
            "attendee_id": str(r["id"]), "event_id": str(r["event_id"]), "order_id": r.get("order_id"),
            "created_at": created, "changed_at": changed, "status": r.get("status"),
            "checked_in": bool(r.get("checked_in")), "cancelled": bool(r.get("cancelled")),
            "refunded": bool(r.get("refunded")), "ticket_class": r.get("ticket_class_name"),
            "first_name": profile.get("first_name"), "last_name": profile.get("last_name"),
            "email": profile.get("email"), "promo": custom_answer(r.get("answers"), "promo"),
            "gross_cents": int(gross.get("value") or 0), "currency": gross.get("currency"),
        })
    return rows, bad
