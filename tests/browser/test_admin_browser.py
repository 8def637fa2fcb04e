"""The staff console in a real browser: headless Chromium (Debian's package) driven by Selenium
against Daphne. Logs in, reads the runs list's totals, watches a live run's timeline follow new
events, opens the usage chart, and takes screenshots.

Screenshots go to a temporary folder; set ARKLOOP_SCREENSHOTS_DIR=docs/screenshots to refresh the
README's. Without Chromium the test is skipped, except under CI (CI set), where it fails.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from runs.events import event_append
from tests.browser.story import build_story
from tests.servers import ROOT, DaphneServer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 30


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} not found (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", "--force-device-scale-factor=1",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def console_server(database_url):
    """Daphne with DEBUG on, so it serves the admin's static files (as under `make run`)."""
    with DaphneServer(database_url=database_url, DEBUG="true") as server:
        yield server


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = os.environ.get("ARKLOOP_SCREENSHOTS_DIR")
    path = (ROOT / folder) if folder else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_for(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(condition, message)


def text_of(driver, css: str) -> str:
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, css).text


def log_in(driver, base_url: str, *, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    driver.get(f"{base_url}/admin/login/?next=/admin/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(driver, lambda d: "/admin/login/" not in d.current_url, "login did not succeed")
    assert driver.find_element(By.ID, "usage-link-module")
    # Fold the admin's navigation sidebar (remembered in localStorage) to leave the pages room.
    driver.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")


def save_full_page(driver, path: Path) -> None:
    """A screenshot of the whole page (up to 3000 px tall), then back to the usual window."""
    height = min(3000, driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1400, height)
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)


def test_staff_console_in_a_browser(transactional_db, console_server, browser, screenshots):
    from selenium.webdriver.common.by import By

    story = build_story()
    log_in(browser, console_server.url, username=story.staff_username, password=story.staff_password)

    # The runs list: every run, with the totals of the whole list above it.
    browser.get(f"{console_server.url}/admin/runs/run/")
    assert text_of(browser, "#total-cost") == f"${story.total_cost:.4f}"
    assert text_of(browser, "#total-credits") == str(story.total_credits)
    assert text_of(browser, "#total-input") == str(story.total_input_tokens)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == story.run_count
    header = browser.find_element(By.ID, "header").value_of_css_property("background-color")
    assert header != "rgba(0, 0, 0, 0)", "the admin's CSS was not served"
    browser.save_screenshot(str(screenshots / "runs-list.png"))

    # A live run's page: the timeline follows events appended after the page loaded.
    browser.get(f"{console_server.url}/admin/runs/run/{story.live_run.pk}/change/")
    assert "live" in text_of(browser, "#run-live")
    with transaction.atomic():
        for word in ("Forty", "two,", "as", "computed."):
            event_append(run_id=story.live_run.pk, type="message.delta",
                         data={"content": word + " ", "role": "assistant"})
    wait_for(browser, lambda d: "Forty two, as computed." in text_of(d, "#run-reply"), "reply did not follow")
    event_append(run_id=story.live_run.pk, type="run.completed",
                 data={"usage": {"input_tokens": 310, "output_tokens": 42, "cached_input_tokens": 0},
                       "total_cost_usd": "0.0012", "credits_used": 2, "message_id": None},
                 fields={"total_input_tokens": 310, "total_output_tokens": 42,
                         "total_cost_usd": Decimal("0.0012"), "credits_used": 2})
    wait_for(browser, lambda d: text_of(d, "#run-live") == "completed", "timeline did not see the end")
    assert text_of(browser, ".field-status .readonly") == "Completed"
    rows = browser.find_elements(By.CSS_SELECTOR, "#run-timeline tbody tr.event")
    assert [int(row.get_attribute("data-seq")) for row in rows] == list(range(1, len(rows) + 1))
    assert rows[-1].find_element(By.CSS_SELECTOR, "td.type").text == "run.completed"
    assert "calculator" in browser.find_element(By.ID, "run-timeline").text
    save_full_page(browser, screenshots / "run-page.png")

    # The usage page: the chart's bars and the numbers beside it.
    browser.get(f"{console_server.url}/admin/runs/run/usage/")
    assert text_of(browser, "#usage-cost") == f"${story.total_cost + Decimal('0.0012'):.4f}"  # with the live run's
    assert text_of(browser, "#usage-runs") == str(story.run_count)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-cost rect.bar")) == 30
    assert "acme" in text_of(browser, "#usage-by-org") and "gpt-4o-mini" in text_of(browser, "#usage-by-model")
    browser.save_screenshot(str(screenshots / "usage.png"))

    today = timezone.now().date()
    assert story.first_day >= today - dt.timedelta(days=29)
