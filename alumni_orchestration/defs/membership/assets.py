"""Membership snapshots: raw.members, raw.dues_payments, ... from the membership database."""

from datetime import timedelta

import dagster as dg

from alumni_orchestration.defs.membership.resources import MembershipDatabaseResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.ingest.membership import LOAD_ORDER, load_membership_snapshot
from alumni_orchestration.ingest.membership_quality import (
    night_to_night,
    profile_membership,
    quality_table,
    with_vanished_reasons,
)
from alumni_orchestration.mapping import configured_mapping, mapping_reader
from alumni_orchestration.warehouse import QUARANTINE_TABLE, RAW_SCHEMA, WAREHOUSE_POOL, ensure_raw_schema

SNAPSHOT_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=36), warn_window=timedelta(hours=26)
)

DESCRIPTIONS = {
    "members": "One row per member of the membership database, typed; of rows sharing a member_id the latest "
               "updated_at is kept; duplicates by email quarantined. Each materialization carries the membership "
               "data-quality metrics (quality/...): completeness, duplicate emails, quarantine, night-to-night change.",
    "dues_payments": "Dues (cotisations) recorded in the membership database: transfers, cards, cheques, cash.",
    "groups": "Professional groups, regional groups and clubs.",
    "group_memberships": "Who belongs to which group, with role and dates.",
    "general_assemblies": "General assemblies and their voting windows.",
    "assembly_votes": "General-assembly votes cast by members.",
    "volunteer_roles": "Volunteer roles: mentors, organisers, board members, group leaders.",
}


def _membership_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            key=dg.AssetKey([RAW_SCHEMA, table]),
            group_name="sources",
            kinds={"sql", "duckdb"},
            description=DESCRIPTIONS[table],
            freshness_policy=SNAPSHOT_FRESHNESS,
            metadata={"dagster/table_name": f"{RAW_SCHEMA}.{table}"},
            skippable=False,
        )
        for table in LOAD_ORDER
    ]


def _conservation_checks() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            name="rows_conserved",
            asset=spec.key,
            description="Rows read from the source = rows loaded + rows quarantined.",
            blocking=True,
        )
        for spec in _membership_specs()
    ]


@dg.multi_asset(
    name="membership_snapshot",
    specs=_membership_specs(),
    check_specs=_conservation_checks(),
    pool=WAREHOUSE_POOL,
    description="Snapshot of the membership database, loaded in one transaction: all tables or none.",
)
def membership_snapshot(
    context: dg.AssetExecutionContext,
    membership_db: MembershipDatabaseResource,
    warehouse: WarehouseResource,
):
    mapping = configured_mapping()  # ALUMNI_MEMBERSHIP_MAPPING; validated before anything is read
    engine = membership_db.engine()
    try:
        with warehouse.write() as conn:
            ensure_raw_schema(conn)
            read = mapping_reader(mapping, engine) if mapping else None
            loads = load_membership_snapshot(conn, engine, chunk_rows=membership_db.chunk_rows, read=read)
            recount = {
                load.table: (
                    conn.execute(f"select count(*) from {RAW_SCHEMA}.{load.table}").fetchone()[0],
                    conn.execute(
                        f"select count(*) from {QUARANTINE_TABLE} where asset_key = ? and scope = 'row'",
                        [f"raw/{load.table}"],
                    ).fetchone()[0],
                )
                for load in loads
            }
            quality = profile_membership(conn).metrics()
    finally:
        engine.dispose()
    for load in loads:
        key = dg.AssetKey([RAW_SCHEMA, load.table])
        context.log.info(
            f"{load.table}: read {load.rows_read}, loaded {load.rows_loaded}, quarantined {load.rows_quarantined}, "
            f"fields quarantined {load.fields_quarantined}"
        )
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/row_count": load.rows_loaded,
                "rows_read": load.rows_read,
                "rows_quarantined": load.rows_quarantined,
                "fields_quarantined": load.fields_quarantined,
                "quarantined_by_reason": dg.MetadataValue.json(load.quarantined_by_reason),
                "source_dialect": membership_db.dialect(),
            } | (_quality_metadata(context, key, quality) if load.table == "members" else {}),
        )
        loaded, quarantined = recount[load.table]
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name="rows_conserved",
            passed=load.rows_read == loaded + quarantined,
            metadata={"rows_read": load.rows_read, "rows_loaded": loaded, "rows_quarantined": quarantined,
                      "fields_quarantined": load.fields_quarantined},
        )


def latest_quality_metrics(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, float | int] | None:
    """The numeric `quality/...` metadata of the asset's latest materialization: the previous night's while the
    load runs, tonight's once it has run (as the quality checks read it)."""
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    return {k: v.value for k, v in metadata.items()
            if k.startswith("quality/") and isinstance(v.value, (int, float)) and not isinstance(v.value, bool)}


def _quality_metadata(context: dg.AssetExecutionContext, key: dg.AssetKey,
                      quality: dict[str, float | int]) -> dict[str, object]:
    """Tonight's quality numbers (plotted by Dagster over the nights), their change, and a table to read."""
    previous = latest_quality_metrics(context.instance, key)  # tonight's is not yet recorded
    quality = with_vanished_reasons(quality, previous)
    changes = night_to_night(quality, previous)
    return {**quality, **changes,
            "quality/summary": dg.MetadataValue.md(quality_table(quality, previous))}
