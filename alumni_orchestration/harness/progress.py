"""What the demo tells a person: a few lines per stage and a progress bar with an ETA per run, while
every detail (each event of each run) goes to the log file.

On a terminal the bar redraws in place (rich); elsewhere (a pipe, CI, a test) it prints one line per
finished step and, during a long step, a line a minute saying what is still running.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

STILL_RUNNING_EVERY = 60.0  # seconds between "still running" lines when not on a terminal


class Console:
    """Says a line to the person and to the log; writes details to the log only."""

    def __init__(self, log: Path, out: TextIO | None = None) -> None:
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self.out = out or sys.stdout
        self.interactive = self.out.isatty()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)
        self.detail(text)

    def detail(self, text: str) -> None:
        self.log.write(f"{dt.datetime.now().isoformat(timespec='seconds')} {text}\n")
        self.log.flush()

    def close(self) -> None:
        self.log.close()


@dataclass
class RunOutcome:
    run_id: str
    status: str
    steps_done: int = 0
    steps_total: int = 0
    failed_steps: dict[str, str] = field(default_factory=dict)  # step -> first line of its error
    failed_checks: list[str] = field(default_factory=list)  # "Asset check 'x' on 'y' did not pass."

    @property
    def success(self) -> bool:
        return self.status == "SUCCESS"


def _event_line(entry) -> str:
    event = entry.dagster_event
    kind = event.event_type_value if event else "LOG"
    step = f" {entry.step_key}" if entry.step_key else ""
    message = (entry.user_message or "").strip().replace("\n", " | ")
    return f"[{entry.run_id[:8]}] {kind}{step}: {message[:2000]}"


def _failure_text(event) -> str:
    """The first line of the innermost error (the user's, not Dagster's wrapper around it)."""
    data = event.step_failure_data
    error = data.error if data else None
    if error is None:
        return "failed"
    while error.cause is not None:
        error = error.cause
    lines = [line.strip() for line in error.message.strip().splitlines() if line.strip()] or [""]
    text = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return text[:300]


def _plan_steps(instance, run) -> list[str]:
    snapshot = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    return [step.key for step in snapshot.steps] if snapshot else []


def last_success_durations(instance, job_name: str, before_run_id: str) -> dict[str, float]:
    """Each step's duration in the job's last successful run before this one (none: {})."""
    import dagster as dg

    runs = [run for run in instance.get_runs(dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.SUCCESS]),
                                             limit=2) if run.run_id != before_run_id]
    if not runs:
        return {}
    return {stat.step_key: stat.end_time - stat.start_time for stat in instance.get_run_step_stats(runs[0].run_id)
            if stat.end_time and stat.start_time}


def follow_run(instance, run_id: str, label: str, console: Console, poll: float = 1.0) -> RunOutcome:
    """Follow a submitted run to its end: progress to the person, every event to the log."""
    from dagster import DagsterEventType

    ends = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE, DagsterEventType.STEP_SKIPPED}
    run = instance.get_run_by_id(run_id)
    steps = _plan_steps(instance, run)
    outcome = RunOutcome(run_id, str(run.status.value), steps_total=len(steps))
    console.detail(f"{label}: run {run_id}, {len(steps)} steps")
    materialised: dict[str, int] = {}  # step -> asset partitions it has materialised so far
    cursor, started = None, time.monotonic()
    with _Bar(console, label, steps, last_success_durations(instance, run.job_name, run_id)) as bar:
        while True:
            records = instance.get_records_for_run(run_id, cursor=cursor, limit=500)
            cursor = records.cursor
            for record in records.records:
                entry = record.event_log_entry
                console.detail(_event_line(entry))
                event = entry.dagster_event
                if event is None:
                    continue
                if event.event_type == DagsterEventType.STEP_START:
                    bar.step_started(event.step_key)
                elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION and event.step_key in bar.running:
                    materialised[event.step_key] = materialised.get(event.step_key, 0) + 1
                elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION and not event.event_specific_data.passed:
                    outcome.failed_checks.append((entry.user_message or "").strip())
                elif event.event_type in ends:
                    if event.event_type == DagsterEventType.STEP_FAILURE:
                        outcome.failed_steps[event.step_key] = _failure_text(event)
                    bar.step_done(event.step_key, event.event_type.value)
                    outcome.steps_done += 1
            run = instance.get_run_by_id(run_id)
            bar.show_running(materialised, run.status.value)
            if run.is_finished and not records.has_more:
                break
            if not records.has_more:
                time.sleep(poll)
    outcome.status = run.status.value
    console.detail(f"{label}: {outcome.status} after {time.monotonic() - started:.0f} s")
    return outcome


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def first_run_eta(done: list[float], running: dict[str, float], pending: int) -> str:
    """The time left when no earlier run says how long each step takes: every step left is estimated at the
    average duration of the steps `done`; a `running` step (name -> seconds it has run) at that average less
    what it has run. A running step past the average makes the ETA a floor ("at least"), naming the step."""
    average = sum(done) / len(done)
    remaining = pending * average + sum(max(average - elapsed, 0.0) for elapsed in running.values())
    overdue = sorted(step for step, elapsed in running.items() if elapsed > average)
    basis = f"the average of the {len(done)} step{'s' if len(done) > 1 else ''} done, {_duration(average)}"
    if overdue:
        return (f"ETA at least {_duration(remaining)} ({basis}; {', '.join(overdue)} "
                f"{'is' if len(overdue) == 1 else 'are'} taking longer)")
    return f"ETA {_duration(remaining)} ({basis})"


class _Bar:
    """A rich progress bar on a terminal; plain lines elsewhere. The ETA comes from the same steps' durations
    in the job's last successful run when there is one. On a first run it estimates each step left at the
    average duration of the steps done so far, less what a running step has already run: so it does not grow
    while a long step runs (the pace of the whole run would), and once a running step outlasts that average
    it says "at least" and which step is taking longer."""

    def __init__(self, console: Console, label: str, steps: list[str], expected: dict[str, float]) -> None:
        self.console, self.label, self.steps, self.total = console, label, steps, len(steps)
        self.expected = expected if steps and all(step in expected for step in steps) else {}
        self.started = time.monotonic()
        self.last_line = self.started
        self.finished: set[str] = set()
        self.durations: dict[str, float] = {}  # the steps done (not skipped): their own durations
        self.running: dict[str, float] = {}

    def __enter__(self) -> _Bar:
        if self.console.interactive:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[eta]}"))
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=self.total or None, eta=self.eta())
        else:
            self.console.say(f"{self.label}: {self.total} steps")
        return self

    def __exit__(self, *exc_info) -> None:
        if self.console.interactive:
            self.progress.stop()

    def eta(self) -> str:
        now, left = time.monotonic(), [step for step in self.steps if step not in self.finished]
        if self.expected:  # the steps run one at a time (the warehouse pool): their durations add up
            remaining = sum(max(self.expected[s] - (now - self.running[s]), 0) if s in self.running
                            else self.expected[s] for s in left)
            return f"ETA {_duration(remaining)} (from the last run)"
        if not self.durations or not self.total:
            return "ETA unknown"
        return first_run_eta(list(self.durations.values()), {s: now - self.running[s] for s in left if s in self.running},
                             sum(1 for s in left if s not in self.running))

    def step_started(self, step: str) -> None:
        self.running[step] = time.monotonic()

    def step_done(self, step: str, how: str) -> float:
        """Records the end of a step and says it; returns its duration."""
        seconds = time.monotonic() - self.running.pop(step, time.monotonic())
        self.finished.add(step)
        if how != "STEP_SKIPPED":
            self.durations[step] = seconds
        verb = {"STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}[how]
        done = len(self.finished)
        if self.console.interactive:
            self.progress.update(self.task, completed=done, eta=self.eta())
            if how == "STEP_FAILURE":
                self.progress.console.print(f"  {step} FAILED")
        else:
            self.console.say(f"  [{done}/{self.total}] {step} {verb} in {_duration(seconds)}; {self.eta()}")
            self.last_line = time.monotonic()
        return seconds

    def show_running(self, materialised: dict[str, int], status: str) -> None:
        now = time.monotonic()
        names = ", ".join(f"{step} ({_duration(now - since)}"
                          + (f", {materialised[step]:,} partitions materialised)" if materialised.get(step) else ")")
                          for step, since in sorted(self.running.items()))
        if not names:
            names = {"QUEUED": "queued, waiting for the daemon", "STARTING": "starting the run worker"}.get(status, "")
        if self.console.interactive:
            self.progress.update(self.task, description=f"{self.label}: {names or 'between steps'}", eta=self.eta())
        elif names and now - self.last_line >= STILL_RUNNING_EVERY:
            self.console.say(f"  still running: {names}; {self.eta()}")
            self.last_line = now
