"""`/docs` (Swagger UI) and `/redoc` in a browser that cannot reach the network: each
renders the API's operations from the app's own files, with no error in the console, no
failed request and no request to another host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from browsing import Browser, LiveApp, console_errors, failed_requests, foreign_requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

Screenshot = Callable[[Browser, str], Path]


def _shown(driver: Browser, css: str, at_least: int) -> list[str]:
    """The text of the elements matching `css`, once at least `at_least` are shown."""
    WebDriverWait(driver, 30).until(
        lambda _: len(driver.find_elements(By.CSS_SELECTOR, css)) >= at_least
    )
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, css)]


def _quiet(driver: Browser, app: LiveApp) -> None:
    assert console_errors(driver) == []
    assert failed_requests(driver) == []
    assert foreign_requests(driver, app.base_url) == []


def test_swagger_ui_shows_the_operations_offline(
    browser: Browser, live_app: LiveApp, screenshot: Screenshot
) -> None:
    browser.get(live_app.url("/docs"))
    paths = _shown(browser, ".opblock-summary-path", at_least=10)
    assert "/tasks" in paths
    assert "/flows/validate" in paths
    assert browser.title == "taskrunner - Swagger UI"
    screenshot(browser, "docs")
    _quiet(browser, live_app)


@pytest.mark.parametrize("app_backend", ["postgresql"])
def test_swagger_ui_needs_no_key_and_calls_the_api_with_one(
    browser: Browser, start_app: Callable[..., LiveApp], screenshot: Screenshot
) -> None:
    secured = start_app(api_keys=True)
    browser.get(secured.url("/docs"))
    _shown(browser, ".opblock-summary-path", at_least=10)
    [authorize] = browser.find_elements(By.CSS_SELECTOR, "button.authorize")
    authorize.click()
    dialog = _shown(browser, ".modal-ux-content", at_least=1)
    assert "apiKey" in dialog[0]
    browser.find_element(By.CSS_SELECTOR, ".modal-ux-content input").send_keys(
        secured.tokens["read"]
    )
    screenshot(browser, "docs-authorize")
    browser.find_element(By.CSS_SELECTOR, ".modal-ux-content button.authorize").click()
    browser.find_element(By.CSS_SELECTOR, ".modal-ux-content button.btn-done").click()
    operation = "#operations-flows-list_flows_flows_get"
    browser.find_element(By.CSS_SELECTOR, f"{operation} button.opblock-summary-control").click()
    _shown(browser, f"{operation} button.try-out__btn", at_least=1)
    browser.find_element(By.CSS_SELECTOR, f"{operation} button.try-out__btn").click()
    _shown(browser, f"{operation} button.execute", at_least=1)
    browser.find_element(By.CSS_SELECTOR, f"{operation} button.execute").click()
    answered = _shown(browser, f"{operation} .live-responses-table tbody td.response-col_status", 1)
    assert answered == ["200"]
    screenshot(browser, "docs-authorized-call")
    _quiet(browser, secured)


def test_an_operation_opens_and_shows_its_problem_responses(
    browser: Browser, live_app: LiveApp, screenshot: Screenshot
) -> None:
    browser.get(live_app.url("/docs"))
    _shown(browser, ".opblock-summary-path", at_least=10)
    browser.find_element(By.CSS_SELECTOR, "#operations-tasks-start_task_tasks_post button").click()
    responses = _shown(browser, ".opblock.is-open .response-col_status", at_least=2)
    assert "201" in responses
    assert "422" in responses
    screenshot(browser, "docs-operation")
    _quiet(browser, live_app)


def test_redoc_shows_the_operations_offline(
    browser: Browser, live_app: LiveApp, screenshot: Screenshot
) -> None:
    browser.get(live_app.url("/redoc"))
    operations = _shown(browser, "[data-role='redoc-summary']", at_least=1)
    assert operations
    headings = _shown(browser, "h2", at_least=5)
    assert any("task" in heading.lower() for heading in headings), headings
    screenshot(browser, "redoc")
    _quiet(browser, live_app)
