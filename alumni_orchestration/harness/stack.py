"""The demo's Dagster, as production runs it: a code server and the daemon, on the demo's instance.

Runs are submitted to the instance's queued run coordinator, as the UI's launch button or a backfill would
submit them: the daemon dequeues them and the instance's run launcher starts their workers. The campaign
sensors are turned on and ticked by the daemon's sensor loop. So the UI shows what really happened: the
runs on the timeline, each sensor's ticks, cursor and the runs it launched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from alumni_orchestration.harness.ports import free_port, wait_until_own_port

# The code location, registered under the name workspace.yaml gives it (the module's).
MODULE = LOCATION = "alumni_orchestration.definitions"
BIN = Path(sys.executable).parent


class DagsterStack:
    """The code server and the daemon as children of the demo (each in a session of its own, with its log under
    `logs`), and a workspace on the code server to submit runs and turn sensors on."""

    def __init__(self, home: Path, logs: Path, env: dict[str, str], module: str = MODULE,
                 location: str = LOCATION) -> None:
        self.home, self.logs, self.env, self.module, self.location = home, logs, env, module, location
        self.port = free_port()
        self.workspace_file = home / "dagster" / "daemon_workspace.yaml"
        self.processes: list[subprocess.Popen] = []

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (closed by the child's exit)
        process = subprocess.Popen(command, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        log.close()
        self.processes.append(process)
        return process

    def __enter__(self) -> DagsterStack:
        import dagster as dg
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import GrpcServerTarget

        self.workspace_file.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
            "host": "127.0.0.1", "port": self.port, "location_name": self.location}}]}))
        server = self._start("code-server", [
            str(BIN / "dagster"), "code-server", "start", "-m", self.module, "-h", "127.0.0.1",
            "-p", str(self.port), "--location-name", self.location])
        try:
            wait_until_own_port(self.port, server, "code server", self.logs / "code-server.log", timeout=300)
            self._start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace_file)])
            self.instance = dg.DagsterInstance.get()
            self.workspace = WorkspaceProcessContext(self.instance, GrpcServerTarget(
                host="127.0.0.1", port=self.port, socket=None, location_name=self.location))
            error = self.workspace.create_request_context().get_code_location_error(self.location)
            if error:
                raise RuntimeError(f"the code location did not load: {error.message.strip().splitlines()[-1]}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if hasattr(self, "workspace"):
            self.workspace.__exit__(None, None, None)
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if hasattr(self, "instance"):
            self.instance.dispose()

    def _location(self):
        context = self.workspace.create_request_context()
        location = context.get_code_location(self.location)
        [repository] = location.get_repositories().values()
        return context, location, repository

    def submit(self, job_name: str, tags: dict[str, str]) -> str:
        """Create the job's run and submit it to the instance's run coordinator; returns its run id."""
        import dagster as dg
        from dagster._core.definitions.selector import JobSubsetSelector

        context, location, repository = self._location()
        remote_job = location.get_job(JobSubsetSelector(
            location_name=self.location, repository_name=repository.name, job_name=job_name, op_selection=None))
        plan = location.get_execution_plan(remote_job, {}, step_keys_to_execute=None, known_state=None,
                                           instance=self.instance)
        run = self.instance.create_run(
            job_name=job_name, run_id=None, run_config={}, resolved_op_selection=None, step_keys_to_execute=None,
            status=dg.DagsterRunStatus.NOT_STARTED, op_selection=None, root_run_id=None, parent_run_id=None,
            tags={**(remote_job.run_tags or {}), **tags}, job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot, parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin(),
            asset_selection=None, asset_check_selection=None, asset_graph=repository.asset_graph)
        self.instance.submit_run(run.run_id, context)
        return run.run_id

    def start_sensors(self, names: list[str]) -> dict[str, tuple[str, str]]:
        """Turn the sensors on (the daemon ticks them from now on); returns name -> (origin id, selector id)."""
        _, _, repository = self._location()
        ids = {}
        for name in names:
            sensor = repository.get_sensor(name)
            state = self.instance.get_instigator_state(sensor.get_remote_origin_id(), sensor.selector_id)
            if state is None or not state.is_running:
                self.instance.start_sensor(sensor)
            ids[name] = (sensor.get_remote_origin_id(), sensor.selector_id)
        return ids

    def first_ticks(self, names: list[str], timeout: float) -> dict:
        """Turn the sensors on and wait for the daemon's first finished tick of each (success, skipped or
        failed); returns name -> tick (its status, cursor, skip reason or error, and the runs it launched)."""
        from dagster._core.scheduler.instigation import TickStatus

        since = time.time() - 1
        ids = self.start_sensors(names)

        def finished(origin_id: str, selector_id: str):
            ticks = self.instance.get_ticks(origin_id, selector_id, after=since, limit=1)
            return ticks[0] if ticks and ticks[0].status != TickStatus.STARTED else None

        return {name: self.wait(f"the first tick of {name}", lambda ids=ids[name]: finished(*ids), timeout)
                for name in names}

    def wait(self, what: str, condition, timeout: float, poll: float = 1.0):
        """condition()'s first truthy value; TimeoutError naming `what` and the daemon's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            if any(process.poll() is not None for process in self.processes):
                raise RuntimeError(f"a Dagster process stopped while waiting for {what}; see {self.logs}")
            time.sleep(poll)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; see {self.logs / 'daemon.log'}")
