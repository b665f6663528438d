"""SendGrid Event Webhook events to raw rows. Pure.

`clean_sendgrid_event` reads every stored field of one event with the typed parsers, once, when a
landed batch is read: the row path (`flatten_sendgrid_event`) and the columnar path (`events.events_table`)
then only see clean values. An event with a field that has no single reading is rejected whole, with
the reason naming the field, and the rest of its batch loads.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from alumni_orchestration.ingest import typed
from alumni_orchestration.ingest.typed import FieldError

KNOWN_EVENTS = frozenset({
    "processed", "dropped", "delivered", "deferred", "bounce", "open", "click", "spamreport",
    "unsubscribe", "group_unsubscribe", "group_resubscribe",
})
SENDGRID_STANDARD_FIELDS = {
    "email", "timestamp", "event", "sg_event_id", "sg_message_id", "category", "url", "url_offset", "useragent",
    "ip", "sg_machine_open", "type", "reason", "status", "asm_group_id", "smtp-id", "response", "attempt",
    "tls", "cert_err", "bounce_classification", "marketing_campaign_id", "marketing_campaign_name",
    "sg_template_id", "sg_template_name", "sg_content_type", "pool", "member_id", "campaign_id", "cycle", "arm",
}
# The landing batch an event came in: the reader adds it under this key; it goes to batch_name, not custom_args.
LANDING_BATCH_KEY = "_batch"
# Plausible event times: SendGrid did not exist before 2000; the raw column is a timestamp.
_EVENT_TIME_RANGE = (946_684_800, 4_102_444_800)
_INT32 = (-(2**31), 2**31)
# Stored text fields, read as text (a number is written as text; a list or an object is rejected).
_TEXT_FIELDS = ("email", "sg_message_id", "url", "useragent", "ip", "reason", "status",
                "member_id", "campaign_id", "cycle", "arm")
_TEXT_SET = frozenset(_TEXT_FIELDS)
_EPOCH = dt.datetime(1970, 1, 1)


class RejectedEvent(ValueError):
    """An event that cannot be stored; `reason` is its quarantine reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _utf8(value: str | None, field: str) -> str | None:
    """Text the warehouse can store: a lone surrogate (which `json` lets through) has no UTF-8 reading."""
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise FieldError(field, "not UTF-8 text") from error
    return value


def _text(value: Any, field: str) -> str | None:
    return _utf8(typed.as_text(value, field), field)


def _int32(value: Any, field: str) -> int | None:
    number = typed.as_int(value, field)
    if number is not None and not _INT32[0] <= number < _INT32[1]:
        raise FieldError(field, "out of range")
    return number


def _category(value: Any) -> list[str] | None:
    """A string or a list of strings (SendGrid sends both); numbers read as text; always a list."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    if any(item is None for item in items):
        raise FieldError("category", "a null category")
    return [_text(item, "category") for item in items]


def _url_offset(value: Any) -> dict[str, Any] | None:
    offset = typed.as_object(value, "url_offset")
    if value is None:
        return None
    return {"index": _int32(offset.get("index"), "url_offset.index"), "type": _text(offset.get("type"), "url_offset.type")}


def _timestamp(value: Any) -> int | float:
    """Unix seconds as a number (an integral float becomes an int): the time of the event."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | None):
        raise RejectedEvent("invalid_field_type:timestamp")
    try:
        seconds = typed.as_epoch_seconds(value, "timestamp", required=True)
    except FieldError as error:
        raise RejectedEvent("invalid_timestamp") from error
    number = float(value) if isinstance(value, str) else value
    if seconds is None or not _EVENT_TIME_RANGE[0] <= number < _EVENT_TIME_RANGE[1]:
        raise RejectedEvent("invalid_timestamp")
    return int(number) if float(number).is_integer() else number


def custom_args_json(event: dict[str, Any]) -> str | None:
    """The custom arguments sent with the message (every non-standard key), as sorted JSON."""
    extra = event.keys() - SENDGRID_STANDARD_FIELDS - {LANDING_BATCH_KEY}
    if not extra:  # the usual case: no custom argument beyond the standard ones
        return None
    return json.dumps({key: event[key] for key in extra}, ensure_ascii=False, sort_keys=True)


def _is_clean_text(value: Any) -> bool:
    """Already clean text (the usual case), checked without parsing."""
    if type(value) is not str:
        return False
    try:
        return value.isascii() or bool(value.encode("utf-8"))
    except UnicodeEncodeError:
        return False


def _is_clean_offset(value: Any) -> bool:
    return (type(value) is dict and value.keys() == {"index", "type"}
            and (value["index"] is None or type(value["index"]) is int and _INT32[0] <= value["index"] < _INT32[1])
            and (value["type"] is None or _is_clean_text(value["type"])))


# Each stored field: a check that its value is already clean, and the typed parser for when it is not.
_FIELDS: dict[str, tuple[Callable[[Any], bool], Callable[[Any], Any]]] = {
    **{name: (_is_clean_text, lambda value, name=name: _text(value, name)) for name in _TEXT_FIELDS},
    "category": (lambda v: type(v) is list and all(_is_clean_text(c) for c in v), _category),
    "url_offset": (_is_clean_offset, _url_offset),
    "asm_group_id": (lambda v: type(v) is int and _INT32[0] <= v < _INT32[1],
                     lambda value: _int32(value, "asm_group_id")),
    "sg_machine_open": (lambda v: type(v) is bool,
                        lambda value: typed.as_bool(value, "sg_machine_open", default=False)),
}


def _event_id(value: Any) -> str:
    if _missing(value):
        raise RejectedEvent("missing_sg_event_id")
    if _is_clean_text(value) and value == value.strip():
        return value
    return _utf8(typed.as_id(value, "sg_event_id"), "sg_event_id")


def _kind(value: Any) -> str:
    kind = value if type(value) is str else _text(value, "event")
    if kind not in KNOWN_EVENTS:
        raise RejectedEvent("unknown_event_type")
    return kind


def clean_sendgrid_event(event: Any) -> dict[str, Any]:
    """The event with each stored field at its typed value, or `RejectedEvent` with the reason.

    Idempotent: a clean event cleans to itself. Values that are already clean are only checked, not
    parsed: this runs once per event of every load.
    """
    if not isinstance(event, dict):
        raise RejectedEvent("not_an_object")
    try:
        clean = {**event, "sg_event_id": _event_id(event.get("sg_event_id"))}
        kind = _kind(event.get("event"))
        timestamp = event.get("timestamp")
        if not (type(timestamp) is int and _EVENT_TIME_RANGE[0] <= timestamp < _EVENT_TIME_RANGE[1]):
            clean["timestamp"] = _timestamp(timestamp)
        for key, value in event.items():
            field = _FIELDS.get(key)
            if field is None or (type(value) is str and key in _TEXT_SET and value.isascii()):
                continue  # not stored, or plain text: the usual cases, decided without a call
            if not field[0](value):
                clean[key] = field[1](value)
        clean.setdefault("sg_machine_open", False)
        if kind == "bounce" and "type" in event:  # "bounce" or "blocked"; stored for bounces only
            clean["type"] = _text(event["type"], "type")
        if event.keys() - SENDGRID_STANDARD_FIELDS - {LANDING_BATCH_KEY}:
            _utf8(custom_args_json(event), "custom_args")
    except FieldError as error:
        raise RejectedEvent(error.reason) from error
    return clean


def epoch_micros(seconds: int | float) -> int:
    """A clean event's timestamp in microseconds, the same way on the row and the columnar path."""
    return seconds * 1_000_000 if isinstance(seconds, int) else round(seconds * 1_000_000)


def category_json(category: list[str] | None) -> str | None:
    return None if category is None else json.dumps(category, ensure_ascii=False)


def flatten_sendgrid_event(event: dict[str, Any], partition_date: dt.date, batch_name: str = "") -> dict[str, Any]:
    """One webhook event to a raw row (raises `RejectedEvent` if it cannot be stored); custom args stay
    as columns or in `custom_args`."""
    e = clean_sendgrid_event(event)
    offset = e.get("url_offset") or {}
    return {
        "sg_event_id": e["sg_event_id"], "partition_date": partition_date, "event": e["event"],
        "event_at": _EPOCH + dt.timedelta(microseconds=epoch_micros(e["timestamp"])),
        "email": e.get("email"), "sg_message_id": e.get("sg_message_id"), "category": category_json(e.get("category")),
        "url": e.get("url"), "url_offset_index": offset.get("index"), "useragent": e.get("useragent"),
        "ip": e.get("ip"), "sg_machine_open": e["sg_machine_open"],
        "bounce_type": e.get("type") if e["event"] == "bounce" else None,
        "reason": e.get("reason"), "status": e.get("status"), "asm_group_id": e.get("asm_group_id"),
        "member_id": e.get("member_id"), "campaign_id": e.get("campaign_id"), "cycle": e.get("cycle"),
        "arm": e.get("arm"), "custom_args": custom_args_json(e), "batch_name": batch_name,
    }
