"""The web console in headless Chromium, as a new user meets it, offline: every page loads
with no console error, no failed request and no request to another host; a failed task is
found from the home page; a `classify_sum` task's diagram highlights exactly the states it
went through; the generated form starts a task and lands on its page; the validate page
shows a problem at its line; the keyboard alone reaches a task; a phone-wide window
scrolls no page sideways; and signing in with a key works. Each step leaves a screenshot.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest
from browsing import Browser, LiveApp, console_errors, failed_requests, foreign_requests
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

Screenshot = Callable[[Browser, str], Path]
BROKEN_FLOW: Final = (
    "name: broken\nstart: echo\nstates:\n  echo:\n    type: task\n    tool: echo\n"
    "    args: {text: hi}\n    next: ad\n  add: {type: succeed}\n"
)


def start_task(
    app: LiveApp,
    flow: str,
    data: dict[str, Any],
    token: str | None = None,
    *,
    queued: bool = False,
) -> str:
    """A task started through the API, run to its end (or queued); its id."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if queued:
        headers["Prefer"] = "respond-async"
    request = urllib.request.Request(  # noqa: S310 - the test's own server
        app.url("/tasks"),
        data=json.dumps({"flow": flow, "input": data}).encode(),
        headers=headers,
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        task_id: str = json.load(response)["id"]
        return task_id


def quiet(driver: Browser, app: LiveApp) -> None:
    assert console_errors(driver) == []
    assert failed_requests(driver) == []
    assert foreign_requests(driver, app.base_url) == []


def wait_for(driver: Browser, css: str, timeout: float = 30) -> WebElement:
    WebDriverWait(driver, timeout).until(lambda _: driver.find_elements(By.CSS_SELECTOR, css))
    return driver.find_element(By.CSS_SELECTOR, css)


def taken_states(driver: Browser) -> set[str]:
    """The state names of the diagram's highlighted boxes: each box's label starts with its
    state's name."""
    wait_for(driver, ".mermaid-target svg")
    labels = driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'.mermaid-target svg g.node.taken, .mermaid-target svg g.node.failedHere'))"
        ".map(node => node.textContent.trim())"
    )
    return {re.split(r"\s|·", label, maxsplit=1)[0] for label in labels}


def test_every_console_page_loads_offline_without_errors(
    browser: Browser, live_app: LiveApp, screenshot: Screenshot
) -> None:
    failed = start_task(live_app, "classify_sum", {"a": -5, "b": 2})
    start_task(live_app, "classify_sum", {"a": 50, "b": 60})
    start_task(live_app, "safe_divide", {"dividend": 1, "divisor": 4})
    pages = {
        "tasks": "/ui/tasks",
        "failed-tasks": "/ui/tasks?status=failed",
        "task-failed": f"/ui/tasks/{failed}",
        "flows": "/ui/flows",
        "flow": "/ui/flows/classify_sum",
        "flow-json-input": "/ui/flows/halve_all",
        "validate": "/ui/validate",
        "not-found": "/ui/tasks/00000000-0000-0000-0000-000000000000",
    }
    for name, path in pages.items():
        browser.get(live_app.url(path))
        wait_for(browser, "main h1")
        if browser.find_elements(By.CSS_SELECTOR, ".mermaid-target"):
            wait_for(browser, ".mermaid-target svg")
        screenshot(browser, name)
        errors = console_errors(browser)
        if name == "not-found":  # the page's own 404 is the one error the console notes
            assert len(errors) == 1
            assert "404" in errors[0]
            browser.logs["browser"].clear()
            browser.logs["performance"].clear()
            continue
        quiet(browser, live_app)


def test_a_failed_task_is_found_and_explained_in_three_clicks(
    browser: Browser, live_app: LiveApp, screenshot: Screenshot
) -> None:
    start_task(live_app, "classify_sum", {"a": 1, "b": 2})
    start_task(live_app, "classify_sum", {"a": -5, "b": 2})
    browser.get(live_app.url("/ui"))
    browser.find_element(By.LINK_TEXT, "Failed").click()  # one
    rows = browser.find_elements(By.CSS_SELECTOR, "#task-rows tr")
    assert len(rows) == 1
    assert "NegativeSum" in rows[0].text
    rows[0].find_element(By.CSS_SELECTOR, "th a").click()  # two
    failure = wait_for(browser, ".failure")
    assert "Failed in state negative" in failure.text
    assert "NegativeSum: the sum is below zero" in failure.text
    assert '"a": -5' in browser.find_element(By.CSS_SELECTOR, "details.data pre").text
    assert taken_states(browser) == {"add", "size", "negative"}
    screenshot(browser, "failed-task")
    steps = browser.find_elements(By.CSS_SELECTOR, "table.steps tbody tr")
    assert [row.text.split()[:3] for row in steps] == [
        ["1", "add", "add"],
        ["2", "size", "choice"],
    ]
    assert "rule 1 matched → negative" in steps[1].text
    browser.execute_script("document.getElementById('steps-title').scrollIntoView()")
    screenshot(browser, "failed-task-steps")
    quiet(browser, live_app)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"a": 50, "b": 60}, {"add", "size", "big", "report"}),
        ({"a": 1, "b": 2}, {"add", "size", "small", "report"}),
    ],
)
def test_the_diagram_highlights_exactly_the_path_taken(
    browser: Browser,
    live_app: LiveApp,
    screenshot: Screenshot,
    data: dict[str, int],
    path: set[str],
) -> None:
    task = start_task(live_app, "classify_sum", data)
    browser.get(live_app.url(f"/ui/tasks/{task}"))
    assert taken_states(browser) == path
    all_states = browser.execute_script(
        "return document.querySelectorAll('.mermaid-target svg g.node').length"
    )
    assert all_states > len(path)  # the states not taken are drawn, not highlighted
    screenshot(browser, "-".join(sorted(path)))
    quiet(browser, live_app)


def test_running_tasks_update_in_place_until_they_finish(
    browser: Browser, live_app: LiveApp, screenshot: Screenshot
) -> None:
    for page in ("list", "task"):
        task = start_task(live_app, "delayed_echo", {"text": "soon", "seconds": 4}, queued=True)
        if page == "list":
            browser.get(live_app.url("/ui/tasks"))
            css = f"#task-rows a[href='/ui/tasks/{task}']"
        else:
            browser.get(live_app.url(f"/ui/tasks/{task}"))
            css = "#task-live h1"
        xpath = "ancestor::tr" if page == "list" else "."

        def shown(_: object = None, css: str = css, xpath: str = xpath) -> str:
            try:
                element = browser.find_element(By.CSS_SELECTOR, css)
                text: str = element.find_element(By.XPATH, xpath).text
            except StaleElementReferenceException:  # swapped by a live update meanwhile
                return ""
            return text

        wait_for(browser, css)
        assert "succeeded" not in shown()
        screenshot(browser, f"live-{page}-before")
        browser.execute_script("window.notReloaded = true")
        WebDriverWait(browser, 30).until(lambda _: "succeeded" in shown())
        assert browser.execute_script("return window.notReloaded") is True
        screenshot(browser, f"live-{page}-after")
        assert not browser.find_elements(By.CSS_SELECTOR, "[hx-trigger]")  # polling stopped
    quiet(browser, live_app)


def test_the_generated_form_starts_a_task_and_opens_its_page(
    browser: Browser, live_app: LiveApp, screenshot: Screenshot
) -> None:
    browser.get(live_app.url("/ui/flows/classify_sum"))
    wait_for(browser, ".mermaid-target svg")
    browser.find_element(By.ID, "input-a").send_keys("70")
    browser.find_element(By.ID, "input-b").send_keys("40")
    label = browser.find_element(By.ID, "input-label")
    label.clear()
    label.send_keys("from the form")
    screenshot(browser, "form-filled")
    browser.find_element(By.CSS_SELECTOR, ".start-form button[type=submit]").click()
    WebDriverWait(browser, 30).until(lambda _: "/ui/tasks/" in browser.current_url)
    summary = wait_for(browser, ".summary")
    assert "succeeded" in summary.text
    assert '"label": "from the form"' in browser.find_element(By.CSS_SELECTOR, "main").text
    assert taken_states(browser) == {"add", "size", "big", "report"}
    screenshot(browser, "started-task")
    quiet(browser, live_app)


def test_a_refused_form_shows_the_problem_next_to_the_field(
    browser: Browser, live_app: LiveApp, screenshot: Screenshot
) -> None:
    browser.get(live_app.url("/ui/flows/halve_all"))
    browser.find_element(By.ID, "input-numbers").send_keys('["one"]')
    browser.find_element(By.ID, "input-divisor").send_keys("2")
    browser.find_element(By.CSS_SELECTOR, ".start-form button[type=submit]").click()
    problems = wait_for(browser, "#input-numbers-problems")
    assert "'one' is not of type 'number'" in problems.text
    assert browser.switch_to.active_element.get_attribute("id") == "input-numbers"
    wait_for(browser, ".mermaid-target svg")
    in_view = (
        "const box = arguments[0].getBoundingClientRect();"
        "return box.top >= 0 && box.bottom <= innerHeight"
    )
    WebDriverWait(browser, 10).until(lambda _: browser.execute_script(in_view, problems))
    screenshot(browser, "refused-form")
    errors = console_errors(browser)
    assert len(errors) == 1  # the page's own 422
    assert "422" in errors[0]
    assert foreign_requests(browser, live_app.base_url) == []


def test_the_validate_page_shows_a_problem_at_its_line(
    browser: Browser, live_app: LiveApp, screenshot: Screenshot
) -> None:
    browser.get(live_app.url("/ui/validate"))
    source = browser.find_element(By.ID, "source")
    # The text arrives as one paste would: send_keys would auto-indent nothing, but is slow.
    browser.execute_script("arguments[0].value = arguments[1]", source, BROKEN_FLOW)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    problem = wait_for(browser, "table.problems tbody tr")
    assert "line 8:11" in problem.text
    assert "flow.unknown-state" in problem.text
    problem.find_element(By.CSS_SELECTOR, "a").click()
    assert browser.current_url.endswith("#L8")
    marked = browser.find_elements(By.CSS_SELECTOR, "table.source tr.marked")
    assert [row.get_attribute("id") for row in marked] == ["L8"]
    assert "next: ad" in marked[0].text
    screenshot(browser, "validate-problem")
    quiet(browser, live_app)


def test_the_keyboard_alone_reaches_a_task(
    browser: Browser, live_app: LiveApp, screenshot: Screenshot
) -> None:
    task = start_task(live_app, "echo_add", {"text": "hi", "a": 1, "b": 2})
    browser.get(live_app.url("/ui/tasks"))
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.text == "Skip to content"
    reached: list[str] = []
    for _ in range(40):
        focused = browser.switch_to.active_element
        reached.append(focused.get_attribute("id") or focused.text)
        if focused.get_attribute("href") == live_app.url(f"/ui/tasks/{task}"):
            break
        focused.send_keys(Keys.TAB)
    else:
        pytest.fail(f"the first task's link was never reached: {reached}")
    assert "status" in reached  # the filter came before it
    screenshot(browser, "keyboard-focus")
    focused.send_keys(Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda _: browser.current_url.endswith(task))
    assert "succeeded" in wait_for(browser, ".summary").text
    quiet(browser, live_app)


def test_a_phone_wide_window_never_scrolls_the_page_sideways(
    browser: Browser, live_app: LiveApp, screenshot: Screenshot
) -> None:
    failed = start_task(live_app, "classify_sum", {"a": -5, "b": 2})
    browser.viewport(375, 740)
    for name, path in {
        "tasks": "/ui/tasks",
        "task": f"/ui/tasks/{failed}",
        "flow": "/ui/flows/classify_sum",
        "validate": "/ui/validate",
    }.items():
        browser.get(live_app.url(path))
        wait_for(browser, "main h1")
        if browser.find_elements(By.CSS_SELECTOR, ".mermaid-target"):
            wait_for(browser, ".mermaid-target svg")
        overflow = browser.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        screenshot(browser, f"phone-{name}")
        assert overflow[0] <= overflow[1], (name, overflow)
    quiet(browser, live_app)


def test_signing_in_with_a_read_key_shows_everything_but_the_controls(
    browser: Browser, start_app: Callable[..., LiveApp], screenshot: Screenshot
) -> None:
    app = start_app(api_keys=True)
    task = start_task(app, "echo_add", {"text": "hi", "a": 1, "b": 2}, app.tokens["run"])
    browser.get(app.url(f"/ui/tasks/{task}"))
    key = wait_for(browser, "#key")
    assert "/ui/login" in browser.current_url
    screenshot(browser, "login")
    key.send_keys(app.tokens["read"])
    key.send_keys(Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda _: browser.current_url.endswith(task))
    assert "Key read-key (read)" in browser.find_element(By.CSS_SELECTOR, ".signed-in").text
    cookies = browser.get_cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"], c["path"]) for c in cookies] == [
        ("taskrunner_console", True, "Strict", "/ui")
    ]
    browser.get(app.url("/ui/flows/echo_add"))
    # The whole form is disabled, and says why.
    assert not browser.find_element(By.ID, "input-text").is_enabled()
    assert not browser.find_element(By.CSS_SELECTOR, ".start-form button").is_enabled()
    assert "need a run key" in browser.find_element(By.ID, "start-why").text
    screenshot(browser, "read-key-flow")
    quiet(browser, app)
