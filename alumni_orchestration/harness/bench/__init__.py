"""`alumni bench`: the scale ladder, the nightly cost against history, the SQL marts against their pandas
peers, and send throughput.

For each size it generates (or reuses) an association under $ALUMNI_HOME/bench/associations, lands its
webhook history once, starts the API sandbox as a separate process, then runs the pipeline in a fresh
child process per phase, so that each phase's peak RSS is its own:

- full first load: partitions history_start .. D, where D is the day before the generator's end date;
- nightly: partition D+1 only (the last generated day, whose webhook events the receiver landed during
  the day), plus the snapshot sources, every dbt model and the scores — what the nightly schedule runs.

Each phase runs three asset selections in turn (sources; staging+intermediate+marts; scoring) on a
Dagster instance in a temporary DAGSTER_HOME, and times each; then the two campaign stages, as the
night would: every campaign sensor evaluated once on that instance ("sensor"), and every wave it
requested run through `campaign_job` in sandbox mode, sending to the phase's sandbox ("send"), with the
sandbox's clock set to the morning the wave runs. Results go to benchmarks/results/<date>.md (and the
raw numbers to <date>.json, merged across invocations of the day).

Modules: plan (constants, paths, windows), scenario (associations, sandbox, phases in child processes),
phase (the child's stages), measure (RSS, machine, growth, mart peers, send throughput), targets and
report (the results file). The demo never imports this package, nor this package the demo.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from alumni_orchestration.harness.bench.measure import (
    compare_engagement,
    history_growth,
    machine_description,
    marts_built,
    measure_send,
)
from alumni_orchestration.harness.bench.plan import (
    BENCH_END_DATE,
    BENCH_SEED,
    PERSONALIZATIONS_PER_REQUEST,
    bench_home,
    scenario_label,
)
from alumni_orchestration.harness.bench.report import render_from_json, results_paths, write_results
from alumni_orchestration.harness.bench.scenario import ensure_bench_association, pipeline_scenario

__all__ = ["render_from_json", "run_bench"]


def start_measurements(out_dir: Path, date: str, seed: int, end_date: str, years: int, command: str,
                       extra_measures: dict[str, float] | None = None) -> dict[str, Any]:
    """The day's measurements so far (when they were taken on the same setup), with this invocation added."""
    _, raw = results_paths(out_dir, date)
    earlier = json.loads(raw.read_text()) if raw.exists() else {}
    same_setup = (earlier.get("seed"), earlier.get("end_date"), earlier.get("years")) == (seed, end_date, years)
    measurements: dict[str, Any] = earlier if same_setup else {}
    measurements.update({"date": date, "seed": seed, "end_date": end_date, "years": years,
                         "machine": machine_description()})
    measurements["invocations"] = [*measurements.get("invocations", []), command]
    measurements["load_averages"] = [*measurements.get("load_averages", []),
                                     measurements["machine"]["load_average_at_start"]]
    measurements.setdefault("pipeline", {})
    measurements.setdefault("generation", {})
    if extra_measures:
        measurements["external"] = {**measurements.get("external", {}), **extra_measures}
    return measurements


def run_bench(sizes: list[int], years: int = 3, short_years: int = 1, growth_members: int = 100_000,
              engagement_members: int = 1_000_000, send_messages: int = 20_000, seed: int = BENCH_SEED,
              end_date: str = BENCH_END_DATE, out_dir: Path = Path("benchmarks/results"),
              skip: frozenset[str] = frozenset(), command: str = "", date: str | None = None,
              phase_time_limit: float | None = None, extra_measures: dict[str, float] | None = None,
              previous: Path | None = None) -> Path:
    def say(text: str) -> None:
        print(text, flush=True)

    measurements = start_measurements(out_dir, date or dt.date.today().isoformat(), seed, end_date, years,
                                      command or f"alumni bench --sizes {','.join(map(str, sizes))}", extra_measures)
    runs = bench_home() / "runs"

    def save() -> Path:
        return write_results(measurements, out_dir, previous)

    def scenario(members: int, history_years: int) -> dict[str, Any]:
        label = scenario_label(members, history_years)
        say(f"{label}: association")
        data, manifest, generation = ensure_bench_association(members, history_years, seed, end_date)
        measurements["generation"][label] = generation
        say(f"{label}: pipeline")
        measurements["pipeline"][label] = pipeline_scenario(data, manifest, runs / label, say, phase_time_limit)
        save()
        return measurements["pipeline"][label]

    if "pipeline" not in skip:
        for members in sizes:
            scenario(members, years)
    if "growth" not in skip:
        long = measurements["pipeline"].get(scenario_label(growth_members, years)) or scenario(growth_members, years)
        short = long if short_years == years else scenario(growth_members, short_years)
        growth = history_growth(long.get("nightly"), short.get("nightly"))
        if growth:
            measurements["growth"] = {"members": growth_members, "short_years": short_years, "long_years": years,
                                      **growth}
        save()
    if "engagement" not in skip:
        label = scenario_label(engagement_members, years)
        if not marts_built(measurements["pipeline"].get(label, {}).get("full")) or not (
                runs / label / "warehouse.duckdb").exists():
            scenario(engagement_members, years)
        say(f"{label}: dbt mart vs pandas peer")
        measurements["engagement"] = engagement_against_peer(runs / label / "warehouse.duckdb", engagement_members,
                                                             end_date)
        save()
    if "send" not in skip:
        say(f"send throughput: {send_messages:,} messages")
        data, _, _ = ensure_bench_association(min(sizes), years, seed, end_date)
        with tempfile.TemporaryDirectory(dir=bench_home()) as work:
            measurements["send"] = measure_send(data, Path(work), send_messages, PERSONALIZATIONS_PER_REQUEST)
    path = save()
    say(f"results: {path}")
    return path


def engagement_against_peer(warehouse: Path, members: int, end_date: str) -> dict[str, Any]:
    """The engagement mart against its pandas peer, as of the morning after the last generated day."""
    as_of = (dt.date.fromisoformat(end_date) + dt.timedelta(days=1)).isoformat()
    with tempfile.TemporaryDirectory(dir=bench_home()) as work:
        return {"members": members, **compare_engagement(warehouse, as_of, Path(work))}
