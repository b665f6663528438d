"""SendGrid: suppressions (snapshot through the API) and Event Webhook events (daily, from the landing)."""

from datetime import timedelta

import dagster as dg
import duckdb

from alumni_orchestration.defs.sendgrid.resources import SendGridResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.ingest.records import RAW_DDL
from alumni_orchestration.ingest.sendgrid.events import stage_events
from alumni_orchestration.ingest.sendgrid.suppressions import GLOBAL_LISTS, flatten_suppressions
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
    ensure_table,
    parquet_source,
    replace_all_rows,
    replace_quarantine,
    replace_quarantine_days,
)
from alumni_orchestration.webhook.landing import Landing

SUPPRESSIONS = dg.AssetKey([RAW_SCHEMA, "sendgrid_suppressions"])
SUPPRESSIONS_DDL = """
    email varchar, kind varchar, group_id integer, group_name varchar, reason varchar, status varchar,
    created_at timestamp"""


@dg.asset(
    key=SUPPRESSIONS,
    group_name="sources",
    kinds={"sendgrid", "duckdb"},
    pool=WAREHOUSE_POOL,
    description="Every address SendGrid will not mail: bounces, blocks, spam reports, invalid addresses, "
    "global and group unsubscribes. Campaign audiences exclude them.",
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30)),
    check_specs=[conservation_spec(SUPPRESSIONS)],
)
def sendgrid_suppressions(
    context: dg.AssetExecutionContext, sendgrid: SendGridResource, warehouse: WarehouseResource
):
    client = sendgrid.suppressions_client()
    lists = {kind: list(client.global_list(kind)) for kind in GLOBAL_LISTS}
    groups = client.group_suppressions()
    rows, bad = flatten_suppressions(lists, groups)
    read = sum(len(v) for v in lists.values()) + len(groups)
    with warehouse.write() as conn:
        ensure_raw_schema(conn)
        conn.execute("begin transaction")
        replace_all_rows(conn, f"{RAW_SCHEMA}.sendgrid_suppressions", SUPPRESSIONS_DDL, rows)
        replace_quarantine(
            conn, "raw/sendgrid_suppressions", "", quarantine_frame(bad).drop(columns="partition_key")
        )
        conn.execute("commit")
        loaded = conn.execute(f"select count(*) from {RAW_SCHEMA}.sendgrid_suppressions").fetchone()[0]
    by_kind = {kind: len(v) for kind, v in lists.items()} | {"group_unsubscribes": len(groups)}
    context.log.info(f"SendGrid suppressions read: {by_kind}")
    yield dg.MaterializeResult(
        metadata=load_metadata(
            rows_read=read, rows_loaded=loaded, quarantined=bad, by_kind=dg.MetadataValue.json(by_kind)
        )
    )
    yield conservation_check(SUPPRESSIONS, read, loaded, len(bad))


EVENTS = dg.AssetKey([RAW_SCHEMA, "sendgrid_events"])
UNIQUE_EVENTS = dg.AssetCheckSpec(
    name="sg_event_id_unique", asset=EVENTS, blocking=True,
    description="Each sg_event_id is stored once across all days: a batch SendGrid re-delivered on "
    "another day must not count its events twice.")


def unique_events_check(conn: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Counted over the whole table, not just the days this run wrote. Counts only: no event ids."""
    rows, ids = conn.execute(f"select count(*), count(distinct sg_event_id) from {RAW_SCHEMA}.sendgrid_events"
                             ).fetchone()
    return dg.AssetCheckResult(asset_key=EVENTS, check_name=UNIQUE_EVENTS.name, passed=rows == ids,
                               metadata={"rows": rows, "distinct_sg_event_ids": ids, "extra_rows": rows - ids})


@dg.asset(
    key=EVENTS,
    group_name="sources",
    kinds={"sendgrid", "duckdb"},
    pool=WAREHOUSE_POOL,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="SendGrid Event Webhook events, by the Europe/Paris day their batch landed; one row per "
    "sg_event_id across all days (an event re-delivered later stays with the day it first landed).",
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30)),
    check_specs=[conservation_spec(EVENTS), UNIQUE_EVENTS],
)
def sendgrid_events(context: dg.AssetExecutionContext, sendgrid: SendGridResource, warehouse: WarehouseResource):
    landing = Landing(sendgrid.webhook_landing)
    days = list(context.partition_keys)
    first_day, last_day = days[0], days[-1]
    # Read and flatten without holding the warehouse, one day in memory at a time, into a Parquet file
    # next to the warehouse; DuckDB then merges it in a few statements.
    with warehouse.staging_dir(".sendgrid-events-") as tmp:
        staged_path = tmp / "events.parquet"
        staged = stage_events(landing, days, staged_path)
        read, duplicates, batches, quarantined = staged.events_read, staged.duplicates, staged.batches, staged.quarantined
        with warehouse.write() as conn:
            ensure_raw_schema(conn)
            conn.execute("begin transaction")
            table = f"{RAW_SCHEMA}.sendgrid_events"
            ensure_table(conn, table, RAW_DDL["sendgrid_events"])
            conn.execute(f"delete from {table} where partition_date between ? and ?", [first_day, last_day])
            conn.execute(f"create or replace temp view new_events as select * from {parquet_source(staged_path)}")
            # An event already loaded under an earlier day stays there; one loaded under a later day moves here.
            earlier = conn.execute(
                f"select count(*) from new_events n join {table} t using (sg_event_id) where t.partition_date < ?",
                [first_day]).fetchone()[0]
            conn.execute(f"delete from {table} where partition_date > ? and sg_event_id in (select sg_event_id from new_events)",
                         [last_day])
            conn.execute(f"""insert into {table} by name select n.* from new_events n
                             where n.sg_event_id not in (select sg_event_id from {table} where partition_date < ?)""",
                         [first_day])
            conn.execute("drop view new_events")
            replace_quarantine_days(conn, "raw/sendgrid_events", first_day, last_day, quarantine_frame(quarantined))
            conn.execute("commit")
            loaded, last_event = conn.execute(
                f"select count(*), max(event_at) from {table} where partition_date between ? and ?",
                [first_day, last_day]).fetchone()
            unique = unique_events_check(conn)
    context.log.info(f"SendGrid events {first_day}..{last_day}: {batches} batches, {read} events read")
    yield dg.MaterializeResult(metadata=load_metadata(
        rows_read=read, rows_loaded=loaded, quarantined=quarantined, window=f"{first_day} .. {last_day} (Europe/Paris)",
        last_event_time=last_event, batches=batches, duplicates_merged=duplicates, already_loaded_earlier=earlier))
    yield conservation_check(EVENTS, read, loaded, len(quarantined), duplicates=duplicates + earlier)
    yield unique
