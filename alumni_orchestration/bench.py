"""`alumni bench`: the scale ladder, the nightly-vs-history ratio, the pandas peer and send throughput.

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
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alumni_orchestration import settings

BENCH_END_DATE = "2026-01-10"  # fixed (cache); early January, so that 3 years hold the 2 complete dues cycles the model needs
BENCH_SEED = 42
STAGES = {  # stage name -> Dagster groups, in run order
    "ingest": ("sources",),
    "dbt": ("staging", "intermediate", "marts"),
    "scoring": ("scoring",),
}
CAMPAIGN_STAGES = {"sensor": "sensor evaluation", "send": "campaign send"}  # stage -> table column, after STAGES
ALL_STAGES = (*STAGES, *CAMPAIGN_STAGES)
# The wave of a phase runs on the morning after its last day (the as-of day), at this Paris time: the
# sandbox's clock is set to it, so that the send window (quiet hours, Sundays) applies as on that day.
WAVE_MORNING = dt.time(7, 0)
# What the sandbox writes into the association's folder while the pipeline sends to it: reset for each
# scenario, so that one run's sends (and the reactions, payments and unsubscribes they cause) never
# reach the next run's ingest.
SANDBOX_OUTPUTS = ("sandbox_state.json", "mail_send.jsonl", "sent_messages.jsonl")
PERSONALIZATIONS_PER_REQUEST = 1000
REPRODUCE = ".venv/bin/alumni bench --sizes 10000,100000,1000000"
SANDBOX_ENV = {  # the sandbox's own credentials: they open nothing but the local sandbox
    "SENDGRID_API_KEY": "SG.bench",
    "EVENTBRITE_TOKEN": "sandbox-eventbrite-token",
    "HELLOASSO_CLIENT_ID": "sandbox-client",
    "HELLOASSO_CLIENT_SECRET": "sandbox-secret",
}
GB = 1024**3


# ---------------------------------------------------------------- pure helpers

def bench_home() -> Path:
    return settings.alumni_home() / "bench"


def association_dir(members: int, years: int, seed: int, end_date: str) -> Path:
    return bench_home() / "associations" / f"{members}m-{years}y-seed{seed}-{end_date}"


def phase_windows(history_start: str, end_date: str) -> dict[str, tuple[str, str]]:
    """Full load up to the day before the last generated day; the nightly run takes that last day alone."""
    last = dt.date.fromisoformat(end_date)
    day_before = (last - dt.timedelta(days=1)).isoformat()
    return {"full": (history_start, day_before), "nightly": (last.isoformat(), last.isoformat())}


def peak_rss_bytes() -> dict[str, int]:
    """Lifetime peaks of this process and of its largest waited-for child (dbt), in bytes (Linux: KiB)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale,
            "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale}


def file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + ".wal")) if p.exists())


def machine_description() -> dict[str, Any]:
    cpu_model, memory = platform.processor() or "unknown", 0
    with _suppress_os_error():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with _suppress_os_error():
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    import duckdb

    return {"cores": os.cpu_count(), "memory_bytes": memory, "cpu_model": cpu_model,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "duckdb": duckdb.__version__, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


@contextmanager
def _suppress_os_error() -> Iterator[None]:
    try:
        yield
    except OSError:
        pass


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 120:
        return f"{value / 60:.1f} min ({value:,.0f} s)"
    return f"{value:.1f} s"


def _gb(value: int | None) -> str:
    return "—" if value is None else f"{value / GB:.2f} GB"


def history_growth(long: dict | None, short: dict | None) -> dict[str, Any] | None:
    """Nightly time with the longer history over the shorter, on the stages that succeeded in both."""
    if not long or not short:
        return None
    ok = [s for s in STAGES if s in long["stages"] and s in short["stages"]
          and s not in (long.get("failed_stage") or "") and s not in (short.get("failed_stage") or "")]
    if not ok:
        return None
    long_seconds, short_seconds = sum(long["stages"][s] for s in ok), sum(short["stages"][s] for s in ok)
    return {"stages_compared": ok, "complete": len(ok) == len(STAGES), "short_seconds": short_seconds,
            "long_seconds": long_seconds, "short_stages": short["stages"], "long_stages": long["stages"],
            "short_failed": short.get("failed_stage"), "long_failed": long.get("failed_stage"),
            "ratio": long_seconds / short_seconds}


# ---------------------------------------------------------------- targets

def target_rows(m: dict[str, Any]) -> list[dict[str, str]]:
    """The issue's targets against what was measured; each row says met / missed (by how much) / not measured."""
    pipeline = m.get("pipeline", {})

    def nightly(size: int) -> float | None:
        run = pipeline.get(f"{size}m-{m['years']}y", {}).get("nightly")
        return run["total_seconds"] if run and run.get("success") else None

    def full(size: int) -> float | None:
        run = pipeline.get(f"{size}m-{m['years']}y", {}).get("full")
        return run["total_seconds"] if run and run.get("success") else None

    def peak(size: int) -> int | None:
        runs = [pipeline.get(f"{size}m-{m['years']}y", {}).get(p) for p in ("full", "nightly")]
        peaks = [largest_process(r) for r in runs if r and r.get("peak_rss_self_bytes")]
        return max(peaks) if peaks else None

    growth = m.get("growth") or {}
    engagement = m.get("engagement") or {}
    send = m.get("send") or {}
    rows = [
        _at_most("nightly incremental run, 100,000 members", nightly(100_000), 60, _seconds),
        _at_most("nightly incremental run, 1,000,000 members", nightly(1_000_000), 600, _seconds),
        _at_most("peak RSS, 100,000 members", peak(100_000), 4 * GB, _gb),
        _at_most("peak RSS, 1,000,000 members", peak(1_000_000), 16 * GB, _gb),
        _at_most(f"nightly time, {growth.get('long_years', 3)}-year ÷ {growth.get('short_years', 1)}-year history "
                 f"({growth.get('members', 100_000):,} members; {' + '.join(growth.get('stages_compared', STAGES))}"
                 + (")" if growth.get("complete", True) else " only: the other stages failed)"),
                 growth.get("ratio"), 1.3, lambda v: f"{v:.2f}"),
        _at_most("full first load, 100,000 members", full(100_000), 600, _seconds),
        _at_least(f"dbt-duckdb mart vs the pandas peer ({engagement.get('members', 100_000):,} members)",
                  engagement.get("speedup_dbt_run"), 5.0, lambda v: f"{v:.2f}×"),
        _at_least("send throughput to the sandbox", send.get("messages_per_second"), 2000, lambda v: f"{v:,.0f} msg/s"),
    ]
    run_of = {"nightly": lambda size: pipeline.get(f"{size}m-{m['years']}y", {}).get("nightly"),
              "full": lambda size: pipeline.get(f"{size}m-{m['years']}y", {}).get("full")}
    explanations = [lambda: where_time_goes(run_of["nightly"](100_000)),
                    lambda: where_time_goes(run_of["nightly"](1_000_000)),
                    lambda: where_memory_goes(pipeline.get(f"100000m-{m['years']}y")),
                    lambda: where_memory_goes(pipeline.get(f"1000000m-{m['years']}y")),
                    lambda: where_growth_goes(growth), lambda: where_time_goes(run_of["full"](100_000)),
                    lambda: why_engagement(engagement), lambda: why_send(send)]
    for row, why in zip(rows, explanations, strict=True):
        row["why"] = why() if row["status"].startswith("missed") else ""
    for size, indexes in ((100_000, (0, 2, 5)), (1_000_000, (1, 3))):
        stopped = run_of["full"](size)
        if stopped and stopped.get("interrupted"):
            note = (f"the full load was stopped at its time limit after the stages {', '.join(stopped['stages'])} "
                    f"({_seconds(stopped['total_seconds'])})")
            for index in indexes:
                row = rows[index]
                if row["status"] == "not measured":
                    row["status"], row["why"] = "not measured", note + "; the nightly run needs a complete one"
                else:  # a peak so far is a lower bound
                    row["measured"] = f"≥ {row['measured']}"
                    row["status"] = ("missed (already over, " + row["status"] + ")" if row["status"].startswith("missed")
                                     else "incomplete: under the target so far")
                    row["why"] = note + (f"; {row['why']}" if row["why"] else "")
    return rows


def largest_process(run: dict) -> int:
    """The peak of the largest single process. On Linux the children's figure includes the parent's image at
    fork time, so adding it to the parent's would count the parent twice."""
    return max(run["peak_rss_self_bytes"], run["peak_rss_children_bytes"] or 0)


def where_time_goes(run: dict | None, top: int = 3) -> str:
    if not run:
        return ""
    stages = ", ".join(f"{stage} {_seconds(seconds)}" for stage, seconds in run["stages"].items())
    slowest = sorted(run.get("steps", {}).items(), key=lambda kv: -kv[1])[:top]
    steps = ", ".join(f"`{step}` {_seconds(seconds)}" for step, seconds in slowest)
    return f"{stages}; slowest steps: {steps}" if steps else stages


def where_memory_goes(scenario: dict | None) -> str:
    if not scenario:
        return ""
    runs = {phase: scenario[phase] for phase in ("full", "nightly") if scenario.get(phase)}
    return "; ".join(f"{phase}: pipeline process {_gb(run['peak_rss_self_bytes'])}{peak_stage(run)}, children (dbt) "
                     f"{_gb(run['peak_rss_children_bytes'])}" for phase, run in runs.items())


def peak_stage(run: dict) -> str:
    """' (reached in <stage>)': the first stage after which the process's lifetime peak was the final one."""
    after = run.get("peak_rss_self_after_stage_bytes") or {}
    stage = next((s for s in ALL_STAGES if s in after and after[s] >= run["peak_rss_self_bytes"]), None)
    return f" (reached in {stage})" if stage else ""


def where_growth_goes(growth: dict, top: int = 3) -> str:
    if not growth:
        return ""
    ratios = ", ".join(f"{stage} ×{growth['long_stages'][stage] / growth['short_stages'][stage]:.2f}"
                       for stage in growth["stages_compared"] if growth["short_stages"].get(stage))
    return f"per stage: {ratios}"


def why_engagement(engagement: dict) -> str:
    if not engagement:
        return ""
    overhead = engagement["dbt_run_seconds"] - engagement["sql_seconds"]
    return (f"`dbt run` spends {_seconds(overhead)} starting, parsing and connecting and {_seconds(engagement['sql_seconds'])}"
            f" in SQL; the pandas peer is already vectorised (a pivot and group-bys): "
            f"{_seconds(engagement['pandas_compute_seconds'])} of compute after {_seconds(engagement['pandas_read_seconds'])}"
            " of reading. DuckDB's SQL alone is "
            f"{engagement['speedup_sql']:.1f}× faster than the peer")


def why_send(send: dict) -> str:
    if not send:
        return ""
    return (f"median request {send['median_request_seconds'] * 1000:.0f} ms for {send['personalizations_per_request']} "
            "personalizations: JSON-schema validation, one fsync'd append and a rewrite of the sandbox's state file "
            "per request")


def _at_most(measure: str, value: float | None, target: float, fmt) -> dict[str, str]:
    if value is None:
        return {"measure": measure, "measured": "not measured", "target": f"≤ {fmt(target)}", "status": "not measured"}
    status = "met" if value <= target else f"missed by {fmt(value - target)} ({value / target:.1f}× the target)"
    return {"measure": measure, "measured": fmt(value), "target": f"≤ {fmt(target)}", "status": status}


def _at_least(measure: str, value: float | None, target: float, fmt) -> dict[str, str]:
    if value is None:
        return {"measure": measure, "measured": "not measured", "target": f"≥ {fmt(target)}", "status": "not measured"}
    status = "met" if value >= target else f"missed: {value / target:.0%} of the target"
    return {"measure": measure, "measured": fmt(value), "target": f"≥ {fmt(target)}", "status": status}


# ---------------------------------------------------------------- markdown

def results_markdown(m: dict[str, Any]) -> str:
    machine = m["machine"]
    lines = [
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
        "## Targets",
        "",
        "| measure | measured | target | status | why (when missed) |",
        "|---|---|---|---|---|",
    ]
    for row in target_rows(m):
        lines.append(f"| {row['measure']} | {row['measured']} | {row['target']} | {row['status']} | {row['why']} |")
    lines += ["", "## Pipeline, per stage", "",
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
                + " | ".join(_seconds(stages.get(s)) for s in STAGES) + f" | {sensor_cell(run)} | {send_cell(run)} | "
                f"{_seconds(run['total_seconds'])} | {_gb(run['peak_rss_self_bytes'])} | "
                f"{_gb(run['peak_rss_children_bytes'])} | {_gb(run['warehouse_bytes'])} |")
    lines += campaign_lines(m)
    lines += ["", "## Generated associations", "",
              "| association | generation | files on disk | webhook events |", "|---|---|---|---|"]
    for gen in sorted(m.get("generation", {}).values(), key=lambda g: (g["members"], g["years"])):
        lines.append(f"| {gen['members']:,} members, {gen['years']} y | {_seconds(gen.get('seconds'))} | "
                     f"{_gb(gen['disk_bytes'])} | {gen['sendgrid_events']:,} |")
    growth = m.get("growth")
    if growth:
        lines += ["", "## Nightly cost against history", "",
                  f"{growth['members']:,} members: nightly {_seconds(growth['short_seconds'])} with "
                  f"{growth['short_years']} year of history, {_seconds(growth['long_seconds'])} with "
                  f"{growth['long_years']} years: ratio **{growth['ratio']:.2f}** (target ≤ 1.3), over the "
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
            lines.append(f"| {stage} | {_seconds(short)} | {_seconds(long)} | {ratio} |")
        for stage in CAMPAIGN_STAGES:
            short, long = growth["short_stages"].get(stage), growth["long_stages"].get(stage)
            if short is not None or long is not None:
                lines.append(f"| {stage} | {_seconds(short)} | {_seconds(long)} | not in the ratio |")
    engagement = m.get("engagement")
    if engagement:
        lines += ["", "## The engagement mart: dbt-duckdb vs the pandas peer", "",
                  f"{engagement['members']:,} members, {engagement['activity_rows']:,} rows of "
                  "`marts.member_activity_daily`, as of the same day; same inputs (the warehouse's marts and staging "
                  "tables), same output (a `member_engagement` table in the warehouse, "
                  f"{engagement['output_rows']:,} rows). Their `engagement_index` (0–100) differs by at most "
                  f"{engagement['max_abs_difference']:.1e} (tests/test_scoring.py holds them equal on the demo "
                  "association; at larger sizes floating-point sums taken in another order can move a member "
                  "across a tie of the percentile rank).", "",
                  "| implementation | wall time | speed-up of dbt |", "|---|---|---|",
                  f"| dbt-duckdb: `dbt run --select member_engagement` (dbt process start, parse, run) | "
                  f"{_seconds(engagement['dbt_run_seconds'])} | {engagement['speedup_dbt_run']:.2f}× |",
                  f"| the same compiled SQL straight in DuckDB (engine time only) | "
                  f"{_seconds(engagement['sql_seconds'])} | {engagement['speedup_sql']:.2f}× |",
                  f"| pandas peer (`scoring.engagement.engagement_as_of`): read inputs, compute, write | "
                  f"{_seconds(engagement['pandas_seconds'])} | 1× |",
                  f"| of which: read inputs into pandas | {_seconds(engagement['pandas_read_seconds'])} | |",
                  f"| of which: compute | {_seconds(engagement['pandas_compute_seconds'])} | |"]
    send = m.get("send")
    if send:
        lines += ["", "## Send throughput to the sandbox", "",
                  f"The official `sendgrid` client against the local sandbox, {send['requests']} requests of "
                  f"{send['personalizations_per_request']:,} personalizations (one recipient each): "
                  f"{send['messages']:,} messages in {_seconds(send['seconds'])}, **{send['messages_per_second']:,.0f} "
                  "messages/s**. Median request "
                  f"{send['median_request_seconds'] * 1000:.0f} ms, slowest {send['max_request_seconds'] * 1000:.0f} ms."]
    if m.get("analysis"):
        lines += ["", "## Analysis", "", m["analysis"].strip()]
    return "\n".join(lines) + "\n"


def sensor_cell(run: dict) -> str:
    report = run.get("campaigns")
    if "sensor" not in run["stages"] or not report:
        return "not measured"
    count = report["run_requests"]
    return f"{_seconds(run['stages']['sensor'])} ({count} run request{'' if count == 1 else 's'})"


def send_cell(run: dict) -> str:
    report = run.get("campaigns")
    if "send" not in run["stages"] or not report:
        return "not measured"
    if not report["run_requests"]:
        return f"{_seconds(run['stages']['send'])} (no wave requested)"
    rate = report.get("messages_per_second")
    return (f"{_seconds(run['stages']['send'])} ({report['messages_sent']:,} sent"
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


# ---------------------------------------------------------------- associations and the sandbox

def ensure_bench_association(members: int, years: int, seed: int, end_date: str) -> tuple[Path, dict, dict]:
    """The cached association (regenerated when its manifest's config differs) and its generation record."""
    from alumni_orchestration.demo import ensure_association

    data = association_dir(members, years, seed, end_date)
    record_path = data / "bench_generation.json"
    started = time.perf_counter()
    manifest = ensure_association(data, members, years, seed, end_date)
    elapsed = time.perf_counter() - started
    if elapsed > 1 or not record_path.exists():  # it was (re)generated just now
        disk = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
        record = {"members": members, "years": years, "seconds": elapsed if elapsed > 1 else None, "disk_bytes": disk,
                  "sendgrid_events": manifest["counts"]["sendgrid_events"]}
        record_path.write_text(json.dumps(record))
    return data, manifest, json.loads(record_path.read_text())


def landing_dir(data: Path) -> Path:
    return data / "bench_landing" / "sendgrid"


def land_webhook_history(data: Path) -> float:
    """What the receiver would have landed, once per association (days already landed are skipped)."""
    from alumni_orchestration.demo import land_history

    previous = os.environ.get("SENDGRID_WEBHOOK_LANDING")
    os.environ["SENDGRID_WEBHOOK_LANDING"] = str(landing_dir(data))
    started = time.perf_counter()
    try:
        land_history(data)
    finally:
        if previous is None:
            del os.environ["SENDGRID_WEBHOOK_LANDING"]
        else:
            os.environ["SENDGRID_WEBHOOK_LANDING"] = previous
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_bench_sandbox(data: Path, port: int) -> None:
    from alumni_orchestration.sandbox import server

    with server.SandboxServer(data, port=port):
        print(f"bench sandbox on port {port}", flush=True)
        while True:
            time.sleep(3600)


@contextmanager
def sandbox_process(data: Path, log: Path) -> Iterator[str]:
    """The API sandbox in its own process, so that its memory is not counted as the pipeline's."""
    from alumni_orchestration.demo import wait_for_port

    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "alumni_orchestration.bench", "sandbox", str(data), str(port)],
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, child, timeout=600)  # loading a large association's files takes a while
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


# ---------------------------------------------------------------- one pipeline phase (child process)

def phase_environment(data: Path, run_dir: Path, history_start: str, sandbox_url: str) -> dict[str, str]:
    return {
        **SANDBOX_ENV,
        "ALUMNI_HOME": str(run_dir),
        "ALUMNI_WAREHOUSE": str(run_dir / "warehouse.duckdb"),
        "DAGSTER_HOME": str(run_dir / "dagster"),
        "ALUMNI_PARTITIONS_START": history_start,
        "ALUMNI_SANDBOX_URL": sandbox_url,
        "MEMBERSHIP_DATABASE_URL": f"sqlite:///{data / 'membership.sqlite'}",
        "SENDGRID_WEBHOOK_LANDING": str(landing_dir(data)),
        "ALUMNI_SEND_MODE": "sandbox",  # the campaign waves send to the phase's sandbox, never anywhere else
    }


def phase_record(first_day: str, last_day: str, stages: dict[str, float], steps: dict[str, float], failed: list[str],
                 campaign_report: dict[str, Any] | None, peak_after: dict[str, int]) -> dict[str, Any]:
    peaks = peak_rss_bytes()
    return {"first_day": first_day, "last_day": last_day, "stages": dict(stages), "steps": dict(steps),
            "total_seconds": sum(stages.values()),
            "pipeline_seconds": sum(stages[s] for s in STAGES if s in stages),
            "success": not failed, "failed_stage": ", ".join(failed) or None,
            "failure": failure_reason(failed), "campaigns": campaign_report,
            "peak_rss_self_bytes": peaks["self"], "peak_rss_children_bytes": peaks["children"],
            "peak_rss_bytes": max(peaks.values()), "peak_rss_self_after_stage_bytes": dict(peak_after),
            "warehouse_bytes": file_bytes(Path(os.environ["ALUMNI_WAREHOUSE"]))}


def run_phase(first_day: str, last_day: str, progress: Path | None = None) -> dict[str, Any]:
    """Run the three pipeline stages over [first_day, last_day], then the two campaign stages, in this
    process (environment already set). Every stage runs even after a failure, so that a scoring failure
    still leaves ingest and dbt measured (the sensors then see the score history as it is)."""
    import dagster as dg

    from alumni_orchestration.definitions import defs

    jobs = [dg.define_asset_job(f"bench_{stage}", selection=dg.AssetSelection.groups(*groups))
            for stage, groups in STAGES.items()]
    definitions = dg.Definitions.merge(defs(), dg.Definitions(jobs=jobs))
    tags = {"dagster/asset_partition_range_start": first_day, "dagster/asset_partition_range_end": last_day}
    as_of = dt.date.fromisoformat(last_day) + dt.timedelta(days=1)  # what the scoring stage computes as of
    stages: dict[str, float] = {}
    steps: dict[str, float] = {}
    peak_after: dict[str, int] = {}  # the process's lifetime peak once each stage is done: which stage set it
    failed: list[str] = []
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.local_temp(tempdir=str(home), overrides={"telemetry": {"enabled": False}}) as instance:
        for stage in STAGES:
            started = time.perf_counter()
            result = definitions.resolve_job_def(f"bench_{stage}").execute_in_process(
                instance=instance, tags=tags, raise_on_error=False)
            stages[stage] = time.perf_counter() - started
            steps.update(step_seconds(result))
            peak_after[stage] = peak_rss_bytes()["self"]
            if not result.success:
                failed.append(stage)
                print(f"bench: stage {stage} failed: {failure_summary(result)}", flush=True)
            if progress:  # what is measured so far survives a phase stopped at its time limit
                progress.write_text(json.dumps(phase_record(first_day, last_day, stages, steps, failed, None,
                                                            peak_after)))

        campaign_seconds, campaign_report, campaign_failed = campaign_stages(
            instance, definitions, home / "bench_sensor_cursors.json", as_of, os.environ["ALUMNI_SANDBOX_URL"], steps,
            peak_after)
        stages.update(campaign_seconds)
        failed += campaign_failed
    return phase_record(first_day, last_day, stages, steps, failed, campaign_report, peak_after)


def campaign_stages(instance, definitions, cursors_path: Path, as_of: dt.date, sandbox_url: str,
                    steps: dict[str, float], peak_after: dict[str, int]) -> tuple[dict[str, float], dict[str, Any], list[str]]:
    """The "sensor" and "send" stages: (seconds per stage, what they requested and sent, the stages that failed).

    The cursors file holds what the previous phase's tick left, as the daemon would keep it between ticks."""
    stages: dict[str, float] = {}
    failed: list[str] = []
    cursors = json.loads(cursors_path.read_text()) if cursors_path.exists() else {}
    started = time.perf_counter()
    sensors, wave_requests = evaluate_campaign_sensors(instance, definitions.resources["warehouse"], cursors, as_of)
    stages["sensor"] = time.perf_counter() - started
    peak_after["sensor"] = peak_rss_bytes()["self"]
    cursors_path.write_text(json.dumps({name: entry["cursor_after"] for name, entry in sensors.items()}))
    steps.update({f"{name} (evaluation)": entry["seconds"] for name, entry in sensors.items()})
    if any(entry["error"] for entry in sensors.values()):
        failed.append("sensor")

    requested = len(wave_requests)
    try:  # untimed: it is the sandbox's own work (it releases the sends now due)
        clock = set_sandbox_clock(sandbox_url, as_of)
    except OSError as exc:  # requests' errors are OSErrors: without the wave's clock, send nothing
        print(f"bench: could not set the sandbox's clock, no wave sent: {exc}", flush=True)
        clock, wave_requests = None, []
        failed.append("send")
    started = time.perf_counter()
    waves = run_waves(instance, definitions.resolve_job_def("campaign_job"), wave_requests, steps)
    stages["send"] = time.perf_counter() - started
    peak_after["send"] = peak_rss_bytes()["self"]
    if any(not wave["success"] for wave in waves):
        failed.append("send")
    sent = sum(wave["sent"] for wave in waves)
    report = {"as_of": as_of.isoformat(), "sandbox_clock": clock, "sensors": sensors, "waves": waves,
              "run_requests": requested, "messages_sent": sent,
              "messages_per_second": sent / stages["send"] if sent and stages["send"] > 0 else None}
    return stages, report, failed


def evaluate_campaign_sensors(instance, warehouse, cursors: dict[str, str | None],
                              as_of: dt.date) -> tuple[dict[str, dict[str, Any]], list]:
    """One tick of every campaign sensor, each from the cursor the previous tick left (none: the latest
    snapshot only). Returns, per sensor, what it requested or why it did not; and the run requests."""
    import dagster as dg

    from alumni_orchestration.campaigns.definitions import campaigns
    from alumni_orchestration.defs.campaigns.sensors import campaign_sensors

    report: dict[str, dict[str, Any]] = {}
    all_requests = []
    for sensor in campaign_sensors:
        campaign_id = sensor.name.removesuffix("_sensor")
        cursor = cursors.get(sensor.name)
        entry: dict[str, Any] = {"campaign": campaign_id, "cursor_before": cursor, "cursor_after": cursor,
                                 "requests": 0, "run_keys": [], "triggered_members": 0, "skip_reason": None,
                                 "note": None, "error": None}
        started = time.perf_counter()
        try:
            with dg.build_sensor_context(instance=instance, sensor_name=sensor.name, cursor=cursor,
                                         resources={"warehouse": warehouse}) as context:
                result = sensor(context)
                entry["cursor_after"] = context.cursor
        except Exception as exc:  # a sensor that raises is this stage's failure, not the harness's
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            entry["error"] = f"{type(exc).__name__}: {first_line}"
            result = []
            print(f"bench: sensor {sensor.name} failed: {entry['error']}", flush=True)
        entry["seconds"] = time.perf_counter() - started
        if isinstance(result, dg.SkipReason):
            entry["skip_reason"] = result.skip_message
            result = []
        requests = list(result or [])
        entry["requests"] = len(requests)
        entry["run_keys"] = [r.run_key for r in requests]
        # The audience the requests imply: the members the campaign's triggers selected (the sensor's own count).
        entry["triggered_members"] = sum(int(r.tags.get("alumni/triggered_members", 0)) for r in requests)
        campaign = campaigns().get(campaign_id)
        if not requests and campaign is not None and campaign.is_sequence and as_of < campaign.season_opens_on(as_of):
            entry["note"] = (f"the {campaign_id} sequence starts when its season opens "
                             f"({campaign.season_opens_on(as_of).isoformat()}); {as_of.isoformat()} is before that")
        report[sensor.name] = entry
        all_requests.extend(requests)
    return report, all_requests


def set_sandbox_clock(sandbox_url: str, as_of: dt.date) -> str:
    """The sandbox's clock (which the sending resource reads in sandbox mode) to the wave's morning."""
    from alumni_orchestration.campaigns.send_window import PARIS
    from alumni_orchestration.demo import set_sandbox_clock as set_clock

    moment = dt.datetime.combine(as_of, WAVE_MORNING, PARIS)
    set_clock(sandbox_url, moment.timestamp())
    return moment.isoformat()


def run_waves(instance, job, wave_requests: list, steps: dict[str, float]) -> list[dict[str, Any]]:
    """Each requested wave through `campaign_job`, in process, as the daemon would launch it (once per run key).
    Adds the waves' step durations into `steps` (summed over waves)."""
    import dagster as dg

    from alumni_orchestration.defs.campaigns.assets import AUDIENCE, SENDS

    waves = []
    for request in wave_requests:
        wave: dict[str, Any] = {"run_key": request.run_key, "campaign": request.tags.get("alumni/campaign"),
                                "as_of": request.tags.get("alumni/as_of"),
                                "triggered": int(request.tags.get("alumni/triggered_members", 0)),
                                "included": None, "treatment": None, "control": None, "sent": 0, "requests": 0,
                                "failed": 0}
        if instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key})):
            waves.append({**wave, "success": True, "skipped": "run key already launched"})
            continue
        started = time.perf_counter()
        result = job.execute_in_process(partition_key=request.partition_key, instance=instance,
                                        tags={**request.tags, "dagster/run_key": request.run_key},
                                        raise_on_error=False)
        wave["seconds"] = time.perf_counter() - started
        for event in result.get_asset_materialization_events():
            metadata = {k: v.value for k, v in event.materialization.metadata.items()}
            if event.materialization.asset_key == AUDIENCE:
                wave.update({k: int(metadata[k]) for k in ("included", "treatment", "control") if k in metadata})
            elif event.materialization.asset_key == SENDS:
                wave.update({k: int(metadata[k]) for k in ("sent", "requests", "failed") if k in metadata})
        for event in result.all_events:  # a failed send step still says what it sent, in its failure's metadata
            failure = event.step_failure_data if event.event_type == dg.DagsterEventType.STEP_FAILURE else None
            if failure and failure.user_failure_data and "sent" in failure.user_failure_data.metadata:
                metadata = failure.user_failure_data.metadata
                wave.update({k: int(metadata[k].value) for k in ("sent", "requests", "failed") if k in metadata})
        for step, seconds in step_seconds(result).items():
            steps[step] = steps.get(step, 0.0) + seconds
        wave["success"] = result.success
        if not result.success:
            print(f"bench: wave {request.run_key} failed: {failure_summary(result)}", flush=True)
        waves.append(wave)
    return waves


def step_seconds(result) -> dict[str, float]:
    """Each step's own duration, from its success or failure event: where a stage's time goes."""
    durations = {}
    for event in result.all_events:
        if event.is_step_success or event.is_step_failure:
            data = event.event_specific_data
            duration = getattr(data, "duration_ms", None)
            if duration is not None:
                durations[event.step_key] = duration / 1000
    return durations


def marts_built(run: dict | None) -> bool:
    return bool(run) and "dbt" in run["stages"] and "ingest" not in (run["failed_stage"] or "") \
        and "dbt" not in (run["failed_stage"] or "")


def failure_summary(result) -> str:
    """The failed steps' error messages, first line each: no payloads, so no personal data."""
    import dagster as dg

    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return "; ".join(f"{e.step_key}: {e.step_failure_data.error.message.strip().splitlines()[0][:200]}"
                     for e in failures if e.step_failure_data and e.step_failure_data.error)


def failure_reason(failed: list[str]) -> str | None:
    return f"stage(s) {', '.join(failed)} failed; see the phase log" if failed else None


def run_phase_in_child(env: dict[str, str], first_day: str, last_day: str, log: Path,
                       time_limit: float | None = None) -> dict[str, Any]:
    """The phase in a process of its own; stopped after `time_limit` seconds, keeping the stages it finished."""
    out, progress = log.with_suffix(".json"), log.with_suffix(".partial.json")
    for stale in (out, progress):
        stale.unlink(missing_ok=True)
    with open(log, "ab") as handle:
        child = subprocess.Popen([sys.executable, "-m", "alumni_orchestration.bench", "phase", first_day, last_day,
                                  str(out)], env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT)
        try:
            code = child.wait(timeout=time_limit)
            reason = f"the phase process exited with code {code}, see {log}"
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
            reason = f"stopped at the time limit ({time_limit / 60:.0f} min)"
    if code == 0 and out.exists():
        return json.loads(out.read_text())
    if progress.exists():  # the stages finished before it stopped
        partial = json.loads(progress.read_text())
        done = ", ".join(partial["stages"])
        return {**partial, "success": False, "interrupted": True,
                "failed_stage": f"{reason}; stages completed: {done or 'none'}", "failure": reason}
    return {"first_day": first_day, "last_day": last_day, "stages": {}, "total_seconds": None, "success": False,
            "failed_stage": reason, "peak_rss_self_bytes": None, "peak_rss_children_bytes": None,
            "peak_rss_bytes": None, "warehouse_bytes": None}


def reset_sandbox_outputs(data: Path) -> None:
    """The phase sandbox serves the cached association's folder: start each scenario from its generated state."""
    for name in SANDBOX_OUTPUTS:
        (data / name).unlink(missing_ok=True)


def pipeline_scenario(data: Path, manifest: dict, run_dir: Path, say,
                      phase_time_limit: float | None = None) -> dict[str, Any]:
    """A fresh warehouse and instance: the full first load, then the nightly run (not after a full load
    stopped at its time limit)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    history_start, end_date = manifest["period"]["history_start"], manifest["period"]["end"]
    landing_seconds = land_webhook_history(data)
    config = manifest["config"]
    result: dict[str, Any] = {"members": config["members"], "years": config["years"],
                              "landing_seconds": landing_seconds}
    reset_sandbox_outputs(data)
    with sandbox_process(data, run_dir / "logs" / "sandbox.log") as sandbox_url:
        env = phase_environment(data, run_dir, history_start, sandbox_url)
        for phase, (first, last) in phase_windows(history_start, end_date).items():
            if result.get("full", {}).get("interrupted"):
                say(f"  {phase}: not run, the full load was stopped at its time limit")
                break
            say(f"  {phase}: partitions {first} .. {last}")
            run = run_phase_in_child(env, first, last, run_dir / "logs" / f"{phase}.log", phase_time_limit)
            result[phase] = run
            say(f"  {phase}: {'ok' if run['success'] else 'FAILED: ' + str(run['failed_stage'])} in "
                f"{_seconds(run['total_seconds'])} { {k: round(v, 1) for k, v in run['stages'].items()} }")
    return result


# ---------------------------------------------------------------- dbt mart vs pandas peer

def compare_engagement(warehouse: Path, as_of: str, work: Path) -> dict[str, Any]:
    """`dbt run` of the engagement mart against the pandas peer, on the same warehouse and day."""
    import duckdb
    import numpy as np

    from alumni_orchestration.defs.dbt.assets import DBT_PROJECT_DIR
    from alumni_orchestration.scoring.engagement import engagement_as_of

    target = work / "dbt_target"
    env = {**os.environ, "ALUMNI_WAREHOUSE": str(warehouse)}
    dbt = str(Path(sys.executable).parent / "dbt")
    command = [dbt, "run", "--select", "member_engagement", "--vars", json.dumps({"as_of": as_of}),
               "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
               "--target-path", str(target), "--log-path", str(work / "dbt_logs"), "--quiet"]
    subprocess.run(command, env=env, check=True)  # warm-up: first parse into the private target path
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    dbt_run_seconds = time.perf_counter() - started

    compiled = next(target.glob("compiled/**/member_engagement.sql")).read_text()
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("create schema if not exists bench")
        started = time.perf_counter()
        conn.execute(f"create or replace table bench.member_engagement_sql as {compiled}")
        sql_seconds = time.perf_counter() - started

        started = time.perf_counter()
        activity = conn.execute("select * from marts.member_activity_daily").df()
        roles = conn.execute("select * from staging.stg_membership__volunteer_roles").df()
        memberships = conn.execute("select * from staging.stg_membership__group_memberships").df()
        profile = conn.execute("select member_id, segment, consent_newsletter, email_status "
                               "from marts.member_profile").df()
        read_seconds = time.perf_counter() - started
        started = time.perf_counter()
        peer = engagement_as_of(activity, roles, memberships, profile, dt.date.fromisoformat(as_of))
        compute_seconds = time.perf_counter() - started
        started = time.perf_counter()
        frame = peer.reset_index()
        conn.register("peer", frame)
        conn.execute("create or replace table bench.member_engagement_pandas as select * from peer")
        write_seconds = time.perf_counter() - started
        mart = conn.execute("select member_id, engagement_index from marts.member_engagement").df().set_index("member_id")
    difference = float(np.max(np.abs(mart.engagement_index.sort_index().to_numpy()
                                     - peer.engagement_index.sort_index().to_numpy()))) if len(mart) else 0.0
    pandas_seconds = read_seconds + compute_seconds + write_seconds
    return {"activity_rows": len(activity), "output_rows": len(mart), "max_abs_difference": difference,
            "dbt_run_seconds": dbt_run_seconds, "sql_seconds": sql_seconds, "pandas_seconds": pandas_seconds,
            "pandas_read_seconds": read_seconds, "pandas_compute_seconds": compute_seconds,
            "pandas_write_seconds": write_seconds,
            "speedup_dbt_run": pandas_seconds / dbt_run_seconds, "speedup_sql": pandas_seconds / sql_seconds}


# ---------------------------------------------------------------- send throughput

def send_batches(recipients: list[str], per_request: int) -> list[dict[str, Any]]:
    """Mail Send bodies of `per_request` personalizations, one recipient each, cycling through the list."""
    bodies = []
    for start in range(0, len(recipients), per_request):
        chunk = recipients[start:start + per_request]
        bodies.append({
            "from": {"email": "association@example.org", "name": "Association"},
            "subject": "Benchmark",
            "content": [{"type": "text/plain", "value": "Bonjour {{first_name}}"}],
            "personalizations": [{"to": [{"email": email}], "custom_args": {"campaign": "bench"}} for email in chunk],
            "categories": ["bench"],
        })
    return bodies


def measure_send(association: Path, work: Path, messages: int, per_request: int) -> dict[str, Any]:
    """Messages per second through the official client into an in-process sandbox on a scratch copy."""
    from sendgrid import SendGridAPIClient

    from alumni_orchestration.sandbox.server import SandboxServer

    data = work / "send_sandbox"
    if data.exists():
        shutil.rmtree(data)
    shutil.copytree(association, data, ignore=shutil.ignore_patterns("bench_landing", "sandbox_state.json",
                                                                     "mail_send.jsonl", "sent_messages.jsonl"))
    with SandboxServer(data, port=0) as server:
        known = sorted(server.sandbox.shared.recipients)
        recipients = [known[i % len(known)] for i in range(messages)]
        bodies = send_batches(recipients, per_request)
        client = SendGridAPIClient(api_key=SANDBOX_ENV["SENDGRID_API_KEY"], host=f"{server.base_url}/sendgrid")
        durations = []
        started = time.perf_counter()
        for body in bodies:
            request_started = time.perf_counter()
            response = client.client.mail.send.post(request_body=body)
            durations.append(time.perf_counter() - request_started)
            if response.status_code != 202:
                raise RuntimeError(f"the sandbox answered {response.status_code}")
        seconds = time.perf_counter() - started
    durations.sort()
    return {"requests": len(bodies), "personalizations_per_request": per_request, "messages": len(recipients),
            "seconds": seconds, "messages_per_second": len(recipients) / seconds,
            "median_request_seconds": durations[len(durations) // 2], "max_request_seconds": durations[-1]}


# ---------------------------------------------------------------- the harness

def results_paths(out_dir: Path, date: str) -> tuple[Path, Path]:
    return out_dir / f"{date}.md", out_dir / f"{date}.json"


def write_results(measurements: dict[str, Any], out_dir: Path) -> Path:
    """<date>.md and <date>.json; a hand-written <date>.analysis.md, if present, closes the markdown."""
    markdown, raw = results_paths(out_dir, measurements["date"])
    out_dir.mkdir(parents=True, exist_ok=True)
    analysis = out_dir / f"{measurements['date']}.analysis.md"
    raw.write_text(json.dumps({k: v for k, v in measurements.items() if k != "analysis"}, indent=1, sort_keys=True)
                   + "\n")
    markdown.write_text(results_markdown({**measurements, "analysis": analysis.read_text() if analysis.exists() else ""}))
    return markdown


def run_bench(sizes: list[int], years: int = 3, short_years: int = 1, growth_members: int = 100_000,
              engagement_members: int = 100_000, send_messages: int = 20_000, seed: int = BENCH_SEED,
              end_date: str = BENCH_END_DATE, out_dir: Path = Path("benchmarks/results"),
              skip: frozenset[str] = frozenset(), command: str = "", date: str | None = None,
              phase_time_limit: float | None = None) -> Path:
    def say(text: str) -> None:
        print(text, flush=True)

    date = date or dt.date.today().isoformat()
    _, raw = results_paths(out_dir, date)
    previous = json.loads(raw.read_text()) if raw.exists() else {}
    same_setup = (previous.get("seed"), previous.get("end_date"), previous.get("years")) == (seed, end_date, years)
    measurements: dict[str, Any] = previous if same_setup else {}
    measurements.update({"date": date, "seed": seed, "end_date": end_date, "years": years,
                         "machine": machine_description()})
    measurements["invocations"] = [*measurements.get("invocations", []),
                                   command or f"alumni bench --sizes {','.join(map(str, sizes))}"]
    measurements["load_averages"] = [*measurements.get("load_averages", []),
                                     measurements["machine"]["load_average_at_start"]]
    measurements.setdefault("pipeline", {})
    measurements.setdefault("generation", {})
    runs = bench_home() / "runs"

    def scenario(members: int, history_years: int) -> dict[str, Any]:
        label = f"{members}m-{history_years}y"
        say(f"{label}: association")
        data, manifest, generation = ensure_bench_association(members, history_years, seed, end_date)
        measurements["generation"][label] = generation
        say(f"{label}: pipeline")
        measurements["pipeline"][label] = pipeline_scenario(data, manifest, runs / label, say, phase_time_limit)
        write_results(measurements, out_dir)
        return measurements["pipeline"][label]

    if "pipeline" not in skip:
        for members in sizes:
            scenario(members, years)
    if "growth" not in skip:
        long = measurements["pipeline"].get(f"{growth_members}m-{years}y") or scenario(growth_members, years)
        short = long if short_years == years else scenario(growth_members, short_years)
        growth = history_growth(long.get("nightly"), short.get("nightly"))
        if growth:
            measurements["growth"] = {"members": growth_members, "short_years": short_years, "long_years": years,
                                      **growth}
        write_results(measurements, out_dir)
    if "engagement" not in skip:
        label = f"{engagement_members}m-{years}y"
        if not marts_built(measurements["pipeline"].get(label, {}).get("full")) or not (
                runs / label / "warehouse.duckdb").exists():
            scenario(engagement_members, years)
        say(f"{label}: dbt mart vs pandas peer")
        as_of = (dt.date.fromisoformat(end_date) + dt.timedelta(days=1)).isoformat()
        with tempfile.TemporaryDirectory(dir=bench_home()) as work:
            measurements["engagement"] = {"members": engagement_members, **compare_engagement(
                runs / label / "warehouse.duckdb", as_of, Path(work))}
        write_results(measurements, out_dir)
    if "send" not in skip:
        say(f"send throughput: {send_messages:,} messages")
        data, _, _ = ensure_bench_association(min(sizes), years, seed, end_date)
        with tempfile.TemporaryDirectory(dir=bench_home()) as work:
            measurements["send"] = measure_send(data, Path(work), send_messages, PERSONALIZATIONS_PER_REQUEST)
    path = write_results(measurements, out_dir)
    say(f"results: {path}")
    return path


def _phase_main(first_day: str, last_day: str, out: str) -> int:
    result = run_phase(first_day, last_day, progress=Path(out).with_suffix(".partial.json"))
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":  # the harness's own child processes; `alumni bench` is the entry point
    if len(sys.argv) == 5 and sys.argv[1] == "phase":
        sys.exit(_phase_main(*sys.argv[2:]))
    if len(sys.argv) == 4 and sys.argv[1] == "sandbox":
        serve_bench_sandbox(Path(sys.argv[2]), int(sys.argv[3]))
    sys.exit("usage: python -m alumni_orchestration.bench phase FIRST_DAY LAST_DAY OUT.json | sandbox DATA PORT")
