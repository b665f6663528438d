"""The demo's ETA on a first run (no earlier run to take the steps' durations from): from the average step
done, so that it shrinks while a step runs rather than growing with the time elapsed, and says "at least"
once a step outlasts that average. The clock is a fake: nothing here waits."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from alumni_orchestration.harness import progress
from alumni_orchestration.harness.progress import Console, first_run_eta


def test_steps_left_are_estimated_at_the_average_step_done() -> None:
    assert first_run_eta([10.0, 30.0], {}, 3) == "ETA 1 min 00 s (the average of the 2 steps done, 20 s)"
    # A running step counts for what it still has to run at that average.
    assert first_run_eta([20.0], {"b": 5.0}, 2).startswith("ETA 55 s ")
    # Past the average, the ETA is a floor: the steps not started yet, and the step that is taking longer.
    assert first_run_eta([20.0], {"b": 300.0}, 2) == (
        "ETA at least 40 s (the average of the 1 step done, 20 s; b is taking longer)")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_eta_of_a_first_run_does_not_grow_while_a_long_step_runs(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    out = io.StringIO()
    console = Console(tmp_path / "demo.log", out)
    with progress._Bar(console, "alumni_main", ["a", "b", "c", "d"], {}) as bar:
        assert bar.eta() == "ETA unknown"
        bar.step_started("a")
        clock.now += 10
        bar.step_done("a", "STEP_SUCCESS")
        bar.step_started("b")
        etas = []
        for _ in range(6):  # b runs for 10 min: the old pace-based ETA grew from 30 s to 30 min
            clock.now += 120
            etas.append(bar.eta())
        assert all(eta == etas[0] for eta in etas)
        assert etas[0] == "ETA at least 20 s (the average of the 1 step done, 10 s; b is taking longer)"
        bar.step_done("b", "STEP_SUCCESS")
        bar.step_started("c")
        bar.step_done("c", "STEP_SKIPPED")  # a skipped step is no measure of a step's duration
        assert bar.eta() == "ETA 6 min 05 s (the average of the 2 steps done, 6 min 05 s)"
    console.close()
    assert "  [1/4] a done in 10 s; ETA 30 s (the average of the 1 step done, 10 s)" in out.getvalue()
