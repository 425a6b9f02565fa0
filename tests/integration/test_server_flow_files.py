"""`taskrunner serve` and `taskrunner worker` with a bad flow file, as processes of their
own: they start, say the file once, serve the other flows, and reload on `SIGHUP`. A flows
directory that does not exist stops `serve` in one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
FLOWS: Final = ROOT / "taskrunner" / "flows"
ENTRY: Final = [sys.executable, "-c", "from taskrunner.cli import main; main()"]
BROKEN: Final = "name: broken\nstart: echo\nstates:\n  echo: {type: task, tool: echo, next: ad}\n"


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    directory = tmp_path / "flows"
    directory.mkdir()
    shutil.copyfile(FLOWS / "echo_add.yaml", directory / "echo_add.yaml")
    (directory / "broken.yaml").write_text(BROKEN)
    return directory


def _environment(database_url: str, flows: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DATABASE_URL" and not key.startswith("TASKRUNNER_")
    }
    # No poll: what changes below is seen because of SIGHUP alone.
    env.update(
        DATABASE_URL=database_url,
        TASKRUNNER_FLOWS_DIR=str(flows),
        TASKRUNNER_FLOWS_RELOAD_SECONDS="0",
    )
    return env


class Output:
    """A process's merged output, read as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)


def _eventually(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@contextmanager
def _process(
    args: list[str], env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    process = subprocess.Popen(
        [*ENTRY, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(process)
    try:
        yield process, output
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)
    assert "Traceback" not in output.text(), output.text()


def _get(url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - a local test server
        url, data=body, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _up(base: str) -> bool:
    try:
        return _get(base + "/healthz")[0] == 200
    except OSError:
        return False


def test_serve_with_a_bad_flow_file_serves_the_others_and_reloads_on_sighup(
    database_url: str, flows: Path
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--port", str(port)]
    with _process(args, _environment(database_url, flows)) as (process, output):
        _eventually(lambda: process.poll() is not None or _up(base), "the server did not start")
        assert process.poll() is None, output.text()
        status, listed = _get(base + "/flows")
        assert status == 200
        assert [(item["file"], item["valid"]) for item in listed] == [
            ("echo_add.yaml", True),
            ("broken.yaml", False),
        ]
        status, task = _get(base + "/tasks", b'{"text": "hello", "a": 2, "b": 3}')
        assert (status, task["status"]) == (201, "succeeded")
        status, problem = _get(base + "/flows/broken")
        assert (status, problem["type"]) == (404, "urn:taskrunner:problem:invalid-flow-file")
        said = [line for line in output.lines if "broken.yaml has 2 problems; skipped" in line]
        assert len(said) == 1, output.text()

        shutil.copyfile(FLOWS / "safe_divide.yaml", flows / "safe_divide.yaml")
        (flows / "broken.yaml").unlink()
        process.send_signal(signal.SIGHUP)
        _eventually(
            lambda: (
                [item["name"] for item in _get(base + "/flows")[1]] == ["echo_add", "safe_divide"]
            ),
            "SIGHUP did not reload the flows",
        )
        assert process.poll() is None
        body = b'{"flow": "safe_divide", "input": {"dividend": 6, "divisor": 3}}'
        assert _get(base + "/tasks", body)[0] == 201


def test_serve_without_its_flows_directory_stops_in_one_line(
    database_url: str, tmp_path: Path
) -> None:
    env = _environment(database_url, tmp_path / "missing")
    done = subprocess.run(
        [*ENTRY, "serve", "--port", str(_free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith("error: the flows directory ")
    assert "does not exist" in line


def test_a_worker_says_a_bad_file_and_reloads_on_sighup(
    clean_database: Callable[[str], AbstractContextManager[str]], flows: Path
) -> None:
    (flows / "broken.yaml").unlink()
    with (
        clean_database("postgresql") as url,
        _process(["worker", "--concurrency", "1"], _environment(url, flows)) as (process, output),
    ):
        _eventually(lambda: "worker" in output.text() and "running" in output.text(), "no start")
        assert not [line for line in output.lines if line.startswith("warning: ")]
        (flows / "broken.yaml").write_text(BROKEN)
        process.send_signal(signal.SIGHUP)
        _eventually(
            lambda: any("broken.yaml has 2 problems; skipped" in line for line in output.lines),
            "SIGHUP did not reload the flows",
        )
        assert process.poll() is None  # SIGHUP reloads; it does not stop the worker
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
