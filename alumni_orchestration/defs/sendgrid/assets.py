"""SendGrid suppressions (snapshot through the API)."""

import datetime as dt
from datetime import timedelta

import dagster as dg

from alumni_orchestration.defs.sendgrid.resources import SendGridResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.ingest.sendgrid_suppressions import GLOBAL_LISTS
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
    payload_json,
    replace_all_rows,
    replace_quarantine,
)

SUPPRESSIONS = dg.AssetKey([RAW_SCHEMA, "sendgrid_suppressions"])
SUPPRESSIONS_DDL = """
    email varchar, kind varchar, group_id integer, group_name varchar, reason varchar, status varchar,
    created_at timestamp"""


def flatten_suppressions(lists: dict[str, list], groups: list) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for kind, records in [*lists.items(), ("group_unsubscribes", groups)]:
        for r in records:
            email = r.get("email") if isinstance(r, dict) else None
            created = r.get("created", r.get("created_at")) if isinstance(r, dict) else None
            if not email:
                bad.append(
                    {
                        "source": f"sendgrid.suppressions.{kind}",
                        "record_key": None,
                        "reason": "missing_email",
                        "scope": "row",
                        "payload": payload_json(r if isinstance(r, dict) else {"value": r}),
                    }
                )
                continue
            rows.append(
                {
                    "email": email,
                    "kind": kind,
                    "group_id": r.get("group_id"),
                    "group_name": r.get("group_name"),
                    "reason": r.get("reason"),
                    "status": r.get("status"),
                    "created_at": dt.datetime.fromtimestamp(int(created), dt.UTC).replace(tzinfo=None)
                    if isinstance(created, int | float)
                    else None,
                }
            )
    return rows, bad


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
