"""`alumni demo`: the embedded default, end to end, on one machine with no account anywhere.

1. generates a demo association under $ALUMNI_HOME/demo (kept while its parameters hold);
2. starts the API sandbox and the SendGrid webhook receiver as child processes, on ports it checked were
   free before anything else, and talks to each only once that port is listened on by its own child;
3. lands the association's webhook history, day by day, as the receiver would have;
4. starts Dagster as production runs it (a code server and the daemon, on the instance in
   $ALUMNI_HOME/dagster) and submits the main job `alumni_main` over the history as one run, then once
   for each of the last two days, as the nightly schedule would (three points on each asset's Plots tab);
5. closes the loop once, replaying the days since the association's last day (REPLAY_DAYS ago): turns the
   campaign sensors on, and the daemon ticks them and launches the waves they request (sending to the
   sandbox); runs the sandbox's clock through the sends and the recipients' reactions up to now, then
   backfills the campaign window with one run of `campaign_window_job` and prints `campaign_results`
   beside the generator's true uplift;
6. serves the Dagster UI (`dagster dev`), unless --headless.

The console shows each stage, and each run's progress with an ETA; every detail (each run's events, the
children's output) goes to the log files under $ALUMNI_HOME/logs, whose path is printed first. A failed
run stops the demo with its failed steps and the log's path, and a non-zero exit code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from alumni_orchestration import settings
from alumni_orchestration.campaigns.definitions import CAMPAIGNS_FILE_ENV
from alumni_orchestration.harness.association import ensure_association
from alumni_orchestration.harness.landing_history import land_history
from alumni_orchestration.harness.ports import PortError, ensure_free, wait_until_own_port
from alumni_orchestration.harness.progress import Console, RunOutcome, follow_run
from alumni_orchestration.harness.sandbox_clock import (
    SANDBOX_ENV,
    paris_time,
    run_clock_through,
    set_sandbox_clock,
    wait_for_webhook_delivery,
)
from alumni_orchestration.harness.stack import DagsterStack

# The demo's association ends this many days ago. Its campaigns go out the next morning, and the days
# since are the campaign's window: the sandbox's recipients react through them, and the demo backfills it.
REPLAY_DAYS = 8
# Every campaign of campaigns.yaml has a sensor named after it (defs/campaigns/sensors.py).
CAMPAIGN_IDS = ("reengagement", "dues_reminder", "birthday_greeting", "class_anniversary", "welcome_sequence")
CAMPAIGN_SENSORS = tuple(f"{campaign_id}_sensor" for campaign_id in CAMPAIGN_IDS)
SENSOR_TICK_TIMEOUT = 300.0
# The history run, then nightly runs over the last days: three materialisations of each score to plot.
NIGHTS = 3

# The demo's Dagster instance: the recovery settings of the production one, on SQLite.
INSTANCE_YAML = (Path(__file__).parents[1] / "deploy" / "demo_instance.yaml").read_text()


class DemoFailed(RuntimeError):
    """A stage of the demo failed: the message says which, and where the log is."""


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
        "DAGSTER_TELEMETRY_ENABLED": "false",
        # One "planned" event per asset for a run over a range of partitions, not one per asset and day: on
        # SQLite the latter (some 15,000 for the demo's 4 years) took most of an hour before the run started.
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
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


def range_tags(first_day: str, last_day: str) -> dict[str, str]:
    """A single-run backfill of the daily partitions first_day .. last_day, as the UI launches one."""
    return {"dagster/asset_partition_range_start": first_day, "dagster/asset_partition_range_end": last_day}


def main_runs(first_day: dt.date, end: dt.date, nights: int = NIGHTS) -> list[tuple[str, dict[str, str]]]:
    """The demo's runs of `alumni_main`: the history up to `nights` days before `end` as one backfill, then one
    run per remaining day, as the nightly schedule launches them, so the assets' Plots tab has `nights` points."""
    history_end = max(first_day, end - dt.timedelta(days=nights - 1))
    runs = [(f"alumni_main over the history {first_day} .. {history_end}",
             range_tags(first_day.isoformat(), history_end.isoformat()))]
    day = history_end + dt.timedelta(days=1)
    while day <= end:
        runs.append((f"alumni_main, the night after {day}", range_tags(day.isoformat(), day.isoformat())))
        day += dt.timedelta(days=1)
    return runs


def run_job(stack: DagsterStack, console: Console, job: str, tags: dict[str, str], label: str) -> RunOutcome:
    """Submit the job's run, follow it to its end; DemoFailed if it did not succeed."""
    console.say(f"{label}: submitting the run ...")
    outcome = follow_run(stack.instance, stack.submit(job, tags), label, console)
    if not outcome.success:
        raise DemoFailed(failure_message(label, outcome, console))
    console.say(f"{label}: succeeded ({outcome.steps_done} steps)")
    return outcome


def failure_message(label: str, outcome: RunOutcome, console: Console) -> str:
    steps = "; ".join(f"step {step}: {error}" for step, error in outcome.failed_steps.items())
    checks = " ".join(outcome.failed_checks)
    return (f"{label} {outcome.status} (run {outcome.run_id})" + (f" at {steps}" if steps else "")
            + (f". {checks}" if checks else "") + f". Full log: {console.log_path}")


def tick_campaign_sensors(stack: DagsterStack, console: Console) -> dict[str, int]:
    """Turn the campaign sensors on and wait for the daemon's first tick of each; follow the waves they launch."""
    console.say(f"Campaign sensors on: {', '.join(CAMPAIGN_SENSORS)}; waiting for the daemon's first ticks ...")
    run_ids: list[str] = []
    for name, tick in stack.first_ticks(list(CAMPAIGN_SENSORS), SENSOR_TICK_TIMEOUT).items():
        what = (f"{len(tick.run_ids)} wave run(s) requested" if tick.run_ids
                else tick.skip_reason or (tick.error.message.strip().splitlines()[0] if tick.error else "no request"))
        console.say(f"  {name}: tick {tick.status.value.lower()}, cursor {tick.cursor or '-'}: {what}")
        run_ids += tick.run_ids
    for run_id in run_ids:
        run = stack.instance.get_run_by_id(run_id)
        label = f"wave {run.tags.get('dagster/run_key', run_id[:8])}"
        outcome = follow_run(stack.instance, run_id, label, console)
        if not outcome.success:
            raise DemoFailed(failure_message(label, outcome, console))
        console.say(f"{label}: succeeded")
    return {"waves": len(run_ids)}


def run_campaign_loop(stack: DagsterStack, console: Console, sandbox_port: int, as_of: dt.date,
                      window_end: dt.date) -> dict:
    """Replays the campaigns of the morning `as_of` and the days since, up to `window_end` (today):
    sensor ticks -> waves sent to the sandbox -> the sandbox's clock runs, hour by hour, through the sends and
    the recipients' reactions (opens, clicks, HelloAsso payments) -> the campaign window is backfilled as
    the digital lead would, one run of `campaign_window_job` -> campaign results, beside the simulated truth."""
    base = f"http://127.0.0.1:{sandbox_port}"
    set_sandbox_clock(base, paris_time(as_of, 3))  # just after the nightly run of 02:00
    try:
        summary = tick_campaign_sensors(stack, console)
        console.say(f"Sandbox clock: {as_of} 03:00 -> now, releasing the sends and the recipients' reactions ...")
        run_clock_through(base, paris_time(as_of, 3), time.time())
    finally:
        set_sandbox_clock(base, time.time())  # the sandbox back on real time
    wait_for_webhook_delivery(base)
    window = (as_of.isoformat(), window_end.isoformat())
    run_job(stack, console, "campaign_window_job", range_tags(*window),
            f"campaign window {window[0]} .. {window[1]} (campaign_window_job)")
    summary["results"] = results_against_truth(console)
    return summary


def results_against_truth(console: Console) -> list[dict]:
    """campaign_results' dues-reminder uplifts beside the generator's true uplift, printed and returned."""
    from alumni_orchestration.defs.campaigns.results import member_outcomes, simulated_truth
    from alumni_orchestration.defs.warehouse.resources import WarehouseResource

    with WarehouseResource().read() as conn:
        results = conn.execute("select * from campaigns.campaign_results").df()
        window = int(results.outcome_window_days.iloc[0]) if len(results) else 30
        members = member_outcomes(conn, window)
    for row in results.itertuples():
        console.say(f"  {row.campaign_id} {row.cycle} {row.arm}: audience {row.audience}, sent {row.sent}, "
                    f"delivered {row.delivered}, retained {row.retained}")
    truth = simulated_truth(results, members, os.environ.get("ALUMNI_SIMULATED_TRUTH_DIR", ""))
    rows = [] if truth is None else truth.to_dict("records")
    for row in rows:
        console.say(f"  {row['campaign_id']} {row['cycle']}: uplift {row['uplift']:+.3f}, 95% CI "
                    f"[{row['uplift_ci_low']:+.3f}, {row['uplift_ci_high']:+.3f}]; simulated truth "
                    f"{row['true_uplift']:+.3f}: {'covered' if row['covered'] else 'NOT covered'}")
    return rows


@contextlib.contextmanager
def details_to_log(console: Console) -> Iterator[None]:
    """Python's logging and warnings (Dagster's, dbt's) go to the log file, not the console."""
    handler = logging.StreamHandler(console.log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root, dagster_logger = logging.getLogger(), logging.getLogger("dagster")
    saved = (root.handlers[:], dagster_logger.handlers[:], dagster_logger.propagate)
    root.handlers[:] = [handler]
    dagster_logger.handlers[:] = [handler]
    dagster_logger.propagate = False
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers[:], dagster_logger.handlers[:], dagster_logger.propagate = saved


def prepare(home: Path, members: int, years: int, seed: int, env: dict[str, str], console: Console) -> dict:
    """The demo's instance and association, and the simulated truth beside it; returns the manifest."""
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML)
    data = settings.demo_data_dir()
    end = dt.date.today() - dt.timedelta(days=REPLAY_DAYS)
    console.say(f"Association: {members:,} members, {years} years of history, in {data}")
    manifest = ensure_association(data, members, years, seed, end.isoformat(), say=console.say)
    # The partitions reach back to the first day the providers hold records for; set before anything
    # imports the definitions (the truth writer does), which fix the partitions when first imported.
    os.environ.setdefault("ALUMNI_PARTITIONS_START", manifest["period"]["history_start"])
    from alumni_orchestration.harness.truth import write_simulated_truth
    from alumni_orchestration.harness.uplift_sim import write_expected_effects

    truth_dir = Path(env["ALUMNI_SIMULATED_TRUTH_DIR"])
    write_simulated_truth(data, truth_dir)
    write_expected_effects(data, truth_dir)  # the uplift model's oracle yardstick
    env[CAMPAIGNS_FILE_ENV] = os.environ[CAMPAIGNS_FILE_ENV] = str(
        demo_campaigns_file(home, end + dt.timedelta(days=1)))
    return manifest


def demo_campaigns_file(home: Path, morning: dt.date) -> Path:
    """The demo's copy of campaigns.yaml: the class anniversaries go out on the demo's one campaign morning
    (in production, on the day the file names), so that the demo shows them."""
    import yaml

    from alumni_orchestration.campaigns.definitions import DEFINITIONS_FILE

    raw = yaml.safe_load(DEFINITIONS_FILE.read_text())
    raw["campaigns"]["class_anniversary"]["lifecycle"]["on"] = f"{morning:%m-%d}"
    path = home / "demo" / "campaigns.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return path


def run_pipeline(home: Path, manifest: dict, sandbox_port: int, webhook_port: int, env: dict[str, str],
                 console: Console) -> None:
    """Steps 2 to 5: services, history, alumni_main, the campaign loop; DemoFailed at the first failure."""
    data, logs = settings.demo_data_dir(), home / "logs"
    end = dt.date.fromisoformat(manifest["period"]["end"])
    with services(home, data, sandbox_port, webhook_port, env):
        console.say(f"Sandbox on port {sandbox_port}, webhook receiver on port {webhook_port}; "
                    f"landed {land_history(data)} new webhook batches of history")
        console.say("Starting Dagster (code server and daemon) ...")
        with DagsterStack(home, logs, env) as stack:
            first_day = dt.date.fromisoformat(max(settings.partitions_start(), manifest["period"]["history_start"]))
            for label, tags in main_runs(first_day, end):
                run_job(stack, console, "alumni_main", tags, label)
            loop = run_campaign_loop(stack, console, sandbox_port, as_of=end + dt.timedelta(days=1),
                                     window_end=dt.date.today())
            console.say(f"Campaign loop: {loop['waves']} wave(s), {len(loop['results'])} result(s) beside the truth")
            # The digital lead's weekly digest, once, so that it is in the outbox after the demo.
            run_job(stack, console, "weekly_digest_job", {}, "weekly digest (weekly_digest_job)")


def serve_ui(ui_port: int, env: dict[str, str], console: Console) -> int:
    log = open(settings.alumni_home() / "logs" / "ui.log", "ab")  # noqa: SIM115 (the UI runs until Ctrl-C)
    ui = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                           "-h", "127.0.0.1", "-p", str(ui_port)], env={**os.environ, **env},
                          stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_own_port(ui_port, ui, "Dagster UI", settings.alumni_home() / "logs" / "ui.log", timeout=300)
        console.say(f"Dagster UI: http://127.0.0.1:{ui_port}  (Ctrl-C to stop; its log: {log.name})")
        return ui.wait()
    except PortError:
        ui.terminate()
        raise
    except KeyboardInterrupt:
        ui.terminate()
        return 0


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
    console = Console(home / "logs" / f"demo-{dt.datetime.now():%Y%m%d-%H%M%S}.log")
    console.say(f"Full log: {console.log_path}")
    started = time.monotonic()
    try:
        with details_to_log(console):
            manifest = prepare(home, members, years, seed, env, console)
            run_pipeline(home, manifest, sandbox_port, webhook_port, env, console)
        console.say(f"Demo ready in {(time.monotonic() - started) / 60:.1f} min.")
        return 0 if headless else serve_ui(ui_port, env, console)
    except DemoFailed as failure:
        console.say(f"The demo stopped: {failure}")
        return 1
    except (TimeoutError, RuntimeError) as failure:  # a Dagster process that stopped or never answered
        console.say(f"The demo stopped: {failure}. Full log: {console.log_path}")
        return 1
    finally:
        console.close()
