"""`alumni demo`: the embedded default, end to end, on one machine with no account anywhere.

1. generates a demo association under $ALUMNI_HOME/demo (kept while its parameters hold);
2. starts the API sandbox and the SendGrid webhook receiver as child processes;
3. lands the association's webhook history, day by day, as the receiver would have;
4. runs the main job `alumni_main` over the whole history on the instance in $ALUMNI_HOME/dagster;
5. closes the loop once: evaluates the campaign sensors, runs the waves they request (sending to the
   sandbox), lets the sandbox's clock run past the scheduled sends, and ingests the reactions that
   its Event Webhook delivered;
6. serves the Dagster UI (`dagster dev`), unless --headless.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from alumni_orchestration import settings

# The sandbox's own credentials: they open nothing but the local sandbox.
SANDBOX_ENV = {
    "SENDGRID_API_KEY": "SG.sandbox-demo-key",
    "EVENTBRITE_TOKEN": "sandbox-eventbrite-token",
    "HELLOASSO_CLIENT_ID": "sandbox-client",
    "HELLOASSO_CLIENT_SECRET": "sandbox-secret",
}

INSTANCE_YAML = """\
# The demo's Dagster instance. Every warehouse writer is in the duckdb_warehouse pool: limit 1.
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def demo_environment(home: Path, sandbox_port: int) -> dict[str, str]:
    env = {
        "ALUMNI_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "ALUMNI_SANDBOX_URL": f"http://127.0.0.1:{sandbox_port}",
        "MEMBERSHIP_DATABASE_URL": f"sqlite:///{home / 'demo' / 'membership.sqlite'}",
        # The generator's truth, for the oracle yardstick in the model metrics only; never a model input.
        "ALUMNI_GROUND_TRUTH": str(home / "demo" / "ground_truth"),
    }
    for key, value in SANDBOX_ENV.items():
        env[key] = os.environ.get(key, value)
    return env


def ensure_association(data: Path, members: int, years: int, seed: int, end_date: str) -> dict:
    from alumni_orchestration.synthetic.generator import GeneratorConfig, generate_association

    manifest_path = data / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        config = manifest["config"]
        if (config["members"], config["years"], config["seed"], config["end_date"]) == (members, years, seed, end_date):
            return manifest
    print(f"Generating a {members}-member association ({years} years of history) in {data} ...", flush=True)
    return generate_association(data, GeneratorConfig(members=members, years=years, seed=seed, end_date=end_date))


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a demo service exited early (code {process.returncode}); see $ALUMNI_HOME/logs")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered on port {port} after {timeout:.0f} s")


@contextlib.contextmanager
def services(home: Path, data: Path, sandbox_port: int, webhook_port: int, env: dict[str, str]) -> Iterator[str]:
    """The sandbox and the webhook receiver, stopped on exit. Yields the sandbox's webhook public key."""
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "alumni_orchestration.cli"]
    children: list[subprocess.Popen] = []
    try:
        sandbox = subprocess.Popen(
            [*cli, "sandbox", "--data", str(data), "--port", str(sandbox_port),
             "--webhook-url", f"http://127.0.0.1:{webhook_port}/sendgrid/events"],
            stdout=open(logs / "sandbox.log", "ab"), stderr=subprocess.STDOUT, env={**os.environ, **env},  # noqa: SIM115
        )
        children.append(sandbox)
        wait_for_port(sandbox_port, sandbox)
        response = requests.get(
            f"http://127.0.0.1:{sandbox_port}/sendgrid/v3/user/webhooks/event/settings/signed/demo",
            headers={"Authorization": f"Bearer {env['SENDGRID_API_KEY']}"}, timeout=10)
        response.raise_for_status()
        public_key = response.json()["public_key"]
        receiver = subprocess.Popen(
            [*cli, "webhook", "--port", str(webhook_port), "--landing", str(settings.webhook_landing_dir())],
            stdout=open(logs / "webhook.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
            env={**os.environ, **env, "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key},
        )
        children.append(receiver)
        wait_for_port(webhook_port, receiver)
        yield public_key
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)


def land_history(data: Path) -> int:
    """Land the association's webhook history as the receiver would have, one folder per day."""
    from alumni_orchestration.webhook.landing import Landing

    landing = Landing(str(settings.webhook_landing_dir()))
    landed = 0
    for day_file in sorted((data / "providers" / "sendgrid" / "events").glob("*.jsonl")):
        day = day_file.stem
        if landing.list_batches(day):
            continue
        lines = day_file.read_text().splitlines()
        for start in range(0, len(lines), 1000):  # SendGrid posts batches of about this size
            body = ("[" + ",".join(lines[start:start + 1000]) + "]").encode()
            landing.write_batch(day, f"history-{start // 1000:05d}.json", body)
            landed += 1
    return landed


def run_main_job(first_day: str, last_day: str) -> bool:
    import dagster as dg

    from alumni_orchestration.definitions import defs

    definitions = defs()
    job = definitions.get_job_def("alumni_main")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags={"dagster/asset_partition_range_start": first_day, "dagster/asset_partition_range_end": last_day},
            raise_on_error=False,
        )
    return result.success


def run_campaign_loop(sandbox_port: int) -> dict[str, int]:
    """Sensors -> wave runs -> the sandbox sends and reacts -> the reactions are ingested."""
    import dagster as dg

    from alumni_orchestration.definitions import defs
    from alumni_orchestration.defs.campaigns.results import campaign_results_asset
    from alumni_orchestration.defs.campaigns.sensors import campaign_sensors
    from alumni_orchestration.webhook.landing import Landing
    from alumni_orchestration.webhook.receiver import paris_day

    definitions = defs()
    job = definitions.resolve_job_def("campaign_job")
    resources = definitions.resources
    summary = {"waves": 0, "sent": 0}
    with dg.DagsterInstance.get() as instance:
        for sensor in campaign_sensors:
            with dg.build_sensor_context(instance=instance, sensor_name=sensor.name,
                                         resources={"warehouse": resources["warehouse"]}) as context:
                result = sensor(context)
            if isinstance(result, dg.SkipReason):
                print(f"{sensor.name}: {result.skip_message}", flush=True)
                continue
            for request in result:
                if instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key})):
                    continue  # the run key was already launched: never a second wave
                run = job.execute_in_process(partition_key=request.partition_key, instance=instance,
                                             tags={**request.tags, "dagster/run_key": request.run_key},
                                             raise_on_error=False)
                sent = sum(int(e.materialization.metadata["sent"].value) for e in run.get_asset_materialization_events()
                           if "sent" in e.materialization.metadata)
                summary["waves"] += 1
                summary["sent"] += sent
                print(f"{request.run_key}: {'sent ' + str(sent) if run.success else 'FAILED'}", flush=True)
    if not summary["sent"]:
        return summary
    base = f"http://127.0.0.1:{sandbox_port}"
    # Let the sandbox's clock run past the scheduled sends (at most 35 h ahead: quiet hours), which
    # releases them, then past the recipients' reactions, which come within days of delivery.
    for days in (2, 3):
        requests.post(f"{base}/sandbox/clock", json={"advance": days * 86400}, timeout=30).raise_for_status()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = requests.get(f"{base}/sandbox/status", timeout=30).json()
        if not status["outbox"]:
            break
        time.sleep(1)
    today = paris_day(time.time())  # the landing folder the receiver filed today's reactions under
    landing = Landing(str(settings.webhook_landing_dir()))
    summary["reaction_batches"] = len(landing.list_batches(today))
    events = next(a for a in definitions.assets
                  if isinstance(a, dg.AssetsDefinition) and dg.AssetKey(["raw", "sendgrid_events"]) in a.keys)
    with dg.DagsterInstance.get() as instance:  # today's partition: the day the reactions were received
        ingested = dg.materialize([events], partition_key=today, instance=instance, resources=resources,
                                  raise_on_error=False)
        results = dg.materialize([campaign_results_asset], instance=instance, resources=resources,
                                 raise_on_error=False)
    summary["reactions_ingested"] = int(ingested.success)
    summary["results_rebuilt"] = int(results.success)
    return summary


def run_demo(members: int = 5000, years: int = 4, seed: int = 42, headless: bool = False,
             sandbox_port: int = settings.SANDBOX_PORT, webhook_port: int = settings.SANDBOX_PORT + 1,
             ui_port: int = 3000) -> int:
    home = settings.alumni_home()
    env = demo_environment(home, sandbox_port)
    os.environ.update(env)
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML)
    data = settings.demo_data_dir()
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    manifest = ensure_association(data, members, years, seed, yesterday)
    # The partitions reach back to the first day the providers hold records for.
    os.environ.setdefault("ALUMNI_PARTITIONS_START", manifest["period"]["history_start"])
    with services(home, data, sandbox_port, webhook_port, env):
        batches = land_history(data)
        print(f"Landed {batches} webhook batches of history. Running alumni_main ...", flush=True)
        first_day = max(settings.partitions_start(), manifest["period"]["history_start"])
        ok = run_main_job(first_day, manifest["period"]["end"])
        print(f"alumni_main {'succeeded' if ok else 'FAILED'} over {first_day} .. {manifest['period']['end']}", flush=True)
        if ok:
            loop = run_campaign_loop(sandbox_port)
            print(f"Campaign loop: {loop}", flush=True)
        if headless:
            return 0 if ok else 1
        print(f"Dagster UI: http://127.0.0.1:{ui_port}  (Ctrl-C to stop)", flush=True)
        ui = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                               "-p", str(ui_port)], env={**os.environ, **env})
        try:
            return ui.wait()
        except KeyboardInterrupt:
            ui.terminate()
            return 0 if ok else 1
