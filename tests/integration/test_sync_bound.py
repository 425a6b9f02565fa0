"""A synchronous start answers in bounded time, and says what really happened, on both
backends: past `sync_wait_seconds` (or before a retry's delay that would outlast it) the
task goes on on the queue and the answer is 202 with `Location`; a repeated idempotency key
is answered with its task as it is (waited for within the bound), never 200 `pending`; a
cancel ends a synchronous run that waits out a delay at once. The CLI's exit status says
the same: 75 for a task that has not finished."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from taskrunner.api import create_app
from taskrunner.cli import app
from taskrunner.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "taskrunner" / "flows"
SLOW_RETRY = ROOT / "tests" / "flows" / "slow" / "slow_retry.yaml"
ENTRY = [sys.executable, "-c", "from taskrunner.cli import main; main()"]
HELLO = {"text": "hello", "a": 2, "b": 3}
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "flows"
    shutil.copytree(FLOWS, directory)
    shutil.copy(SLOW_RETRY, directory)
    return directory


@pytest.fixture
def make_client(database_url: str, flows_dir: Path) -> Iterator[Callable[..., TestClient]]:
    with ExitStack() as stack:

        def make(*, sync_wait: float, workers: int = 0) -> TestClient:
            settings = Settings(
                database_url=database_url,
                auto_migrate=False,
                flows_dir=flows_dir,
                worker_concurrency=workers,
                poll_seconds=0.1,
                sync_wait_seconds=sync_wait,
            )
            return stack.enter_context(TestClient(create_app(settings)))

        yield make


def test_a_delay_past_the_bound_answers_202_and_the_task_goes_on_queued(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(sync_wait=5)
    started = time.monotonic()
    answer = client.post("/tasks", json={"flow": "slow_retry", "input": {"divisor": 0}})
    assert time.monotonic() - started < 5
    assert answer.status_code == 202, answer.text
    task = answer.json()
    assert answer.headers["location"] == f"/tasks/{task['id']}"
    assert "preference-applied" not in answer.headers
    assert task["status"] == "pending"
    assert [step["attempt"] for step in task["steps"]] == [1]
    assert client.get(answer.headers["location"]).json()["status"] == "pending"


def test_a_repeated_key_of_a_queued_task_is_202_with_its_task_as_it_is(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(sync_wait=0.5)
    queued = client.post("/tasks", json=HELLO, headers={**ASYNC, "Idempotency-Key": "k-1"})
    assert queued.status_code == 202, queued.text
    started = time.monotonic()
    again = client.post("/tasks", json=HELLO, headers={"Idempotency-Key": "k-1"})
    assert 0.4 < time.monotonic() - started < 5, "the repeat did not wait within its bound"
    assert again.status_code == 202, again.text
    assert again.json()["id"] == queued.json()["id"]
    assert again.json()["status"] == "pending"
    assert again.headers["location"] == f"/tasks/{queued.json()['id']}"


def test_a_repeated_key_of_a_task_a_worker_runs_is_answered_finished(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(sync_wait=10, workers=1)
    queued = client.post("/tasks", json=HELLO, headers={**ASYNC, "Idempotency-Key": "k-2"})
    again = client.post("/tasks", json=HELLO, headers={"Idempotency-Key": "k-2"})
    assert again.status_code == 200, again.text
    task = again.json()
    assert (task["id"], task["status"]) == (queued.json()["id"], "succeeded")
    assert [step["state"] for step in task["steps"]] == ["echo", "add"]


def test_a_cancel_ends_a_synchronous_run_that_waits_out_a_delay(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(sync_wait=300)
    answers: list[Any] = []
    body = {"flow": "slow_retry", "input": {"divisor": 0}}
    thread = threading.Thread(target=lambda: answers.append(client.post("/tasks", json=body)))
    thread.start()
    task_id = _first_task_with_a_step(client)
    cancelled_at = time.monotonic()
    cancel = client.post(f"/tasks/{task_id}/cancel")
    thread.join(timeout=10)
    assert not thread.is_alive(), "the synchronous run did not end"
    assert time.monotonic() - cancelled_at < 3
    assert cancel.status_code == 202, cancel.text
    (answer,) = answers
    assert answer.status_code == 201, answer.text
    task = answer.json()
    assert (task["status"], task["error"]["kind"]) == ("cancelled", "Cancelled")
    assert len(task["steps"]) == 1, "the cancelled task called its tool again"


def _first_task_with_a_step(client: TestClient, timeout: float = 10) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for item in client.get("/tasks").json()["items"]:
            task: dict[str, Any] = client.get(f"/tasks/{item['id']}").json()
            if task["steps"]:
                return str(task["id"])
        time.sleep(0.05)
    raise AssertionError("no task recorded a step in time")


# -- the command line -----------------------------------------------------------------------

runner = CliRunner()


def _cli(database_url: str, flows_dir: Path, *args: str, **env: str) -> tuple[int, str]:
    environment = {
        "DATABASE_URL": database_url,
        "TASKRUNNER_FLOWS_DIR": str(flows_dir),
        "TASKRUNNER_AUTO_MIGRATE": "0",
        **env,
    }
    result = runner.invoke(app, list(args), env=environment, catch_exceptions=False)
    return result.exit_code, result.output


def test_the_cli_exits_75_for_a_repeated_key_whose_task_has_not_finished(
    database_url: str, flows_dir: Path
) -> None:
    hello = ["--text", "hello", "--a", "2", "--b", "3", "--idempotency-key", "k-3"]
    code, out = _cli(database_url, flows_dir, "run-flow", "--no-wait", *hello)
    assert code == 0, out
    queued_id = re.findall(r"^[0-9a-f-]{36}$", out, re.MULTILINE)[-1]
    code, out = _cli(
        database_url, flows_dir, "run-flow", *hello, TASKRUNNER_SYNC_WAIT_SECONDS="0.3"
    )
    assert code == 75, out
    assert (
        f"has not finished (pending): it goes on elsewhere; `taskrunner get-task {queued_id}`"
        in out
    )


def test_the_cli_says_that_a_task_queued_on_sqlite_waits_for_a_server(
    database_url: str, flows_dir: Path
) -> None:
    code, out = _cli(
        database_url, flows_dir, "run-flow", "--no-wait", "--text", "a", "--a", "1", "--b", "2"
    )
    assert code == 0, out
    said = "runs when `taskrunner serve` runs on this database" in out
    assert said == database_url.startswith("sqlite")


def test_read_commands_refuse_a_sqlite_path_with_no_database(tmp_path: Path) -> None:
    missing = tmp_path / "mistyped.sqlite3"
    environment = {**os.environ, "DATABASE_URL": f"sqlite:///{missing}"}
    for args in (["list-tasks"], ["get-task", str(uuid.UUID(int=1))]):
        done = subprocess.run(
            [*ENTRY, *args], env=environment, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1, done.stderr
        assert f"error: there is no database at {missing}" in done.stderr
        assert "Traceback" not in done.stderr
    assert not missing.exists()
