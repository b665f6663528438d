"""The targets of issue 19 against what was measured (and what the previous results file measured), and,
where one is missed, where the time or memory goes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alumni_orchestration.harness.bench.measure import largest_process
from alumni_orchestration.harness.bench.plan import (
    ALL_STAGES,
    GB,
    failed_stages,
    gb_text,
    scenario_label,
    seconds_text,
)

LARGE, MEDIUM = 1_000_000, 100_000
SCORE_HISTORY_STEP = "scoring__member_score_history"
# Figures measured outside `alumni bench` (`--extra-measure NAME=SECONDS`), by name.
EXTERNAL = {"make_test_fast": "`make test-fast` (unit and contract tests, no generated association)",
            "make_test": "`make test` (everything, as CI)"}


@dataclass(frozen=True)
class Target:
    measure: Callable[[dict], str]  # the row's label, from the measurements (years, members)
    bound: float
    at_most: bool
    fmt: Callable[[float], str]
    value: Callable[[dict], float | None]
    why: Callable[[dict], str] = lambda m: ""
    context: Callable[[dict], str] = lambda m: ""  # said beside the value, e.g. the size it was measured at
    size: int | None = None  # the scenario whose full load, stopped at its time limit, leaves this row incomplete


def _scenario(m: dict, size: int) -> dict:
    return m.get("pipeline", {}).get(scenario_label(size, m.get("years", 3)), {})


def _run(m: dict, size: int, phase: str) -> dict | None:
    return _scenario(m, size).get(phase)


def _total(m: dict, size: int, phase: str) -> float | None:
    run = _run(m, size, phase)
    return run["total_seconds"] if run and run.get("success") else None


def _peak(m: dict, size: int) -> int | None:
    peaks = [largest_process(r) for r in (_run(m, size, "full"), _run(m, size, "nightly"))
             if r and r.get("peak_rss_self_bytes")]
    return max(peaks) if peaks else None


def _score_history(m: dict) -> float | None:
    run = _run(m, LARGE, "full")
    if not run or "scoring" in failed_stages(run):
        return None
    return run.get("steps", {}).get(SCORE_HISTORY_STEP)


def dbt_invocations(run: dict | None) -> int:
    """The dbt steps of a run: each is one dbt invocation (a process start, a parse, a connection)."""
    return sum(step.startswith("dbt_") for step in (run or {}).get("steps", {}))


def _nightly_with_steps(m: dict) -> dict | None:
    for size in (LARGE, MEDIUM):
        if dbt_invocations(_run(m, size, "nightly")):
            return _run(m, size, "nightly")
    runs = [s.get("nightly") for s in m.get("pipeline", {}).values()]
    return next((run for run in runs if dbt_invocations(run)), None)


def dbt_fixed_cost(m: dict) -> dict[str, float] | None:
    """dbt's fixed cost per night: measured directly (`dbt_fixed_cost` in the measurements), or the engagement
    comparison's per-invocation overhead (`dbt run` minus its SQL) times the nightly run's dbt invocations."""
    if m.get("dbt_fixed_cost"):
        return m["dbt_fixed_cost"]
    engagement, night = m.get("engagement"), _nightly_with_steps(m)
    if not engagement or not night:
        return None
    per_invocation = engagement["dbt_run_seconds"] - engagement["sql_seconds"]
    invocations = dbt_invocations(night)
    return {"per_invocation_seconds": per_invocation, "invocations": invocations,
            "per_night_seconds": per_invocation * invocations}


def mart_peers(m: dict) -> dict[str, dict]:
    """Each mart compared with its pandas peer: mart name -> its comparison (members, speedup_sql, ...)."""
    peers = {"member_engagement": m["engagement"]} if m.get("engagement") else {}
    return {**peers, **(m.get("mart_peers") or {})}


def _at_size(members: int | None) -> str:
    return f" at {members:,} members" if members and members != LARGE else ""


def _mart_target(mart: str) -> Target:
    peer: Callable[[dict], dict] = lambda m: mart_peers(m).get(mart) or {}  # noqa: E731
    return Target(lambda m: f"`{mart}` SQL against its pandas peer (engine time, {LARGE:,} members)", 5.0, False,
                  lambda v: f"{v:.2f}×", lambda m: peer(m).get("speedup_sql"), lambda m: why_mart(peer(m)),
                  lambda m: _at_size(peer(m).get("members")))


def targets(m: dict) -> list[Target]:
    years = m.get("years", 3)
    fixed_cost: Callable[[dict], float | None] = lambda m: (  # noqa: E731
        (m.get("external") or {}).get("dbt_fixed_cost_per_night") or (dbt_fixed_cost(m) or {}).get("per_night_seconds"))
    marts = sorted(mart_peers(m)) or ["member_engagement"]
    return [
        Target(lambda m: f"full first load, {LARGE:,} members, {years} year{'s' if years != 1 else ''}", 600, True, seconds_text,
               lambda m: _total(m, LARGE, "full"), lambda m: where_time_goes(_run(m, LARGE, "full")), size=LARGE),
        Target(lambda m: f"120-day score history, {LARGE:,} members (`{SCORE_HISTORY_STEP}` in the full load)", 180,
               True, seconds_text, _score_history, lambda m: where_time_goes(_run(m, LARGE, "full")), size=LARGE),
        Target(lambda m: f"nightly run, {LARGE:,} members (all five stages)", 60, True, seconds_text,
               lambda m: _total(m, LARGE, "nightly"), lambda m: where_time_goes(_run(m, LARGE, "nightly")), size=LARGE),
        Target(lambda m: f"peak RSS, {LARGE:,} members, full load and nightly", 4 * GB, True, gb_text,
               lambda m: _peak(m, LARGE), lambda m: where_memory_goes(_scenario(m, LARGE)), size=LARGE),
        Target(lambda m: f"nightly run, {MEDIUM:,} members (all five stages)", 15, True, seconds_text,
               lambda m: _total(m, MEDIUM, "nightly"), lambda m: where_time_goes(_run(m, MEDIUM, "nightly")),
               size=MEDIUM),
        Target(lambda m: "dbt's fixed cost per nightly run (process start, parse, connect), summed over invocations",
               3, True, seconds_text, fixed_cost, lambda m: why_fixed_cost(dbt_fixed_cost(m))),
        *[_mart_target(mart) for mart in marts],
        *[Target(lambda m, label=label: label, bound, True, seconds_text,
                 lambda m, name=name: (m.get("external") or {}).get(name))
          for (name, label), bound in zip(EXTERNAL.items(), (90, 480), strict=True)],
    ]


def target_rows(m: dict[str, Any], previous: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Each target against what was measured: met / missed (by how much) / not measured, the previous
    results' figure beside it, and for a miss, why."""
    rows = []
    for target in targets(m):
        row = _compare(target, m)
        row["why"] = target.why(m) if row["status"].startswith("missed") else ""
        _bound_by_time_limit(row, _run(m, target.size, "full") if target.size else None)
        row["previous"] = _previous_text(target, previous) if previous else "—"
        rows.append(row)
    return rows


def _compare(target: Target, m: dict) -> dict[str, str]:
    sign = "≤" if target.at_most else "≥"
    row = {"measure": target.measure(m), "target": f"{sign} {target.fmt(target.bound)}"}
    value = target.value(m)
    if value is None:
        return {**row, "measured": "not measured", "status": "not measured"}
    if target.at_most:
        status = "met" if value <= target.bound else \
            f"missed by {target.fmt(value - target.bound)} ({value / target.bound:.1f}× the target)"
    else:
        status = "met" if value >= target.bound else f"missed: {value / target.bound:.0%} of the target"
    return {**row, "measured": target.fmt(value) + target.context(m), "status": status}


def _bound_by_time_limit(row: dict[str, str], full: dict | None) -> None:
    """A full load stopped at its time limit: its figures so far are lower bounds, the nightly run is missing."""
    if not full or not full.get("interrupted"):
        return
    note = (f"the full load was stopped at its time limit after the stages {', '.join(full['stages'])} "
            f"({seconds_text(full['total_seconds'])})")
    if row["status"] == "not measured":
        row["why"] = note + "; the row needs a complete one"
    else:  # a peak so far is a lower bound
        row["measured"] = f"≥ {row['measured']}"
        row["status"] = ("missed (already over, " + row["status"] + ")" if row["status"].startswith("missed")
                         else "incomplete: under the target so far")
        row["why"] = note + (f"; {row['why']}" if row["why"] else "")


def _previous_text(target: Target, previous: dict) -> str:
    value = target.value(previous)
    if value is None:
        return "—"
    full = _run(previous, target.size, "full") if target.size else None
    return ("≥ " if full and full.get("interrupted") else "") + target.fmt(value) + target.context(previous)


def where_time_goes(run: dict | None, top: int = 3) -> str:
    if not run:
        return ""
    stages = ", ".join(f"{stage} {seconds_text(run['stages'][stage])}" for stage in ALL_STAGES if stage in run["stages"])
    slowest = sorted(run.get("steps", {}).items(), key=lambda kv: -kv[1])[:top]
    steps = ", ".join(f"`{step}` {seconds_text(seconds)}" for step, seconds in slowest)
    return f"{stages}; slowest steps: {steps}" if steps else stages


def where_memory_goes(scenario: dict | None) -> str:
    if not scenario:
        return ""
    runs = {phase: scenario[phase] for phase in ("full", "nightly") if scenario.get(phase)}
    return "; ".join(f"{phase}: pipeline process {gb_text(run['peak_rss_self_bytes'])}{peak_stage(run)}, children (dbt) "
                     f"{gb_text(run['peak_rss_children_bytes'])}" for phase, run in runs.items())


def peak_stage(run: dict) -> str:
    """' (reached in <stage>)': the first stage after which the process's lifetime peak was the final one."""
    after = run.get("peak_rss_self_after_stage_bytes") or {}
    stage = next((s for s in ALL_STAGES if s in after and after[s] >= run["peak_rss_self_bytes"]), None)
    return f" (reached in {stage})" if stage else ""


def why_fixed_cost(cost: dict | None) -> str:
    if not cost or "invocations" not in cost:
        return ""
    return (f"{cost['invocations']} dbt invocations in the nightly run, {seconds_text(cost['per_invocation_seconds'])} "
            "each before any SQL runs (process start, project parse, connection)")


def why_mart(peer: dict) -> str:
    if not peer:
        return ""
    return (f"the SQL takes {seconds_text(peer['sql_seconds'])}; the pandas peer is already vectorised: "
            f"{seconds_text(peer['pandas_compute_seconds'])} of compute after "
            f"{seconds_text(peer['pandas_read_seconds'])} of reading")
