"""The Dagster UI in a real browser: the webserver on a small materialised demo, driven by headless Chromium.

It opens the global asset graph and the asset catalogue, checks that the six groups are there, checks on
the Runs page that the latest runs succeeded, checks that the nightly schedule and the failure alert are
loaded, and saves screenshots to docs/screenshots/ (the README shows them). Chromium and chromedriver are Debian's (`make test` installs them when missing).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.ui_browser import (
    ROOT,
    SCREENSHOTS,
    chromium,
    dismiss_popups,
    free_port,
    screenshot,
    wait_for_text,
    wait_until_loaded,
    webserver,
)

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

@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a dagster-webserver over a small demo in which alumni_main has run."""
    home = tmp_path_factory.mktemp("ui_demo")
    start_file = home / "partitions_start"
    sandbox_port, webhook_port = free_port(), free_port()
    done = subprocess.run([sys.executable, "-c", MATERIALISE, str(home), str(sandbox_port), str(webhook_port),
                           END_DATE, str(start_file)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    from alumni_orchestration.harness import demo

    env = {**demo.demo_environment(home, sandbox_port), "ALUMNI_PARTITIONS_START": start_file.read_text()}
    with webserver(home, env) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with chromium() as driver:
        yield driver


@pytest.mark.slow
def test_ui_shows_the_groups_and_the_successful_runs(ui: str, browser) -> None:
    from selenium.webdriver.common.by import By

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # The global asset graph (Lineage): one box per group, and the groups listed beside it.
    browser.get(f"{ui}/asset-groups")
    wait_for_text(browser, ("Global asset lineage", *GROUPS))
    dismiss_popups(browser)
    sidebar = {g.strip() for g in wait_for_text(browser, GROUPS).splitlines()}
    assert set(GROUPS) <= sidebar, sidebar
    time.sleep(2)  # let the graph settle before the picture
    screenshot(browser, "asset_graph.png")

    # The catalogue: assets of every layer, materialised by the demo run.
    browser.get(f"{ui}/assets")
    wait_for_text(browser, ("Asset name", "campaigns", "intermediate"))
    dismiss_popups(browser)
    body = wait_until_loaded(browser)
    assert "Materialized" in body, body[:2000]
    screenshot(browser, "asset_catalog.png")

    # Runs: the latest runs are alumni_main, and every one of them succeeded.
    browser.get(f"{ui}/runs")
    wait_for_text(browser, ("alumni_main", "Status"))
    dismiss_popups(browser)
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "[class*='RunsFeedRow_rowGrid']")]
    main_rows = [row for row in rows if "alumni_main" in row]
    assert main_rows, rows
    assert all("Success" in row for row in main_rows), main_rows
    assert not any(status in row for row in rows for status in ("Failure", "Canceled")), rows
    screenshot(browser, "runs.png")

    # Automation: the nightly schedule and the failure alert are loaded, and on.
    browser.get(f"{ui}/automation")
    wait_for_text(browser, ("alumni_nightly", "alumni_run_failure_alert"))
    dismiss_popups(browser)
    deadline = time.monotonic() + 30  # the rows' details load after the names: wait for them, for the picture
    while browser.find_elements(By.CSS_SELECTOR, "[class*='Skeleton']") and time.monotonic() < deadline:
        time.sleep(0.5)
    screenshot(browser, "automation.png")
