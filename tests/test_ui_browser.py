"""The Dagster UI in a real browser: the webserver on a small materialised demo, driven by headless Chromium.

It opens the global asset graph and the asset catalogue, checks that the six groups are there, checks on
the Runs page that the latest runs succeeded, checks that the nightly schedule and the failure alert are
loaded, and saves screenshots to docs/screenshots/ (the README shows them). Chromium and chromedriver are Debian's (`make test` installs them when missing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
GROUPS = ("sources", "staging", "intermediate", "marts", "scoring", "campaigns")
END_DATE = "2026-11-21"

# Runs in a child process: the demo's environment (ALUMNI_HOME, DAGSTER_HOME, partitions start) must be set
# before the definitions are imported, and must not leak into this test session. It is the demo's own
# sequence (association, sandbox and webhook receiver, landed history, alumni_main as one single-run
# backfill) on a small association, with two cuts to keep it short: the run covers the last 30 days (as a
# catch-up night would), and leaves out the dues model and what depends on it, which need two complete
# dues cycles, i.e. over three years of history.
MATERIALISE = """
import datetime as dt, os, sys
from pathlib import Path
import dagster as dg
from alumni_orchestration import settings
from alumni_orchestration.harness import demo
from alumni_orchestration.harness.association import ensure_association
from alumni_orchestration.harness.landing_history import land_history
home, sandbox_port, webhook_port = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
env = demo.demo_environment(home, sandbox_port)
os.environ.update(env)
(home / "dagster").mkdir(parents=True, exist_ok=True)
(home / "dagster" / "dagster.yaml").write_text(demo.INSTANCE_YAML)
manifest = ensure_association(settings.demo_data_dir(), 300, 1, 7, sys.argv[4])
start = manifest["period"]["history_start"]
os.environ["ALUMNI_PARTITIONS_START"] = start
Path(sys.argv[5]).write_text(start)
from alumni_orchestration.definitions import defs
from alumni_orchestration.defs.jobs import MAIN_SELECTION
from alumni_orchestration.defs.scoring.assets import MODEL
definitions = defs()
job = definitions.resolve_job_def("alumni_main")
selection = (MAIN_SELECTION - dg.AssetSelection.assets(MODEL).downstream()).resolve(definitions.resolve_asset_graph())
with demo.services(home, settings.demo_data_dir(), sandbox_port, webhook_port, env):
    land_history(settings.demo_data_dir())
    with dg.DagsterInstance.get() as instance:
        end = manifest["period"]["end"]
        first = (dt.date.fromisoformat(end) - dt.timedelta(days=29)).isoformat()
        result = job.execute_in_process(instance=instance, asset_selection=list(selection), raise_on_error=False,
                                        tags={"dagster/asset_partition_range_start": first,
                                              "dagster/asset_partition_range_end": end})
sys.exit(0 if result.success else 1)
"""

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _browser_tools() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromedriver are missing: `make test` installs them "
                    "(apt-get install chromium chromium-driver)")
    return chromium, driver


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a dagster-webserver over a small demo in which alumni_main has run."""
    home = tmp_path_factory.mktemp("ui_demo")
    start_file = home / "partitions_start"
    sandbox_port, webhook_port, ui_port = _free_port(), _free_port(), _free_port()
    done = subprocess.run([sys.executable, "-c", MATERIALISE, str(home), str(sandbox_port), str(webhook_port),
                           END_DATE, str(start_file)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    from alumni_orchestration.harness import demo

    env = {**os.environ, **demo.demo_environment(home, sandbox_port),
           "ALUMNI_PARTITIONS_START": start_file.read_text(), "DAGSTER_TELEMETRY_ENABLED": "false"}
    log = open(home / "webserver.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml",
                               "-h", "127.0.0.1", "-p", str(ui_port)], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{ui_port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (home / "webserver.log").read_text()[-3000:]
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            assert time.monotonic() < deadline, "dagster-webserver did not answer /server_info within 120 s"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _browser_tools()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1600,1000", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_text(driver, texts: tuple[str, ...], timeout: float = 60) -> str:
    """The page's visible text once every one of `texts` is in it (lower-cased)."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        body = driver.find_element(By.TAG_NAME, "body").text
        if all(t.lower() in body.lower() for t in texts):
            return body
        time.sleep(0.5)
    missing = [t for t in texts if t.lower() not in body.lower()]
    raise AssertionError(f"not on {driver.current_url} after {timeout:.0f} s: {missing}\n{body[:2000]}")


def _wait_until_loaded(driver, timeout: float = 60) -> str:
    """The page's text once no row says "Loading..." any more."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    body = driver.find_element(By.TAG_NAME, "body").text
    while "Loading" in body and time.monotonic() < deadline:
        time.sleep(0.5)
        body = driver.find_element(By.TAG_NAME, "body").text
    return body


def _dismiss_popups(driver) -> None:
    """Dagster shows a "Join the Dagster community" dialog: skip it (it may come back after a page load)."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        buttons = [b for b in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']") if b.is_displayed()]
        if not buttons:
            return
        for button in buttons:
            with contextlib.suppress(Exception):
                button.click()
        time.sleep(0.3)


def _screenshot(driver, name: str) -> None:
    _dismiss_popups(driver)
    driver.save_screenshot(str(SCREENSHOTS / name))


@pytest.mark.slow
def test_ui_shows_the_groups_and_the_successful_runs(ui: str, browser) -> None:
    from selenium.webdriver.common.by import By

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # The global asset graph (Lineage): one box per group, and the groups listed beside it.
    browser.get(f"{ui}/asset-groups")
    _wait_for_text(browser, ("Global asset lineage", *GROUPS))
    _dismiss_popups(browser)
    sidebar = {g.strip() for g in _wait_for_text(browser, GROUPS).splitlines()}
    assert set(GROUPS) <= sidebar, sidebar
    time.sleep(2)  # let the graph settle before the picture
    _screenshot(browser, "asset_graph.png")

    # The catalogue: assets of every layer, materialised by the demo run.
    browser.get(f"{ui}/assets")
    _wait_for_text(browser, ("Asset name", "campaigns", "intermediate"))
    _dismiss_popups(browser)
    body = _wait_until_loaded(browser)
    assert "Materialized" in body, body[:2000]
    _screenshot(browser, "asset_catalog.png")

    # Runs: the latest runs are alumni_main, and every one of them succeeded.
    browser.get(f"{ui}/runs")
    _wait_for_text(browser, ("alumni_main", "Status"))
    _dismiss_popups(browser)
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "[class*='RunsFeedRow_rowGrid']")]
    main_rows = [row for row in rows if "alumni_main" in row]
    assert main_rows, rows
    assert all("Success" in row for row in main_rows), main_rows
    assert not any(status in row for row in rows for status in ("Failure", "Canceled")), rows
    _screenshot(browser, "runs.png")

    # Automation: the nightly schedule and the failure alert are loaded, and on.
    browser.get(f"{ui}/automation")
    _wait_for_text(browser, ("alumni_nightly", "alumni_run_failure_alert"))
    _dismiss_popups(browser)
    deadline = time.monotonic() + 30  # the rows' details load after the names: wait for them, for the picture
    while browser.find_elements(By.CSS_SELECTOR, "[class*='Skeleton']") and time.monotonic() < deadline:
        time.sleep(0.5)
    _screenshot(browser, "automation.png")
