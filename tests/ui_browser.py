"""Helpers of the browser tests: a dagster-webserver over an instance, headless Chromium, and patient reads of
the page (Selenium waits on the page's text, never fixed sleeps). Chromium and chromedriver are Debian's
(`make chromium` installs them)."""

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def browser_tools() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromedriver are missing: `make test` installs them "
                    "(apt-get install chromium chromium-driver)")
    return chromium, driver


@contextlib.contextmanager
def webserver(home: Path, env: dict[str, str]) -> Iterator[str]:
    """dagster-webserver on workspace.yaml with `env` (DAGSTER_HOME: the instance it shows); yields its URL."""
    ui_port = free_port()
    log = open(home / "webserver.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml",
                               "-h", "127.0.0.1", "-p", str(ui_port)], cwd=ROOT,
                              env={**os.environ, **env, "DAGSTER_TELEMETRY_ENABLED": "false"}, stdout=log,
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


@contextlib.contextmanager
def chromium(width: int = 1600, height: int = 1000) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = browser_tools()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, texts: tuple[str, ...], timeout: float = 60) -> str:
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


def wait_until_loaded(driver, timeout: float = 60) -> str:
    """The page's text once no row says "Loading..." any more."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    body = driver.find_element(By.TAG_NAME, "body").text
    while "Loading" in body and time.monotonic() < deadline:
        time.sleep(0.5)
        body = driver.find_element(By.TAG_NAME, "body").text
    return body


def wait_for(driver, by: str, selector: str, timeout: float = 60):
    """The first visible element `selector` finds (Selenium's explicit wait)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(expected_conditions.visibility_of_element_located((by, selector)))


def dismiss_popups(driver) -> None:
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


def screenshot(driver, name: str) -> Path:
    dismiss_popups(driver)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / name))
    return SCREENSHOTS / name
