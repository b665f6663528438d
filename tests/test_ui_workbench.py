"""The digital lead's workbench in a real browser, after three nights and the campaign sensors' ticks.

The world (tests/ui_world.py, in a child process) is the test run's scored association on a Dagster instance:
three nightly runs of `alumni_main` (score history and member_scores), one iteration of Dagster's sensor daemon
loop over the campaign sensors (their ticks, cursors and the wave runs they launch), then `campaign_results` over
the waves' window. dagster-webserver then serves that instance, and headless Chromium checks what a new user
sees: each campaign sensor has a tick, the Overview timeline has the runs, searching "ambassador" finds the
ambassadors list, campaign_results leads with its plain-language summary and draws its uplift picture in place,
and member_scores' Plots tab draws its trends. Two screenshots go to docs/screenshots/ for the README.

No daemon runs beside the webserver, so the sensor pages also say "The sensor daemon is not running": the
ticks shown are the ones the daemon's own loop recorded in the world.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from alumni_orchestration.harness.demo import CAMPAIGN_SENSORS
from tests.ui_browser import ROOT, chromium, dismiss_popups, screenshot, wait_for, wait_for_text, webserver
from tests.ui_world import LOCATION, NIGHTS, environment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(scored_association, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    """(the webserver's URL, the world's report: the nights' runs, each sensor's ticks, the waves)."""
    _, warehouse = scored_association
    home = tmp_path_factory.mktemp("ui_workbench")
    report_file = home / "report.json"
    done = subprocess.run([sys.executable, "-m", "tests.ui_world", str(home), str(warehouse), str(report_file)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    with webserver(home, environment(home)) as url:
        yield url, json.loads(report_file.read_text())


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with chromium() as driver:
        yield driver


def _open(browser, url: str, texts: tuple[str, ...]) -> str:
    browser.get(url)
    body = wait_for_text(browser, texts)
    dismiss_popups(browser)
    return body


def test_each_campaign_sensor_shows_its_tick(world, browser) -> None:
    url, report = world
    for sensor in CAMPAIGN_SENSORS:
        [tick] = report["ticks"][sensor]
        body = _open(browser, f"{url}/locations/{LOCATION}/sensors/{sensor}", (sensor, "Latest tick", "Cursor"))
        assert "Sensor has never run" not in body, body[:2000]
        requested = len(tick["runs"])
        wait_for_text(browser, (f"{requested} run{'' if requested == 1 else 's'} requested", tick["cursor"]))
    assert any(report["ticks"][sensor][0]["runs"] for sensor in CAMPAIGN_SENSORS), report["ticks"]


def test_the_overview_timeline_shows_the_nights_and_the_waves(world, browser) -> None:
    url, report = world
    from selenium.webdriver.common.by import By

    body = _open(browser, f"{url}/overview/activity/timeline", ("alumni_main", "campaign_job", "campaign_window_job"))
    assert "No runs or scheduled ticks" not in body
    for job in ("alumni_main", "campaign_job", "campaign_window_job"):  # a row of the timeline per job, with its runs
        row = wait_for(browser, By.XPATH, f"//div[contains(@class, 'rowName')][contains(., '{job}')]/ancestor::div"
                                          "[contains(@class, 'timelineRowContainer')][1]")
        assert row.text.splitlines()[0] == job, row.text
    # The code location's row counts every run in the window: the nights, the waves and the campaign window.
    lines = [line.strip() for line in body.splitlines()]
    assert lines[lines.index(LOCATION) + 1] == str(len(NIGHTS) + len(report["waves"]) + 1), lines


def test_searching_ambassador_finds_the_list(world, browser) -> None:
    url, _ = world
    from selenium.webdriver.common.by import By

    _open(browser, f"{url}/overview/activity/timeline", ("alumni_main",))
    wait_for(browser, By.XPATH, "//*[normalize-space()='Search']").click()
    wait_for(browser, By.XPATH, "//input[starts-with(@placeholder, 'Search assets')]").send_keys("ambassador")
    result = wait_for(browser, By.XPATH, "//*[normalize-space()='workbench / ambassadors']")
    result.click()
    wait_for_text(browser, ("ambassadors", "Description"))
    assert browser.current_url.rstrip("/").endswith("/assets/workbench/ambassadors"), browser.current_url


def test_campaign_results_leads_with_its_summary_and_draws_the_uplift(world, browser) -> None:
    url, _ = world
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    body = _open(browser, f"{url}/assets/campaigns/campaign_results", ("Metadata", "summary: dues_reminder"))
    # The first metadata row is a campaign's summary, in words, shown whole (not behind a button).
    first_key = wait_for(browser, By.XPATH, "//table//tbody/tr[1]/td[1]").text
    assert first_key.startswith("summary: "), first_key
    assert any(verdict in body for verdict in ("inconclusive: ", "worked: ", "backfired: ", "not measurable: ")), \
        body[:3000]
    # The uplift picture is drawn in the table, as an image the browser decoded.
    picture = wait_for(browser, By.XPATH, "//img[@alt='uplift in points, 95% CI']")
    WebDriverWait(browser, 30).until(
        lambda driver: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", picture),
        "the uplift picture did not load")
    assert picture.size["width"] > 200 and picture.size["height"] > 30, picture.size
    # Every value fits the panel: nothing in the metadata table (a wide Markdown table, the picture) widens it
    # past what the page shows, which would cut the summaries on the right.
    table = browser.find_element(By.XPATH, "//table[.//td[starts-with(normalize-space(), 'summary: ')]]")
    panel = browser.execute_script("return arguments[0].parentElement.clientWidth", table)
    assert table.size["width"] <= panel, (table.size, panel)
    first_row = browser.find_element(By.XPATH, "//table//tbody/tr[1]")  # the summaries, then the picture
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", first_row)
    screenshot(browser, "uplift.png")


def test_member_scores_plots_draw_three_nights(world, browser) -> None:
    url, report = world
    from selenium.webdriver.common.by import By

    _open(browser, f"{url}/assets/scoring/member_scores", ("Metadata", "Plots", "ambassadors"))
    plots = wait_for(browser, By.XPATH, "//button[normalize-space()='Plots']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", plots)
    plots.click()
    # One chart per numeric entry: the trends the nights recorded, each drawn over the nights' materialisations.
    for name in ("ambassadors", "at_risk_members", "dues_paid_rate", "engagement_median", "model_auc"):
        wait_for(browser, By.XPATH, f"//*[normalize-space()='{name}']/following::canvas[1]")
    # What the charts draw: member_scores' materialisations, one per night, each with the numbers.
    query = ('{assetOrError(assetKey: {path: ["scoring", "member_scores"]}) { ... on Asset { '
             'assetMaterializations(limit: 10) { runId metadataEntries { label } } } } }')
    events = requests.post(f"{url}/graphql", json={"query": query}, timeout=30).json()["data"]["assetOrError"][
        "assetMaterializations"]
    assert {event["runId"] for event in events} >= set(report["nights"]) and len(report["nights"]) == 3
    assert all({"ambassadors", "dues_paid_rate", "model_auc"} <= {e["label"] for e in event["metadataEntries"]}
               for event in events)
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", plots)
    screenshot(browser, "member_scores_plots.png")


def test_the_campaign_waves_explain_their_missing_partitions(world, browser) -> None:
    """Campaign and day partitions without a wave show as missing in the catalogue: each wave asset says why."""
    url, _ = world
    for asset in ("campaign_audience", "campaign_sends"):
        _open(browser, f"{url}/assets/campaigns/{asset}", ("Description", "shows as missing in the catalogue: no wave "
                                                           "that day, not lost data"))
