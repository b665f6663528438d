"""HelloAsso forms (snapshot) and orders, items and payments (daily partitions, Europe/Paris)."""

import datetime as dt
from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from alumni_orchestration.defs.helloasso.resources import HelloAssoResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.ingest.helloasso.client import (
    MoneyBalance,
    StagedWindow,
    load_staged,
    money_balance,
    outside_window_quarantine,
    stage_orders,
    stage_payments,
    stored_places,
    window_summary,
    without_outside_fields,
)
from alumni_orchestration.ingest.helloasso.records import flatten_helloasso_forms
from alumni_orchestration.ingest.records import RAW_DDL
from alumni_orchestration.lib.loads import (
    conservation_check,
    conservation_spec,
    load_metadata,
    quarantine_frame,
)
from alumni_orchestration.partitions import daily_partitions
from alumni_orchestration.warehouse import (
    RAW_SCHEMA,
    WAREHOUSE_POOL,
    ensure_raw_schema,
    replace_all_rows,
    replace_quarantine,
    replace_quarantine_days,
)

PARIS = ZoneInfo("Europe/Paris")
FORMS = dg.AssetKey([RAW_SCHEMA, "helloasso_forms"])
ORDERS = dg.AssetKey([RAW_SCHEMA, "helloasso_orders"])
ITEMS = dg.AssetKey([RAW_SCHEMA, "helloasso_items"])
PAYMENTS = dg.AssetKey([RAW_SCHEMA, "helloasso_payments"])
OPTIONS = dg.AssetKey([RAW_SCHEMA, "helloasso_item_options"])
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=36), warn_window=timedelta(hours=26)
)


def paris_window(first_day: str, last_day: str) -> tuple[str, str]:
    """[first_day 00:00, last_day + 1 00:00) in Paris time, as HelloAsso's from/to (to is exclusive)."""
    start = dt.datetime.combine(dt.date.fromisoformat(first_day), dt.time(), PARIS)
    end = dt.datetime.combine(dt.date.fromisoformat(last_day) + timedelta(days=1), dt.time(), PARIS)
    return start.isoformat(), end.isoformat()


@dg.asset(
    key=FORMS,
    group_name="sources",
    kinds={"helloasso", "duckdb"},
    pool=WAREHOUSE_POOL,
    description="HelloAsso Event and Membership forms; topic from the #hashtag in the description; an event's city "
    "from its public details.",
    freshness_policy=DAILY_FRESHNESS,
    check_specs=[conservation_spec(FORMS)],
)
def helloasso_forms(
    context: dg.AssetExecutionContext, helloasso: HelloAssoResource, warehouse: WarehouseResource
):
    try:
        with warehouse.read() as conn:
            known = stored_places(conn)
    except FileNotFoundError:  # the first load: no warehouse yet
        known = {}
    client = helloasso.client()
    records = list(client.forms_with_place(known))
    rows, bad = flatten_helloasso_forms(records)
    with warehouse.write() as conn:
        ensure_raw_schema(conn)
        conn.execute("begin transaction")
        replace_all_rows(conn, f"{RAW_SCHEMA}.helloasso_forms", RAW_DDL["helloasso_forms"], rows)
        replace_quarantine(
            conn, "raw/helloasso_forms", "", quarantine_frame(bad).drop(columns="partition_key")
        )
        conn.execute("commit")
        loaded = conn.execute(f"select count(*) from {RAW_SCHEMA}.helloasso_forms").fetchone()[0]
    context.log.info(f"HelloAsso: {len(records)} forms read, {client.details_read} forms' public details read, "
                     f"{client.places_kept} places kept from the last load (form unchanged)")
    yield dg.MaterializeResult(
        metadata={**load_metadata(rows_read=len(records), rows_loaded=loaded, quarantined=bad),
                  "public_details_read": client.details_read, "places_kept_unchanged": client.places_kept}
    )
    yield conservation_check(FORMS, len(records), loaded, len(bad))


@dg.multi_asset(
    name="helloasso_orders_daily",
    specs=[
        dg.AssetSpec(
            ORDERS,
            group_name="sources",
            kinds={"helloasso", "duckdb"},
            freshness_policy=DAILY_FRESHNESS,
            description="HelloAsso orders (events and memberships), by order day.",
        ),
        dg.AssetSpec(
            ITEMS,
            group_name="sources",
            kinds={"helloasso", "duckdb"},
            freshness_policy=DAILY_FRESHNESS,
            description="HelloAsso order items: registrations, memberships, donations; the user may differ from the payer.",
        ),
        dg.AssetSpec(
            OPTIONS,
            group_name="sources",
            kinds={"helloasso", "duckdb"},
            freshness_policy=DAILY_FRESHNESS,
            description="HelloAsso item options: priced extras taken with an item (a dinner, a T-shirt), one row each.",
        ),
        dg.AssetSpec(
            PAYMENTS,
            group_name="sources",
            kinds={"helloasso", "duckdb"},
            freshness_policy=DAILY_FRESHNESS,
            description="HelloAsso payments by payment day, including refunds and offline payments.",
        ),
    ],
    check_specs=[
        conservation_spec(ORDERS),
        conservation_spec(PAYMENTS),
        dg.AssetCheckSpec(
            name="money_conserved",
            asset=ORDERS,
            blocking=True,
            description="For every order of the window: amount.total = its items + their options, in cents.",
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
)
def helloasso_orders_daily(
    context: dg.AssetExecutionContext, helloasso: HelloAssoResource, warehouse: WarehouseResource
):
    first_day, last_day = context.partition_key_range.start, context.partition_key_range.end
    date_from, date_to = paris_window(first_day, last_day)
    client = helloasso.client()
    # Read and flatten without holding the warehouse, a chunk of pages in memory at a time, into Parquet
    # files next to the warehouse; DuckDB then replaces the window's rows from them in a few statements.
    with warehouse.staging_dir(".helloasso-orders-") as tmp:
        staged = StagedWindow(tmp / "orders.parquet", tmp / "items.parquet", tmp / "options.parquet",
                              tmp / "payments.parquet", first_day, last_day)
        orders_read, bad_orders = stage_orders(client.orders(date_from, date_to), staged.orders, staged.items,
                                               staged.options, email_labels=helloasso.email_labels())
        payments_read, bad_payments = stage_payments(client.payments(date_from, date_to), staged.payments)
        summary = window_summary(staged)
        bad_orders = without_outside_fields(bad_orders, first_day, last_day)
        bad_orders += outside_window_quarantine(summary.outside)
        bad_payments += outside_window_quarantine(summary.payments_outside, "helloasso.payments")
        context.log.info(
            f"HelloAsso {first_day}..{last_day}: {orders_read} orders, {payments_read} payments"
        )

        def with_days(bad: list[dict]) -> list[dict]:
            return [{**b, "partition_key": first_day} for b in bad]

        with warehouse.write() as conn:
            ensure_raw_schema(conn)
            conn.execute("begin transaction")
            load_staged(conn, RAW_SCHEMA, staged)
            replace_quarantine_days(
                conn, "raw/helloasso_orders", first_day, last_day, quarantine_frame(with_days(bad_orders))
            )
            replace_quarantine_days(
                conn, "raw/helloasso_payments", first_day, last_day, quarantine_frame(with_days(bad_payments))
            )
            conn.execute("commit")
            counts = {
                name: conn.execute(
                    f"select count(*) from {RAW_SCHEMA}.{name} where partition_date between ? and ?",
                    [first_day, last_day],
                ).fetchone()[0]
                for name in ("helloasso_orders", "helloasso_items", "helloasso_item_options", "helloasso_payments")
            }
            balance = money_balance(conn, RAW_SCHEMA, first_day, last_day)
    orders_quarantined = [b for b in bad_orders if b["scope"] == "row"]
    order_fields = [b for b in bad_orders if b["scope"] == "field" and b["source"] == "helloasso.orders"]
    item_fields = [b for b in bad_orders if b["scope"] == "field" and b["source"] == "helloasso.items"]
    window = f"{first_day} .. {last_day} (Europe/Paris)"
    yield dg.MaterializeResult(
        asset_key=ORDERS,
        metadata=load_metadata(
            rows_read=orders_read,
            rows_loaded=counts["helloasso_orders"],
            quarantined=orders_quarantined,
            window=window,
            last_event_time=summary.last_order_at,
            **field_metadata(order_fields),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=ITEMS,
        metadata=load_metadata(
            rows_read=summary.items_kept, rows_loaded=counts["helloasso_items"], quarantined=[], window=window,
            **field_metadata(item_fields),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=OPTIONS,
        metadata=load_metadata(
            rows_read=summary.options_kept, rows_loaded=counts["helloasso_item_options"], quarantined=[], window=window
        ),
    )
    yield dg.MaterializeResult(
        asset_key=PAYMENTS,
        metadata=load_metadata(
            rows_read=payments_read,
            rows_loaded=counts["helloasso_payments"],
            quarantined=bad_payments,
            window=window,
        ),
    )
    yield conservation_check(ORDERS, orders_read, counts["helloasso_orders"], len(orders_quarantined))
    yield conservation_check(PAYMENTS, payments_read, counts["helloasso_payments"], len(bad_payments))
    yield money_check(balance)


def field_metadata(fields: list[dict]) -> dict:
    """Rows loaded with one field set to NULL, by reason (the field's label, never its value)."""
    reasons = Counter(f"{q['source']}:{q['reason']}" for q in fields)
    return {"fields_quarantined": len(fields),
            "fields_quarantined_by_reason": dg.MetadataValue.json(dict(sorted(reasons.items())))}


def money_check(balance: MoneyBalance) -> dg.AssetCheckResult:
    """Order ids and amounts only: no payer or participant in the metadata."""
    return dg.AssetCheckResult(
        asset_key=ORDERS,
        check_name="money_conserved",
        passed=balance.passed,
        metadata={
            "orders_checked": balance.orders_checked,
            "orders_unbalanced_shown": len(balance.unbalanced),
            "unbalanced_orders": dg.MetadataValue.json(
                [{"order_id": o, "total_cents": t, "items_and_options_cents": p} for o, t, p in balance.unbalanced]
            ),
        },
    )
