"""`alumni demo`: the embedded default, end to end, on one machine with no account anywhere.

1. generates a demo association under $ALUMNI_HOME/demo (kept while its parameters hold);
2. starts the API sandbox and the SendGrid webhook receiver as child processes, on ports it checked were
   free before anything else, and talks to each only once that port is listened on by its own child;
3. lands the association's webhook history, day by day, as the receiver would have;
4. runs the main job `alumni_main` over the whole history on the instance in $ALUMNI_HOME/dagster;
5. closes the loop once, replaying the days since the association's last day (REPLAY_DAYS ago):
   evaluates the campaign sensors on the next morning, runs the waves they request (sending to the
   sandbox), runs the sandbox's clock through the sends and the recipients' reactions up to now, then
   backfills the campaign window with one run of `campaign_window_job` and prints `campaign_results`
   beside the generator's true uplift;
6. serves the Dagster UI (`dagster dev`), unless --headless.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from alumni_orchestration import settings
from alumni_orchestration.harness.association import ensure_association
from alumni_orchestration.harness.landing_history import land_history
from alumni_orchestration.harness.ports import PortError, ensure_free, wait_until_own_port
from alumni_orchestration.harness.sandbox_clock import (
    SANDBOX_ENV,
    paris_time,
    run_clock_through,
    set_sandbox_clock,
    wait_for_webhook_delivery,
)
from alumni_orchestration.harness.waves import evaluate_campaign_sensors, run_waves

# The demo's association ends this many days ago. Its campaigns go out the next morning, and the days
# since are the campaign's window: the sandbox's recipients react through them, and the demo backfills it.
REPLAY_DAYS = 8

# The demo's Dagster instance: the recovery settings of the production one, on SQLite.
INSTANCE_YAML = (Path(__file__).parents[1] / "deploy" / "demo_instance.yaml").read_text()


def demo_environment(home: Path, sandbox_port: int) -> dict[str, str]:
    env = {
        "ALUMNI_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "ALUMNI_SANDBOX_URL": f"http://127.0.0.1:{sandbox_port}",
        "MEMBERSHIP_DATABASE_URL": f"sqlite:///{home / 'demo' / 'membership.sqlite'}",
        # The generator's truth, for the oracle yardstick in the model metrics only; never a model input.
        "ALUMNI_GROUND_TRUTH": str(home / "demo" / "ground_truth"),
        # The simulated world's true campaign effects, for campaign_results' "simulated truth" beside each estimate.
        "ALUMNI_SIMULATED_TRUTH_DIR": str(home / "demo" / "simulated_truth"),
    }
    for key, value in SANDBOX_ENV.items():
        env[key] = os.environ.get(key, value)
    return env


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
        wait_until_own_port(sandbox_port, sandbox, "sandbox", logs / "sandbox.log")
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
        wait_until_own_port(webhook_port, receiver, "webhook receiver", logs / "webhook.log")
        yield public_key
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)


def run_main_job(first_day: str, last_day: str) -> bool:
    import dagster as dg

    from alumni_orchestration.definitions import defs

    definitions = defs()
    job = definitions.resolve_job_def("alumni_main")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags={"dagster/asset_partition_range_start": first_day, "dagster/asset_partition_range_end": last_day},
            raise_on_error=False,
        )
    return result.success


def send_requested_waves(definitions, instance, as_of: dt.date) -> dict[str, int]:
    """One tick of every campaign sensor, then each wave it requests, once per run key (as the bench runs them)."""
    sensors, requested = evaluate_campaign_sensors(instance, definitions.resources["warehouse"], {}, as_of)
    for name, entry in sensors.items():
        if entry["error"] or entry["skip_reason"]:
            print(f"{name}: {entry['error'] or entry['skip_reason']}", flush=True)
    waves = run_waves(instance, definitions.resolve_job_def("campaign_job"), requested, {})
    for wave in waves:
        outcome = wave.get("skipped") or (f"sent {wave['sent']}" if wave["success"] else "FAILED")
        print(f"{wave['run_key']}: {outcome}", flush=True)
    return {"waves": sum(not wave.get("skipped") for wave in waves), "sent": sum(wave["sent"] for wave in waves)}


def run_campaign_loop(sandbox_port: int, as_of: dt.date, window_end: dt.date) -> dict:
    """Replays the campaigns of the morning `as_of` and the days since, up to `window_end` (today):
    sensors -> waves sent to the sandbox -> the sandbox's clock runs, hour by hour, through the sends and
    the recipients' reactions (opens, clicks, HelloAsso payments) -> the campaign window is backfilled as
    the digital lead would, one run of `campaign_window_job` -> campaign results, beside the simulated truth."""
    import dagster as dg

    from alumni_orchestration.definitions import defs

    base = f"http://127.0.0.1:{sandbox_port}"
    definitions = defs()
    set_sandbox_clock(base, paris_time(as_of, 3))  # just after the nightly run of 02:00
    try:
        with dg.DagsterInstance.get() as instance:
            summary: dict = send_requested_waves(definitions, instance, as_of)
        run_clock_through(base, paris_time(as_of, 3), time.time())
    finally:
        set_sandbox_clock(base, time.time())  # the sandbox back on real time
    wait_for_webhook_delivery(base)
    window = (as_of.isoformat(), window_end.isoformat())
    print(f"Backfilling the campaign window {window[0]} .. {window[1]} (campaign_window_job, one run) ...", flush=True)
    with dg.DagsterInstance.get() as instance:
        backfill = definitions.resolve_job_def("campaign_window_job").execute_in_process(
            instance=instance, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": window[0], "dagster/asset_partition_range_end": window[1]})
    summary["window_backfill"] = "succeeded" if backfill.success else "FAILED"
    if backfill.success:
        summary["results"] = results_against_truth(definitions.resources["warehouse"].read)
    return summary


def results_against_truth(read_warehouse) -> list[dict]:
    """campaign_results' dues-reminder uplifts beside the generator's true uplift, printed and returned."""
    from alumni_orchestration.defs.campaigns.results import member_outcomes, simulated_truth

    with read_warehouse() as conn:
        results = conn.execute("select * from campaigns.campaign_results").df()
        window = int(results.outcome_window_days.iloc[0]) if len(results) else 30
        members = member_outcomes(conn, window)
    for row in results.itertuples():
        print(f"  {row.campaign_id} {row.cycle} {row.arm}: audience {row.audience}, sent {row.sent}, "
              f"delivered {row.delivered}, retained {row.retained}", flush=True)
    truth = simulated_truth(results, members, os.environ.get("ALUMNI_SIMULATED_TRUTH_DIR", ""))
    rows = [] if truth is None else truth.to_dict("records")
    for row in rows:
        print(f"  {row['campaign_id']} {row['cycle']}: uplift {row['uplift']:+.3f}, 95% CI "
              f"[{row['uplift_ci_low']:+.3f}, {row['uplift_ci_high']:+.3f}]; simulated truth {row['true_uplift']:+.3f}: "
              f"{'covered' if row['covered'] else 'NOT covered'}", flush=True)
    return rows


def run_demo(members: int = 5000, years: int = 4, seed: int = 42, headless: bool = False,
             sandbox_port: int = settings.SANDBOX_PORT, webhook_port: int = settings.SANDBOX_PORT + 1,
             ui_port: int = 3000) -> int:
    # First of all: a taken port fails the demo in a second, not after generating an association.
    ports = {"sandbox": sandbox_port, "webhook receiver": webhook_port}
    ensure_free(ports if headless else {**ports, "Dagster UI": ui_port})
    home = settings.alumni_home()
    env = demo_environment(home, sandbox_port)
    if "ALUMNI_WEBSERVER_URL" not in os.environ:  # the alerts' run links point at this demo's UI
        env["ALUMNI_WEBSERVER_URL"] = f"http://127.0.0.1:{ui_port}"
    os.environ.update(env)
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML)
    data = settings.demo_data_dir()
    today = dt.date.today()
    end = today - dt.timedelta(days=REPLAY_DAYS)
    manifest = ensure_association(data, members, years, seed, end.isoformat())
    # The partitions reach back to the first day the providers hold records for; set before anything
    # imports the definitions (the truth writer does), which fix the partitions when first imported.
    os.environ.setdefault("ALUMNI_PARTITIONS_START", manifest["period"]["history_start"])
    from alumni_orchestration.harness.truth import write_simulated_truth

    write_simulated_truth(data, Path(env["ALUMNI_SIMULATED_TRUTH_DIR"]))
    with services(home, data, sandbox_port, webhook_port, env):
        batches = land_history(data)
        print(f"Landed {batches} webhook batches of history. Running alumni_main ...", flush=True)
        first_day = max(settings.partitions_start(), manifest["period"]["history_start"])
        ok = run_main_job(first_day, manifest["period"]["end"])
        print(f"alumni_main {'succeeded' if ok else 'FAILED'} over {first_day} .. {manifest['period']['end']}", flush=True)
        if ok:
            loop = run_campaign_loop(sandbox_port, as_of=end + dt.timedelta(days=1), window_end=today)
            ok = loop.get("window_backfill") == "succeeded"
            print(f"Campaign loop: { {k: v for k, v in loop.items() if k != 'results'} }", flush=True)
        if headless:
            return 0 if ok else 1
        ui = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                               "-h", "127.0.0.1", "-p", str(ui_port)], env={**os.environ, **env})
        try:
            wait_until_own_port(ui_port, ui, "Dagster UI", timeout=300)
            print(f"Dagster UI: http://127.0.0.1:{ui_port}  (Ctrl-C to stop)", flush=True)
            return ui.wait()
        except PortError:
            ui.terminate()
            raise
        except KeyboardInterrupt:
            ui.terminate()
            return 0 if ok else 1
