"""Privacy rights wiring: the erasure job (a config form in the UI), the nightly enforcement of past
erasures, the retention asset and the checks that report an erased member coming back.

The erasure is a job of one op rather than an asset: it needs a member id, and an asset without it
would be part of every nightly run. The op reports the two tables it writes, declared here as assets
(`privacy/erased_members`, `privacy/erasure_log`), so that they and their history show in the lineage.
Nothing personal reaches the logs or the metadata: counts by store and table, the erasure id.
"""


import dagster as dg
from pydantic import Field

from alumni_orchestration import settings
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.partitions import run_as_of
from alumni_orchestration.privacy.erase import enforce_erasures, erase_member, erase_members
from alumni_orchestration.privacy.retention import (
    RetentionRule,
    flag_contacts,
    last_contacts,
    plan_retention,
    previous_flags,
    write_flags,
)
from alumni_orchestration.privacy.scan import erased_traces
from alumni_orchestration.privacy.subject import ERASED_MEMBERS, ERASURE_LOG, ensure_privacy_tables
from alumni_orchestration.privacy.warehouse_stores import compact_warehouse
from alumni_orchestration.warehouse import QUARANTINE_TABLE, WAREHOUSE_POOL

GROUP = "privacy"
ERASED = dg.AssetKey(["privacy", "erased_members"])
AUDIT = dg.AssetKey(["privacy", "erasure_log"])
ENFORCEMENT = dg.AssetKey(["privacy", "erasure_enforcement"])
RETENTION = dg.AssetKey(["privacy", "retention_flags"])
MEMBERS = dg.AssetKey(["raw", "members"])
# Enforcement runs last in the nightly run, after the sources, the marts, the scores and the results.
NIGHTLY_OUTPUTS = [dg.AssetKey(["raw", t]) for t in (
    "members", "dues_payments", "group_memberships", "assembly_votes", "volunteer_roles", "sendgrid_events",
    "sendgrid_suppressions", "eventbrite_attendees", "helloasso_orders", "helloasso_items")] + [
    dg.AssetKey(["marts", "member_profile"]), dg.AssetKey(["marts", "member_activity_daily"]),
    dg.AssetKey(["scoring", "member_scores"]), dg.AssetKey(["scoring", "member_score_history"]),
    dg.AssetKey(["campaigns", "campaign_results"])]

privacy_tables = [
    dg.AssetSpec(ERASED, group_name=GROUP, kinds={"duckdb"}, metadata={"dagster/table_name": ERASED_MEMBERS},
                 description="The suppression list of erased members: member id and SHA-256 of each normalised "
                 "email, never the email. Campaign audiences exclude them; the membership load quarantines them."),
    dg.AssetSpec(AUDIT, group_name=GROUP, kinds={"duckdb"}, metadata={"dagster/table_name": ERASURE_LOG},
                 description="One row per erasure: who asked, when, the request reference, and what was removed "
                 "(rows and files by store and table: counts only)."),
]


class ErasureConfig(dg.Config):
    member_id: int = Field(description="the member to erase (raw.members.member_id)")
    requested_by: str = Field(description="who asked: the member, or the officer handling the request")
    request_reference: str = Field(default="", description="the request's ticket or letter reference (no personal data)")


@dg.op(pool=WAREHOUSE_POOL, out={}, description="Erase one member everywhere (privacy/erase.py), record the suppression and audit.")
def erase_member_op(context: dg.OpExecutionContext, config: ErasureConfig, warehouse: WarehouseResource):
    report = erase_member(warehouse.path, settings.alumni_home(), settings.webhook_landing_dir(), config.member_id,
                          requested_by=config.requested_by, reference=config.request_reference or None)
    if not report.member_found:
        context.log.info("Already erased: nothing left to remove.")
        return
    counts = {"rows_erased": report.rows_erased, "rows_anonymised": report.rows_anonymised,
              "files_rewritten": report.files_rewritten, "erasure_id": report.erasure_id}
    context.log.info(f"Erasure {report.erasure_id}: {counts}")
    yield dg.AssetMaterialization(asset_key=ERASED, metadata={"erasure_id": report.erasure_id})
    yield dg.AssetMaterialization(asset_key=AUDIT, metadata={
        **counts, "by_store": dg.MetadataValue.json(report.by_store)})


@dg.job(description="Erase a member (GDPR right to erasure): fill in member_id and requested_by in the launchpad.",
        tags={"alumni/privacy": "erasure"})
def privacy_erasure_job():
    erase_member_op()


@dg.asset(
    key=ENFORCEMENT, group_name=GROUP, kinds={"python", "duckdb"}, deps=NIGHTLY_OUTPUTS, pool=WAREHOUSE_POOL,
    description="Removes again whatever tonight's loads brought back of erased members (matched by member id "
    "and email hash) from every warehouse table; writes no table of its own.",
    check_specs=[dg.AssetCheckSpec("no_erased_member_traces", asset=ENFORCEMENT,
                                   description="No table holds an erased member's id or email.")],
)
def erasure_enforcement(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    with warehouse.write() as conn:
        counts = enforce_erasures(conn)
        traces = erased_traces(conn)
    if counts:
        compact_warehouse(warehouse.path)  # deleted rows leave no bytes behind
    yield dg.MaterializeResult(metadata={"rows_removed_again": sum(counts.values()),
                                         "by_table": dg.MetadataValue.json(dict(counts))})
    yield dg.AssetCheckResult(check_name="no_erased_member_traces", passed=not traces,
                              metadata={"tables": dg.MetadataValue.json(traces)})


@dg.asset_check(asset=MEMBERS, name="no_erased_member_in_source", blocking=False,
                description="The membership database no longer holds erased members (they are quarantined as "
                "erased_member while it does: remove them at the source).")
def no_erased_member_in_source(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.read() as conn:
        count = conn.execute(f"select count(*) from {QUARANTINE_TABLE} where asset_key = 'raw/members' "
                             "and reason = 'erased_member'").fetchone()[0]
    return dg.AssetCheckResult(passed=count == 0, severity=dg.AssetCheckSeverity.WARN,
                               description=f"{count} erased member(s) still in the membership database" if count
                               else "no erased member in the membership database",
                               metadata={"erased_members_in_source": count})


class RetentionConfig(dg.Config):
    years: int = Field(default=3, description="keep a contact this long after their last member-initiated contact")
    grace_days: int = Field(default=30, description="days between the flag and the anonymisation")
    anonymise: bool = Field(default=False, description="anonymise the contacts flagged for the grace period (the "
                            "nightly run only flags; the weekly schedule anonymises)")


@dg.asset(
    key=RETENTION, group_name=GROUP, kinds={"python", "duckdb"}, pool=WAREHOUSE_POOL,
    deps=[MEMBERS, dg.AssetKey(["marts", "member_activity_daily"])],
    metadata={"dagster/table_name": "privacy.retention_flags"},
    description="Contacts without a member-initiated contact (click, payment, event attended, vote, profile "
    "update; not an open) for `years`; flagged for `grace_days`, then anonymised unless a current member.",
)
def retention_flags(context: dg.AssetExecutionContext, config: RetentionConfig, warehouse: WarehouseResource):
    rule = RetentionRule(years=config.years, grace_days=config.grace_days)
    as_of = run_as_of(context)
    with warehouse.write() as conn:
        ensure_privacy_tables(conn)
        contacts = last_contacts(conn, rule, as_of)
        plan = plan_retention(flag_contacts(contacts, rule, as_of), previous_flags(conn), rule, as_of)
    anonymised = plan.to_anonymise if config.anonymise else []
    if anonymised:
        erase_members(warehouse.path, settings.alumni_home(), settings.webhook_landing_dir(), anonymised,
                      requested_by="retention", reference=f"retention {config.years}y as of {as_of}")
    with warehouse.write() as conn:
        write_flags(conn, plan.flags, anonymised)
    return dg.MaterializeResult(metadata={
        "as_of": str(as_of), "cutoff": str(rule.cutoff(as_of)), "contacts": len(contacts),
        "flagged": len(plan.flags), "newly_flagged": plan.newly_flagged, "no_longer_flagged": plan.no_longer_flagged,
        "anonymised": len(anonymised), "due_but_current_members": plan.exempt_current,
        "dagster/row_count": len(plan.flags) - len(anonymised)})


privacy_retention_job = dg.define_asset_job("privacy_retention_job", selection=[RETENTION],
                                            description="Flag (and after the grace period anonymise) stale contacts.")
privacy_retention_schedule = dg.ScheduleDefinition(
    job=privacy_retention_job, cron_schedule="0 4 * * 1", execution_timezone=settings.PARIS_TZ,
    run_config=dg.RunConfig(ops={"privacy__retention_flags": RetentionConfig(anonymise=True)}),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly, Monday 04:00 Paris. Stopped by default: anonymising is a decision.")


@dg.definitions
def privacy_defs() -> dg.Definitions:
    return dg.Definitions(assets=[*privacy_tables, erasure_enforcement, retention_flags],
                          asset_checks=[no_erased_member_in_source], jobs=[privacy_erasure_job, privacy_retention_job],
                          schedules=[privacy_retention_schedule])
