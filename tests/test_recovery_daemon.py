"""Recovery without a human, on real processes: a code server (`dagster code-server start`), `dagster-daemon
run`, and the instance settings the project ships (deploy/demo_instance.yaml: the ProcessRunLauncher, run
monitoring, run retries; only the poll intervals are shortened here).

A dues wave is launched through the instance, as the sensor daemon launches it, and its run worker's process
group is SIGKILLed at a uniformly random instant of the run. Nobody touches anything afterwards: the daemon
must find the dead worker, fail the run, free its pool slot and launch the retry, which must succeed, with
exactly one message per treated member in the sandbox and none to anyone else."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import requests
import yaml
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import GrpcServerTarget

from alumni_orchestration.campaigns.definitions import campaigns
from alumni_orchestration.defs.campaigns.assets import campaign_partitions
from alumni_orchestration.defs.campaigns.sensors import build_campaign_sensor
from alumni_orchestration.defs.dbt.assets import dbt_daily_models, dbt_models
from alumni_orchestration.defs.operations.schedules import NIGHTLY_SCHEDULE, alumni_nightly
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.operations.run_launcher import PID_TAG
from alumni_orchestration.sandbox.server import SandboxServer
from tests.campaign_fixture import WAVE_AS_OF, WAVE_DAY

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHIPPED_INSTANCE = ROOT / "alumni_orchestration" / "deploy" / "demo_instance.yaml"
POOL = "duckdb_warehouse"
LOCATION = "alumni"
TRIALS = int(os.environ.get("ALUMNI_RECOVERY_TRIALS", "20"))
WAVE_CHUNK = 20  # several requests per wave, so that some kills fall with a chunk in flight
TRIAL_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instance_yaml_for_test() -> str:
    """The shipped demo instance, with the daemon's polls shortened so that a trial takes seconds."""
    config = yaml.safe_load(SHIPPED_INSTANCE.read_text())
    config["run_monitoring"].update(poll_interval_seconds=1, free_slots_after_run_end_seconds=1)
    config["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
                                 "config": {"dequeue_interval_seconds": 1}}
    return yaml.safe_dump(config)


class Stack:
    """The sandbox, a code server and the daemon on one test instance, and the warehouse the runs write."""

    def __init__(self, root: Path, association: Path, base_warehouse: Path) -> None:
        self.root, self.base_warehouse = root, base_warehouse
        self.data = root / "association"
        shutil.copytree(association, self.data, ignore=shutil.ignore_patterns(
            "mail_send.jsonl", "sandbox_state.json", "sent_messages.jsonl"))
        self.warehouse = root / "warehouse.duckdb"
        self.home = root / "dagster"
        self.home.mkdir()
        (self.home / "dagster.yaml").write_text(instance_yaml_for_test())
        self.port = free_port()
        (root / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
            "host": "127.0.0.1", "port": self.port, "location_name": LOCATION}}]}))
        self.processes: list[subprocess.Popen] = []

    def env(self, sandbox_url: str) -> dict[str, str]:
        return {**os.environ, "DAGSTER_HOME": str(self.home),
                # The run-retry daemon's poll (5 s by default), shortened like the instance's polls.
                "DAGSTER_EVENT_LOG_CONSUMER_DAEMON_INTERVAL_SECONDS": "1", "ALUMNI_HOME": str(self.root),
                "ALUMNI_WAREHOUSE": str(self.warehouse), "ALUMNI_SANDBOX_URL": sandbox_url,
                "ALUMNI_SEND_MODE": "sandbox", "SENDGRID_API_KEY": "SG.recovery-test",
                "SENDGRID_HOST": f"{sandbox_url}/sendgrid",
                "MEMBERSHIP_DATABASE_URL": f"sqlite:///{self.data / 'membership.sqlite'}",
                "EVENTBRITE_TOKEN": "sandbox-eventbrite-token", "HELLOASSO_CLIENT_ID": "sandbox-client",
                "HELLOASSO_CLIENT_SECRET": "sandbox-secret"}

    def start(self, sandbox_url: str) -> None:
        env = self.env(sandbox_url)
        logs = self.root / "logs"
        logs.mkdir()
        self.reset_warehouse()
        self.processes.append(subprocess.Popen(
            [str(BIN / "dagster"), "code-server", "start", "-m", "alumni_orchestration.definitions",
             "-h", "127.0.0.1", "-p", str(self.port), "--location-name", LOCATION, "--working-directory", str(ROOT)],
            cwd=ROOT, env=env, start_new_session=True, stdout=open(logs / "code-server.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT))
        self.processes.append(subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(self.root / "workspace.yaml")],
            cwd=ROOT, env=env, start_new_session=True, stdout=open(logs / "daemon.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT))
        self.instance = dg.DagsterInstance.from_config(str(self.home))
        deadline = time.monotonic() + 180
        while True:
            self.workspace = WorkspaceProcessContext(self.instance, GrpcServerTarget(
                host="127.0.0.1", port=self.port, socket=None, location_name=LOCATION))
            if not self.workspace.create_request_context().get_code_location_error(LOCATION):
                break
            self.workspace.__exit__(None, None, None)
            assert time.monotonic() < deadline, (logs / "code-server.log").read_text()[-3000:]
            assert self.processes[0].poll() is None, (logs / "code-server.log").read_text()[-3000:]
            time.sleep(1)

    def stop(self) -> None:
        if hasattr(self, "workspace"):
            self.workspace.__exit__(None, None, None)
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if hasattr(self, "instance"):
            self.instance.dispose()

    def reset_warehouse(self) -> None:
        shutil.copy(self.base_warehouse, self.warehouse)

    def submit(self, job_name: str, tags: dict[str, str], run_config: dict,
               asset_selection: frozenset[dg.AssetKey] | None = None) -> str:
        """Creates the run and submits it to the instance's (queued) run coordinator, as the sensor daemon
        does for a run request: the daemon dequeues it and the shipped run launcher starts its worker."""
        context = self.workspace.create_request_context()
        location = context.get_code_location(LOCATION)
        [repository] = location.get_repositories().values()
        remote_job = location.get_job(JobSubsetSelector(
            location_name=LOCATION, repository_name=repository.name, job_name=job_name, op_selection=None,
            asset_selection=None if asset_selection is None else list(asset_selection)))
        plan = location.get_execution_plan(remote_job, run_config, step_keys_to_execute=None, known_state=None,
                                           instance=self.instance)
        run = self.instance.create_run(
            job_name=job_name, run_id=None, run_config=run_config, resolved_op_selection=None,
            step_keys_to_execute=None, status=dg.DagsterRunStatus.NOT_STARTED, op_selection=None,
            root_run_id=None, parent_run_id=None, tags={**(remote_job.run_tags or {}), **tags},
            job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot, remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(), asset_selection=asset_selection, asset_check_selection=None,
            asset_graph=repository.asset_graph)
        self.instance.submit_run(run.run_id, context)
        return run.run_id

    def run(self, run_id: str) -> dg.DagsterRun:
        return self.instance.get_run_by_id(run_id)

    def wait_for(self, what: str, condition, timeout: float = TRIAL_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; daemon log: "
                             f"{(self.root / 'logs' / 'daemon.log').read_text()[-3000:]}")

    def slots_claimed(self) -> int:
        return len(self.instance.event_log_storage.get_concurrency_info(POOL).claimed_slots)


WAVE_JUMPERS = 200


@pytest.fixture(scope="module")
def scored(scored_association: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the campaign tests' scored association (the run's one, tests/conftest.py). Its own crossings
    make a dues wave of a dozen members; on the last snapshot, 200 unpaid members' propensity jumps from below
    0.45 to 0.9 (as after a model retrain), so that the wave the sensor requests is a real one of over 150
    members."""
    association, shared = scored_association
    warehouse = tmp_path_factory.mktemp("recovery-scored") / "warehouse.duckdb"
    shutil.copy(shared, warehouse)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("""update scoring.member_score_history set dues_propensity = 0.9 where as_of = ? and member_id in (
            select member_id from scoring.member_score_history where as_of = ? and dues_propensity < 0.45
            and not paid_current_cycle order by member_id limit ?)""", [WAVE_AS_OF, WAVE_DAY, WAVE_JUMPERS])
    return association, warehouse


@pytest.fixture(scope="module")
def stack(scored, tmp_path_factory: pytest.TempPathFactory):
    association, warehouse = scored
    stack = Stack(tmp_path_factory.mktemp("recovery"), association, warehouse)
    with SandboxServer(stack.data, port=0) as sandbox:
        stack.sandbox_url = sandbox.base_url
        try:
            stack.start(sandbox.base_url)
            yield stack
        finally:
            stack.stop()


def wave_request(stack: Stack) -> dg.RunRequest:
    """What the dues-reminder sensor requests on the scored warehouse (its tags, run config and partition)."""
    sensor = build_campaign_sensor(campaigns()["dues_reminder"])
    with dg.build_sensor_context(instance=stack.instance, resources={
            "warehouse": WarehouseResource(path=str(stack.warehouse))}) as context:
        result = sensor(context)
    [request] = result if isinstance(result, list) else [result]
    assert isinstance(request, dg.RunRequest), request
    return request


def wave_tags_and_config(stack: Stack, request: dg.RunRequest) -> tuple[dict[str, str], dict]:
    tags = {**request.tags, **campaign_partitions.get_tags_for_partition_key(request.partition_key),
            "dagster/run_key": request.run_key, "dagster/sensor_name": "dues_reminder_sensor"}
    # Smaller chunks than SendGrid's 1,000: more requests, so more kills land with a chunk in flight.
    sender = {"mode": "sandbox", "api_key": "SG.recovery-test", "host": f"{stack.sandbox_url}/sendgrid",
              "organization": "anciens-exemple", "chunk_size": WAVE_CHUNK}
    return tags, {**request.run_config, "resources": {"email_sender": {"config": sender}}}


def wave_outcome(warehouse: Path) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        def ids(sql: str) -> set[int]:
            return {row[0] for row in conn.execute(sql).fetchall()}
        return {
            "treated": ids("select member_id from campaigns.campaign_audience where arm = 'treatment' "
                           "and reason = 'included'"),
            "others": ids("select member_id from campaigns.campaign_audience where arm is distinct from "
                          "'treatment' or reason <> 'included'"),
            "audience": conn.execute("select count(*) from campaigns.campaign_audience").fetchall()[0][0],
            "batches": ids("select batch_id from campaigns.campaign_batches"),
            "statuses": Counter(dict(conn.execute("select status, count(*) from campaigns.campaign_sends "
                                                  "group by status").fetchall())),
        }


def run_wave(stack: Stack, tags: dict, run_config: dict, kill_after: float | None) -> dict:
    """Launches a wave; kills its worker's process group `kill_after` seconds after the worker started (if
    given); waits until the wave (or its automatic retry) has succeeded. Returns what happened, timed."""
    stack.reset_warehouse()
    run_id = stack.submit("campaign_job", tags, run_config)
    pid = int(stack.wait_for("the run worker", lambda: stack.run(run_id).tags.get(PID_TAG)))
    started, started_wall = time.monotonic(), time.time()
    if kill_after is None:
        stack.wait_for("the wave's success", lambda: stack.run(run_id).status == dg.DagsterRunStatus.SUCCESS)
        return {"duration": stack.instance.get_run_stats(run_id).end_time - started_wall}
    time.sleep(max(0.0, started + kill_after - time.monotonic()))
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    killed = time.monotonic()
    if stack.wait_for("the run's end", lambda: stack.run(run_id).is_finished) and \
            stack.run(run_id).status == dg.DagsterRunStatus.SUCCESS:
        return {"killed": False, "duration": stack.instance.get_run_stats(run_id).end_time - started_wall}
    failed = stack.wait_for("the dead run marked failed",
                            lambda: stack.run(run_id).status == dg.DagsterRunStatus.FAILURE and time.monotonic())
    retry_id = stack.wait_for("its automatic retry", lambda: stack.run(run_id).tags.get(AUTO_RETRY_RUN_ID_TAG))
    retry_started = stack.wait_for("the retry's worker", lambda: stack.run(retry_id).tags.get(PID_TAG)
                                   and time.monotonic())
    stack.wait_for("the retry's end", lambda: stack.run(retry_id).is_finished)
    done = time.monotonic()
    retry = stack.run(retry_id)
    return {"killed": True, "run_id": run_id, "retry_status": retry.status, "retry_tags": retry.tags,
            "kill_at": kill_after, "to_failed": failed - killed, "to_retry_started": retry_started - killed,
            "to_recovered": done - killed}


def test_waves_killed_at_random_instants_recover_through_the_daemon_alone(stack: Stack) -> None:
    request = wave_request(stack)
    tags, run_config = wave_tags_and_config(stack, request)
    assert tags["dagster/max_retries"] and tags["dagster/retry_strategy"] == "ALL_STEPS"
    calibration = run_wave(stack, tags, run_config, kill_after=None)["duration"]
    baseline = wave_outcome(stack.warehouse)
    assert baseline["audience"] >= 150 and len(baseline["treated"]) >= 50, baseline["audience"]
    rng = random.Random(20261201)
    trials, sent_batches = [], set()
    for attempt in range(TRIALS + 10):
        if len(trials) == TRIALS:
            break
        kill_after = rng.uniform(0, calibration)
        trial = run_wave(stack, tags, run_config, kill_after)
        if not trial["killed"]:  # the wave ended before the draw: the run's life is shorter than measured
            calibration = min(calibration, trial["duration"])
            continue
        assert trial["retry_status"] == dg.DagsterRunStatus.SUCCESS, (attempt, trial)
        assert trial["retry_tags"].get("dagster/parent_run_id") == trial["run_id"]
        stack.wait_for("the dead run's slot", lambda: stack.slots_claimed() == 0, timeout=30)
        outcome = wave_outcome(stack.warehouse)
        assert outcome["treated"] == baseline["treated"] and outcome["others"] == baseline["others"]
        assert outcome["statuses"]["unknown"] == 0, (attempt, outcome["statuses"])
        assert set(outcome["statuses"]) <= {"scheduled", "held_out"}, (attempt, outcome["statuses"])
        assert outcome["statuses"]["scheduled"] == len(baseline["treated"]), (attempt, outcome["statuses"])
        trials.append({**trial, **outcome})
        sent_batches |= outcome["batches"]
    assert len(trials) == TRIALS, f"only {len(trials)} kills landed inside the run"

    # The sandbox delivers what was scheduled (cancelled batches are not) once its clock passes send_at.
    requests.post(f"{stack.sandbox_url}/sandbox/clock", json={"advance": 2 * 86400}, timeout=10).raise_for_status()
    requests.get(f"{stack.sandbox_url}/sandbox/status", timeout=10).raise_for_status()
    sent = [json.loads(line) for line in (stack.data / "sent_messages.jsonl").read_text().splitlines()]
    for number, trial in enumerate(trials):
        mine = Counter(int(m["custom_args"]["member_id"]) for m in sent if m["batch_id"] in trial["batches"])
        assert dict(mine) == dict.fromkeys(trial["treated"], 1), f"trial {number}"
        assert not set(mine) & trial["others"]
    # Nothing at all to a control or excluded member (alerts go to the digital lead, with no member id).
    reached = {int(m["custom_args"]["member_id"]) for m in sent if "member_id" in (m.get("custom_args") or {})}
    assert reached == baseline["treated"]

    def spread(key: str) -> str:
        values = sorted(t[key] for t in trials)
        return (f"median {statistics.median(values):.1f} s, p90 {values[int(0.9 * (len(values) - 1))]:.1f} s, "
                f"max {values[-1]:.1f} s")
    print(f"\n{len(trials)} kills of a {baseline['audience']}-member wave ({len(baseline['treated'])} treated, "
          f"chunks of {WAVE_CHUNK}; an unkilled wave runs {calibration:.1f} s):\n"
          f"  kill -> dead run failed:   {spread('to_failed')}\n"
          f"  kill -> retry started:     {spread('to_retry_started')}\n"
          f"  kill -> retry succeeded:   {spread('to_recovered')}\n"
          f"  each: {[round(t['to_recovered'], 1) for t in trials]}")


def group_processes(pgid: int, name: str) -> list[int]:
    """The pids of the process group whose command line mentions `name`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            group = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if group == pgid and name in command:
            found.append(int(proc.name))
    return found


def blocked_steps(stack: Stack, run_id: str) -> list[str]:
    return [e.message for e in stack.instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if "blocked by limit for pool" in (e.message or "")]


def test_a_nightly_run_killed_mid_dbt_is_caught_up_without_waiting_for_its_slot(stack: Stack) -> None:
    """The nightly schedule's run of alumni_main (its request, tags and partition range; its dbt steps only,
    to keep the test short), killed while dbt is building: the daemon fails it, frees the `duckdb_warehouse`
    slot the dead run held, and the retry (the catch-up, from the failed step) builds the night without ever
    waiting on the pool."""
    stack.reset_warehouse()
    night = dt.datetime(2026, 11, 22, 2, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with dg.build_schedule_context(instance=stack.instance, scheduled_execution_time=night) as context:
        [request] = alumni_nightly.evaluate_tick(context).run_requests
    tags = {**request.tags, "dagster/schedule_name": NIGHTLY_SCHEDULE, "dagster/run_key": request.run_key}
    dbt_steps = frozenset(dbt_models.keys | dbt_daily_models.keys)
    run_id = stack.submit("alumni_main", tags, {}, asset_selection=dbt_steps)
    pid = int(stack.wait_for("the run worker", lambda: stack.run(run_id).tags.get(PID_TAG)))
    stack.wait_for("dbt building", lambda: group_processes(pid, "dbt build"), timeout=TRIAL_TIMEOUT)
    time.sleep(random.Random(20261122).uniform(0.5, 3.0))
    assert stack.slots_claimed() == 1  # the dbt step holds the warehouse's one slot
    os.killpg(pid, signal.SIGKILL)
    killed = time.monotonic()
    stack.wait_for("the dead run marked failed", lambda: stack.run(run_id).status == dg.DagsterRunStatus.FAILURE)
    retry_id = stack.wait_for("its automatic retry", lambda: stack.run(run_id).tags.get(AUTO_RETRY_RUN_ID_TAG))
    stack.wait_for("the retry's end", lambda: stack.run(retry_id).is_finished, timeout=2 * TRIAL_TIMEOUT)
    retry = stack.run(retry_id)
    assert retry.status == dg.DagsterRunStatus.SUCCESS
    assert retry.tags["dagster/asset_partition_range_start"] == tags["dagster/asset_partition_range_start"]
    assert blocked_steps(stack, retry_id) == []
    assert stack.slots_claimed() == 0
    print(f"\nnightly killed mid-dbt: retry of {retry_id[:8]} succeeded {time.monotonic() - killed:.1f} s after the "
          "kill, never blocked by the pool")
