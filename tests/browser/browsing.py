"""What the browser tests work with (their fixtures are in this folder's conftest.py):

- `LiveApp`: a running server's base URL, database and tokens;
- `Browser`: Selenium's Chrome driver on Debian's headless Chromium, cut off from the
  network, keeping its console and DevTools logs;
- `console_errors(browser)`: the console's errors (CSP refusals, failed loads, exceptions);
- `foreign_requests(browser, base_url)`: every request the pages made to another host;
- `failed_requests(browser)`: every request that failed or was answered >= 400.

    from browsing import Browser, LiveApp, console_errors, foreign_requests
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

WIDTH, HEIGHT = 1280, 800
# The requests a page makes of itself: not to another host.
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})


@dataclass(frozen=True)
class LiveApp:
    """A running server: its base URL, its database and, when it needs keys, a token for
    each scope (`read`, `run`, `admin`)."""

    base_url: str
    database_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path


class Browser(webdriver.Chrome):
    """Headless Chromium, showing pages at 1280x800, that reaches nothing but the app:
    every host name but 127.0.0.1 resolves to nothing, so a request to another host fails
    (and is still in the DevTools log). Reading one of the browser's logs empties it; a
    `Browser` keeps what it has read, so a test may ask more than once.

    `close()` quits it and ends whatever Chromium processes it started."""

    def __init__(self, profile: Path, driver_log: Path) -> None:
        service = Service(executable_path=_required("chromedriver"), log_output=str(driver_log))
        super().__init__(options=_options(profile), service=service)
        self.driver_pid = service.process.pid
        self.logs: dict[str, list[dict[str, Any]]] = {"browser": [], "performance": []}
        self.set_page_load_timeout(30)
        self.set_script_timeout(60)
        # Chromium opens on its new-tab page, which asks another host for its parts (and
        # fails to reach it): that is the browser's doing, not a page's, so it is dropped.
        self.get("about:blank")
        for kind in self.logs:
            self.get_log(kind)
        self.viewport(WIDTH, HEIGHT)

    def viewport(self, width: int, height: int) -> None:
        """Make the page's own area (not the window's) `width` x `height` CSS pixels:
        a window is larger than its page by its frame, whose size varies."""
        self.set_window_size(width, height)
        inner = self.execute_script("return [window.innerWidth, window.innerHeight]")
        self.set_window_size(2 * width - inner[0], 2 * height - inner[1])

    def log_entries(self, kind: str) -> list[dict[str, Any]]:
        """Every entry of the `browser` (console) or `performance` (DevTools) log so far."""
        self.logs[kind].extend(self.get_log(kind))
        return self.logs[kind]

    def network_events(self, method: str) -> list[dict[str, Any]]:
        """The parameters of each DevTools event `method` (e.g. `Network.loadingFailed`)."""
        events = (
            json.loads(entry["message"])["message"] for entry in self.log_entries("performance")
        )
        return [event["params"] for event in events if event["method"] == method]

    def close_all(self) -> None:
        """Quit, and make sure that no Chromium or driver process of ours is left."""
        started = _descendants(self.driver_pid) | {self.driver_pid}
        self.quit()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in started:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def console_errors(driver: Browser) -> list[str]:
    """The messages of the console's errors so far."""
    return [
        entry["message"] for entry in driver.log_entries("browser") if entry["level"] == "SEVERE"
    ]


def foreign_requests(driver: Browser, base_url: str) -> list[str]:
    """Each URL requested of another host than `base_url`'s (`data:` and `blob:` URLs are
    the page's own), whether or not it was answered."""
    own = urlsplit(base_url).netloc
    urls = [event["request"]["url"] for event in driver.network_events("Network.requestWillBeSent")]
    urls += [event["url"] for event in driver.network_events("Network.webSocketCreated")]
    return sorted(
        {
            url
            for url in urls
            if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).netloc != own
        }
    )


def failed_requests(driver: Browser) -> list[str]:
    """`STATUS URL` for each answer >= 400, and `ERROR URL` for each request that got no
    answer."""
    urls = {
        event["requestId"]: event["request"]["url"]
        for event in driver.network_events("Network.requestWillBeSent")
    }
    failed = [
        f"{event['response']['status']} {event['response']['url']}"
        for event in driver.network_events("Network.responseReceived")
        if event["response"]["status"] >= 400
    ]
    failed += [
        f"{event['errorText']} {urls.get(event['requestId'], '?')}"
        for event in driver.network_events("Network.loadingFailed")
    ]
    return failed


def _required(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        pytest.fail(
            f"{program} is not on PATH: the browser tests need Debian's chromium and "
            "chromium-driver (apt-get install chromium chromium-driver)",
            pytrace=False,
        )
    return found


def _options(profile: Path) -> Options:
    options = Options()
    options.binary_location = _required("chromium")
    for argument in (
        "--headless=new",
        "--no-sandbox",  # Chromium refuses to run as root with its sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WIDTH},{HEIGHT}",
        f"--user-data-dir={profile}",
        # Only the app's address resolves: nothing can leave the machine by accident.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return options


def _descendants(pid: int) -> set[int]:
    """The processes started, directly or not, by `pid` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parent = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
