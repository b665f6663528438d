"""The demo speaks to a person: a line per finished step with an ETA, not every event; every event goes to
the log file; a failed run names its failed step and the log. Slow: each test executes Dagster jobs, and the
last one runs the whole demo."""

from __future__ import annotations

import io
import os
from pathlib import Path

import dagster as dg
import pytest

from alumni_orchestration.harness.demo import DemoFailed, failure_message, run_job
from alumni_orchestration.harness.progress import Console, follow_run
from tests.demo_checks import check_demo_outputs

pytestmark = pytest.mark.slow
STEPS = 8


def _chain_job(fail_at: int | None = None) -> dg.JobDefinition:
    """STEPS ops in a chain, each logging a few lines (the detail a person does not need)."""
    def make(index: int) -> dg.OpDefinition:
        @dg.op(name=f"step_{index:02d}", ins={"previous": dg.In(dg.Nothing)} if index else {})
        def _op(context) -> None:  # no annotation: Dagster reads it, and annotations here are strings
            for line in range(5):
                context.log.debug(f"detail {line} of step {index}")
            if index == fail_at:
                raise ValueError(f"step {index} found no rows\nsecond line of the trace")
        return _op

    ops = [make(i) for i in range(STEPS)]

    @dg.job(name="chain")
    def chain() -> None:
        previous = None
        for op in ops:
            previous = op(previous) if previous is not None else op()

    return chain


def _console(tmp_path: Path) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(tmp_path / "logs" / "demo.log", out), out


def test_a_successful_run_shows_one_line_per_step_with_an_eta_and_logs_every_event(tmp_path: Path) -> None:
    console, out = _console(tmp_path)
    with dg.instance_for_test() as instance:
        result = _chain_job().execute_in_process(instance=instance)
        outcome = follow_run(instance, result.run_id, "chain", console, poll=0.01)
    console.close()
    lines = out.getvalue().splitlines()
    assert outcome.success and outcome.steps_done == outcome.steps_total == STEPS
    assert lines[0] == f"chain: {STEPS} steps"
    progress = [line for line in lines if line.startswith("  [")]
    assert len(progress) == STEPS and len(lines) < 200
    assert progress[0].startswith(f"  [1/{STEPS}] step_00 done in ") and "; ETA " in progress[0]
    assert progress[-1].startswith(f"  [{STEPS}/{STEPS}] step_{STEPS - 1:02d} done in ")
    assert not any("detail" in line for line in lines)  # the detail is in the log only
    log = (tmp_path / "logs" / "demo.log").read_text()
    assert log.count("STEP_START") == STEPS and f"detail 4 of step {STEPS - 1}" in log
    assert "(from the last run)" not in out.getvalue()  # no earlier run: the pace of the steps done


def test_the_eta_of_a_second_run_comes_from_the_first(tmp_path: Path) -> None:
    console, out = _console(tmp_path)
    with dg.instance_for_test() as instance:
        _chain_job().execute_in_process(instance=instance)
        result = _chain_job().execute_in_process(instance=instance)
        follow_run(instance, result.run_id, "chain", console, poll=0.01)
    progress = [line for line in out.getvalue().splitlines() if line.startswith("  [")]
    assert all(line.endswith("(from the last run)") for line in progress)
    assert progress[-1].endswith("; ETA 0 s (from the last run)")


def test_a_failed_run_names_its_failed_step_and_the_log(tmp_path: Path) -> None:
    console, out = _console(tmp_path)
    with dg.instance_for_test() as instance:
        result = _chain_job(fail_at=3).execute_in_process(instance=instance, raise_on_error=False)
        outcome = follow_run(instance, result.run_id, "chain", console, poll=0.01)
    assert not outcome.success and outcome.status == "FAILURE"
    assert list(outcome.failed_steps) == ["step_03"]
    assert "step 3 found no rows" in outcome.failed_steps["step_03"]
    assert "second line" not in outcome.failed_steps["step_03"]
    message = failure_message("chain", outcome, console)
    assert message.startswith(f"chain FAILURE (run {result.run_id}) at step step_03: ")
    assert message.endswith(f"Full log: {tmp_path / 'logs' / 'demo.log'}")
    assert f"  [4/{STEPS}] step_03 FAILED in " in out.getvalue()


def test_run_job_raises_demo_failed_when_the_run_fails(tmp_path: Path) -> None:
    """The demo stops at a failed run (it never goes on to open the UI as if all were well)."""
    console, _ = _console(tmp_path)

    class Stack:  # the stack's two calls run_job makes, on a test instance
        def __init__(self, instance: dg.DagsterInstance) -> None:
            self.instance = instance

        def submit(self, job: str, tags: dict[str, str]) -> str:
            return _chain_job(fail_at=0).execute_in_process(instance=self.instance, raise_on_error=False).run_id

    with dg.instance_for_test() as instance, pytest.raises(DemoFailed, match="at step step_00: .*Full log: "):
        run_job(Stack(instance), console, "chain", {}, "chain")


# The whole demo (5,000 members, several minutes on two idle cores, much longer on a loaded machine) is run on
# request: `ALUMNI_E2E_DEMO=1 pytest tests/test_demo_progress.py`. The tests above drive the same progress code.
@pytest.mark.skipif(os.environ.get("ALUMNI_E2E_DEMO") != "1", reason="the full demo runs on request: ALUMNI_E2E_DEMO=1")
def test_the_demo_shows_progress_in_under_200_lines_and_its_sensors_launch_the_waves(tmp_path: Path) -> None:
    """`alumni demo --headless` (the default 5,000 members: at a few hundred the dues model fails its check): progress with an ETA on the console, under 200 lines;
    the detail in the log it names; the campaign sensors ticked by the daemon, and every wave launched by them."""
    import os
    import subprocess
    import sys

    from dagster._core.definitions.run_request import InstigatorType

    from alumni_orchestration.harness.ports import free_port

    home = tmp_path / "home"
    ports = [str(free_port()) for _ in range(3)]
    run = subprocess.run(
        [sys.executable, "-m", "alumni_orchestration.cli", "demo", "--headless",  # the default association
         "--sandbox-port", ports[0], "--webhook-port", ports[1], "--ui-port", ports[2]],
        env={**os.environ, "ALUMNI_HOME": str(home)}, capture_output=True, text=True, timeout=3600,
        cwd=Path(__file__).resolve().parents[1])
    lines = run.stdout.splitlines()
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert len(lines) < 200, run.stdout
    assert lines[0].startswith("Full log: ") and lines[-1].startswith("Demo ready in ")
    assert any(line.startswith("  [") and "; ETA " in line for line in lines)
    log = Path(lines[0].removeprefix("Full log: "))
    assert len(log.read_text().splitlines()) > 5 * len(lines)  # the detail went there
    assert not run.stderr.strip(), run.stderr[-2000:]
    for child_log in (home / "logs").glob("*.log"):  # the code location's name is the project's
        assert "does not match the name" not in child_log.read_text(), child_log

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        sensors = {state.instigator_name: state for state in instance.all_instigator_state(
            instigator_type=InstigatorType.SENSOR)}
        for name in ("reengagement_sensor", "dues_reminder_sensor"):
            assert sensors[name].is_running
            assert instance.get_ticks(sensors[name].instigator_origin_id, sensors[name].selector_id), name
        waves = instance.get_runs(dg.RunsFilter(job_name="campaign_job"))
        assert all(wave.tags.get("dagster/sensor_name") for wave in waves)
        assert len(instance.get_runs(dg.RunsFilter(job_name="alumni_main"))) == 3  # the history, two nights
    check_demo_outputs(home)


@pytest.mark.skipif(not os.environ.get("ALUMNI_DEMO_HOME"), reason="checks a finished demo: ALUMNI_DEMO_HOME=<its home>")
def test_a_finished_demo_has_its_lists_exports_digest_and_three_nights() -> None:
    print(check_demo_outputs(Path(os.environ["ALUMNI_DEMO_HOME"])))


TOY_DEFS = '''
import dagster as dg

@dg.op
def hello(context):
    context.log.info("hello")

@dg.job
def toy_job():
    hello()

@dg.sensor(job=toy_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.STOPPED)
def toy_sensor(context):
    if context.cursor:
        return dg.SkipReason("already requested")
    context.update_cursor("requested")
    return dg.RunRequest(run_key="toy-1")

defs = dg.Definitions(jobs=[toy_job], sensors=[toy_sensor])
'''


def test_the_stack_ticks_sensors_through_the_daemon_and_runs_what_they_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's Dagster (code server and daemon) on a toy code location: a sensor turned on is ticked by the
    daemon, with its cursor; the run it requests is launched by the daemon, tagged with the sensor; a run
    submitted is launched too. Both are followed to their end."""
    import os

    from alumni_orchestration.harness.demo import INSTANCE_YAML
    from alumni_orchestration.harness.stack import DagsterStack

    (tmp_path / "toy_defs.py").write_text(TOY_DEFS)
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML)
    root = Path(__file__).resolve().parents[1]
    env = {"DAGSTER_HOME": str(home / "dagster"), "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)]),
           "DAGSTER_TELEMETRY_ENABLED": "false"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    console, out = _console(tmp_path)
    (tmp_path / "logs").mkdir(exist_ok=True)
    with DagsterStack(home, tmp_path / "logs", env, module="toy_defs", location="toy") as stack:
        [(name, tick)] = stack.first_ticks(["toy_sensor"], timeout=300).items()
        assert name == "toy_sensor" and tick.cursor == "requested" and len(tick.run_ids) == 1
        launched = follow_run(stack.instance, tick.run_ids[0], "toy wave", console, poll=0.2)
        submitted = follow_run(stack.instance, stack.submit("toy_job", {"alumni/test": "yes"}), "toy", console,
                               poll=0.2)
        runs = {run.run_id: run for run in stack.instance.get_runs()}
    assert launched.success and submitted.success
    assert runs[launched.run_id].tags["dagster/sensor_name"] == "toy_sensor"
    assert runs[launched.run_id].tags["dagster/run_key"] == "toy-1"
    assert runs[submitted.run_id].tags["alumni/test"] == "yes"
    assert runs[submitted.run_id].remote_job_origin is not None  # a run of the code location, on the timeline
    assert "toy wave: 1 steps" in out.getvalue()
