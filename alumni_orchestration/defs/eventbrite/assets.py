"""Eventbrite events, with the city and region of their venue, and attendees. Attendees come from the
organisation-level listing: in full on a first load or a full refresh, otherwise only those changed since
the last sync (`changed_since`, less an overlap), merged into raw.eventbrite_attendees by attendee_id."""

import datetime as dt
from datetime import timedelta

import dagster as dg
import pyarrow as pa

from alumni_orchestration.defs.eventbrite.resources import EventbriteResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.ingest.eventbrite.client import changed_since
from alumni_orchestration.ingest.eventbrite.records import (
    flatten_eventbrite_attendees,
    flatten_eventbrite_events,
)
from alumni_orchestration.ingest.records import RAW_DDL, flatten_to_arrow
from alumni_orchestration.lib.loads import (
    conservation_check,
    conservation_spec,
    load_metadata,
    quarantine_frame,
)
from alumni_orchestration.warehouse import (
    RAW_SCHEMA,
    WAREHOUSE_POOL,
    ensure_raw_schema,
    ensure_table,
    replace_quarantine,
    table_exists,
    upsert_rows,
)

EVENTS = dg.AssetKey([RAW_SCHEMA, "eventbrite_events"])
ATTENDEES = dg.AssetKey([RAW_SCHEMA, "eventbrite_attendees"])
OVERLAP = timedelta(days=1)  # re-read a day before the watermark: late updates are not lost


class EventbriteLoadConfig(dg.Config):
    full_refresh: bool = False


@dg.multi_asset(
    name="eventbrite_sync",
    specs=[
        dg.AssetSpec(
            EVENTS,
            group_name="sources",
            kinds={"eventbrite", "duckdb"},
            description="Eventbrite events of the organisation; topic from the #hashtag in the summary.",
            freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=36)),
        ),
        dg.AssetSpec(
            ATTENDEES,
            group_name="sources",
            kinds={"eventbrite", "duckdb"},
            description="Eventbrite attendees (latest version of each), registrations and check-ins.",
            freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=36)),
        ),
    ],
    check_specs=[conservation_spec(EVENTS), conservation_spec(ATTENDEES)],
    pool=WAREHOUSE_POOL,
)
def eventbrite_sync(
    context: dg.AssetExecutionContext,
    config: EventbriteLoadConfig,
    eventbrite: EventbriteResource,
    warehouse: WarehouseResource,
):
    client = eventbrite.client()
    watermark = None
    with warehouse.write() as conn:  # short read of the watermark; the fetch runs without the lock
        ensure_raw_schema(conn)
        if not config.full_refresh and table_exists(conn, f"{RAW_SCHEMA}.eventbrite_attendees"):
            watermark = conn.execute(
                f"select max(changed_at) from {RAW_SCHEMA}.eventbrite_attendees"
            ).fetchone()[0]
    since_param = changed_since(watermark, OVERLAP, config.full_refresh)

    raw_events = list(client.events())
    events, bad_events = flatten_eventbrite_events(raw_events)
    # One organisation-level listing (only the changes since the last sync, on a nightly run), flattened
    # page by page into a columnar table: the raw records are never all in memory.
    attendees, bad_attendees, attendees_read = flatten_to_arrow(
        client.organization_attendees(changed_since=since_param),
        flatten_eventbrite_attendees,
        RAW_DDL["eventbrite_attendees"],
    )
    attendees = attendees.append_column("listed", pa.array(range(attendees.num_rows), pa.int64()))
    window = f"changed_since {since_param}" if since_param else "full history"
    context.log.info(
        f"Eventbrite: {len(raw_events)} events, {attendees_read} attendee records ({window})"
    )

    partition = since_param or "full"
    table = f"{RAW_SCHEMA}.eventbrite_attendees"
    with warehouse.write() as conn:
        conn.execute("begin transaction")
        if not since_param:
            conn.execute(f"drop table if exists {table}")
            conn.execute(
                "delete from raw.quarantine where asset_key in ('raw/eventbrite_events', 'raw/eventbrite_attendees')"
            )
        upsert_rows(conn, f"{RAW_SCHEMA}.eventbrite_events", RAW_DDL["eventbrite_events"], events, "event_id")
        ensure_table(conn, table, RAW_DDL["eventbrite_attendees"])
        conn.register("new_attendees", attendees)
        # Merge by attendee_id: the version listed last wins.
        conn.execute(f"delete from {table} where attendee_id in (select attendee_id from new_attendees)")
        conn.execute(
            f"""insert into {table} by name
                select * exclude (listed) from new_attendees
                qualify row_number() over (partition by attendee_id order by listed desc) = 1"""
        )
        replace_quarantine(
            conn,
            "raw/eventbrite_events",
            partition,
            quarantine_frame(bad_events).drop(columns="partition_key"),
        )
        replace_quarantine(
            conn,
            "raw/eventbrite_attendees",
            partition,
            quarantine_frame(bad_attendees).drop(columns="partition_key"),
        )
        conn.execute("commit")
        loaded_events = conn.execute(
            f"select count(*) from {RAW_SCHEMA}.eventbrite_events where event_id in (select unnest(?))",
            [[e["event_id"] for e in events]],
        ).fetchone()[0]
        loaded_attendees, total_attendees, last_change = conn.execute(
            f"""select count(*) filter (where attendee_id in (select attendee_id from new_attendees)),
                       count(*), max(changed_at)
                from {table}"""
        ).fetchall()[0]
        distinct_attendees = conn.execute("select count(distinct attendee_id) from new_attendees").fetchall()[0][0]
        conn.unregister("new_attendees")

    yield dg.MaterializeResult(
        asset_key=EVENTS,
        metadata=load_metadata(
            rows_read=len(raw_events), rows_loaded=loaded_events, quarantined=bad_events, window="all events",
            # events the listing gave without their venue, whose venue was then fetched (None: unknown to Eventbrite)
            venues_fetched=len(client.venues),
            venues_unknown=sum(venue is None for venue in client.venues.values()),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=ATTENDEES,
        metadata=load_metadata(
            rows_read=attendees_read,
            rows_loaded=loaded_attendees,
            quarantined=bad_attendees,
            window=window,
            last_event_time=last_change,
            total_rows=total_attendees,
            fetched_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        ),
    )
    yield conservation_check(
        EVENTS,
        len(raw_events),
        loaded_events,
        len(bad_events),
        duplicates=len(events) - len({e["event_id"] for e in events}),
    )
    yield conservation_check(
        ATTENDEES,
        attendees_read,
        loaded_attendees,
        len(bad_attendees),
        duplicates=attendees.num_rows - distinct_attendees,
    )
