"""One pipeline phase, run in the benchmark's child process (environment already set): the three pipeline
stages over its partitions, then the two campaign stages, as the night would run them."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

from alumni_orchestration.harness.bench.measure import file_bytes, peak_rss_bytes
from alumni_orchestration.harness.bench.plan import STAGES, WAVE_MORNING
from alumni_orchestration.harness.sandbox_clock import set_clock_to_morning
from alumni_orchestration.harness.waves import (
    evaluate_campaign_sensors,
    failure_summary,
    run_waves,
    step_seconds,
)


def failure_reason(failed: list[str]) -> str | None:
    return f"stage(s) {', '.join(failed)} failed; see the phase log" if failed else None


def phase_record(first_day: str, last_day: str, stages: dict[str, float], steps: dict[str, float], failed: list[str],
                 campaign_report: dict[str, Any] | None, peak_after: dict[str, int]) -> dict[str, Any]:
    peaks = peak_rss_bytes()
    return {"first_day": first_day, "last_day": last_day, "stages": dict(stages), "steps": dict(steps),
            "total_seconds": sum(stages.values()),
            "pipeline_seconds": sum(stages[s] for s in STAGES if s in stages),
            "success": not failed, "failed_stage": ", ".join(failed) or None, "failed_stages": list(failed),
            "failure": failure_reason(failed), "campaigns": campaign_report,
            "peak_rss_self_bytes": peaks["self"], "peak_rss_children_bytes": peaks["children"],
            "peak_rss_bytes": max(peaks.values()), "peak_rss_self_after_stage_bytes": dict(peak_after),
            "warehouse_bytes": file_bytes(Path(os.environ["ALUMNI_WAREHOUSE"]))}


def run_phase(first_day: str, last_day: str, progress: Path | None = None) -> dict[str, Any]:
    """Run the three pipeline stages over [first_day, last_day], then the two campaign stages, in this
    process (environment already set). Every stage runs even after a failure, so that a scoring failure
    still leaves ingest and dbt measured (the sensors then see the score history as it is)."""
    import dagster as dg

    from alumni_orchestration.definitions import defs

    jobs = [dg.define_asset_job(f"bench_{stage}", selection=dg.AssetSelection.groups(*groups))
            for stage, groups in STAGES.items()]
    definitions = dg.Definitions.merge(defs(), dg.Definitions(jobs=jobs))
    tags = {"dagster/asset_partition_range_start": first_day, "dagster/asset_partition_range_end": last_day}
    as_of = dt.date.fromisoformat(last_day) + dt.timedelta(days=1)  # what the scoring stage computes as of
    stages: dict[str, float] = {}
    steps: dict[str, float] = {}
    peak_after: dict[str, int] = {}  # the process's lifetime peak once each stage is done: which stage set it
    failed: list[str] = []
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.local_temp(tempdir=str(home), overrides={"telemetry": {"enabled": False}}) as instance:
        for stage in STAGES:
            started = time.perf_counter()
            result = definitions.resolve_job_def(f"bench_{stage}").execute_in_process(
                instance=instance, tags=tags, raise_on_error=False)
            stages[stage] = time.perf_counter() - started
            steps.update(step_seconds(result))
            peak_after[stage] = peak_rss_bytes()["self"]
            if not result.success:
                failed.append(stage)
                print(f"bench: stage {stage} failed: {failure_summary(result)}", flush=True)
            if progress:  # what is measured so far survives a phase stopped at its time limit
                progress.write_text(json.dumps(phase_record(first_day, last_day, stages, steps, failed, None,
                                                            peak_after)))

        campaign_seconds, campaign_report, campaign_failed = campaign_stages(
            instance, definitions, home / "bench_sensor_cursors.json", as_of, os.environ["ALUMNI_SANDBOX_URL"], steps,
            peak_after)
        stages.update(campaign_seconds)
        failed += campaign_failed
    return phase_record(first_day, last_day, stages, steps, failed, campaign_report, peak_after)


def campaign_stages(instance, definitions, cursors_path: Path, as_of: dt.date, sandbox_url: str,
                    steps: dict[str, float], peak_after: dict[str, int]) -> tuple[dict[str, float], dict[str, Any], list[str]]:
    """The "sensor" and "send" stages: (seconds per stage, what they requested and sent, the stages that failed).

    The cursors file holds what the previous phase's tick left, as the daemon would keep it between ticks."""
    stages: dict[str, float] = {}
    failed: list[str] = []
    cursors = json.loads(cursors_path.read_text()) if cursors_path.exists() else {}
    started = time.perf_counter()
    sensors, wave_requests = evaluate_campaign_sensors(instance, definitions.resources["warehouse"], cursors, as_of)
    stages["sensor"] = time.perf_counter() - started
    peak_after["sensor"] = peak_rss_bytes()["self"]
    cursors_path.write_text(json.dumps({name: entry["cursor_after"] for name, entry in sensors.items()}))
    steps.update({f"{name} (evaluation)": entry["seconds"] for name, entry in sensors.items()})
    if any(entry["error"] for entry in sensors.values()):
        failed.append("sensor")

    requested = len(wave_requests)
    try:  # untimed: it is the sandbox's own work (it releases the sends now due)
        clock = set_clock_to_morning(sandbox_url, as_of, WAVE_MORNING)
    except OSError as exc:  # requests' errors are OSErrors: without the wave's clock, send nothing
        print(f"bench: could not set the sandbox's clock, no wave sent: {exc}", flush=True)
        clock, wave_requests = None, []
        failed.append("send")
    started = time.perf_counter()
    waves = run_waves(instance, definitions.resolve_job_def("campaign_job"), wave_requests, steps)
    stages["send"] = time.perf_counter() - started
    peak_after["send"] = peak_rss_bytes()["self"]
    if any(not wave["success"] for wave in waves):
        failed.append("send")
    sent = sum(wave["sent"] for wave in waves)
    report = {"as_of": as_of.isoformat(), "sandbox_clock": clock, "sensors": sensors, "waves": waves,
              "run_requests": requested, "messages_sent": sent,
              "messages_per_second": sent / stages["send"] if sent and stages["send"] > 0 else None}
    return stages, report, failed


def serve_bench_sandbox(data: Path, port: int) -> None:
    from alumni_orchestration.sandbox import server

    with server.SandboxServer(data, port=port):
        print(f"bench sandbox on port {port}", flush=True)
        while True:
            time.sleep(3600)
