"""A run launcher for one machine whose dead run workers the daemon detects.

Dagster's DefaultRunLauncher (1.13) starts a run worker as a child of the code server, in the code
server's process group, and offers no worker health check (`supports_check_run_worker_health` is
False). A worker that dies with its code server leaves its run STARTED for good, and the run keeps
its `duckdb_warehouse` pool slot. This launcher starts `dagster api execute_run` in a session of its
own (one process group: killing it takes the worker's dbt and step processes along and spares the code
server), records the worker's pid and start time in the run's tags, and watches it two ways:
- the launching process (the daemon) waits on its child: a worker that ends before its run is failed
  at once, even while the run is still STARTING;
- the run monitor's health check reads the process table: a worker that is gone, a zombie, or whose pid
  now belongs to another process is FAILED (this covers a daemon restarted since the launch).
The run-retry daemon then retries the run, and `free_slots_after_run_end_seconds` gives back its slots.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.launcher.base import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData, serialize_value

PID_TAG = "alumni/run_worker_pid"
START_TAG = "alumni/run_worker_start"


def process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None when no live process has this pid.

    A zombie (exited, not yet reaped by its parent) counts as gone. Without /proc (not Linux), a signal
    0 tells whether the pid exists; the start time is then unknown ("").
    """
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""
        return ""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, start = fields[0], fields[19]  # fields 3 and 22 of proc(5), counted after the command name
    return None if state in ("Z", "X") else start


def fail_run(instance, run: DagsterRun, message: str) -> None:
    """`report_run_failed`, with the run's status set first. Dagster stores the failure event before it
    updates the status, and a run-retry daemon reading the event in between sees a run still STARTED:
    it never retries it (Dagster 1.13, EventLogConsumerDaemon)."""
    failure = DagsterEvent(event_type_value=DagsterEventType.RUN_FAILURE.value, job_name=run.job_name,
                           message=message)
    instance.run_storage.handle_run_event(run.run_id, failure)
    instance.report_run_failed(run, message)


class ProcessRunLauncher(RunLauncher, ConfigurableClass):
    """Each run in its own process and session; `check_run_worker_health` by pid liveness."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]):
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None:
            raise ValueError(f"run {run.run_id} has no code origin to launch")
        args = ExecuteRunArgs(job_origin=origin, run_id=run.run_id, instance_ref=self._instance.get_ref())
        # The code server's own Python, not a `dagster` found (or not) on the launching process's PATH.
        command = [origin.executable_path, "-m", "dagster", "api", "execute_run", serialize_value(args)]
        cwd = getattr(origin.repository_origin.code_pointer, "working_directory", None)
        worker = subprocess.Popen(command, cwd=cwd, start_new_session=True, stdin=subprocess.DEVNULL)
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(worker.pid),
                                                 START_TAG: process_start(worker.pid) or ""})
        self._instance.report_engine_event(f"Run worker started in process {worker.pid} (own process group).",
                                           run, cls=self.__class__)
        threading.Thread(target=self._watch, args=(worker, run.run_id), name=f"run-worker-{worker.pid}",
                         daemon=True).start()

    def _watch(self, worker: subprocess.Popen, run_id: str) -> None:
        """Reaps the worker the moment it exits (no zombie) and, if it left its run unfinished, fails the run
        at once. The monitor's health check only sees STARTED runs, at its next poll: a worker killed while
        still starting would otherwise wait for the start timeout. If this process (the daemon) dies first,
        the health check and the start timeout still catch the run."""
        code = worker.wait()
        try:
            run = self._instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                return
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            message = f"Run worker process {worker.pid} ended ({how}) before its run did."
            self._instance.report_engine_event(message, run, cls=self.__class__)
            fail_run(self._instance, run, message)
        except Exception:  # the instance is closing with its process: the monitor fails the run after a restart
            logging.getLogger(__name__).exception("could not fail run %s after its worker ended", run_id)

    def _live_worker(self, run: DagsterRun) -> int | None:
        pid = run.tags.get(PID_TAG)
        if not pid:
            return None
        start = process_start(int(pid))
        recorded = run.tags.get(START_TAG, "")
        if start is None or (recorded and start and start != recorded):
            return None
        return int(pid)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if PID_TAG not in run.tags:
            # Not launched here (e.g. `dagster asset materialize` runs in its own process): nothing to watch.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker recorded by this launcher")
        if self._live_worker(run) is None:
            return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {run.tags[PID_TAG]} is gone")
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker process {run.tags[PID_TAG]} is alive")

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid = self._live_worker(run)
        if pid is None:
            return False
        # The worker turns SIGTERM into an interrupt: it stops its steps (and dbt) and marks the run canceled.
        # If it cannot, the monitor's cancel timeout marks it canceled.
        os.kill(pid, signal.SIGTERM)
        return True
