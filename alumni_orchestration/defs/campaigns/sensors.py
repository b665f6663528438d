"""One sensor per campaign, watching scoring.member_score_history.

Its cursor is the last snapshot (`as_of`) it has looked at. For each newer snapshot it computes
the members the campaign's triggers select against the previous one and, if there are any,
requests the wave's run with run_key "<campaign>:<as_of>": Dagster never launches two runs with
one run key, so re-evaluating a tick requests nothing twice. Sending happens in the run, never here.
"""


import datetime as dt

import dagster as dg

from alumni_orchestration.campaigns.definitions import Campaign, campaigns
from alumni_orchestration.campaigns.waves import wave_candidates
from alumni_orchestration.defs.campaigns.assets import campaign_job, load_history, load_ledger
from alumni_orchestration.defs.jobs import WAVE_RETRY_TAGS
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.warehouse import WarehouseBusyError, table_exists

# On its first tick a sensor looks at the latest snapshot only: it never replays the past.
MAX_WAVES_PER_TICK = 7
SENSOR_READ_WAIT_SECONDS = 20.0
# A wave's two steps run one after the other in the run worker's own process: if anything of the run is
# killed, the worker is, and the daemon sees a dead worker (and retries) rather than a failed step.
WAVE_RUN_CONFIG = {"execution": {"config": {"in_process": {}}}}


def wave_run_key(campaign_id: str, as_of: dt.date) -> str:
    return f"{campaign_id}:{as_of.isoformat()}"


def wave_partition(campaign_id: str, as_of: dt.date) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"campaign": campaign_id, "date": (as_of - dt.timedelta(days=1)).isoformat()})


def snapshots_to_examine(available: list[dt.date], cursor: str | None) -> list[dt.date]:
    if not cursor:
        return available[-1:]
    last = dt.date.fromisoformat(cursor)
    return [d for d in available if d > last][:MAX_WAVES_PER_TICK]


def evaluate(campaign: Campaign, warehouse: WarehouseResource, cursor: str | None):
    """(run requests, skip reasons, new cursor) for one tick."""
    reader = warehouse.model_copy(update={"wait_seconds": SENSOR_READ_WAIT_SECONDS})
    requests, skipped = [], []
    with reader.read() as conn:
        if not table_exists(conn, "scoring.member_score_history"):
            return [], ["no score history yet: materialise scoring/member_score_history"], cursor
        available = [row[0] for row in conn.execute(
            "select distinct as_of from scoring.member_score_history order by as_of").fetchall()]
        todo = snapshots_to_examine(available, cursor)
        if not todo:
            return [], [f"no snapshot newer than {cursor}"], cursor
        for as_of in todo:
            history = load_history(conn, as_of, campaign)
            own = load_ledger(conn, campaign.campaign_id, exclude_as_of=as_of)
            found = wave_candidates(campaign, history, own, as_of)
            if found.empty:
                what = "date (birthday, anniversary, joining)" if campaign.kind.date_triggered else "trigger"
                skipped.append(f"{as_of}: no member crossed a {campaign.campaign_id} {what}")
                continue
            requests.append(dg.RunRequest(
                run_key=wave_run_key(campaign.campaign_id, as_of),
                partition_key=wave_partition(campaign.campaign_id, as_of),
                run_config=WAVE_RUN_CONFIG,
                tags={"alumni/campaign": campaign.campaign_id, "alumni/as_of": as_of.isoformat(),
                      "alumni/triggered_members": str(len(found)), **WAVE_RETRY_TAGS}))
    return requests, skipped, todo[-1].isoformat()


def build_campaign_sensor(campaign: Campaign) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{campaign.campaign_id}_sensor",
        job=campaign_job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,  # turning a campaign on is a decision, not a default
        description=f"{campaign.title}: {campaign.description} Requests one wave run per new score snapshot.",
    )
    def _sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
        try:
            requests, skipped, cursor = evaluate(campaign, warehouse, context.cursor)
        except WarehouseBusyError:
            return dg.SkipReason("the warehouse is busy with a writer; the next tick will look again")
        if cursor and cursor != context.cursor:
            context.update_cursor(cursor)
        if not requests:
            return dg.SkipReason("; ".join(skipped))
        for note in skipped:
            context.log.info(note)
        return requests

    return _sensor


campaign_sensors = [build_campaign_sensor(c) for c in campaigns().values()]
