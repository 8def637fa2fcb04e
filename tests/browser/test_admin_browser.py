"""The staff console in a real browser: headless Chromium (Debian's package) driven by Selenium
against Daphne, with a real `runagents` process executing the runs. Logs in, watches a live run's
page follow it to the end (timeline, reply, status and usage fields), reads the runs list's totals,
opens the usage chart, and takes screenshots.

Screenshots go to a temporary folder; set ARKLOOP_SCREENSHOTS_DIR=docs/screenshots to refresh the
README's. Without Chromium the test is skipped, except under CI (CI set), where it fails.
"""
from __future__ import annotations

import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.db.models import Count, Sum

from runs.models import Run, RunEvent
from tests.browser.story import (
    build_story,
    move_back,
    settle_background,
    start_background,
    start_run,
    stub,
    turn_totals,
    usage,
)
from tests.runner.processes import RunnerProcess
from tests.runner.processes import wait_until as _wait_until
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
def runner(transactional_db, database_url):
    """A real `runagents` process on the test database; stopped before the test's data is flushed."""
    process = RunnerProcess(database_url, "--concurrency", "8")
    process.spawn()
    try:
        yield process
    finally:
        process.__exit__(None, None, None)


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


def test_staff_console_in_a_browser(console_server, runner, browser, screenshots):
    from selenium.webdriver.common.by import By

    def wait_until(condition, *, what: str, timeout: float = WAIT_SECONDS) -> None:
        try:
            _wait_until(condition, what=what, timeout=timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}; the runner's log ends:\n{runner.log()[-3000:]}") from None

    story = build_story()
    log_in(browser, console_server.url, username=story.staff_username, password=story.staff_password)
    runner.wait_started()
    start_background(story)
    settle_background(story, wait_until)
    move_back(story)

    # A live run's page: the runner calls the calculator, then streams the reply slowly while the
    # page follows; at the end the status, heading and usage fields show the run's final totals.
    script = stub(tools=[{"name": "calculator", "arguments": {"expression": "6*7"}}], reply="It is 42.",
                  chunks=6, delay_ms=500, usage=usage(1450, 48, 1024))
    _, run_id = start_run(story.alice, script, title="What is 6 × 7?", route_id="stub-large")
    browser.get(f"{console_server.url}/admin/runs/run/{run_id}/change/")
    assert "live" in text_of(browser, "#run-live"), "the run ended before its page opened"
    rows_at_load = len(browser.find_elements(By.CSS_SELECTOR, "#run-timeline tbody tr.event"))
    assert text_of(browser, "#content > h2").endswith("(running)")
    wait_for(browser, lambda d: text_of(d, "#run-live") == "completed", "the page did not see the run end")

    run = Run.objects.get(pk=run_id)
    assert run.status == "completed" and run.total_cost_usd > 0 and run.credits_used > 0
    assert turn_totals(run_id) == (run.total_input_tokens, run.total_output_tokens)
    field = lambda name: text_of(browser, f".field-{name} .readonly")  # noqa: E731
    assert field("status") == "Completed"
    assert text_of(browser, "#content > h2") == f"run {run_id} (completed)"
    assert f"run {run_id} (completed)" in text_of(browser, ".breadcrumbs")
    assert field("total_input_tokens") == str(run.total_input_tokens)
    assert field("total_output_tokens") == str(run.total_output_tokens)
    assert field("total_cached_input_tokens") == str(run.total_cached_input_tokens)
    assert Decimal(field("total_cost_usd")) == run.total_cost_usd
    assert field("credits_used") == str(run.credits_used)
    assert field("completed_at") != "-" and field("duration").endswith(" s")
    rows = browser.find_elements(By.CSS_SELECTOR, "#run-timeline tbody tr.event")
    assert len(rows) > rows_at_load, "no event was appended while the page followed the run"
    assert [int(row.get_attribute("data-seq")) for row in rows] == list(range(1, run.last_seq + 1))
    assert rows[-1].find_element(By.CSS_SELECTOR, "td.type").text == "run.completed"
    completed = RunEvent.objects.get(run_id=run_id, type="run.completed").data
    assert f"${completed['total_cost_usd']} · {run.credits_used} credits" in rows[-1].text
    assert "calculator" in text_of(browser, "#run-timeline")
    assert text_of(browser, "#run-reply") == "It is 42."
    save_full_page(browser, screenshots / "run-page.png")

    # The runs list: every run, with the totals of the whole list above it, as the DB sums them.
    totals = Run.objects.aggregate(runs=Count("id"), cost=Sum("total_cost_usd"), credits=Sum("credits_used"),
                                   input=Sum("total_input_tokens"), output=Sum("total_output_tokens"))
    assert totals["runs"] == len(story.background) + 1 and totals["cost"] > 0
    browser.get(f"{console_server.url}/admin/runs/run/")
    assert text_of(browser, "#total-cost") == f"${totals['cost']:.4f}"
    assert text_of(browser, "#total-credits") == str(totals["credits"])
    assert text_of(browser, "#total-input") == str(totals["input"])
    assert text_of(browser, "#total-output") == str(totals["output"])
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == totals["runs"]
    statuses = {row.text for row in browser.find_elements(By.CSS_SELECTOR, "#result_list td.field-status")}
    assert statuses == {"Completed", "Failed", "Cancelled"}
    header = browser.find_element(By.ID, "header").value_of_css_property("background-color")
    assert header != "rgba(0, 0, 0, 0)", "the admin's CSS was not served"
    browser.save_screenshot(str(screenshots / "runs-list.png"))

    # The usage page: the chart's bars and the numbers beside it.
    browser.get(f"{console_server.url}/admin/runs/run/usage/")
    assert text_of(browser, "#usage-cost") == f"${totals['cost']:.4f}"
    assert text_of(browser, "#usage-runs") == str(totals["runs"])
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-cost rect.bar")) == 30
    assert "globex" in text_of(browser, "#usage-by-org") and "stub-large" in text_of(browser, "#usage-by-model")
    browser.save_screenshot(str(screenshots / "usage.png"))
