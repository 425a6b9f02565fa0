"""The app in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`), driven by Selenium, against a real server. What the tests work with
is in `browsing.py`; the fixtures are here.

Every test in this folder carries the `browser` mark (`-m browser` runs only these, `-m
'not browser'` skips them). Fixtures:

- `live_app`: `taskrunner serve` in a process of its own on a free loopback port, on a
  clean migrated database, without API keys; `start_app(api_keys=True)` starts one that
  needs keys (its `LiveApp` holds a token per scope). The database is SQLite, the
  fresh-clone default; a test parametrized with `app_backend` ("sqlite" or
  "postgresql") chooses.
- `browser`: a `Browser` that cannot reach the network; it and every process it started
  are gone when the test ends.
- `console_errors`, `foreign_requests`, `failed_requests`: `browsing`'s functions of the
  same names, for a test that takes them as fixtures.
- `screenshot(browser, name)`: a PNG in the run's screenshot folder, which is kept and
  named at the end of the run. A failing test's report names its screenshots, and one is
  taken when a test using `browser` fails.

No browser or driver is ever downloaded: both are found on PATH (`.ci/run` installs them
with apt-get), and Selenium Manager is kept offline.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import browsing
import pytest
from browsing import Browser, LiveApp

from taskrunner.apikeys import new_key

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "taskrunner" / "flows"
HERE = Path(__file__).resolve().parent
SERVE = [sys.executable, "-c", "from taskrunner.cli import main; main()", "serve"]
SCREENSHOTS = pytest.StashKey[Path]()
TAKEN = pytest.StashKey[list[Path]]()
SCOPES = ("read", "run", "admin")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


# -- the app ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/healthz", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture
def app_backend() -> str:
    """The database of `live_app`: parametrize a test with `app_backend` to choose."""
    return "sqlite"


@pytest.fixture
def start_app(
    app_backend: str,
    clean_database: Callable[[str], AbstractContextManager[str]],
    tmp_path: Path,
) -> Iterator[Callable[..., LiveApp]]:
    """`start_app(api_keys=False, **env)`: a server on a clean database of its own,
    stopped when the test ends; `env` adds `TASKRUNNER_*` settings."""
    with ExitStack() as cleanup:

        def start(*, api_keys: bool = False, **env: str) -> LiveApp:
            database_url = cleanup.enter_context(clean_database(app_backend))
            environment = {
                **os.environ,
                "DATABASE_URL": database_url,
                "TASKRUNNER_FLOWS_DIR": str(FLOWS),
                **env,
            }
            tokens: dict[str, str] = {}
            if api_keys:
                made = {scope: new_key(f"{scope}-key", scope) for scope in SCOPES}
                tokens = {scope: key.token for scope, key in made.items()}
                environment["TASKRUNNER_API_KEYS"] = ";".join(
                    key.key.line() for key in made.values()
                )
            port = _free_port()
            log = tmp_path / f"server-{port}.log"
            with log.open("w") as output:
                process = subprocess.Popen(
                    [*SERVE, "--host", "127.0.0.1", "--port", str(port)],
                    cwd=ROOT,
                    env=environment,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            cleanup.callback(_stop, process)
            base_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while not _healthy(base_url):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the server did not start:\n{log.read_text()}", pytrace=False)
                time.sleep(0.1)
            return LiveApp(base_url, database_url, tokens)

        yield start


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def live_app(start_app: Callable[..., LiveApp]) -> LiveApp:
    """A server without API keys, on a clean database."""
    return start_app()


# -- the browser --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _offline_selenium() -> Iterator[None]:
    """Selenium Manager, were it asked, must never download a browser or a driver."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")
        yield


@pytest.fixture
def browser(_offline_selenium: None, tmp_path: Path) -> Iterator[Browser]:
    """Headless Chromium at 1280x800, cut off from the network."""
    driver = Browser(tmp_path / "chromium-profile", tmp_path / "chromedriver.log")
    try:
        yield driver
    finally:
        driver.close_all()


# -- what a page did ----------------------------------------------------------------------


@pytest.fixture
def console_errors() -> Callable[[Browser], list[str]]:
    """`console_errors(browser)`: the messages of the console's errors so far."""
    return browsing.console_errors


@pytest.fixture
def foreign_requests() -> Callable[[Browser, str], list[str]]:
    """`foreign_requests(browser, base_url)`: each URL requested of another host than
    `base_url`'s (`data:` and `blob:` URLs are the page's own)."""
    return browsing.foreign_requests


@pytest.fixture
def failed_requests() -> Callable[[Browser], list[str]]:
    """`failed_requests(browser)`: `STATUS URL` for each answer >= 400, and `ERROR URL`
    for each request that got no answer."""
    return browsing.failed_requests


# -- screenshots --------------------------------------------------------------------------


def _screenshot_folder(config: pytest.Config) -> Path:
    if SCREENSHOTS not in config.stash:
        config.stash[SCREENSHOTS] = Path(tempfile.mkdtemp(prefix="taskrunner-screenshots-"))
    return config.stash[SCREENSHOTS]


def _take(driver: Browser, item: pytest.Item, name: str) -> Path:
    test, shot = (re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in (item.name, name))
    path = _screenshot_folder(item.config) / f"{test}--{shot}.png"
    driver.save_screenshot(str(path))
    item.stash.setdefault(TAKEN, []).append(path)
    return path


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Browser, str], Path]:
    """`screenshot(browser, name)`: save the window as a PNG, kept after the run."""
    return lambda driver, name: _take(driver, request.node, name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        driver = getattr(item, "funcargs", {}).get("browser")
        if isinstance(driver, Browser) and call.when == "call":
            try:
                _take(driver, item, "failure")
            except Exception as exc:  # noqa: BLE001 - a report must still be made
                report.sections.append(("screenshots", f"no screenshot of the failure: {exc}"))
        taken = item.stash.get(TAKEN, [])
        if taken:
            report.sections.append(("screenshots", "\n".join(str(path) for path in taken)))
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if SCREENSHOTS in config.stash:
        terminalreporter.write_line(f"browser screenshots: {config.stash[SCREENSHOTS]}")
