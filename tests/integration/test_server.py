"""The real servers, as users start them: `uvicorn main:app` and `taskrunner serve`, each in
a process of its own, answering over TCP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "taskrunner" / "flows"
CLI = "from taskrunner.cli import main; main()"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _request(url: str, body: bytes | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(  # noqa: S310 - a local test server
        url, data=body, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _serve(command: list[str], database_url: str) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "TASKRUNNER_FLOWS_DIR": str(FLOWS)}
    process = subprocess.Popen(
        [arg.replace("{port}", str(port)) for arg in command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _request(base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"the server did not start:\n{output}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "uvicorn", "main:app", "--port", "{port}"],
        [
            sys.executable,
            "-c",
            "from taskrunner.cli import main; main()",
            "serve",
            "--port",
            "{port}",
        ],
    ],
    ids=["uvicorn-main-app", "taskrunner-serve"],
)
def test_the_server_runs_tasks_over_http(command: list[str], database_url: str) -> None:
    for base in _serve(command, database_url):
        status, task = _request(base + "/tasks", b'{"text": "hello", "a": 2, "b": 3}')
        assert status == 201
        assert task["output"] == {"text": "hello", "sum": 5}
        status, fetched = _request(f"{base}/tasks/{task['id']}")
        assert (status, fetched) == (200, task)
        status, problem = _request(base + "/tasks", b'{"text": "hello", "a": "2", "b": 3}')
        assert (status, problem["status"]) == (422, 422)
        assert _request(base + "/readyz") == (200, {"status": "ready"})


@pytest.mark.parametrize(
    ("command", "status"),
    [
        ([sys.executable, "-c", CLI, "serve", "--port", "{port}"], 1),
        ([sys.executable, "-m", "uvicorn", "main:app", "--port", "{port}"], 3),
    ],
    ids=["taskrunner-serve", "uvicorn"],
)
def test_a_server_that_cannot_reach_its_database_says_so_in_one_line(
    command: list[str], status: int
) -> None:
    port = str(_free_port())
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{_free_port()}/nowhere",
        "TASKRUNNER_FLOWS_DIR": str(FLOWS),
    }
    done = subprocess.run(
        [arg.replace("{port}", port) for arg in command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error: " in line]
    assert len(errors) == 1, done.stderr
    assert "the database failed: connection failed" in errors[0]
