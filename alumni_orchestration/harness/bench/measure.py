"""What the benchmark measures beside the pipeline's stages: peak memory, the machine, the nightly cost
against the length of history, the SQL marts against their pandas peers, and send throughput."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alumni_orchestration.harness.bench.plan import STAGES, failed_stages
from alumni_orchestration.harness.sandbox_clock import SANDBOX_ENV


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


def history_growth(long: dict | None, short: dict | None) -> dict[str, Any] | None:
    """Nightly time with the longer history over the shorter, on the stages that succeeded in both."""
    if not long or not short:
        return None
    failed = failed_stages(long) | failed_stages(short)
    ok = [s for s in STAGES if s in long["stages"] and s in short["stages"] and s not in failed]
    if not ok:
        return None
    long_seconds, short_seconds = sum(long["stages"][s] for s in ok), sum(short["stages"][s] for s in ok)
    return {"stages_compared": ok, "complete": len(ok) == len(STAGES), "short_seconds": short_seconds,
            "long_seconds": long_seconds, "short_stages": short["stages"], "long_stages": long["stages"],
            "short_failed": short.get("failed_stage"), "long_failed": long.get("failed_stage"),
            "ratio": long_seconds / short_seconds}


def largest_process(run: dict) -> int:
    """The peak of the largest single process. On Linux the children's figure includes the parent's image at
    fork time, so adding it to the parent's would count the parent twice."""
    return max(run["peak_rss_self_bytes"], run["peak_rss_children_bytes"] or 0)


def marts_built(run: dict | None) -> bool:
    return bool(run) and "dbt" in run["stages"] and not failed_stages(run) & {"ingest", "dbt"}


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
