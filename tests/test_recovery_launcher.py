"""The run launcher's worker health check, on real processes, and the recovery settings of every instance
the project ships (the daemon test, tests/test_recovery_daemon.py, runs them end to end)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.launcher import WorkerStatus

from alumni_orchestration.campaigns.ledger import CANCEL_SAFETY
from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
from alumni_orchestration.defs.jobs import MAIN_RETRY_TAGS, WAVE_RETRY_TAGS, alumni_main
from alumni_orchestration.operations.run_launcher import PID_TAG, START_TAG, ProcessRunLauncher, process_start

DEPLOY = Path(__file__).resolve().parents[1] / "alumni_orchestration" / "deploy"
SHIPPED = [DEPLOY / "dagster.yaml", DEPLOY / "demo_instance.yaml"]


def _run_with_worker(instance: dg.DagsterInstance, pid: int | None, start: str | None = None) -> dg.DagsterRun:
    run = instance.create_run_for_job(dg.GraphDefinition(name="noop").to_job(), status=dg.DagsterRunStatus.STARTED)
    if pid is not None:
        instance.add_run_tags(run.run_id, {PID_TAG: str(pid), START_TAG: process_start(pid) if start is None else start})
    return instance.get_run_by_id(run.run_id)


@pytest.fixture
def instance():
    with dg.instance_for_test(overrides=yaml.safe_load((DEPLOY / "demo_instance.yaml").read_text())) as instance:
        yield instance


def test_the_shipped_instances_detect_dead_workers_free_slots_and_retry_crashes(instance) -> None:
    assert isinstance(instance.run_launcher, ProcessRunLauncher)
    assert instance.run_launcher.supports_check_run_worker_health and instance.run_monitoring_enabled
    for path in SHIPPED:
        config = yaml.safe_load(path.read_text())
        assert config["run_launcher"]["class"] == "ProcessRunLauncher", path
        monitoring, retries = config["run_monitoring"], config["run_retries"]
        assert monitoring["enabled"] and monitoring["free_slots_after_run_end_seconds"] > 0, path
        assert monitoring["start_timeout_seconds"] > 0 and monitoring["cancel_timeout_seconds"] > 0, path
        assert retries["enabled"] and not retries["retry_on_asset_or_op_failure"], path
        # Detection, slot freeing and the retry's start fit well inside the ledger's cancel window.
        worst = 2 * monitoring["poll_interval_seconds"] + monitoring["free_slots_after_run_end_seconds"] + 60
        window = EmailSenderResource.model_fields["send_lead_minutes"].default * 60 - CANCEL_SAFETY.total_seconds()
        assert worst < window / 3, path
    assert int(MAIN_RETRY_TAGS["dagster/max_retries"]) > 0 and alumni_main.tags == MAIN_RETRY_TAGS
    assert int(WAVE_RETRY_TAGS["dagster/max_retries"]) > 0 and WAVE_RETRY_TAGS["dagster/retry_strategy"] == "ALL_STEPS"


def test_a_live_worker_is_running_and_a_killed_one_is_failed(instance) -> None:
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        run = _run_with_worker(instance, worker.pid)
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
        worker.send_signal(signal.SIGKILL)
        time.sleep(0.2)  # not reaped yet: a zombie is a dead worker too
        assert process_start(worker.pid) is None
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.FAILED
        worker.wait()
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.FAILED
    finally:
        worker.kill()
        worker.wait()


def test_a_pid_taken_by_another_process_is_not_the_worker(instance) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = _run_with_worker(instance, other.pid, start="1")  # the worker that had this pid started at tick 1
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.FAILED
    finally:
        other.kill()
        other.wait()


def test_a_run_no_launcher_started_is_left_alone(instance) -> None:
    """`dagster asset materialize` and in-process runs have no worker this launcher knows: never fail them."""
    run = _run_with_worker(instance, None)
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
