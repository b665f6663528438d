"""HelloAsso v5 forms, orders (with items) and payments to raw rows, or to quarantine with a reason. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alumni_orchestration.ingest.records import (
    custom_answer,
    paris_date,
    parse_timestamp,
    quarantine_record,
    topic_of,
)


def flatten_helloasso_forms(records: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for r in records:
        if not isinstance(r, dict) or not r.get("formSlug") or not r.get("formType"):
            bad.append(quarantine_record("helloasso.forms", None, "missing_id", r))
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
            bad.append(quarantine_record("helloasso.orders", None, "missing_id", r))
            continue
        order_at = parse_timestamp(r.get("date"))
        if order_at is None:
            bad.append(quarantine_record("helloasso.orders", r["id"], "invalid_date", r))
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
                bad.append(quarantine_record("helloasso.items", None, "missing_id", item))
                continue
            user = item.get("user") or {}
            items.append({
                "item_id": int(item["id"]), "order_id": int(r["id"]), "order_at": order_at, "partition_date": day,
                "form_slug": r.get("formSlug"), "form_type": r.get("formType"), "item_type": item.get("type"),
                "state": item.get("state"), "amount_cents": int(item.get("amount") or 0), "name": item.get("name"),
                "user_first_name": user.get("firstName"), "user_last_name": user.get("lastName"),
                "email": custom_answer(item.get("customFields"), "email", "e-mail", "courriel"),
                "promo": custom_answer(item.get("customFields"), "promo"),
            })
    return orders, items, bad


def flatten_helloasso_payments(records: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for r in records:
        if not isinstance(r, dict) or r.get("id") is None:
            bad.append(quarantine_record("helloasso.payments", None, "missing_id", r))
            continue
        paid_at = parse_timestamp(r.get("date"))
        if paid_at is None:
            bad.append(quarantine_record("helloasso.payments", r["id"], "invalid_date", r))
            continue
        order = r.get("order") or {}
        rows.append({
            "payment_id": int(r["id"]), "order_id": int(order["id"]) if order.get("id") is not None else None,
            "paid_at": paid_at, "partition_date": paris_date(paid_at), "amount_cents": int(r.get("amount") or 0),
            "state": r.get("state"), "payment_type": r.get("type"), "payment_means": r.get("paymentMeans"),
        })
    return rows, bad
