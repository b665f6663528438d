"""One benchmark scenario: a cached association, its webhook history landed once, its API sandbox in a
process of its own, then the full first load and the nightly run, each in a fresh child process (so that
each phase's peak RSS is its own; the child runs `phase.py`)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alumni_orchestration.harness.association import ensure_association
from alumni_orchestration.harness.bench.plan import (
    SANDBOX_OUTPUTS,
    association_dir,
    landing_dir,
    phase_windows,
    seconds_text,
)
from alumni_orchestration.harness.landing_history import land_history
from alumni_orchestration.harness.ports import wait_until_own_port
from alumni_orchestration.harness.sandbox_clock import SANDBOX_ENV


def ensure_bench_association(members: int, years: int, seed: int, end_date: str) -> tuple[Path, dict, dict]:
    """The cached association (regenerated when its manifest's config differs) and its generation record."""
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


def land_webhook_history(data: Path) -> float:
    """What the receiver would have landed, once per association (days already landed are skipped); seconds."""
    started = time.perf_counter()
    land_history(data, landing_dir(data))
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def sandbox_process(data: Path, log: Path) -> Iterator[str]:
    """The API sandbox in its own process, so that its memory is not counted as the pipeline's."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "alumni_orchestration.harness.bench", "sandbox", str(data), str(port)],
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        # Loading a large association's files takes a while; the port must be this child's, not a stray listener's.
        wait_until_own_port(port, child, "bench sandbox", log, timeout=600)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


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


def run_phase_in_child(env: dict[str, str], first_day: str, last_day: str, log: Path,
                       time_limit: float | None = None) -> dict[str, Any]:
    """The phase in a process of its own; stopped after `time_limit` seconds, keeping the stages it finished."""
    out, progress = log.with_suffix(".json"), log.with_suffix(".partial.json")
    for stale in (out, progress):
        stale.unlink(missing_ok=True)
    with open(log, "ab") as handle:
        child = subprocess.Popen([sys.executable, "-m", "alumni_orchestration.harness.bench", "phase", first_day, last_day,
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
                f"{seconds_text(run['total_seconds'])} { {k: round(v, 1) for k, v in run['stages'].items()} }")
    return result
