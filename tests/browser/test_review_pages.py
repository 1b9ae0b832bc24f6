"""The dashboard and the HTML report, rendered by a real browser (headless Chromium), asserted from the DOM,
with screenshots kept as test artifacts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lrsearch.cli import main
from tests.cli.test_dashboard import dashboard, get
from tests.conftest import Reviewed

WAIT_S = 60


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.25).until(condition)
    except TimeoutException:
        pytest.fail(f"the page did not show {what} within {WAIT_S} s")


def body_text(driver: Any) -> str:
    return driver.find_element("tag name", "body").text


def chart_titles(driver: Any) -> list[str]:
    return [e.text for e in driver.find_elements("css selector", ".js-plotly-plot .gtitle")]


def test_the_dashboard(browser: Any, reviewed: Reviewed, screenshots: Path) -> None:
    with dashboard("--storage", reviewed.url) as (base, _):
        study_id = json.loads(get(f"{base}/api/studies"))["study_summaries"][0]["study_id"]
        browser.get(f"{base}/dashboard")
        wait_for(browser, lambda d: "small" in body_text(d), "the study in the list")
        browser.save_screenshot(str(screenshots / "dashboard-studies.png"))

        browser.get(f"{base}/dashboard/studies/{study_id}")
        wait_for(
            browser,
            lambda d: (
                {
                    "Learning rate per epoch: the best trial of each schedule",
                    "Validation accuracy vs learning rate, by schedule",
                }
                <= set(chart_titles(d))
            ),
            "the study's own charts",
        )
        assert len(browser.find_elements("css selector", ".js-plotly-plot .scatterlayer .trace")) > 4
        browser.save_screenshot(str(screenshots / "dashboard-study.png"))

        browser.get(f"{base}/dashboard/studies/{study_id}/trials")
        wait_for(browser, lambda d: "Trial 0" in body_text(d) and "val_accuracy" in body_text(d), "the trials")
        pictures = wait_for(
            browser, lambda d: d.find_elements("css selector", "img[src*='/artifacts/']"), "a trial's curves picture"
        )
        assert all(p.get_attribute("naturalWidth") not in (None, "0") for p in pictures)
        browser.save_screenshot(str(screenshots / "dashboard-trials.png"))

        browser.get(f"{base}/dashboard/studies/{study_id}/note")
        wait_for(browser, lambda d: "Question:" in body_text(d) and "Verdict:" in body_text(d), "the study note")
        browser.save_screenshot(str(screenshots / "dashboard-note.png"))


def test_the_report_page(browser: Any, reviewed: Reviewed, screenshots: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert main(["report", "--study", "small", "--storage", reviewed.url, "--html", str(page)]) == 0
    browser.get(page.as_uri())
    wait_for(browser, lambda d: len(d.find_elements("css selector", ".js-plotly-plot .main-svg")) >= 4, "four charts")
    assert set(chart_titles(browser)) >= {
        "Learning rate per epoch: the best trial of each schedule",
        "Learning curves: the best trial of each schedule",
        "Validation accuracy vs learning rate, by schedule",
    }
    assert browser.find_element("id", "verdict").text
    rows = browser.find_elements("css selector", "#groups tr")
    assert [r.find_elements("tag name", "td")[0].text for r in rows[1:]] == ["constant", "cosine"]
    browser.save_screenshot(str(screenshots / "report.png"))
