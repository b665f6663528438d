"""The campaign stages as the harness runs them: one tick of every campaign sensor, each from the cursor
the previous tick left, and each wave it requests through `campaign_job`, in process, once per run key."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any


def evaluate_campaign_sensors(instance, warehouse, cursors: dict[str, str | None],
                              as_of: dt.date) -> tuple[dict[str, dict[str, Any]], list]:
    """One tick of every campaign sensor, each from the cursor the previous tick left (none: the latest
    snapshot only). Returns, per sensor, what it requested or why it did not; and the run requests."""
    import dagster as dg

    from alumni_orchestration.campaigns.definitions import campaigns
    from alumni_orchestration.defs.campaigns.sensors import campaign_sensors

    report: dict[str, dict[str, Any]] = {}
    all_requests = []
    for sensor in campaign_sensors:
        campaign_id = sensor.name.removesuffix("_sensor")
        cursor = cursors.get(sensor.name)
        entry: dict[str, Any] = {"campaign": campaign_id, "cursor_before": cursor, "cursor_after": cursor,
                                 "requests": 0, "run_keys": [], "triggered_members": 0, "skip_reason": None,
                                 "note": None, "error": None}
        started = time.perf_counter()
        try:
            with dg.build_sensor_context(instance=instance, sensor_name=sensor.name, cursor=cursor,
                                         resources={"warehouse": warehouse}) as context:
                result = sensor(context)
                entry["cursor_after"] = context.cursor
        except Exception as exc:  # a sensor that raises is this stage's failure, not the harness's
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            entry["error"] = f"{type(exc).__name__}: {first_line}"
            result = []
            print(f"bench: sensor {sensor.name} failed: {entry['error']}", flush=True)
        entry["seconds"] = time.perf_counter() - started
        if isinstance(result, dg.SkipReason):
            entry["skip_reason"] = result.skip_message
            result = []
        requests = list(result or [])
        entry["requests"] = len(requests)
        entry["run_keys"] = [r.run_key for r in requests]
        # The audience the requests imply: the members the campaign's triggers selected (the sensor's own count).
        entry["triggered_members"] = sum(int(r.tags.get("alumni/triggered_members", 0)) for r in requests)
        campaign = campaigns().get(campaign_id)
        if not requests and campaign is not None and campaign.is_sequence and as_of < campaign.season_opens_on(as_of):
            entry["note"] = (f"the {campaign_id} sequence starts when its season opens "
                             f"({campaign.season_opens_on(as_of).isoformat()}); {as_of.isoformat()} is before that")
        report[sensor.name] = entry
        all_requests.extend(requests)
    return report, all_requests


def run_waves(instance, job, wave_requests: list, steps: dict[str, float]) -> list[dict[str, Any]]:
    """Each requested wave through `campaign_job`, in process, as the daemon would launch it (once per run key).
    Adds the waves' step durations into `steps` (summed over waves)."""
    import dagster as dg

    from alumni_orchestration.defs.campaigns.assets import AUDIENCE, SENDS

    waves = []
    for request in wave_requests:
        wave: dict[str, Any] = {"run_key": request.run_key, "campaign": request.tags.get("alumni/campaign"),
                                "as_of": request.tags.get("alumni/as_of"),
                                "triggered": int(request.tags.get("alumni/triggered_members", 0)),
                                "included": None, "treatment": None, "control": None, "sent": 0, "requests": 0,
                                "failed": 0}
        if instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key})):
            waves.append({**wave, "success": True, "skipped": "run key already launched"})
            continue
        started = time.perf_counter()
        result = job.execute_in_process(partition_key=request.partition_key, instance=instance,
                                        tags={**request.tags, "dagster/run_key": request.run_key},
                                        raise_on_error=False)
        wave["seconds"] = time.perf_counter() - started
        for event in result.get_asset_materialization_events():
            metadata = {k: v.value for k, v in event.materialization.metadata.items()}
            if event.materialization.asset_key == AUDIENCE:
                wave.update({k: int(metadata[k]) for k in ("included", "treatment", "control") if k in metadata})
            elif event.materialization.asset_key == SENDS:
                wave.update({k: int(metadata[k]) for k in ("sent", "requests", "failed") if k in metadata})
        for event in result.all_events:  # a failed send step still says what it sent, in its failure's metadata
            failure = event.step_failure_data if event.event_type == dg.DagsterEventType.STEP_FAILURE else None
            if failure and failure.user_failure_data and "sent" in failure.user_failure_data.metadata:
                metadata = failure.user_failure_data.metadata
                wave.update({k: int(metadata[k].value) for k in ("sent", "requests", "failed") if k in metadata})
        for step, seconds in step_seconds(result).items():
            steps[step] = steps.get(step, 0.0) + seconds
        wave["success"] = result.success
        if not result.success:
            print(f"bench: wave {request.run_key} failed: {failure_summary(result)}", flush=True)
        waves.append(wave)
    return waves


def step_seconds(result) -> dict[str, float]:
    """Each step's own duration, from its success or failure event: where a stage's time goes."""
    durations = {}
    for event in result.all_events:
        if event.is_step_success or event.is_step_failure:
            data = event.event_specific_data
            duration = getattr(data, "duration_ms", None)
            if duration is not None:
                durations[event.step_key] = duration / 1000
    return durations


def failure_summary(result) -> str:
    """The failed steps' error messages, first line each: no payloads, so no personal data."""
    import dagster as dg

    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return "; ".join(f"{e.step_key}: {e.step_failure_data.error.message.strip().splitlines()[0][:200]}"
                     for e in failures if e.step_failure_data and e.step_failure_data.error)
