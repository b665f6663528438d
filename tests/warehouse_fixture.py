"""Builds the raw schema straight from a generated association's files, without HTTP.

For tests of the layers above the sources (dbt, scoring): the records the sandbox would serve go through
the loaders the source assets use (the same flatteners, staging files and SQL), so the raw tables are the
ones a first load of the assets writes; only the HTTP clients are left out.
- membership: `load_membership_snapshot` (the membership asset's load);
- SendGrid events: landed as the webhook receiver lands them, then `stage_events` and the asset's insert;
- SendGrid suppressions: `flatten_suppressions`;
- HelloAsso: `flatten_helloasso_forms`, then `stage_orders`, `stage_payments` and `load_staged` over the
  orders (with their details) and the payments as the API lists them;
- Eventbrite: `flatten_eventbrite_events` and `flatten_to_arrow(flatten_eventbrite_attendees)`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from alumni_orchestration.defs.sendgrid.assets import SUPPRESSIONS_DDL
from alumni_orchestration.ingest.eventbrite.records import (
    flatten_eventbrite_attendees,
    flatten_eventbrite_events,
)
from alumni_orchestration.ingest.helloasso.client import (
    StagedWindow,
    load_staged,
    stage_orders,
    stage_payments,
)
from alumni_orchestration.ingest.helloasso.records import flatten_helloasso_forms
from alumni_orchestration.ingest.membership import load_membership_snapshot
from alumni_orchestration.ingest.records import RAW_DDL, flatten_to_arrow
from alumni_orchestration.ingest.sendgrid.events import stage_events
from alumni_orchestration.ingest.sendgrid.suppressions import GLOBAL_LISTS, flatten_suppressions
from alumni_orchestration.warehouse import (
    RAW_SCHEMA,
    connect,
    ensure_raw_schema,
    ensure_table,
    parquet_source,
    replace_all_rows,
)
from alumni_orchestration.webhook.landing import Landing

DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
WEBHOOK_BATCH = 1000  # SendGrid posts batches of about this size
ALL_DAYS = ("1900-01-01", "2999-12-31")  # the HelloAsso window of a first load: everything


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _land_sendgrid_events(providers: Path, landing: Landing) -> list[str]:
    """The association's webhook history, landed as the receiver lands it (one folder per day)."""
    days = []
    for day_file in sorted((providers / "sendgrid/events").glob("*.jsonl")):
        lines = day_file.read_text().splitlines()
        for start in range(0, len(lines), WEBHOOK_BATCH):
            landing.write_batch(day_file.stem, f"history-{start // WEBHOOK_BATCH:05d}.json",
                                ("[" + ",".join(lines[start:start + WEBHOOK_BATCH]) + "]").encode())
        days.append(day_file.stem)
    return days


def _helloasso_payments(orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The payments listing's records: each payment with its order's summary and payer."""
    return [{**payment, "order": {key: order[key] for key in ("id", "date", "formSlug", "formType")},
             "payer": order["payer"]} for order in orders for payment in order.get("payments", [])]


def build_raw_warehouse_from_files(association: Path, warehouse: Path) -> None:
    providers = association / "providers"
    staging = warehouse.parent / f".{warehouse.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        days = _land_sendgrid_events(providers, Landing(str(staging / "landing")))
        stage_events(Landing(str(staging / "landing")), days, staging / "events.parquet")
        orders = _jsonl(providers / "helloasso/orders.jsonl")
        window = StagedWindow(staging / "orders.parquet", staging / "items.parquet", staging / "options.parquet",
                              staging / "payments.parquet", *ALL_DAYS)
        stage_orders(orders, window.orders, window.items, window.options)
        stage_payments(_helloasso_payments(orders), window.payments)
        with connect(warehouse) as conn:
            ensure_raw_schema(conn)
            engine = sa.create_engine(f"sqlite:///{association / 'membership.sqlite'}")
            load_membership_snapshot(conn, engine)
            engine.dispose()
            events, _ = flatten_eventbrite_events(_jsonl(providers / "eventbrite/events.jsonl"))
            attendees, _, _ = flatten_to_arrow(_jsonl(providers / "eventbrite/attendees.jsonl"),
                                               flatten_eventbrite_attendees, RAW_DDL["eventbrite_attendees"])
            forms, _ = flatten_helloasso_forms(_jsonl(providers / "helloasso/forms.jsonl"))
            lists = {kind: json.loads((providers / f"sendgrid/suppressions/{kind}.json").read_text())
                     for kind in GLOBAL_LISTS}
            suppressions, _ = flatten_suppressions(
                lists, json.loads((providers / "sendgrid/asm_suppressions.json").read_text()))
            replace_all_rows(conn, f"{RAW_SCHEMA}.eventbrite_events", RAW_DDL["eventbrite_events"], events)
            ensure_table(conn, f"{RAW_SCHEMA}.eventbrite_attendees", RAW_DDL["eventbrite_attendees"])
            # A rebuild replaces every row, as a reload of the whole history would (the privacy tests reload).
            conn.execute(f"delete from {RAW_SCHEMA}.eventbrite_attendees")
            conn.register("new_attendees", attendees)
            conn.execute(f"insert into {RAW_SCHEMA}.eventbrite_attendees by name select * from new_attendees")
            conn.unregister("new_attendees")
            replace_all_rows(conn, f"{RAW_SCHEMA}.helloasso_forms", RAW_DDL["helloasso_forms"], forms)
            load_staged(conn, RAW_SCHEMA, window)
            ensure_table(conn, f"{RAW_SCHEMA}.sendgrid_events", RAW_DDL["sendgrid_events"])
            conn.execute(f"delete from {RAW_SCHEMA}.sendgrid_events")
            conn.execute(f"insert into {RAW_SCHEMA}.sendgrid_events by name "
                         f"select * from {parquet_source(staging / 'events.parquet')}")
            replace_all_rows(conn, f"{RAW_SCHEMA}.sendgrid_suppressions", SUPPRESSIONS_DDL, suppressions)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def dbt_build(warehouse: Path, target: Path, as_of: str) -> subprocess.CompletedProcess:
    """`dbt build` of the whole project (models, data tests, unit tests) on the warehouse, as of a day."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build", "--project-dir", str(DBT_PROJECT), "--profiles-dir",
         str(DBT_PROJECT), "--target-path", str(target), "--vars", json.dumps({"as_of": as_of})],
        env={**os.environ, "ALUMNI_WAREHOUSE": str(warehouse)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    return result


if __name__ == "__main__":
    build_raw_warehouse_from_files(Path(sys.argv[1]), Path(sys.argv[2]))
