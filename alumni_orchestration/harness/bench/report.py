"""The results file: benchmarks/results/<date>.md, rendered from the raw measurements in <date>.json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from alumni_orchestration.harness.bench.plan import (
    CAMPAIGN_STAGES,
    GB,
    REPRODUCE,
    STAGES,
    WAVE_MORNING,
    gb_text,
    seconds_text,
)
from alumni_orchestration.harness.bench.targets import EXTERNAL, target_rows

DATED = re.compile(r"\d{4}-\d{2}-\d{2}")
# Measured outside `alumni bench` and passed in: the targets' external rows, and a directly measured dbt fixed cost.
EXTERNAL_NAMES = (*EXTERNAL, "dbt_fixed_cost_per_night")


def results_markdown(m: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """The results file. `previous`: an earlier results file's measurements, whose figures stand beside these."""
    lines = [*header_lines(m), *target_lines(m, previous), *pipeline_lines(m), *campaign_lines(m),
             *generation_lines(m), *growth_lines(m.get("growth")), *engagement_lines(m.get("engagement")),
             *send_lines(m.get("send"))]
    for part, title in (("profile", "Profile"), ("analysis", "Analysis")):
        if m.get(part):
            lines += ["", f"## {title}", "", m[part].strip()]
    return "\n".join(lines) + "\n"


def header_lines(m: dict[str, Any]) -> list[str]:
    machine = m["machine"]
    return [
        f"# Benchmarks — {m['date']}",
        "",
        f"Reproduce: `{REPRODUCE}` (associations cached under `$ALUMNI_HOME/bench/`). This file was assembled "
        f"from: {'; '.join(f'`{c}`' for c in m.get('invocations', []))}.",
        "",
        "## Machine",
        "",
        f"- {machine['cores']} cores, {machine['memory_bytes'] / GB:.1f} GB memory, CPU: {machine['cpu_model']}",
        f"- {machine['os']}, Python {machine['python']}, DuckDB {machine['duckdb']}; load average (1, 5, 15 min) "
        "when each invocation started: "
        + "; ".join(", ".join(map(str, loads)) for loads in m.get("load_averages", [machine["load_average_at_start"]])),
        "- The machine was shared with other work (tests, builds) while this ran: timings are noisy, "
        "typically by ±20%.",
        "",
    ]


def pipeline_lines(m: dict[str, Any]) -> list[str]:
    lines = ["", "## Pipeline, per stage", "",
              f"Associations: seed {m['seed']}, generator end date {m['end_date']}. The full first load takes the "
              "daily partitions from the first day of provider history to the day before the end date; the nightly "
              "run takes the end date's partition alone (its webhook events landed during the day) plus the "
              "snapshot sources, all dbt models and the scores, as of the next morning.",
              "",
              "Peak RSS: the pipeline process (Dagster, the in-process steps, pandas and scikit-learn) and its "
              "largest child (a dbt process; on Linux this figure includes the parent's image when it forked, so "
              "the two are not added). The API sandbox runs in a process of its own and is not counted.", "",
              "Then the two campaign stages, on the same instance, as the night would run them: *sensor "
              "evaluation* is one tick of every campaign sensor (from the cursor the previous phase's tick left; "
              "none before the full load, which therefore looks at the latest snapshot only), with the run requests "
              "it made; *campaign send* runs every requested wave through `campaign_job` in process (audience, then "
              "sends in sandbox mode to the phase's sandbox, whose clock is set to "
              f"{WAVE_MORNING:%H:%M} Europe/Paris on the wave's as-of day, so that quiet hours apply as on that "
              "day), with the messages sent and messages per second over the whole stage. Total: all five stages.",
              "",
              "| association | phase | ingest | dbt | scoring | sensor evaluation | campaign send | total | "
              "peak RSS (pipeline process) | peak RSS (largest child) | warehouse after |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for scenario in sorted(m.get("pipeline", {}).values(), key=lambda s: (s["members"], s["years"])):
        name = f"{scenario['members']:,} members, {scenario['years']} y"
        for phase in ("full", "nightly"):
            run = scenario.get(phase)
            if not run:
                lines.append(f"| {name} | {phase} | {scenario.get('not_run', 'not run')} | | | | | | | | |")
                continue
            stages = run["stages"]
            failed = "" if run["success"] else f" (FAILED at {run.get('failed_stage')})"
            lines.append(
                f"| {name} | {'full first load' if phase == 'full' else 'nightly'}{failed} | "
                + " | ".join(seconds_text(stages.get(s)) for s in STAGES) + f" | {sensor_cell(run)} | {send_cell(run)} | "
                f"{seconds_text(run['total_seconds'])} | {gb_text(run['peak_rss_self_bytes'])} | "
                f"{gb_text(run['peak_rss_children_bytes'])} | {gb_text(run['warehouse_bytes'])} |")
    return lines


def generation_lines(m: dict[str, Any]) -> list[str]:
    lines = ["", "## Generated associations", "",
              "| association | generation | files on disk | webhook events |", "|---|---|---|---|"]
    for gen in sorted(m.get("generation", {}).values(), key=lambda g: (g["members"], g["years"])):
        lines.append(f"| {gen['members']:,} members, {gen['years']} y | {seconds_text(gen.get('seconds'))} | "
                     f"{gb_text(gen['disk_bytes'])} | {gen['sendgrid_events']:,} |")
    return lines


def growth_lines(growth: dict | None) -> list[str]:
    if not growth:
        return []
    lines = ["", "## Nightly cost against history", "",
              f"{growth['members']:,} members: nightly {seconds_text(growth['short_seconds'])} with "
              f"{growth['short_years']} year of history, {seconds_text(growth['long_seconds'])} with "
              f"{growth['long_years']} years: ratio **{growth['ratio']:.2f}** (the first ladder's target: at most 1.3), over the "
              f"stages {', '.join(growth['stages_compared'])} (the campaign stages are left out: what they do "
              "depends on who crossed a trigger that night, not on the length of the history)."
              + ("" if growth["complete"] else " Stages that failed are left out of the ratio: "
                 f"{growth['short_years']} y: {growth['short_failed'] or 'none'}; "
                 f"{growth['long_years']} y: {growth['long_failed'] or 'none'}."), "",
              "| stage | " + f"{growth['short_years']} y | {growth['long_years']} y | ratio |", "|---|---|---|---|"]
    for stage in STAGES:
        short, long = growth["short_stages"].get(stage), growth["long_stages"].get(stage)
        ratio = f"{long / short:.2f}" if short and long and stage in growth["stages_compared"] else \
            "not compared: failed"
        lines.append(f"| {stage} | {seconds_text(short)} | {seconds_text(long)} | {ratio} |")
    for stage in CAMPAIGN_STAGES:
        short, long = growth["short_stages"].get(stage), growth["long_stages"].get(stage)
        if short is not None or long is not None:
            lines.append(f"| {stage} | {seconds_text(short)} | {seconds_text(long)} | not in the ratio |")
    return lines


def engagement_lines(engagement: dict | None) -> list[str]:
    if not engagement:
        return []
    return ["", "## The engagement mart: dbt-duckdb vs the pandas peer", "",
              f"{engagement['members']:,} members, {engagement['activity_rows']:,} rows of "
              "`marts.member_activity_daily`, as of the same day; same inputs (the warehouse's marts and staging "
              "tables), same output (a `member_engagement` table in the warehouse, "
              f"{engagement['output_rows']:,} rows). Their `engagement_index` (0–100) differs by at most "
              f"{engagement['max_abs_difference']:.1e} (tests/test_scoring.py holds them equal on the demo "
              "association; at larger sizes floating-point sums taken in another order can move a member "
              "across a tie of the percentile rank).", "",
              "| implementation | wall time | speed-up of dbt |", "|---|---|---|",
              f"| dbt-duckdb: `dbt run --select member_engagement` (dbt process start, parse, run) | "
              f"{seconds_text(engagement['dbt_run_seconds'])} | {engagement['speedup_dbt_run']:.2f}× |",
              f"| the same compiled SQL straight in DuckDB (engine time only) | "
              f"{seconds_text(engagement['sql_seconds'])} | {engagement['speedup_sql']:.2f}× |",
              f"| pandas peer (`scoring.engagement.engagement_as_of`): read inputs, compute, write | "
              f"{seconds_text(engagement['pandas_seconds'])} | 1× |",
              f"| of which: read inputs into pandas | {seconds_text(engagement['pandas_read_seconds'])} | |",
              f"| of which: compute | {seconds_text(engagement['pandas_compute_seconds'])} | |"]


def send_lines(send: dict | None) -> list[str]:
    if not send:
        return []
    return ["", "## Send throughput to the sandbox", "",
              f"The official `sendgrid` client against the local sandbox, {send['requests']} requests of "
              f"{send['personalizations_per_request']:,} personalizations (one recipient each): "
              f"{send['messages']:,} messages in {seconds_text(send['seconds'])}, **{send['messages_per_second']:,.0f} "
              "messages/s**. Median request "
              f"{send['median_request_seconds'] * 1000:.0f} ms, slowest {send['max_request_seconds'] * 1000:.0f} ms."]


def sensor_cell(run: dict) -> str:
    report = run.get("campaigns")
    if "sensor" not in run["stages"] or not report:
        return "not measured"
    count = report["run_requests"]
    return f"{seconds_text(run['stages']['sensor'])} ({count} run request{'' if count == 1 else 's'})"


def send_cell(run: dict) -> str:
    report = run.get("campaigns")
    if "send" not in run["stages"] or not report:
        return "not measured"
    if not report["run_requests"]:
        return f"{seconds_text(run['stages']['send'])} (no wave requested)"
    rate = report.get("messages_per_second")
    return (f"{seconds_text(run['stages']['send'])} ({report['messages_sent']:,} sent"
            + (f", {rate:,.0f} msg/s)" if rate else ")"))


def campaign_lines(m: dict[str, Any]) -> list[str]:
    """Per association, phase and campaign: what the sensor requested (or why not) and what the waves sent."""
    rows = []
    for scenario in sorted(m.get("pipeline", {}).values(), key=lambda s: (s["members"], s["years"])):
        for phase in ("full", "nightly"):
            report = (scenario.get(phase) or {}).get("campaigns")
            if not report:
                continue
            for entry in report["sensors"].values():
                waves = [w for w in report["waves"] if w["campaign"] == entry["campaign"]]
                done = [w for w in waves if w.get("included") is not None]
                included = (f"{sum(w['included'] for w in done):,} ({sum(w['treatment'] for w in done):,} / "
                            f"{sum(w['control'] for w in done):,})") if done else "—"
                failed = [w["run_key"] for w in waves if not w["success"]]
                if entry["error"]:
                    why = f"the sensor failed: {entry['error']}"
                elif not entry["requests"]:
                    why = "; ".join(filter(None, [entry["note"], entry["skip_reason"]]))
                else:
                    why = f"wave(s) {', '.join(failed)} FAILED, see the phase log" if failed else ""
                rows.append(f"| {scenario['members']:,} members, {scenario['years']} y | "
                            f"{'full first load' if phase == 'full' else 'nightly'} | {report['as_of']} | "
                            f"{entry['campaign']} | {entry['requests']} | {entry['triggered_members']:,} | {included} | "
                            f"{sum(w['sent'] for w in waves):,} | {why} |")
    if not rows:
        return []
    return ["", "## Campaign stages, per campaign", "",
            "Each phase's sensor tick and the waves it requested. *Triggered*: the members the campaign's triggers "
            "selected (the sensor's count, from the run request); *included*: those the audience rules kept, "
            "treatment / control (held out, never sent); *sent*: messages the waves handed to the sandbox. "
            "A sensor that requests nothing is a result, not a failure: the last column says why.", "",
            "| association | phase | wave as of | campaign | run requests | triggered | included (treatment / control) "
            "| sent | why none |", "|---|---|---|---|---|---|---|---|---|", *rows]


def target_lines(m: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    external = m.get("external") or {}
    measured_elsewhere = ", ".join(f"`{name}` = {value:g} s" for name, value in sorted(external.items()))
    since = f"previous ({previous['date']})" if previous else "previous"
    lines = ["## Targets", "",
             "Targets of issue 19; *previous* is the same measure in the previous results file"
             + (f" ({previous['date']}.json)" if previous else " (none found)") + "."
             + (f" Measured outside `alumni bench` and passed with `--extra-measure`: {measured_elsewhere}."
                if measured_elsewhere else ""), "",
             f"| measure | measured | target | status | {since} | why (when missed) |",
             "|---|---|---|---|---|---|"]
    for row in target_rows(m, previous):
        lines.append(f"| {row['measure']} | {row['measured']} | {row['target']} | {row['status']} | "
                     f"{row['previous']} | {row['why']} |")
    return lines


def results_paths(out_dir: Path, date: str) -> tuple[Path, Path]:
    return out_dir / f"{date}.md", out_dir / f"{date}.json"


def previous_results(out_dir: Path, date: str) -> Path | None:
    """The latest results file dated before `date` in `out_dir`."""
    earlier = sorted(path for path in out_dir.glob("*.json") if DATED.fullmatch(path.stem) and path.stem < date)
    return earlier[-1] if earlier else None


def write_results(measurements: dict[str, Any], out_dir: Path, previous: Path | None = None) -> Path:
    """<date>.md and <date>.json. Beside them, if present: a hand-written <date>.analysis.md closes the markdown,
    and <date>.profile.md (the profiler's summary) is its profile section. `previous`: the results file whose
    figures stand beside these (default: the latest one dated earlier)."""
    date = measurements["date"]
    markdown, raw = results_paths(out_dir, date)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({k: v for k, v in measurements.items() if k not in ("analysis", "profile")}, indent=1,
                              sort_keys=True) + "\n")
    beside = {part: (out_dir / f"{date}.{part}.md") for part in ("analysis", "profile")}
    texts = {part: path.read_text() if path.exists() else "" for part, path in beside.items()}
    previous = previous or previous_results(out_dir, date)
    earlier = json.loads(previous.read_text()) if previous and previous.exists() else None
    markdown.write_text(results_markdown({**measurements, **texts}, earlier))
    return markdown


def render_from_json(raw: Path, extra_measures: dict[str, float] | None = None,
                     previous: Path | None = None) -> Path:
    """The markdown again from a results file's JSON, after adding the figures measured outside the bench
    (e.g. make_test_fast=83): they are kept in the JSON."""
    measurements = json.loads(raw.read_text())
    if extra_measures:
        measurements["external"] = {**measurements.get("external", {}), **extra_measures}
    return write_results(measurements, raw.parent, previous)


def parse_extra_measures(items: list[str]) -> dict[str, float]:
    """["make_test_fast=83", "make_test=420"] -> seconds by name; a name the report does not know is refused."""
    measures = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in EXTERNAL_NAMES or not value:
            raise ValueError(f"--extra-measure {item!r}: expected NAME=SECONDS, NAME one of {', '.join(EXTERNAL_NAMES)}")
        measures[name] = float(value)
    return measures
