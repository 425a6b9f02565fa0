"""The browser tests can fail: a page that asks another host for something, logs an
error or loads a missing file is seen doing so, and the request never leaves the
machine. (A page of the app with no policy of its own, a static file, stands in for a
careless page.)"""

from __future__ import annotations

from browsing import (
    HEIGHT,
    WIDTH,
    Browser,
    LiveApp,
    console_errors,
    failed_requests,
    foreign_requests,
)
from selenium.webdriver.support.ui import WebDriverWait

CARELESS = """
fetch("https://cdn.example.com/library.js").catch(() => {});
const image = new Image();
image.src = "http://fonts.example.org/font.png";
document.body.appendChild(image);
fetch("/ui/static/vendor/missing.js").catch(() => {});
console.error("something broke");
"""


def test_requests_to_other_hosts_errors_and_missing_files_are_seen(
    browser: Browser, live_app: LiveApp
) -> None:
    browser.get(live_app.url("/ui/static/vendor/swagger-ui-dist/swagger-ui.css"))
    assert foreign_requests(browser, live_app.base_url) == []
    browser.execute_script(CARELESS)
    WebDriverWait(browser, 10).until(lambda _: len(failed_requests(browser)) >= 3)
    assert foreign_requests(browser, live_app.base_url) == [
        "http://fonts.example.org/font.png",
        "https://cdn.example.com/library.js",
    ]
    failed = failed_requests(browser)
    assert f"404 {live_app.url('/ui/static/vendor/missing.js')}" in failed
    assert "net::ERR_NAME_NOT_RESOLVED https://cdn.example.com/library.js" in failed
    assert "net::ERR_NAME_NOT_RESOLVED http://fonts.example.org/font.png" in failed
    assert any("something broke" in message for message in console_errors(browser))


def test_pages_are_shown_at_1280_by_800(browser: Browser, live_app: LiveApp) -> None:
    browser.get(live_app.url("/docs"))
    size = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    assert size == [WIDTH, HEIGHT]
