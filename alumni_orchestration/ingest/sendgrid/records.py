"""SendGrid Event Webhook events to raw rows. Pure."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

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
