"""Wait states and whole-task deadlines through the service, on both backends (every test
takes `database_url`).

Most tests drive the queue by hand on a clock of their own (`Clock`): they claim and
resume tasks as a worker would, and move the time instead of sleeping, so that a wait of a
minute costs nothing and every wake time can be checked to the microsecond. The few that
go through the HTTP API or a synchronous run use the real clock, and sleep a second at
most.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import pytest
from fastapi.testclient import TestClient

from taskrunner.api import create_app
from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.service import TaskService
from taskrunner.settings import Settings
from taskrunner.store.database import Database
from taskrunner.store.records import TaskRecord
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tools import ToolRegistry, load_registry
from taskrunner.views import TaskView
from taskrunner.worker import Worker

ROOT: Final = Path(__file__).resolve().parents[2]
TIMED: Final = ROOT / "tests" / "flows" / "timed"
PLUGINS: Final = ROOT / "tests" / "plugins"
START: Final = datetime(2026, 1, 1, tzinfo=UTC)
FLOWS: Final = {
    "nap_past_deadline",
    "retry_forever",
    "wait_past_deadline",
    "wait_then_add",
    "wait_until",
}


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def to(self, moment: datetime) -> None:
        self.now = moment


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> ToolRegistry:
    monkeypatch.syspath_prepend(str(PLUGINS))
    return load_registry()


@pytest.fixture
def timed_catalog(tools: ToolRegistry) -> FlowCatalog:
    catalog = FlowCatalog.load(TIMED, FlowChecker(tools))
    assert set(catalog.names()) == FLOWS
    return catalog


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_service(
    database: Database, timed_catalog: FlowCatalog, clock: Clock
) -> Iterator[Callable[..., TaskService]]:
    """`make_service(owner, **options)`: a service on the timed flows and the test's clock."""
    made: list[TaskService] = []

    def make(owner: str, **options: object) -> TaskService:
        service = TaskService(
            SqlTaskRepository(database),
            timed_catalog,
            clock=clock,
            owner=owner,
            **options,  # type: ignore[arg-type]
        )
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


def work(service: TaskService) -> list[uuid.UUID]:
    """Claim the due tasks, as a worker would, and run each as far as it goes."""
    claimed = service.claim(10)
    for task in claimed:
        service.resume(task)
    return [task.id for task in claimed]


def stored(service: TaskService, task_id: uuid.UUID) -> TaskRecord:
    found = service.repository.get_task(task_id)
    assert found is not None
    return found


def trail(task: TaskView) -> list[tuple[str, str, int, str]]:
    return [(step.state, step.tool, step.attempt, step.status) for step in task.steps]


# -- the wait state -------------------------------------------------------------------------


def test_a_queued_wait_goes_back_to_the_queue_until_its_wake_time(
    make_service: Callable[..., TaskService], clock: Clock
) -> None:
    service = make_service("worker")
    task = service.enqueue_task("wait_then_add", {"seconds": 60}).task
    assert work(service) == [task.id]

    waiting = service.get_task(task.id)
    assert waiting.status == "pending"
    assert waiting.current_state == "pause"
    assert trail(waiting) == [("pause", "wait", 1, "succeeded")]
    assert waiting.steps[0].input == {"seconds": 60}
    assert waiting.steps[0].output == {"until": "2026-01-01T00:01:00Z"}
    record = stored(service, task.id)
    assert record.run_after == START + timedelta(seconds=60)
    assert record.lease_owner is None  # no worker holds a waiting task

    clock.to(START + timedelta(seconds=59.9))
    assert work(service) == []
    clock.to(START + timedelta(seconds=60))
    assert work(service) == [task.id]

    done = service.get_task(task.id)
    assert done.status == "succeeded", done
    assert done.output == {"sum": 5}
    assert trail(done) == [
        ("pause", "wait", 1, "succeeded"),
        ("pause", "wait", 2, "succeeded"),
        ("add", "add", 1, "succeeded"),
    ]
    assert done.steps[1].started_at == START + timedelta(seconds=60)


def test_a_worker_runs_other_tasks_while_one_waits_and_wakes_it_on_time(
    database: Database, timed_catalog: FlowCatalog
) -> None:
    service = TaskService(SqlTaskRepository(database), timed_catalog)
    stop = threading.Event()
    # One slot: were the wait held by the worker, the other task could not run meanwhile.
    worker = Worker(service, concurrency=1, poll_seconds=0.05)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    try:
        waiting = service.enqueue_task("wait_then_add", {"seconds": 1}).task
        thread.start()
        deadline = time.monotonic() + 10
        while stored(service, waiting.id).step_count == 0:
            assert time.monotonic() < deadline, "the wait never began"
            time.sleep(0.02)
        other = service.enqueue_task("wait_then_add", {"seconds": 0}).task
        while service.get_task(waiting.id).status != "succeeded":
            assert time.monotonic() < deadline, "the waiting task never woke"
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
        service.close()
    woke, done = service.get_task(waiting.id), service.get_task(other.id)
    begun = woke.steps[0].output
    assert begun is not None
    until = datetime.fromisoformat(str(begun["until"]))
    assert woke.steps[1].started_at >= until
    assert done.status == "succeeded"
    assert done.finished_at is not None
    assert done.finished_at < until


def test_a_wait_until_a_time_from_the_input_wakes_then(
    make_service: Callable[..., TaskService], clock: Clock
) -> None:
    service = make_service("worker")
    task = service.enqueue_task("wait_until", {"when": "2026-01-01T02:00:00+01:00"}).task
    work(service)
    assert stored(service, task.id).run_after == START + timedelta(hours=1)
    clock.to(START + timedelta(hours=1))
    work(service)
    assert service.get_task(task.id).status == "succeeded"


def test_a_wait_until_a_malformed_time_fails_the_task(
    make_service: Callable[..., TaskService],
) -> None:
    service = make_service("worker")
    task = service.enqueue_task("wait_until", {"when": "tomorrow at nine"}).task
    work(service)
    failed = service.get_task(task.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.kind == "InvalidWait"
    assert "tomorrow at nine" in failed.error.message
    assert failed.steps == []


def test_a_runner_that_dies_mid_wait_is_taken_over_without_waiting_from_zero(
    make_service: Callable[..., TaskService], clock: Clock
) -> None:
    def interrupted(_event: threading.Event, _seconds: float) -> bool:
        raise KeyboardInterrupt

    caller = make_service("caller", wait=interrupted)
    with pytest.raises(KeyboardInterrupt):
        caller.run_task("wait_then_add", {"seconds": 60}, bounded=False)
    [task] = caller.list_tasks().items
    assert stored(caller, task.id).status == "pending"  # handed back, due at once

    clock.to(START + timedelta(seconds=20))
    worker = make_service("worker")
    assert work(worker) == [task.id]
    record = stored(worker, task.id)
    assert record.status == "pending"
    assert record.run_after == START + timedelta(seconds=60)  # not 20 + 60
    assert record.step_count == 1

    clock.to(START + timedelta(seconds=60))
    work(worker)
    done = worker.get_task(task.id)
    assert done.status == "succeeded"
    assert [step.attempt for step in done.steps if step.tool == "wait"] == [1, 2]


def test_a_runner_killed_mid_wait_is_taken_over_when_its_lease_runs_out(
    make_service: Callable[..., TaskService], clock: Clock
) -> None:
    def killed(_event: threading.Event, _seconds: float) -> bool:
        raise SystemExit  # like SIGKILL, nothing is handed back: the lease must run out

    caller = make_service("caller", wait=killed, lease_seconds=30)
    with pytest.raises(SystemExit):
        caller.run_task("wait_then_add", {"seconds": 45}, bounded=False)
    [task] = caller.list_tasks().items
    assert stored(caller, task.id).status == "running"

    worker = make_service("worker")
    clock.to(START + timedelta(seconds=29))
    assert worker.claim_abandoned(10) == []
    clock.to(START + timedelta(seconds=31))
    [taken] = worker.claim_abandoned(10)
    worker.resume(taken)
    record = stored(worker, task.id)
    assert (record.status, record.step_count) == ("pending", 1)
    assert record.run_after == START + timedelta(seconds=45)  # what was left: 14 s

    clock.to(START + timedelta(seconds=45))
    work(worker)
    assert worker.get_task(task.id).status == "succeeded"


def test_a_cancelled_waiting_task_never_wakes(
    make_service: Callable[..., TaskService], clock: Clock
) -> None:
    service = make_service("worker")
    task = service.enqueue_task("wait_then_add", {"seconds": 60}).task
    work(service)
    outcome, cancelled = service.cancel_task(task.id)
    assert (outcome, cancelled.status) == ("cancelled", "cancelled")
    clock.to(START + timedelta(seconds=61))
    assert work(service) == []
    assert trail(service.get_task(task.id)) == [("pause", "wait", 1, "succeeded")]


def test_a_wait_in_the_caller_ends_at_once_when_the_task_is_cancelled(
    database: Database, timed_catalog: FlowCatalog
) -> None:
    service = TaskService(SqlTaskRepository(database), timed_catalog)
    task_id = service.new_task_id()
    answers: list[TaskView] = []
    runner = threading.Thread(
        target=lambda: answers.append(
            service.run_task("wait_then_add", {"seconds": 600}, task_id=task_id, bounded=False).task
        )
    )
    started = time.monotonic()
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while service.repository.get_task(task_id) is None or not service.get_task(task_id).steps:
            assert time.monotonic() < deadline, "the wait never began"
            time.sleep(0.02)
        service.cancel_task(task_id)
        runner.join(5)
    finally:
        service.close()
    assert not runner.is_alive()
    assert time.monotonic() - started < 5
    assert answers[0].status == "cancelled"
    assert trail(answers[0]) == [("pause", "wait", 1, "succeeded")]


# -- synchronous requests ---------------------------------------------------------------------


@pytest.fixture
def make_client(database_url: str, tools: ToolRegistry) -> Iterator[Callable[..., TestClient]]:
    with ExitStack() as stack:

        def make(*, sync_wait: float) -> TestClient:
            settings = Settings(
                database_url=database_url,
                auto_migrate=False,
                flows_dir=TIMED,
                worker_concurrency=0,
                sync_wait_seconds=sync_wait,
            )
            return stack.enter_context(TestClient(create_app(settings)))

        yield make


def test_a_wait_past_the_sync_bound_answers_202_with_location(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(sync_wait=5)
    started = time.monotonic()
    answer = client.post("/tasks", json={"flow": "wait_then_add", "input": {"seconds": 60}})
    assert time.monotonic() - started < 5
    assert answer.status_code == 202, answer.text
    task = answer.json()
    assert answer.headers["location"] == f"/tasks/{task['id']}"
    assert task["status"] == "pending"
    assert [(step["tool"], step["attempt"]) for step in task["steps"]] == [("wait", 1)]


def test_a_wait_within_the_sync_bound_is_waited_out_in_the_request(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(sync_wait=5)
    started = time.monotonic()
    answer = client.post("/tasks", json={"flow": "wait_then_add", "input": {"seconds": 0.4}})
    assert time.monotonic() - started >= 0.4
    assert answer.status_code == 201, answer.text
    task = answer.json()
    assert task["status"] == "succeeded"
    assert task["output"] == {"sum": 5}
    woke = datetime.fromisoformat(task["steps"][1]["started_at"])
    assert woke >= datetime.fromisoformat(task["steps"][0]["output"]["until"])


def test_a_sync_request_gets_the_deadline_failure_of_a_call_the_time_left_cut_short(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(sync_wait=5)
    started = time.monotonic()
    answer = client.post("/tasks", json={"flow": "nap_past_deadline", "input": {"ms": 1500}})
    assert time.monotonic() - started < 1.4  # the nap's own 1.5 s were not waited for
    assert answer.status_code == 201, answer.text
    task = answer.json()
    assert task["status"] == "failed"
    assert task["error"]["kind"] == "TaskTimeout"
    assert "timeout_seconds (0.3 s)" in task["error"]["message"]
    assert task["current_state"] == "nap"  # the catch of `*` did not take it
    [step] = task["steps"]
    assert step["error"]["kind"] == "TaskTimeout"


# -- the whole-task deadline ----------------------------------------------------------------


def test_the_deadline_ends_a_task_stuck_in_retries(
    make_service: Callable[..., TaskService], clock: Clock
) -> None:
    service = make_service("worker")
    task = service.enqueue_task("retry_forever", {"divisor": 0}).task
    wakes: list[datetime] = []
    while True:
        work(service)
        record = stored(service, task.id)
        if record.status != "pending":
            break
        assert record.run_after is not None
        wakes.append(record.run_after)
        clock.to(record.run_after)
    assert wakes == [START + timedelta(seconds=s) for s in (3, 6, 9, 10)]
    ended = service.get_task(task.id)
    assert ended.status == "failed"
    assert ended.error is not None
    assert ended.error.kind == "TaskTimeout"
    assert ended.error.message == "the task did not end within its timeout_seconds (10 s)"
    assert ended.finished_at == START + timedelta(seconds=10)
    assert [step.attempt for step in ended.steps] == [1, 2, 3, 4]


def test_a_wait_past_the_deadline_wakes_at_the_deadline_and_fails(
    make_service: Callable[..., TaskService], clock: Clock
) -> None:
    service = make_service("worker")
    task = service.enqueue_task("wait_past_deadline", {"seconds": 60}).task
    work(service)
    assert stored(service, task.id).run_after == START + timedelta(seconds=10)
    clock.to(START + timedelta(seconds=10))
    work(service)
    ended = service.get_task(task.id)
    assert ended.status == "failed"
    assert ended.error is not None
    assert ended.error.kind == "TaskTimeout"
    assert ended.current_state == "pause"
    assert trail(ended) == [("pause", "wait", 1, "succeeded")]


def test_a_task_claimed_after_its_deadline_fails_without_a_step(
    make_service: Callable[..., TaskService], clock: Clock
) -> None:
    service = make_service("worker")
    task = service.enqueue_task("retry_forever", {"divisor": 2}).task
    clock.to(START + timedelta(seconds=10))  # the queue was busy for ten seconds
    work(service)
    ended = service.get_task(task.id)
    assert ended.status == "failed"
    assert ended.error is not None
    assert ended.error.kind == "TaskTimeout"
    assert ended.steps == []
