"""The member lists (schema `workbench`), one table per use, and the daily record of who is on which list."""

import dagster as dg
import pandas as pd

from alumni_orchestration.campaigns import ledger
from alumni_orchestration.defs.campaigns.assets import SENDS
from alumni_orchestration.defs.campaigns.resources import deployment_send_mode
from alumni_orchestration.defs.scoring.assets import SCORES
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.defs.workbench.reasons import REASONS, REASONS_TABLE
from alumni_orchestration.warehouse import WAREHOUSE_POOL, table_exists
from alumni_orchestration.workbench.lists import FILTERS, LISTS, ListInputs, build_lists, list_counts

SCHEMA = "workbench"
LIST_KEYS = {name: dg.AssetKey([SCHEMA, name]) for name in LISTS}
LIST_HISTORY = dg.AssetKey([SCHEMA, "list_history"])
LIST_HISTORY_TABLE = f"{SCHEMA}.list_history"
DESCRIPTIONS = {
    "ambassadors": "Ambassador list: the members flagged as ambassadors (most engaged, several modes), with name, "
                   "promo, region, scores, consent and the reasons for their scores. For the volunteer coordinator.",
    "volunteer_candidates": "Volunteer candidates list: members very active at events and in emails who hold no "
                            "volunteer role yet, with their reasons. For the volunteer coordinator.",
    "at_risk": "At-risk members list: current members whose engagement is falling, with the 30-day trend and the "
               "reasons. For re-engagement calls and class representatives.",
    "dues_due": "Dues due list (cotisation): current members who have not paid this cycle, by dues propensity, "
                "with reminders already sent and the reasons for the propensity.",
    "interest_audiences": "Interest audiences: per topic, the members who may receive newsletter content, ranked "
                          "by affinity. The newsletter editor picks a topic and gets its audience.",
}
PEOPLE_QUERY = """
select m.member_id, m.first_name, m.last_name, m.email, m.graduation_year, m.region, m.consent_email,
       m.consent_newsletter, m.email_status,
       m.email in (select email from staging.stg_sendgrid__suppressions where email is not null) as suppressed
from staging.stg_membership__members as m
"""
REMINDERS_QUERY = f"""
select member_id, count(*) as reminders_sent, max(as_of) as last_reminder_on
from {ledger.SENDS}
where campaign_id = 'dues_reminder' and arm = 'treatment' and left(cycle, 4) = ?
  and list_contains(cast(? as varchar[]), status)
group by member_id
"""


def read_inputs(warehouse: WarehouseResource) -> tuple[ListInputs, str]:
    with warehouse.read() as conn:
        scores = conn.execute("select * from scoring.member_scores").df()
        as_of = str(pd.Timestamp(scores.as_of.max()).date()) if len(scores) else ""
        reminders = pd.DataFrame(columns=["member_id", "reminders_sent", "last_reminder_on"])
        if table_exists(conn, ledger.SENDS) and as_of:
            reminders = conn.execute(REMINDERS_QUERY, [as_of[:4],
                                                       list(ledger.delivered_statuses(deployment_send_mode()))]).df()
        inputs = ListInputs(
            people=conn.execute(PEOPLE_QUERY).df(),
            scores=scores,
            reasons=conn.execute(f"select * from {REASONS_TABLE}").df(),
            dues=conn.execute("select member_id, paid_current_cycle, current_dues_tier from marts.member_profile").df(),
            interests=conn.execute("select member_id, topic, affinity from marts.member_interests").df(),
            reminders=reminders)
    return inputs, as_of


def history_rows(lists: dict[str, pd.DataFrame], as_of: str) -> pd.DataFrame:
    frames = [pd.DataFrame({"as_of": pd.Timestamp(as_of).date(), "list_name": name,
                            "member_id": frame.member_id.drop_duplicates().to_numpy()})
              for name, frame in lists.items() if name != "interest_audiences"]
    return pd.concat(frames, ignore_index=True)


@dg.multi_asset(
    specs=[*(dg.AssetSpec(key, group_name=SCHEMA, kinds={"python", "duckdb"}, description=DESCRIPTIONS[name],
                          deps=[SCORES, REASONS, dg.AssetKey(["marts", "member_profile"]),
                                dg.AssetKey(["marts", "member_interests"]), SENDS],
                          tags={"workbench": "", "member_list": ""}, metadata={"list_filter": FILTERS[name]})
             for name, key in LIST_KEYS.items()),
           dg.AssetSpec(LIST_HISTORY, group_name=SCHEMA, kinds={"duckdb"}, deps=[SCORES],
                        description="Who was on which list each day (member_id, list_name, as_of): the weekly "
                        "digest's new ambassadors and members turned at-risk.", tags={"workbench": ""})],
    pool=WAREHOUSE_POOL,
    can_subset=False,
)
def member_lists(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    inputs, as_of = read_inputs(warehouse)
    lists = build_lists(inputs)
    with warehouse.write() as conn:
        conn.execute(f"create schema if not exists {SCHEMA}")
        conn.execute("begin transaction")
        for name, frame in lists.items():
            conn.register("new_list", frame)
            conn.execute(f"create or replace table {SCHEMA}.{name} as select * from new_list")
            conn.unregister("new_list")
        conn.execute(f"create table if not exists {LIST_HISTORY_TABLE} (as_of date, list_name varchar, "
                     "member_id integer)")
        if as_of:
            conn.execute(f"delete from {LIST_HISTORY_TABLE} where as_of = ?", [as_of])
            conn.register("new_history", history_rows(lists, as_of))
            conn.execute(f"insert into {LIST_HISTORY_TABLE} by name select * from new_history")
        conn.execute("commit")
    counts = list_counts(lists)
    context.log.info("lists: " + ", ".join(f"{name} {c['rows']}" for name, c in counts.items()))
    for name, key in LIST_KEYS.items():
        extra = {"topics": int(lists[name].topic.nunique())} if name == "interest_audiences" else {}
        yield dg.MaterializeResult(asset_key=key, metadata={
            "dagster/row_count": counts[name]["rows"], "contactable": counts[name]["contactable"],
            "as_of": as_of, "list_filter": FILTERS[name], **extra})
    yield dg.MaterializeResult(asset_key=LIST_HISTORY, metadata={"as_of": as_of, "lists": len(lists) - 1})
