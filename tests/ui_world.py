"""The workbench's browser test world: the test run's scored association, three nightly runs, real sensor ticks.

Run in a child process (`python -m tests.ui_world HOME WAREHOUSE`): the environment (ALUMNI_HOME, DAGSTER_HOME)
must be set before the definitions are imported, and must not leak into the test session. On the instance the
webserver then reads, it

1. scores three consecutive nights: three runs of `alumni_main` over one day each, limited to the score history
   and `member_scores` (the rest of the night is already in the scored warehouse), so that member_scores has
   three materialisations with numeric metadata for its Plots tab;
2. turns the campaign sensors on and runs one iteration of Dagster's own sensor daemon loop
   (`execute_sensor_iteration`) against the code location, in process: each sensor's tick, cursor and skip
   reason are recorded as the daemon records them, and the wave runs it requests are launched (the instance's
   run launcher runs them in this process, as the daemon's worker would in its own);
3. measures the waves: one run of `campaign_window_job`, limited to `campaign_results`, over the waves' window.

The instance is the demo's (deploy/demo_instance.yaml) but for its run coordinator and launcher: runs start at
once and in process, where the demo's daemon would dequeue them and start a worker each.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCATION = "alumni_orchestration.definitions"  # workspace.yaml's python_module: the webserver's location name
NIGHTS = ("2026-11-19", "2026-11-20", "2026-11-21")  # the score-history partitions; each scored the next morning
IN_PROCESS_RUNS = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: dagster._core.launcher.sync_in_memory_run_launcher
  class: SyncInMemoryRunLauncher
"""


def instance_yaml() -> str:
    from alumni_orchestration.harness import demo

    kept, skipping = [], False
    for line in demo.INSTANCE_YAML.splitlines():
        if line.startswith("run_launcher:"):
            skipping = True
            continue
        if skipping and line.startswith(" "):
            continue
        skipping = False
        kept.append(line)
    return "\n".join(kept) + "\n" + IN_PROCESS_RUNS


def environment(home: Path) -> dict[str, str]:
    return {"ALUMNI_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "DAGSTER_TELEMETRY_ENABLED": "false",
            "ALUMNI_PARTITIONS_START": "2026-01-01", "ALUMNI_SEND_MODE": "outbox"}


def build(home: Path, scored_warehouse: Path) -> dict:
    import dagster as dg
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    from alumni_orchestration import settings
    from alumni_orchestration.defs.campaigns.results import RESULTS
    from alumni_orchestration.defs.scoring.assets import HISTORY, SCORES
    from alumni_orchestration.harness.demo import CAMPAIGN_SENSORS, range_tags

    shutil.copy(scored_warehouse, settings.warehouse_path())
    shutil.copytree(scored_warehouse.parent / "models", home / "models", dirs_exist_ok=True)
    report: dict = {"nights": [], "ticks": {}, "waves": []}
    origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(
        executable_path=sys.executable, module_name=LOCATION, working_directory=str(ROOT)), location_name=LOCATION)
    with dg.DagsterInstance.get() as instance, \
            WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace:
        for night in NIGHTS:
            run = submit(workspace, "alumni_main", [HISTORY, SCORES], {"dagster/partition": night})
            assert run.status == dg.DagsterRunStatus.SUCCESS, f"the night of {night}: {run.status}"
            report["nights"].append(run.run_id)

        location = workspace.create_request_context().get_code_location(LOCATION)
        [repository] = location.get_repositories().values()
        sensors = {name: repository.get_sensor(name) for name in CAMPAIGN_SENSORS}
        for sensor in sensors.values():
            instance.start_sensor(sensor)
        list(execute_sensor_iteration(workspace, logging.getLogger("ui_world"), None, None))
        for name, sensor in sensors.items():
            ticks = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
            report["ticks"][name] = [{"status": t.status.value, "runs": list(t.run_ids), "cursor": t.cursor,
                                      "skip": t.skip_reason} for t in ticks]
        waves = instance.get_runs(filters=dg.RunsFilter(job_name="campaign_job"))
        report["waves"] = [{"run_id": run.run_id, "status": run.status.value,
                            "sensor": run.tags.get("dagster/sensor_name")} for run in waves]
        assert waves and all(run.status == dg.DagsterRunStatus.SUCCESS for run in waves), report["waves"]
        first = min(run.tags["alumni/as_of"] for run in waves)
        run = submit(workspace, "campaign_window_job", [RESULTS], range_tags(first, first))
        assert run.status == dg.DagsterRunStatus.SUCCESS, f"campaign_results: {run.status}"
    return report


# One process for the run's steps, as the waves' runs have (sensors.WAVE_RUN_CONFIG): a process per step would
# load the definitions again for each.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def submit(workspace, job_name: str, assets: list, tags: dict[str, str]):
    """The job's run over `assets`, created from the code location and submitted to the instance, as the UI's
    Materialize button does (so the run carries its job's origin: the UI places it on the job's timeline).
    The instance runs it at once, in this process; returns the finished run."""
    import dagster as dg
    from dagster._core.definitions.selector import JobSubsetSelector

    context = workspace.create_request_context()
    location = context.get_code_location(LOCATION)
    [repository] = location.get_repositories().values()
    remote_job = location.get_job(JobSubsetSelector(location_name=LOCATION, repository_name=repository.name,
                                                    job_name=job_name, op_selection=None, asset_selection=assets))
    plan = location.get_execution_plan(remote_job, IN_PROCESS, step_keys_to_execute=None, known_state=None,
                                       instance=workspace.instance)
    run = workspace.instance.create_run(
        job_name=job_name, run_id=None, run_config=IN_PROCESS, resolved_op_selection=None, step_keys_to_execute=None,
        status=dg.DagsterRunStatus.NOT_STARTED, op_selection=None, root_run_id=None, parent_run_id=None,
        tags={**(remote_job.run_tags or {}), **tags}, job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot, parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin(),
        asset_selection=frozenset(assets), asset_check_selection=None, asset_graph=repository.asset_graph)
    workspace.instance.submit_run(run.run_id, context)
    return workspace.instance.get_run_by_id(run.run_id)


def main() -> None:
    home, scored_warehouse, report_file = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    os.environ.update(environment(home))
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text(instance_yaml())
    report_file.write_text(json.dumps(build(home, scored_warehouse), indent=1, default=str))


if __name__ == "__main__":
    main()
