"""Queued tasks end to end, on both backends (every test takes `database_url`): the API's
`Prefer: respond-async`, idempotency keys, cancelling (pending, running, finished, during a
run in the caller), retries handed back to the queue, timeouts, resuming from recorded steps
after a runner stops or dies, a recorded step the flow does not expect, pinned flow
versions, and the CLI's queue commands.

Workers run in this process: `Worker(...).run(stop)` in a thread, or the API's own worker
(`worker_concurrency > 0`) through `TestClient`. The slow tool `test.nap` comes from the
test plugin package in tests/plugins; with TASKRUNNER_TEST_NAP_LOG set, it logs each call,
so that a test can see when a nap has started and how many times it ran.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from taskrunner.api import create_app
from taskrunner.catalog import FlowCatalog
from taskrunner.cli import main
from taskrunner.engine.steps import Step
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import InvalidRequestError, TaskNotFoundError
from taskrunner.service import (
    IdempotencyConflictError,
    Started,
    TaskFinishedError,
    TaskService,
)
from taskrunner.settings import Settings
from taskrunner.store.database import Database
from taskrunner.store.records import Progress, StepRecord
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.store.tables import TaskRow, TaskStepRow
from taskrunner.tools import ToolRegistry, builtin_registry, load_registry
from taskrunner.views import TaskView
from taskrunner.worker import Worker

ROOT: Final = Path(__file__).resolve().parents[2]
FLOWS: Final = ROOT / "taskrunner" / "flows"
QUEUED: Final = ROOT / "tests" / "flows" / "queued"
PLUGINS: Final = ROOT / "tests" / "plugins"
ENTRY: Final = [sys.executable, "-c", "from taskrunner.cli import main; main()"]
HELLO: Final = {"text": "hello", "a": 2, "b": 3}
POLL: Final = 0.05
FINISHED: Final = ("succeeded", "failed", "cancelled")
PROBLEM: Final = "application/problem+json"
ASYNC: Final = {"Prefer": "respond-async"}


# -- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> ToolRegistry:
    """The built-in tools and the test plugin's (`test.nap`, `test.shout`)."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    registry = load_registry()
    assert "test.nap" in registry
    return registry


@pytest.fixture
def queued_catalog(tools: ToolRegistry) -> FlowCatalog:
    return FlowCatalog.load(QUEUED, FlowChecker(tools))


@pytest.fixture
def queue_service(database: Database, queued_catalog: FlowCatalog) -> Iterator[TaskService]:
    """A service on the queued flows, sleeping for real when it runs a task in the caller."""
    found = TaskService(SqlTaskRepository(database), queued_catalog)
    yield found
    found.close()


@pytest.fixture
def nap_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "naps.log"
    path.touch()
    monkeypatch.setenv("TASKRUNNER_TEST_NAP_LOG", str(path))
    return path


@pytest.fixture
def make_client(database_url: str, tools: ToolRegistry) -> Iterator[Callable[..., TestClient]]:
    """`make_client(workers=N)`: the API on this database, with an in-process worker of
    N slots (none for 0), serving the queued flows unless told otherwise."""
    with ExitStack() as stack:

        def make(*, workers: int, flows_dir: Path = QUEUED) -> TestClient:
            settings = Settings(
                database_url=database_url,
                auto_migrate=False,
                flows_dir=flows_dir,
                worker_concurrency=workers,
                poll_seconds=POLL,
            )
            return stack.enter_context(TestClient(create_app(settings)))

        yield make


@contextmanager
def running_worker(service: TaskService, *, concurrency: int = 2) -> Iterator[None]:
    """A worker in a thread of this process while the block runs; drained on the way out."""
    stop = threading.Event()
    worker = Worker(service, concurrency=concurrency, poll_seconds=POLL)
    thread = threading.Thread(target=worker.run, args=(stop,), name="test-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the worker did not stop"


def wait_until[T](probe: Callable[[], T | None], what: str, timeout: float = 20) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def finished_task(service: TaskService, task_id: uuid.UUID, timeout: float = 20) -> TaskView:
    def probe() -> TaskView | None:
        task = service.get_task(task_id)
        return task if task.status in FINISHED else None

    return wait_until(probe, f"task {task_id} to finish", timeout)


def finished_via_api(client: TestClient, task_id: str, timeout: float = 20) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        response = client.get(f"/tasks/{task_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["status"] in FINISHED else None

    return wait_until(probe, f"task {task_id} to finish", timeout)


def nap_calls(log: Path, token: str, event: str = "start") -> int:
    return sum(1 for line in log.read_text().splitlines() if line.split()[:2] == [event, token])


def wait_for_nap(log: Path, token: str) -> None:
    wait_until(lambda: nap_calls(log, token) > 0, f"the nap {token!r} to start")


def row_of(database: Database, task_id: uuid.UUID) -> Any:
    with database.engine.connect() as connection:
        return connection.execute(select(TaskRow).where(TaskRow.id == task_id)).one()


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:taskrunner:problem:{code}", body
    assert body["status"] == status
    return body


def slow_input(token: str, ms: int) -> dict[str, object]:
    return {"text": token, "a": 1, "b": 2, "ms": ms}


# -- 1. queueing through the API ------------------------------------------------------------


def test_respond_async_queues_the_task_and_the_worker_runs_it(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(workers=1)
    response = client.post("/tasks", json={"flow": "echo_add", "input": HELLO}, headers=ASYNC)
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/tasks/{body['id']}"
    assert response.headers["preference-applied"] == "respond-async"
    assert body["status"] == "pending"
    assert body["steps"] == []
    assert body["output"] is None
    assert body["error"] is None
    assert body["current_state"] == "echo"
    assert body["started_at"] is None
    assert body["finished_at"] is None

    final = finished_via_api(client, body["id"])
    assert final["status"] == "succeeded", final
    assert final["output"] == {"text": "hello", "sum": 5}
    assert [step["state"] for step in final["steps"]] == ["echo", "add"]
    assert final["started_at"] is not None
    assert final["flow_version"] == body["flow_version"]


def test_respond_async_is_recognised_among_other_preferences_and_in_any_case(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(workers=0)
    for prefer in (
        "respond-async, wait=5",
        "RESPOND-ASYNC",
        "Respond-Async ; foo=bar",
        "handling=lenient, respond-async",
    ):
        response = client.post("/tasks", json=HELLO, headers={"Prefer": prefer})
        assert response.status_code == 202, (prefer, response.text)
        assert response.headers["preference-applied"] == "respond-async", prefer
        task_id = response.json()["id"]
        # No worker here: the task waits, untouched.
        shown = client.get(response.headers["location"]).json()
        assert shown["id"] == task_id
        assert (shown["status"], shown["steps"]) == ("pending", []), prefer


def test_without_respond_async_the_task_runs_to_its_end_as_before(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(workers=0)
    for headers in ({}, {"Prefer": "return=minimal"}, {"Prefer": "respond-asynchronously"}):
        response = client.post("/tasks", json=HELLO, headers=headers)
        assert response.status_code == 201, (headers, response.text)
        assert "preference-applied" not in response.headers, headers
        body = response.json()
        assert response.headers["location"] == f"/tasks/{body['id']}"
        assert body["status"] == "succeeded"
        assert body["output"] == {"text": "hello", "sum": 5}
        assert len(body["steps"]) == 2


# -- 2. idempotency keys --------------------------------------------------------------------


def test_the_same_key_and_input_give_the_same_task_through_the_api(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(workers=0)
    first = client.post("/tasks", json=HELLO, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == 201, first.text
    again = client.post("/tasks", json=HELLO, headers={"Idempotency-Key": "order-1"})
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    # The flat body and the {flow, input} form are the same request.
    same = client.post(
        "/tasks", json={"flow": "echo_add", "input": HELLO}, headers={"Idempotency-Key": "order-1"}
    )
    assert same.status_code == 200, same.text
    assert same.json()["id"] == first.json()["id"]

    queued = client.post("/tasks", json=HELLO, headers={**ASYNC, "Idempotency-Key": "order-2"})
    assert queued.status_code == 202, queued.text
    queued_again = client.post(
        "/tasks", json=HELLO, headers={**ASYNC, "Idempotency-Key": "order-2"}
    )
    assert queued_again.status_code == 202, queued_again.text
    assert queued_again.headers["preference-applied"] == "respond-async"
    assert queued_again.json()["id"] == queued.json()["id"]
    assert queued_again.json()["status"] == "pending"
    assert queued.json()["id"] != first.json()["id"]

    listed = client.get("/tasks").json()["items"]
    assert len(listed) == 2


def test_a_key_reused_for_another_input_or_flow_is_a_conflict(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(workers=0)
    first = client.post("/tasks", json=HELLO, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == 201, first.text
    task_id = first.json()["id"]
    other_input = {**HELLO, "b": 4}
    other_flow = {"flow": "safe_divide", "input": {"dividend": 1, "divisor": 2}}
    for body, headers in (
        (other_input, {}),
        (other_input, ASYNC),
        (other_flow, {}),
        (other_flow, ASYNC),
    ):
        response = client.post(
            "/tasks", json=body, headers={**headers, "Idempotency-Key": "order-1"}
        )
        problem = assert_problem(response, 409, "idempotency-conflict")
        assert task_id in problem["detail"], problem
    assert [item["id"] for item in client.get("/tasks").json()["items"]] == [task_id]


def test_a_malformed_idempotency_key_is_refused(make_client: Callable[..., TestClient]) -> None:
    client = make_client(workers=0)
    for key in ("k" * 256, "two words", "tab\there", "bell\x07", "del\x7f"):
        for headers in ({}, ASYNC):
            response = client.post(
                "/tasks", json=HELLO, headers={**headers, "Idempotency-Key": key}
            )
            problem = assert_problem(response, 422, "invalid-request")
            assert "idempotency key" in problem["detail"], (key, problem)
    assert client.get("/tasks").json()["items"] == []
    longest = client.post("/tasks", json=HELLO, headers={"Idempotency-Key": "k" * 255})
    assert longest.status_code == 201, longest.text


def test_each_key_is_its_own_task(make_client: Callable[..., TestClient]) -> None:
    client = make_client(workers=0)
    one = client.post("/tasks", json=HELLO, headers={**ASYNC, "Idempotency-Key": "key-1"})
    two = client.post("/tasks", json=HELLO, headers={**ASYNC, "Idempotency-Key": "key-2"})
    plain = client.post("/tasks", json=HELLO, headers=ASYNC)
    assert (one.status_code, two.status_code, plain.status_code) == (202, 202, 202)
    assert len({one.json()["id"], two.json()["id"], plain.json()["id"]}) == 3


def test_the_service_says_whether_it_created_the_task(queue_service: TaskService) -> None:
    first = queue_service.enqueue_task("echo_add", HELLO, idempotency_key="svc-1")
    again = queue_service.enqueue_task("echo_add", HELLO, idempotency_key="svc-1")
    assert (first.created, again.created) == (True, False)
    assert again.task.id == first.task.id
    assert again.task.status == "pending"

    ran = queue_service.run_task("echo_add", HELLO, idempotency_key="svc-2")
    ran_again = queue_service.run_task("echo_add", HELLO, idempotency_key="svc-2")
    assert (ran.created, ran_again.created) == (True, False)
    assert ran_again.task.id == ran.task.id
    assert ran_again.task.status == ran.task.status == "succeeded"
    assert ran_again.task.output == ran.task.output
    assert [step.seq for step in ran_again.task.steps] == [1, 2]

    with pytest.raises(IdempotencyConflictError, match=str(first.task.id)):
        queue_service.enqueue_task("echo_add", {**HELLO, "a": 9}, idempotency_key="svc-1")
    with pytest.raises(InvalidRequestError, match="idempotency key"):
        queue_service.enqueue_task("echo_add", HELLO, idempotency_key="k" * 256)


# -- 3. cancelling --------------------------------------------------------------------------


def test_a_cancelled_pending_task_never_runs(
    make_client: Callable[..., TestClient],
    queue_service: TaskService,
    database: Database,
) -> None:
    client = make_client(workers=0)
    queued = client.post("/tasks", json=HELLO, headers=ASYNC).json()
    response = client.post(f"/tasks/{queued['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"]["kind"] == "Cancelled"
    assert cancelled["finished_at"] is not None
    assert cancelled["output"] is None
    assert cancelled["steps"] == []
    assert client.get(f"/tasks/{queued['id']}").json() == cancelled

    again = client.post(f"/tasks/{queued['id']}/cancel")
    assert "cancelled" in assert_problem(again, 409, "task-finished")["detail"]

    # A worker that starts afterwards runs the next task, and never the cancelled one.
    other = client.post("/tasks", json=HELLO, headers=ASYNC).json()
    with running_worker(queue_service):
        assert finished_task(queue_service, uuid.UUID(other["id"])).status == "succeeded"
        time.sleep(4 * POLL)
    after = client.get(f"/tasks/{queued['id']}").json()
    assert after == cancelled
    assert after["started_at"] is None


def test_cancelling_a_finished_unknown_or_malformed_task(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(workers=0)
    succeeded = client.post("/tasks", json=HELLO).json()
    failed = client.post("/tasks", json={"text": "x", "a": 1e308, "b": 1e308}).json()
    assert (succeeded["status"], failed["status"]) == ("succeeded", "failed")
    for task in (succeeded, failed):
        response = client.post(f"/tasks/{task['id']}/cancel")
        problem = assert_problem(response, 409, "task-finished")
        assert f"it is {task['status']}" in problem["detail"], problem
        assert client.get(f"/tasks/{task['id']}").json() == task

    assert_problem(client.post(f"/tasks/{uuid.uuid4()}/cancel"), 404, "unknown-task")
    assert_problem(client.post("/tasks/not-a-task/cancel"), 422, "invalid-request")


def test_cancelling_through_the_service(queue_service: TaskService) -> None:
    pending = queue_service.enqueue_task("echo_add", HELLO).task
    outcome, task = queue_service.cancel_task(pending.id)
    assert outcome == "cancelled"
    assert task.status == "cancelled"
    assert task.error is not None
    assert task.error.kind == "Cancelled"
    with pytest.raises(TaskFinishedError, match="it is cancelled"):
        queue_service.cancel_task(pending.id)
    done = queue_service.run_task("echo_add", HELLO).task
    with pytest.raises(TaskFinishedError, match="it is succeeded"):
        queue_service.cancel_task(done.id)
    with pytest.raises(TaskNotFoundError):
        queue_service.cancel_task(uuid.uuid4())


def test_a_running_task_stops_before_its_next_step(
    make_client: Callable[..., TestClient], nap_log: Path
) -> None:
    client = make_client(workers=1)
    queued = client.post(
        "/tasks",
        json={"flow": "slow_echo_add", "input": slow_input("to-cancel", 1500)},
        headers=ASYNC,
    ).json()
    wait_for_nap(nap_log, "to-cancel")

    response = client.post(f"/tasks/{queued['id']}/cancel")
    assert response.status_code == 202, response.text
    asked = response.json()
    assert asked["status"] == "running"
    assert asked["cancel_requested"] is True

    final = finished_via_api(client, queued["id"])
    assert final["status"] == "cancelled", final
    assert final["error"]["kind"] == "Cancelled"
    assert final["output"] is None
    assert [(step["seq"], step["state"], step["status"]) for step in final["steps"]] == [
        (1, "nap", "succeeded")
    ]
    assert final["finished_at"] >= final["steps"][0]["finished_at"]
    assert nap_calls(nap_log, "to-cancel") == 1
    assert nap_calls(nap_log, "to-cancel", "end") == 1
    assert_problem(client.post(f"/tasks/{queued['id']}/cancel"), 409, "task-finished")


def test_cancelling_a_task_running_in_the_caller_ends_the_call(
    queue_service: TaskService, nap_log: Path
) -> None:
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(queue_service.run_task, "slow_echo_add", slow_input("sync-cancel", 800))
        wait_for_nap(nap_log, "sync-cancel")
        running = queue_service.list_tasks(status="running").items
        assert len(running) == 1
        outcome, asked = queue_service.cancel_task(running[0].id)
        assert outcome == "requested"
        assert (asked.status, asked.cancel_requested) == ("running", True)
        returned: Started = call.result(timeout=20)

    assert returned.created is True
    assert returned.task.id == running[0].id
    assert returned.task.status == "cancelled"
    assert returned.task.error is not None
    assert returned.task.error.kind == "Cancelled"
    assert returned.task.output is None
    assert [step.state for step in returned.task.steps] == ["nap"]
    stored = queue_service.get_task(running[0].id)
    assert stored.status == "cancelled"
    assert [step.state for step in stored.steps] == ["nap"]
    assert nap_calls(nap_log, "sync-cancel") == 1


# -- 4. retries go back to the queue --------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    at: datetime
    status: str
    step_count: int
    run_after: datetime | None
    lease_owner: str | None


def test_a_retry_waits_in_the_queue_not_in_the_worker(
    queue_service: TaskService, database: Database
) -> None:
    divide = queue_service.enqueue_task("safe_divide", {"dividend": 1, "divisor": 0}).task
    seen: list[Seen] = []
    bystander: uuid.UUID | None = None
    # One slot: if the worker slept through the retry's delay holding the task, nothing
    # else could run meanwhile.
    with running_worker(queue_service, concurrency=1):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            row = row_of(database, divide.id)
            seen.append(
                Seen(datetime.now(UTC), row.status, row.step_count, row.run_after, row.lease_owner)
            )
            if row.status in FINISHED:
                break
            if bystander is None and row.status == "pending" and row.step_count == 1:
                bystander = queue_service.enqueue_task("echo_add", HELLO).task.id
            time.sleep(0.02)
        assert bystander is not None, "the task was never seen waiting for its retry"
        other = finished_task(queue_service, bystander)

    task = queue_service.get_task(divide.id)
    assert task.status == "failed", task
    assert task.error is not None
    assert task.error.kind == "UndefinedQuotient"
    assert task.current_state == "undefined"
    steps = task.steps
    assert [(step.state, step.attempt, step.status) for step in steps] == [
        ("divide", 1, "failed"),
        ("divide", 2, "failed"),
        ("divide", 3, "failed"),
    ]
    assert all(step.error is not None and step.error.kind == "DivisionByZero" for step in steps)
    assert steps[1].started_at - steps[0].finished_at >= timedelta(seconds=0.5)
    assert steps[2].started_at - steps[1].finished_at >= timedelta(seconds=1.0)

    waiting = [item for item in seen if item.status == "pending" and item.step_count > 0]
    assert {item.step_count for item in waiting} == {1, 2}, seen
    delays = {1: timedelta(seconds=0.5), 2: timedelta(seconds=1.0)}
    for item in waiting:
        assert item.lease_owner is None, item
        assert item.run_after == steps[item.step_count - 1].finished_at + delays[item.step_count]
    assert any(item.run_after is not None and item.run_after > item.at for item in waiting)
    for item in seen:
        if item.status == "running":
            assert item.lease_owner == queue_service.owner, item

    # The single slot ran another task while this one waited.
    assert other.status == "succeeded"
    assert other.finished_at is not None
    assert task.finished_at is not None
    assert other.finished_at < steps[2].started_at


def test_a_task_cancelled_while_it_waits_for_a_retry_is_not_retried(
    queue_service: TaskService, database: Database
) -> None:
    task = queue_service.enqueue_task("safe_divide", {"dividend": 1, "divisor": 0}).task
    with running_worker(queue_service):

        def waiting() -> bool:
            row = row_of(database, task.id)
            return bool(row.status == "pending" and row.step_count == 1)

        wait_until(waiting, "the task to wait for its retry")
        outcome, cancelled = queue_service.cancel_task(task.id)
        assert outcome == "cancelled"
        time.sleep(0.5 + 6 * POLL)  # past the retry's run_after
    assert cancelled.status == "cancelled"
    after = queue_service.get_task(task.id)
    assert after.status == "cancelled"
    assert after.error is not None
    assert after.error.kind == "Cancelled"
    assert [(step.state, step.attempt) for step in after.steps] == [("divide", 1)]
    assert row_of(database, task.id).run_after is None


# -- 5. timeouts ----------------------------------------------------------------------------


def _assert_timed_out(task: TaskView) -> None:
    assert task.status == "failed", task
    assert task.error is not None
    assert task.error.kind == "TooSlow"
    assert task.current_state == "too_slow"
    assert [(step.state, step.attempt, step.status) for step in task.steps] == [
        ("nap", 1, "failed"),
        ("nap", 2, "failed"),
    ]
    for step in task.steps:
        assert step.error is not None
        assert step.error.kind == "Timeout"
        assert "0.3" in step.error.message
        assert step.finished_at - step.started_at >= timedelta(seconds=0.3)
        assert step.output is None


def _assert_in_time(task: TaskView, token: str) -> None:
    assert task.status == "succeeded", task
    assert task.output == {"token": token}
    assert [(step.state, step.status) for step in task.steps] == [("nap", "succeeded")]


def test_a_tool_past_its_timeout_fails_in_the_caller(queue_service: TaskService) -> None:
    slow = queue_service.run_task("nap_timeout", {"text": "slow", "ms": 1000}).task
    _assert_timed_out(slow)
    _assert_timed_out(queue_service.get_task(slow.id))
    fast = queue_service.run_task("nap_timeout", {"text": "fast", "ms": 10}).task
    _assert_in_time(fast, "fast")
    _assert_in_time(queue_service.get_task(fast.id), "fast")


def test_a_tool_past_its_timeout_fails_on_a_worker(
    queue_service: TaskService, database: Database
) -> None:
    slow = queue_service.enqueue_task("nap_timeout", {"text": "slow", "ms": 1000}).task
    fast = queue_service.enqueue_task("nap_timeout", {"text": "fast", "ms": 10}).task
    with running_worker(queue_service):
        _assert_timed_out(finished_task(queue_service, slow.id))
        _assert_in_time(finished_task(queue_service, fast.id), "fast")


# -- 6. resuming from recorded steps --------------------------------------------------------


def _assert_ran_once_each(task: TaskView, token: str) -> None:
    assert task.status == "succeeded", task
    assert task.output == {"text": token, "sum": 3}
    assert [(step.seq, step.state, step.attempt) for step in task.steps] == [
        (1, "nap", 1),
        (2, "echo", 1),
        (3, "add", 1),
    ]


def test_a_task_stopped_after_a_step_is_resumed_by_another_worker(
    database: Database, queued_catalog: FlowCatalog, queue_service: TaskService, nap_log: Path
) -> None:
    first = TaskService(SqlTaskRepository(database), queued_catalog, owner="runner-a")
    try:
        task = first.enqueue_task("slow_echo_add", slow_input("resumed", 300)).task
        (claimed,) = first.claim(1)
        assert claimed.id == task.id
        stop = threading.Event()
        thread = threading.Thread(target=first.resume, args=(claimed, stop), daemon=True)
        thread.start()
        wait_for_nap(nap_log, "resumed")
        stop.set()  # as a draining worker: finish the step in hand, then give it back
        thread.join(20)
        assert not thread.is_alive()
    finally:
        first.close()

    row = row_of(database, task.id)
    assert (row.status, row.step_count, row.lease_owner) == ("pending", 1, None)
    assert [step.state for step in queue_service.get_task(task.id).steps] == ["nap"]

    with running_worker(queue_service):
        done = finished_task(queue_service, task.id)
    _assert_ran_once_each(done, "resumed")
    assert nap_calls(nap_log, "resumed") == 1


def test_a_step_longer_than_a_lease_keeps_its_task(
    database: Database, queued_catalog: FlowCatalog, nap_log: Path
) -> None:
    # Leases of 0.3 s, renewed while the nap of 1 s runs: the other worker never takes it.
    services = [
        TaskService(SqlTaskRepository(database), queued_catalog, owner=name, lease_seconds=0.3)
        for name in ("worker-1", "worker-2")
    ]
    try:
        task = services[0].enqueue_task("slow_echo_add", slow_input("long", 1000)).task
        with running_worker(services[0]), running_worker(services[1]):
            done = finished_task(services[0], task.id)
    finally:
        for service in services:
            service.close()
    _assert_ran_once_each(done, "long")
    assert nap_calls(nap_log, "long") == 1


def test_a_dead_runners_task_is_taken_over_when_its_lease_runs_out(
    database: Database, queued_catalog: FlowCatalog, queue_service: TaskService, nap_log: Path
) -> None:
    dead = TaskService(SqlTaskRepository(database), queued_catalog, owner="dead-runner")
    try:
        task = dead.enqueue_task("slow_echo_add", slow_input("taken-over", 10)).task
        (claimed,) = dead.claim(1)
        # It recorded its first step, as a real runner would, and then died.
        now = datetime.now(UTC)
        arguments = {"ms": 10, "token": "taken-over"}
        nap = Step(1, "nap", "test.nap", 1, arguments, "succeeded", {"token": "taken-over"})
        status = dead.repository.record_step(
            "dead-runner",
            StepRecord.of(task.id, nap, now - timedelta(seconds=2), now - timedelta(seconds=1)),
            Progress("running", "echo", now),
        )
        assert status == "running"
        row = row_of(database, task.id)
        assert (row.status, row.lease_owner, row.step_count) == ("running", "dead-runner", 1)

        with running_worker(queue_service):
            time.sleep(6 * POLL)  # its lease holds: nobody else takes it
            held = row_of(database, task.id)
            assert (held.status, held.lease_owner) == ("running", "dead-runner")
            with database.engine.begin() as connection:
                connection.execute(
                    update(TaskRow)
                    .where(TaskRow.id == task.id)
                    .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
                )
            done = finished_task(queue_service, task.id)
        _assert_ran_once_each(done, "taken-over")
        assert nap_calls(nap_log, "taken-over") == 0  # the recorded nap was not run again

        # The runner that lost the task comes back: it writes nothing.
        dead.resume(claimed)
    finally:
        dead.close()
    after = queue_service.get_task(task.id)
    assert after == done


def test_a_stopping_api_drains_its_worker_and_the_next_one_resumes(
    make_client: Callable[..., TestClient], nap_log: Path
) -> None:
    with make_client(workers=1) as client:
        queued = client.post(
            "/tasks",
            json={"flow": "slow_echo_add", "input": slow_input("drained", 600)},
            headers=ASYNC,
        ).json()
        wait_for_nap(nap_log, "drained")
    # Shut down mid-nap: the nap was finished and recorded, and the task handed back.
    with make_client(workers=0) as client:
        held = client.get(f"/tasks/{queued['id']}").json()
    assert held["status"] == "pending", held
    assert [step["state"] for step in held["steps"]] == ["nap"]
    with make_client(workers=1) as client:
        final = finished_via_api(client, queued["id"])
    assert final["status"] == "succeeded", final
    assert [(step["seq"], step["state"]) for step in final["steps"]] == [
        (1, "nap"),
        (2, "echo"),
        (3, "add"),
    ]
    assert final["output"] == {"text": "drained", "sum": 3}
    assert nap_calls(nap_log, "drained") == 1


def test_a_dead_runners_task_that_was_asked_to_stop_is_cancelled_on_takeover(
    database: Database, queued_catalog: FlowCatalog, queue_service: TaskService
) -> None:
    dead = TaskService(SqlTaskRepository(database), queued_catalog, owner="dead-runner")
    try:
        task = dead.enqueue_task("slow_echo_add", slow_input("asked", 10)).task
        dead.claim(1)
    finally:
        dead.close()
    outcome, asked = queue_service.cancel_task(task.id)
    assert (outcome, asked.status, asked.cancel_requested) == ("requested", "running", True)
    assert asked.current_state == "nap"
    with database.engine.begin() as connection:
        connection.execute(
            update(TaskRow)
            .where(TaskRow.id == task.id)
            .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    with running_worker(queue_service):
        done = finished_task(queue_service, task.id)
    assert done.status == "cancelled", done
    assert done.error is not None
    assert done.error.kind == "Cancelled"
    assert done.steps == []
    assert done.finished_at is not None
    # The state it was in when it stopped, as for every other finished task.
    assert done.current_state == "nap"
    row = row_of(database, task.id)
    assert (row.lease_owner, row.lease_expires_at, row.run_after) == (None, None, None)


# -- 7. a recorded step the flow does not expect --------------------------------------------


def test_a_recorded_step_that_the_flow_does_not_expect_fails_the_task(
    queue_service: TaskService, database: Database
) -> None:
    task = queue_service.enqueue_task("echo_add", HELLO).task
    now = datetime.now(UTC)
    with database.engine.begin() as connection:
        connection.execute(
            insert(TaskStepRow).values(
                task_id=task.id,
                seq=1,
                state="add",
                tool="add",
                attempt=1,
                status="succeeded",
                input={"a": 2, "b": 3},
                output={"sum": 5},
                started_at=now,
                finished_at=now,
            )
        )
        connection.execute(update(TaskRow).where(TaskRow.id == task.id).values(step_count=1))

    with running_worker(queue_service):
        done = finished_task(queue_service, task.id)
    assert done.status == "failed", done
    assert done.error is not None
    assert done.error.kind == "UnexpectedStep"
    assert "step 1 (add/add attempt 1)" in done.error.message
    assert "expects step 1 (echo/echo attempt 1)" in done.error.message
    assert [(step.seq, step.state) for step in done.steps] == [(1, "add")]
    assert done.finished_at is not None
    row = row_of(database, task.id)
    assert (row.lease_owner, row.step_count) == (None, 1)


# -- 8. flow versions are pinned ------------------------------------------------------------


def test_a_queued_task_runs_the_flow_version_it_started_on(
    database: Database, tools: ToolRegistry, tmp_path: Path
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    path = flows / "echo_add.yaml"
    shutil.copyfile(QUEUED / "echo_add.yaml", path)
    checker = FlowChecker(tools)
    before = TaskService(SqlTaskRepository(database), FlowCatalog.load(flows, checker))
    old = before.enqueue_task("echo_add", HELLO).task
    before.close()

    source = path.read_text()
    assert "      text: $states.echo.text\n" in source
    path.write_text(
        source.replace("      text: $states.echo.text\n", "      said: $states.echo.text\n")
    )
    catalog = FlowCatalog.load(flows, checker)  # a restart, with the edited file
    after = TaskService(SqlTaskRepository(database), catalog)
    try:
        new = after.enqueue_task("echo_add", HELLO).task
        assert new.flow_version == catalog.get("echo_add").flow.digest
        assert new.flow_version != old.flow_version
        with running_worker(after):
            old_done = finished_task(after, old.id)
            new_done = finished_task(after, new.id)
    finally:
        after.close()
    assert old_done.status == new_done.status == "succeeded"
    assert old_done.flow_version == old.flow_version
    assert old_done.output == {"text": "hello", "sum": 5}
    assert new_done.flow_version == new.flow_version
    assert new_done.output == {"said": "hello", "sum": 5}


def test_a_worker_without_the_flows_tools_fails_the_task_by_name(
    database: Database, queue_service: TaskService
) -> None:
    task = queue_service.enqueue_task("slow_echo_add", slow_input("no-tool", 10)).task
    builtin_only = FlowCatalog.load(FLOWS, FlowChecker(builtin_registry()))
    elsewhere = TaskService(SqlTaskRepository(database), builtin_only)
    try:
        with running_worker(elsewhere):
            done = finished_task(elsewhere, task.id)
    finally:
        elsewhere.close()
    assert done.status == "failed", done
    assert done.error is not None
    assert done.error.kind == "FlowUnavailable"
    assert "test.nap" in done.error.message, done.error.message
    assert done.steps == []
    assert done.current_state == "nap"


# -- 9. the command line --------------------------------------------------------------------


def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    *args: str,
) -> tuple[int, str, str]:
    """The real entry point `main()` in-process: (exit status, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TASKRUNNER_FLOWS_DIR", str(FLOWS))
    monkeypatch.delenv("TASKRUNNER_AUTO_MIGRATE", raising=False)
    monkeypatch.delenv("TASKRUNNER_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["taskrunner", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_the_cli_queues_finds_and_cancels_tasks(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    service: TaskService,
) -> None:
    def cli(*args: str) -> tuple[int, str, str]:
        return run_cli(monkeypatch, capsys, database_url, *args)

    hello = ["--text", "hello", "--a", "2", "--b", "3"]
    code, out, err = cli("run-flow", "--no-wait", *hello)
    assert code == 0, err
    queued = uuid.UUID(out.strip())
    code, out, err = cli("get-task", str(queued), "--json")
    assert code == 0, err
    shown = TaskView.model_validate_json(out)
    assert (shown.status, shown.steps) == ("pending", [])

    code, out, err = cli("run-flow", "--no-wait", "--idempotency-key", "cli-1", *hello)
    assert code == 0, err
    code, again, err = cli("run-flow", "--no-wait", "--idempotency-key", "cli-1", *hello)
    assert code == 0, err
    assert uuid.UUID(again.strip()) == uuid.UUID(out.strip()) != queued

    code, out, err = cli("run-flow", "--json", "--idempotency-key", "cli-2", *hello)
    assert code == 0, err
    ran = TaskView.model_validate_json(out)
    code, out, err = cli("run-flow", "--json", "--idempotency-key", "cli-2", *hello)
    assert code == 0, err
    assert TaskView.model_validate_json(out) == ran
    assert ran.status == "succeeded"

    other = ["--text", "hi", "--a", "1", "--b", "1"]
    code, out, err = cli("run-flow", "--idempotency-key", "cli-2", *other)
    assert code == 1
    assert "idempotency key" in err, err
    assert "Traceback" not in err
    code, out, err = cli("run-flow", "--idempotency-key", "two words", *hello)
    assert code == 2
    assert "idempotency key" in err, err

    code, out, err = cli("cancel-task", str(queued))
    assert code == 0, err
    assert f"task {queued} cancelled" in out
    code, out, err = cli("get-task", str(queued), "--json")
    assert TaskView.model_validate_json(out).status == "cancelled"

    code, out, err = cli("cancel-task", str(ran.id))
    assert code == 1
    assert "already finished" in err, err
    assert "succeeded" in err, err
    assert "Traceback" not in err
    unknown = uuid.uuid4()
    code, out, err = cli("cancel-task", str(unknown))
    assert code == 1
    assert f"error: no task with id {unknown}" in err, err
    code, out, err = cli("cancel-task", "nope")
    assert code == 2
    assert "not a task id" in err, err

    running = service.enqueue_task("echo_add", HELLO).task
    assert running.id in {claimed.id for claimed in service.claim(10)}
    code, out, err = cli("cancel-task", str(running.id))
    assert code == 0, err
    assert f"task {running.id} asked to stop before its next step" in out


def test_the_worker_command_needs_postgresql(
    database_url: str, database: Database, service: TaskService, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TASKRUNNER_FLOWS_DIR": str(FLOWS),
        "TASKRUNNER_POLL_SECONDS": "0.05",
        "TASKRUNNER_AUTO_MIGRATE": "0",
    }
    env.pop("TASKRUNNER_DEBUG", None)
    if not database.is_postgres:
        done = subprocess.run(
            [*ENTRY, "worker"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done
        assert "PostgreSQL" in done.stderr
        assert "taskrunner serve" in done.stderr
        assert "Traceback" not in done.stderr
        return
    # On PostgreSQL, it runs queued tasks until told to stop, and then drains and exits.
    task = service.enqueue_task("echo_add", HELLO).task
    process = subprocess.Popen(
        [*ENTRY, "worker", "--concurrency", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        done_task = finished_task(service, task.id, timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert done_task.status == "succeeded"
    assert process.returncode == 0, err
    assert "worker stopped" in err


# -- 10. the API's own worker, out of the box -----------------------------------------------


def test_serve_runs_queued_tasks_out_of_the_box(database_url: str) -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "TASKRUNNER_FLOWS_DIR": str(FLOWS),
            "TASKRUNNER_AUTO_MIGRATE": "0",
            "TASKRUNNER_POLL_SECONDS": "0.05",
        }
    )
    assert settings.worker_concurrency > 0
    with TestClient(create_app(settings)) as client:
        response = client.post("/tasks", json=HELLO, headers=ASYNC)
        assert response.status_code == 202, response.text
        final = finished_via_api(client, response.json()["id"])
    assert final["status"] == "succeeded", final
    assert final["output"] == {"text": "hello", "sum": 5}
