"""Eventbrite v3 events and attendees to raw rows, or to quarantine with a reason. Pure.

Every field is read by its typed parser (ingest/typed.py): a value that has no single reading
quarantines its one record as `invalid_field_type:<field>`, and the rest of the batch loads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alumni_orchestration.ingest.records import quarantine_record, topic_of
from alumni_orchestration.ingest.typed import (
    FieldError,
    as_bool,
    as_cents,
    as_id,
    as_iso_timestamp,
    as_list,
    as_object,
    as_text,
)

EVENTS = "eventbrite.events"
ATTENDEES = "eventbrite.attendees"
PROMO_QUESTION = "promo"  # the custom question whose answer is the member's class year


def _text_of(record: dict[str, Any], field: str) -> str | None:
    """The `text` of a multipart-text field ({"text", "html"})."""
    return as_text(as_object(record.get(field), field).get("text"), f"{field}.text")


def _venue_place(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """(city, region) from the expanded venue's address; both None when the venue is not known."""
    address = as_object(as_object(record.get("venue"), "venue").get("address"), "venue.address")
    return as_text(address.get("city"), "venue.address.city"), as_text(address.get("region"), "venue.address.region")


def _event_row(r: dict[str, Any], event_id: str) -> dict[str, Any]:
    start = as_object(r.get("start"), "start")
    end = as_object(r.get("end"), "end")
    summary = as_text(r.get("summary"), "summary")
    city, region = _venue_place(r)
    return {
        "event_id": event_id, "name": _text_of(r, "name"), "summary": summary,
        "topic": topic_of(summary, _text_of(r, "description")),
        "start_at": as_iso_timestamp(start.get("utc"), "start.utc", required=True),
        "end_at": as_iso_timestamp(end.get("utc"), "end.utc"),
        "start_local": as_text(start.get("local"), "start.local"), "city": city, "region": region,
        "online_event": as_bool(r.get("online_event"), "online_event", default=False),
        "is_free": as_bool(r.get("is_free"), "is_free"),
        "status": as_text(r.get("status"), "status"), "url": as_text(r.get("url"), "url"),
        "created_at": as_iso_timestamp(r.get("created"), "created"),
        "changed_at": as_iso_timestamp(r.get("changed"), "changed"),
    }


def flatten_eventbrite_events(records: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for r in records:
        if not isinstance(r, dict) or r.get("id") in (None, ""):
            bad.append(quarantine_record(EVENTS, None, "missing_id", r))
            continue
        try:
            rows.append(_event_row(r, as_id(r["id"], "id")))
        except FieldError as error:
            bad.append(quarantine_record(EVENTS, _key(r["id"]), error.reason, r))
    return rows, bad


def _promo(answers: Any) -> str | None:
    """The answer to the class-year question; an unanswered question (no `answer`) is None."""
    for index, answer in enumerate(as_list(answers, "answers")):
        answer = as_object(answer, "answers")
        question = as_text(answer.get("question"), f"answers[{index}].question") or ""
        if PROMO_QUESTION in question.lower():
            value = as_text(answer.get("answer"), f"answers[{index}].answer")
            return value if value else None
    return None


def _gross(r: dict[str, Any]) -> tuple[int | None, str | None]:
    """(gross in cents, currency): `costs.gross` is a money object whose `value` is in minor units."""
    gross = as_object(as_object(r.get("costs"), "costs").get("gross"), "costs.gross")
    return as_cents(gross.get("value"), "costs.gross.value"), as_text(gross.get("currency"), "costs.gross.currency")


def _attendee_row(r: dict[str, Any], attendee_id: str) -> dict[str, Any]:
    profile = as_object(r.get("profile"), "profile")
    gross_cents, currency = _gross(r)
    return {
        "attendee_id": attendee_id, "event_id": as_id(r["event_id"], "event_id"),
        "order_id": as_id(r.get("order_id"), "order_id", required=False),
        "created_at": as_iso_timestamp(r.get("created"), "created", required=True),
        "changed_at": as_iso_timestamp(r.get("changed"), "changed", required=True),
        "status": as_text(r.get("status"), "status"),
        "checked_in": as_bool(r.get("checked_in"), "checked_in", default=False),
        "cancelled": as_bool(r.get("cancelled"), "cancelled", default=False),
        "refunded": as_bool(r.get("refunded"), "refunded", default=False),
        "ticket_class": as_text(r.get("ticket_class_name"), "ticket_class_name"),
        "first_name": as_text(profile.get("first_name"), "profile.first_name"),
        "last_name": as_text(profile.get("last_name"), "profile.last_name"),
        "email": as_text(profile.get("email"), "profile.email"), "promo": _promo(r.get("answers")),
        "gross_cents": gross_cents, "currency": currency,
    }


def flatten_eventbrite_attendees(records: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for r in records:
        if not isinstance(r, dict) or r.get("id") in (None, ""):
            bad.append(quarantine_record(ATTENDEES, None, "missing_id", r))
            continue
        if r.get("event_id") in (None, ""):
            bad.append(quarantine_record(ATTENDEES, _key(r["id"]), "missing_event_id", r))
            continue
        try:
            rows.append(_attendee_row(r, as_id(r["id"], "id")))
        except FieldError as error:
            bad.append(quarantine_record(ATTENDEES, _key(r["id"]), error.reason, r))
    return rows, bad


def _key(value: Any) -> str | None:
    """The record key for the quarantine: the id when it is one, else None (never a list or an object)."""
    try:
        return as_id(value, "id")
    except FieldError:
        return None
