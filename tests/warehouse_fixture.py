"""Builds the raw schema straight from a generated association's files, without HTTP.

For tests of the layers above the sources (dbt, scoring): the same flatteners and membership
validation as the source assets, fed from the files the sandbox would serve.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from alumni_orchestration.ingest.eventbrite.records import (
    flatten_eventbrite_attendees,
    flatten_eventbrite_events,
)
from alumni_orchestration.ingest.helloasso.records import flatten_helloasso_forms, flatten_helloasso_orders
from alumni_orchestration.ingest.membership import load_membership_snapshot
from alumni_orchestration.ingest.records import RAW_DDL
from alumni_orchestration.ingest.sendgrid.records import flatten_sendgrid_event
from alumni_orchestration.warehouse import connect, ensure_raw_schema, replace_all_rows

DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
KNOWN_EVENTS = {"processed", "dropped", "delivered", "deferred", "bounce", "open", "click", "spamreport",
                "unsubscribe", "group_unsubscribe", "group_resubscribe"}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def build_raw_warehouse_from_files(association: Path, warehouse: Path) -> None:
    providers = association / "providers"
    with connect(warehouse) as conn:
        ensure_raw_schema(conn)
        engine = sa.create_engine(f"sqlite:///{association / 'membership.sqlite'}")
        load_membership_snapshot(conn, engine)
        engine.dispose()
        events, _ = flatten_eventbrite_events(_jsonl(providers / "eventbrite/events.jsonl"))
        attendees, _ = flatten_eventbrite_attendees(_jsonl(providers / "eventbrite/attendees.jsonl"))
        forms, _ = flatten_helloasso_forms(_jsonl(providers / "helloasso/forms.jsonl"))
        orders, items, _ = flatten_helloasso_orders(_jsonl(providers / "helloasso/orders.jsonl"))
        payments = [
            {"payment_id": p["id"], "order_id": o["id"], "paid_at": row["order_at"], "partition_date": row["partition_date"],
             "amount_cents": p["amount"], "state": p["state"], "payment_type": p["type"], "payment_means": p["paymentMeans"]}
            for o, row in zip(_jsonl(providers / "helloasso/orders.jsonl"), orders, strict=True) for p in o.get("payments", [])
        ]
        sendgrid, seen = [], set()
        for day_file in sorted((providers / "sendgrid/events").glob("*.jsonl")):
            day = dt.date.fromisoformat(day_file.stem)
            for event in _jsonl(day_file):
                if event.get("event") in KNOWN_EVENTS and event.get("sg_event_id") and event["sg_event_id"] not in seen:
                    seen.add(event["sg_event_id"])
                    sendgrid.append(flatten_sendgrid_event(event, day, day_file.name))
        suppressions = []
        for kind in ("bounces", "blocks", "spam_reports", "unsubscribes", "invalid_emails"):
            for r in json.loads((providers / f"sendgrid/suppressions/{kind}.json").read_text()):
                suppressions.append({"email": r["email"], "kind": kind, "group_id": None, "group_name": None,
                                     "reason": r.get("reason"), "status": r.get("status"),
                                     "created_at": dt.datetime.fromtimestamp(r["created"], dt.UTC).replace(tzinfo=None)})
        for r in json.loads((providers / "sendgrid/asm_suppressions.json").read_text()):
            suppressions.append({"email": r["email"], "kind": "group_unsubscribes", "group_id": r["group_id"],
                                 "group_name": r["group_name"], "reason": None, "status": None,
                                 "created_at": dt.datetime.fromtimestamp(r["created_at"], dt.UTC).replace(tzinfo=None)})
        from alumni_orchestration.defs.sendgrid.assets import SUPPRESSIONS_DDL

        for name, rows in (("eventbrite_events", events), ("eventbrite_attendees", attendees),
                           ("helloasso_forms", forms), ("helloasso_orders", orders), ("helloasso_items", items),
                           ("helloasso_payments", payments), ("sendgrid_events", sendgrid)):
            replace_all_rows(conn, f"raw.{name}", RAW_DDL[name], rows)
        replace_all_rows(conn, "raw.sendgrid_suppressions", SUPPRESSIONS_DDL, suppressions)


def dbt_build(warehouse: Path, target: Path, as_of: str) -> subprocess.CompletedProcess:
    """`dbt build` of the whole project (models, data tests, unit tests) on the warehouse, as of a day."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build", "--project-dir", str(DBT_PROJECT), "--profiles-dir",
         str(DBT_PROJECT), "--target-path", str(target), "--vars", json.dumps({"as_of": as_of})],
        env={**os.environ, "ALUMNI_WAREHOUSE": str(warehouse)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    return result


if __name__ == "__main__":
    import sys

    build_raw_warehouse_from_files(Path(sys.argv[1]), Path(sys.argv[2]))
