"""Eventbrite events and attendees, loaded incrementally with `changed_since`."""

import datetime as dt
from datetime import timedelta

import dagster as dg

from alumni_orchestration.defs.eventbrite.resources import EventbriteResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.ingest.records import (
    RAW_DDL,
    flatten_eventbrite_attendees,
    flatten_eventbrite_events,
)
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
ACTIVE_AFTER_EVENT = timedelta(days=60)  # attendees of older events no longer change


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
    since = (watermark - OVERLAP) if watermark else None
    since_param = since.strftime("%Y-%m-%dT%H:%M:%SZ") if since else None

    raw_events = list(client.events())
    events, bad_events = flatten_eventbrite_events(raw_events)
    raw_attendees = []
    for event in events:
        if since and event["end_at"] and event["end_at"] < since - ACTIVE_AFTER_EVENT:
            continue
        raw_attendees.extend(client.attendees(event["event_id"], changed_since=since_param))
    attendees, bad_attendees = flatten_eventbrite_attendees(raw_attendees)
    window = f"changed_since {since_param}" if since_param else "full history"
    context.log.info(
        f"Eventbrite: {len(raw_events)} events, {len(raw_attendees)} attendee records ({window})"
    )

    partition = since_param or "full"
    with warehouse.write() as conn:
        conn.execute("begin transaction")
        if config.full_refresh or not since:
            conn.execute(f"drop table if exists {RAW_SCHEMA}.eventbrite_attendees")
            conn.execute(
                "delete from raw.quarantine where asset_key in ('raw/eventbrite_events', 'raw/eventbrite_attendees')"
            )
        upsert_rows(conn, f"{RAW_SCHEMA}.eventbrite_events", RAW_DDL["eventbrite_events"], events, "event_id")
        ensure_table(conn, f"{RAW_SCHEMA}.eventbrite_attendees", RAW_DDL["eventbrite_attendees"])
        upsert_rows(
            conn,
            f"{RAW_SCHEMA}.eventbrite_attendees",
            RAW_DDL["eventbrite_attendees"],
            attendees,
            "attendee_id",
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
        loaded_attendees = conn.execute(
            f"select count(*) from {RAW_SCHEMA}.eventbrite_attendees where attendee_id in (select unnest(?))",
            [[a["attendee_id"] for a in attendees]],
        ).fetchone()[0]
        total_attendees = conn.execute(f"select count(*) from {RAW_SCHEMA}.eventbrite_attendees").fetchone()[
            0
        ]
        last_change = conn.execute(
            f"select max(changed_at) from {RAW_SCHEMA}.eventbrite_attendees"
        ).fetchone()[0]

    yield dg.MaterializeResult(
        asset_key=EVENTS,
        metadata=load_metadata(
            rows_read=len(raw_events), rows_loaded=loaded_events, quarantined=bad_events, window="all events"
        ),
    )
    yield dg.MaterializeResult(
        asset_key=ATTENDEES,
        metadata=load_metadata(
            rows_read=len(raw_attendees),
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
        len(raw_attendees),
        loaded_attendees,
        len(bad_attendees),
        duplicates=len(attendees) - len({a["attendee_id"] for a in attendees}),
    )
