"""Errors carry their meaning: each of taskrunner's error classes says once its problem
type, HTTP status and exit status, and the API and the CLI both read them. A fault on our
side is never blamed on the client: anything unexpected is a 500 problem that tells
nothing of its internals and is logged once, with its traceback; a database that cannot be
reached is a 503 with `Retry-After`; and a task this server loses on the way to another
runner is answered as it stands, never with a 4xx."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import taskrunner.errors as errors_module
from taskrunner.cli import app as cli_app
from taskrunner.cli import main
from taskrunner.errors import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_USAGE,
    LeaseLostError,
    StoreError,
    StoreUnavailableError,
    TaskrunnerError,
)
from taskrunner.service import TaskService
from taskrunner.store.records import Progress, StepRecord
from taskrunner.store.repository import TaskRepository
from taskrunner.store.sql import SqlTaskRepository

PROBLEM: Final = "application/problem+json"
HELLO: Final = {"text": "hello", "a": 2, "b": 3}


def _error_classes() -> list[type[TaskrunnerError]]:
    found = [TaskrunnerError]
    for _, value in inspect.getmembers(errors_module, inspect.isclass):
        if issubclass(value, TaskrunnerError) and value is not TaskrunnerError:
            found.append(value)
    return found


@pytest.mark.parametrize("kind", _error_classes(), ids=lambda kind: kind.__name__)
def test_every_error_says_what_it_means(kind: type[TaskrunnerError]) -> None:
    assert kind.problem
    assert kind.problem == kind.problem.lower()
    assert " " not in kind.problem
    assert kind.http_status in {400, 401, 403, 404, 408, 409, 413, 422, 500, 503}
    assert kind.exit_status in {EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL}
    assert (kind.retry_after is not None) == (kind.http_status == 503)
    message = kind.default_message()
    assert message
    assert "\n" not in message
    assert "  " not in message


def test_a_client_error_is_a_4xx_and_ours_is_a_5xx() -> None:
    for kind in _error_classes():
        if issubclass(kind, errors_module.ClientError):
            assert 400 <= kind.http_status < 500, kind
        else:
            assert kind.http_status >= 500, kind


def test_a_message_from_a_docstring_is_one_clean_sentence() -> None:
    assert str(LeaseLostError()) == (
        "This runner no longer holds the task: its lease ran out and another took it, or it "
        "was cancelled. Nothing was written."
    )


# -- the API ------------------------------------------------------------------------------


def _service(client: TestClient) -> TaskService:
    service: TaskService = client.app.state.runtime.service  # type: ignore[attr-defined]
    return service


def _fail_with(error: Exception) -> Callable[..., Any]:
    def fail(*args: object, **kwargs: object) -> Any:
        raise error

    return fail


def test_an_unexpected_error_is_a_generic_500_logged_once_with_its_traceback(
    settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from taskrunner.api import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        internals = "internals: /srv/taskrunner/state.txt"
        monkeypatch.setattr(_service(client), "list_tasks", _fail_with(RuntimeError(internals)))
        with caplog.at_level(logging.ERROR):
            response = client.get("/tasks")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:taskrunner:problem:internal"
    assert internals not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1, [record.getMessage() for record in caplog.records]
    assert "GET /tasks" in logged[0].getMessage()


def test_a_store_failure_is_a_500_that_tells_no_internals(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = StoreError("the database failed: relation tasks_secret does not exist")
    monkeypatch.setattr(_service(client).repository, "get_task", _fail_with(error))
    response = client.get("/tasks/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 500
    assert response.json()["type"] == "urn:taskrunner:problem:store-failed"
    assert "tasks_secret" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("post", "/tasks", "create_task"),
        ("get", "/tasks", "list_tasks"),
        ("get", "/tasks/00000000-0000-0000-0000-000000000000", "get_task"),
        ("post", "/tasks/00000000-0000-0000-0000-000000000000/cancel", "cancel"),
    ],
)
def test_an_unreachable_database_is_a_503_with_retry_after(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, method: str, path: str, operation: str
) -> None:
    error = StoreUnavailableError("the database failed: connection to 10.0.0.7 refused")
    monkeypatch.setattr(_service(client).repository, operation, _fail_with(error))
    response = client.request(method, path, json=HELLO if method == "post" else None)
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["type"] == "urn:taskrunner:problem:store-unavailable"
    assert "10.0.0.7" not in response.text


def _taken_over(
    service: TaskService, other: TaskService, *, finish: bool
) -> Callable[[str, StepRecord, Progress], Any]:
    """A `record_step` that first lets `other` take the task over (its lease ran out), and
    run it to its end if `finish`, as a worker would; then this runner's write fails."""
    repository: TaskRepository = service.repository
    record_step = repository.record_step

    def record(owner: str, step: StepRecord, progress: Progress) -> Any:
        expired = step.started_at + timedelta(hours=1)
        [claimed] = repository.claim_abandoned(other.owner, 1, expired, expired)
        if finish:
            other.resume(claimed)
        return record_step(owner, step, progress)

    return record


@pytest.mark.parametrize("finish", [False, True], ids=["still-running", "finished"])
def test_a_lost_lease_answers_the_task_as_it_stands(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, finish: bool
) -> None:
    service = _service(client)
    database = client.app.state.runtime.database  # type: ignore[attr-defined]
    other = TaskService(SqlTaskRepository(database), service.catalog, owner="another-runner")
    try:
        monkeypatch.setattr(
            service.repository, "record_step", _taken_over(service, other, finish=finish)
        )
        response = client.post("/tasks", json=HELLO)
    finally:
        other.close()
    assert response.status_code == (201 if finish else 202), response.text
    task = response.json()
    assert response.headers["location"] == f"/tasks/{task['id']}"
    assert task["status"] == ("succeeded" if finish else "running")
    monkeypatch.undo()
    assert client.get(f"/tasks/{task['id']}").json()["status"] == task["status"]


# -- the CLI ------------------------------------------------------------------------------


def test_the_cli_exits_as_the_error_says(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for error in (StoreUnavailableError(), StoreError("the database failed: boom")):
        monkeypatch.setattr("taskrunner.cli.app", _fail_with(error))
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == error.exit_status == EXIT_FAILED
        assert capsys.readouterr().err == f"error: {error.message}\n"


def test_an_unexpected_cli_error_is_internal_and_shows_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TASKRUNNER_DEBUG", raising=False)
    monkeypatch.setattr("taskrunner.cli.app", _fail_with(KeyError("oops")))
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "internal error: KeyError" in err


def test_an_unreachable_database_is_exit_1_for_the_cli(tmp_path: Any) -> None:
    env = {
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nope",
        "TASKRUNNER_AUTO_MIGRATE": "1",
    }
    result = CliRunner().invoke(cli_app, ["list-tasks"], env=env)
    assert result.exit_code != 0
    assert isinstance(result.exception, StoreUnavailableError)
    assert result.exception.exit_status == EXIT_FAILED
