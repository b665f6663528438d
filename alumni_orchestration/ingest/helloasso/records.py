"""HelloAsso v5 forms, orders (with items and their options) and payments to raw rows, or to quarantine with a
reason. Pure.

Every field goes through `ingest.typed`: a value that has no single reading quarantines its record (an order
with its items and options) with `invalid_field_type:<field>`, and the rest of the batch loads. An email that
is not an email is a FIELD quarantine: the row loads with a NULL email.

Money, as documented (api.helloasso.com/v5, models Statistics.OrderItem / ItemOption / OrderAmountModel): an
item's `amount` is "after discount without extra options", each option has its own `amount`, all in cents;
so an order's `amount.total` is the sum of its items and their options. Donations are items (type Donation).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from alumni_orchestration.ingest.records import paris_date, quarantine_record, topic_of
from alumni_orchestration.ingest.typed import (
    FieldError,
    as_bool,
    as_email,
    as_int,
    as_iso_timestamp,
    as_list,
    as_object,
    as_text,
    is_email,
)

# Custom fields whose label is exactly one of these (trimmed, any case) hold the participant's email. HelloAsso's
# field types (Date, TextInput, FreeText, ChoiceList, File, YesNo, Phone, Zipcode, Number) have no email type, so
# the label is the only way to know; a type "Email", should HelloAsso add one, is taken too.
ITEM_EMAIL_LABELS: tuple[str, ...] = ("Email", "E-mail", "Courriel", "Adresse email", "Adresse e-mail")
_EMAIL_FIELD_TYPE = "email"
_BIGINT = (-(2**63), 2**63)


@dataclass
class OrderRows:
    """Orders with details flattened: one row per order, item and item option; quarantined records."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    options: list[dict[str, Any]] = field(default_factory=list)
    bad: list[dict[str, Any]] = field(default_factory=list)


def _bigint(value: Any, name: str, *, required: bool = False) -> int | None:
    """An integer that fits the warehouse's bigint columns."""
    number = as_int(value, name, required=required)
    if number is not None and not _BIGINT[0] <= number < _BIGINT[1]:
        raise FieldError(name, "out of the bigint range")
    return number


def _when(value: Any, name: str) -> tuple[dt.datetime, dt.date]:
    """(UTC instant, Paris day) of a required timestamp."""
    moment = as_iso_timestamp(value, name, required=True)
    try:
        return moment, paris_date(moment)
    except (OverflowError, ValueError) as error:
        raise FieldError(name, "out of range") from error


def _email(value: Any) -> tuple[str | None, bool]:
    """(the email, or None; whether a value was given that is not an email)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, False
    if not is_email(value):
        return None, True
    return as_email(value, "email"), False


def _field_quarantine(source: str, key: Any, reason: str, record: Any, day: dt.date) -> dict[str, Any]:
    # The row's day is not a quarantine column: it lets a load drop the field rows of the days it does not keep.
    return {**quarantine_record(source, key, reason, record), "scope": "field", "row_date": day}


def _custom_fields(item: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(label, type, answer) of each custom field of an item."""
    fields = []
    for entry in as_list(item.get("customFields"), "items.customFields"):
        entry = as_object(entry, "items.customFields")
        label = as_text(entry.get("name"), "items.customFields.name") or ""
        kind = as_text(entry.get("type"), "items.customFields.type") or ""
        fields.append((label, kind, entry.get("answer")))
    return fields


def _email_field(fields: list[tuple[str, str, Any]], labels: Sequence[str]) -> tuple[str, Any] | None:
    """(label, answer) of the first custom field that is an email field: of an email type or an exact label."""
    wanted = {label.strip().casefold() for label in labels}
    for label, kind, answer in fields:
        if kind.strip().casefold() == _EMAIL_FIELD_TYPE or label.strip().casefold() in wanted:
            return label or kind, answer
    return None


def _promo(fields: list[tuple[str, str, Any]]) -> str | None:
    for label, _kind, answer in fields:
        if "promo" in label.casefold():
            text = as_text(answer, "items.customFields.answer")
            return text if text else None
    return None


def _option_rows(item: dict[str, Any], base: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for index, option in enumerate(as_list(item.get("options"), "items.options")):
        option = as_object(option, "items.options")
        rows.append({
            **base, "option_index": index,
            "option_id": _bigint(option.get("optionId"), "items.options.optionId"),
            "name": as_text(option.get("name"), "items.options.name"),
            "price_category": as_text(option.get("priceCategory"), "items.options.priceCategory"),
            "is_required": as_bool(option.get("isRequired"), "items.options.isRequired"),
            "amount_cents": _bigint(option.get("amount"), "items.options.amount", required=True),
        })
    return rows


def _flatten_order(r: dict[str, Any], order_id: int, labels: Sequence[str]) -> OrderRows:
    """One order's rows; raises FieldError when any of its fields (or its items' or options') is unusable."""
    order_at, day = _when(r.get("date"), "date")
    payer = as_object(r.get("payer"), "payer")
    payer_email, payer_email_bad = _email(payer.get("email"))
    form = {"form_slug": as_text(r.get("formSlug"), "formSlug"), "form_type": as_text(r.get("formType"), "formType")}
    out = OrderRows()
    out.orders.append({
        "order_id": order_id, "order_at": order_at, "partition_date": day, **form, "payer_email": payer_email,
        "payer_first_name": as_text(payer.get("firstName"), "payer.firstName"),
        "payer_last_name": as_text(payer.get("lastName"), "payer.lastName"),
        "total_cents": _bigint(as_object(r.get("amount"), "amount").get("total"), "amount.total", required=True),
        "updated_at": as_iso_timestamp(as_object(r.get("meta"), "meta").get("updatedAt"), "meta.updatedAt"),
    })
    if payer_email_bad:
        out.bad.append(_field_quarantine("helloasso.orders", order_id, "invalid_email:payer.email", r, day))
    for item in as_list(r.get("items"), "items"):
        item = as_object(item, "items")
        item_id = _bigint(item.get("id"), "items.id", required=True)
        base = {"item_id": item_id, "order_id": order_id, "order_at": order_at, "partition_date": day}
        user = as_object(item.get("user"), "items.user")
        fields = _custom_fields(item)
        email, email_bad, email_field = None, False, _email_field(fields, labels)
        if email_field:
            email, email_bad = _email(email_field[1])
        out.items.append({
            **base, **form, "item_type": as_text(item.get("type"), "items.type"),
            "state": as_text(item.get("state"), "items.state"),
            "amount_cents": _bigint(item.get("amount"), "items.amount", required=True),
            "name": as_text(item.get("name"), "items.name"),
            "user_first_name": as_text(user.get("firstName"), "items.user.firstName"),
            "user_last_name": as_text(user.get("lastName"), "items.user.lastName"),
            "email": email, "promo": _promo(fields),
        })
        out.options += _option_rows(item, base)
        if email_bad:
            out.bad.append(_field_quarantine("helloasso.items", item_id, f"invalid_email:{email_field[0]}", item, day))
    return out


def flatten_helloasso_order_details(records: Iterable[Any],
                                    email_labels: Sequence[str] = ITEM_EMAIL_LABELS) -> OrderRows:
    """Orders (with details) to orders, items, item options and quarantined records. An order is kept whole or
    quarantined whole (row scope); an email that is not one is a field quarantine of its row."""
    out = OrderRows()
    for r in records:
        if not isinstance(r, dict) or r.get("id") is None or r.get("id") == "":
            out.bad.append(quarantine_record("helloasso.orders", None, "missing_id", r))
            continue
        try:
            order_id = _bigint(r["id"], "id", required=True)
            rows = _flatten_order(r, order_id, email_labels)
        except FieldError as error:
            reason = "invalid_date" if error.field == "date" else error.reason
            out.bad.append(quarantine_record("helloasso.orders", r["id"], reason, r))
            continue
        out.orders += rows.orders
        out.items += rows.items
        out.options += rows.options
        out.bad += rows.bad
    return out


def flatten_helloasso_orders(records: Iterable[Any], email_labels: Sequence[str] = ITEM_EMAIL_LABELS,
                             ) -> tuple[list[dict], list[dict], list[dict]]:
    """Orders (with details) to (orders, items, quarantined); the options are in `flatten_helloasso_order_details`."""
    rows = flatten_helloasso_order_details(records, email_labels)
    return rows.orders, rows.items, rows.bad


def flatten_helloasso_payments(records: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for r in records:
        if not isinstance(r, dict) or r.get("id") is None or r.get("id") == "":
            bad.append(quarantine_record("helloasso.payments", None, "missing_id", r))
            continue
        try:
            payment_id = _bigint(r["id"], "id", required=True)
            paid_at, day = _when(r.get("date"), "date")
            rows.append({
                "payment_id": payment_id,
                "order_id": _bigint(as_object(r.get("order"), "order").get("id"), "order.id"),
                "paid_at": paid_at, "partition_date": day, "amount_cents": _bigint(r.get("amount"), "amount"),
                "state": as_text(r.get("state"), "state"), "payment_type": as_text(r.get("type"), "type"),
                "payment_means": as_text(r.get("paymentMeans"), "paymentMeans"),
            })
        except FieldError as error:
            reason = "invalid_date" if error.field == "date" else error.reason
            bad.append(quarantine_record("helloasso.payments", r["id"], reason, r))
    return rows, bad


def flatten_helloasso_forms(records: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for r in records:
        if not isinstance(r, dict) or r.get("formSlug") in (None, "") or r.get("formType") in (None, ""):
            bad.append(quarantine_record("helloasso.forms", None, "missing_id", r))
            continue
        try:
            meta, place = as_object(r.get("meta"), "meta"), as_object(r.get("place"), "place")
            title, description = as_text(r.get("title"), "title"), as_text(r.get("description"), "description")
            rows.append({
                "form_slug": as_text(r["formSlug"], "formSlug"), "form_type": as_text(r["formType"], "formType"),
                "title": title, "description": description, "topic": topic_of(description, title),
                "start_at": as_iso_timestamp(r.get("startDate"), "startDate"),
                "end_at": as_iso_timestamp(r.get("endDate"), "endDate"),
                "city": as_text(place.get("city"), "place.city"),
                "created_at": as_iso_timestamp(meta.get("createdAt"), "meta.createdAt"),
                "updated_at": as_iso_timestamp(meta.get("updatedAt"), "meta.updatedAt"),
            })
        except FieldError as error:
            bad.append(quarantine_record("helloasso.forms", r.get("formSlug"), error.reason, r))
    return rows, bad
