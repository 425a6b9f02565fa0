"""The service on the in-memory repository: the real engine and tools, no database. It
also counts commits: a task costs one commit to create and one per step, the finish
folded into the last step's."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import check_source
from taskrunner.service import TaskService
from taskrunner.store.memory import InMemoryTaskRepository
from taskrunner.tools import ToolModel, ToolRegistry, tool
from taskrunner.tools.builtin import BUILTIN_TOOLS
from taskrunner.worker import Worker

ONE_CHOICE = b"""
name: one_choice
input:
  n: {type: integer}
start: pick
states:
  pick:
    type: choice
    rules: [{when: {value: $input.n, gt: 0}, next: positive}]
    default: other
  positive: {type: succeed, output: {sign: plus}}
  other: {type: fail, error: NotPositive, message: n is not positive}
"""
NO_STEPS = b"""
name: no_steps
start: other
states:
  other: {type: fail, error: NotPositive, message: nothing is positive}
"""


@pytest.fixture
def repository() -> InMemoryTaskRepository:
    return InMemoryTaskRepository()


@pytest.fixture
def memory_service(repository: InMemoryTaskRepository, catalog: FlowCatalog) -> TaskService:
    ids = iter(uuid.UUID(int=n) for n in range(1, 1000))
    return TaskService(
        repository,
        catalog,
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        new_id=lambda: next(ids),
        wait=lambda _event, _seconds: False,
    )


def test_echo_add_costs_three_commits(
    memory_service: TaskService, repository: InMemoryTaskRepository
) -> None:
    task = memory_service.run_task("echo_add", {"text": "hello", "a": 2, "b": 3}).task
    assert task.id == uuid.UUID(int=1)
    assert (task.status, task.output) == ("succeeded", {"text": "hello", "sum": 5})
    assert repository.commits == 3
    assert memory_service.get_task(task.id) == task


def test_a_flow_of_one_choice_costs_two_commits_its_end_folded_into_the_decision(
    repository: InMemoryTaskRepository, checker: FlowChecker
) -> None:
    flow = check_source(ONE_CHOICE, "one_choice.yaml", checker).flow
    assert flow is not None
    service = TaskService(repository, FlowCatalog.of([flow], checker))
    plus = service.run_task("one_choice", {"n": 1}).task
    minus = service.run_task("one_choice", {"n": 0}).task
    assert (plus.status, plus.output) == ("succeeded", {"sign": "plus"})
    assert [(step.tool, step.output) for step in plus.steps] == [
        ("choice", {"rule": 1, "next": "positive"})
    ]
    assert (minus.status, minus.error and minus.error.kind) == ("failed", "NotPositive")
    assert [step.output for step in minus.steps] == [{"rule": "default", "next": "other"}]
    assert repository.commits == 4
    assert service.get_task(minus.id).current_state == "other"


def test_a_flow_without_steps_costs_two_commits(
    repository: InMemoryTaskRepository, checker: FlowChecker
) -> None:
    flow = check_source(NO_STEPS, "no_steps.yaml", checker).flow
    assert flow is not None
    service = TaskService(repository, FlowCatalog.of([flow], checker))
    task = service.run_task("no_steps", {}).task
    assert (task.status, task.error and task.error.kind, task.steps) == (
        "failed",
        "NotPositive",
        [],
    )
    assert repository.commits == 2


def test_the_returned_task_is_what_was_stored(
    memory_service: TaskService, repository: InMemoryTaskRepository
) -> None:
    task = memory_service.run_task("safe_divide", {"dividend": 1, "divisor": 0}).task
    assert memory_service.get_task(task.id) == task
    assert [step.attempt for step in task.steps] == [1, 2, 3]
    assert repository.commits == 4


def test_retry_delays_are_waited_for(catalog: FlowCatalog) -> None:
    waited: list[float] = []

    def wait(_cancelled: threading.Event, seconds: float) -> bool:
        waited.append(seconds)
        return False

    service = TaskService(InMemoryTaskRepository(), catalog, wait=wait)
    service.run_task("safe_divide", {"dividend": 1, "divisor": 0})
    assert waited == [0.5, 1.0]


class _Text(ToolModel):
    text: str


@tool("nul")
def _nul(args: _Text) -> _Text:
    """Returns text with a NUL character in it, which PostgreSQL cannot store."""
    return _Text(text=args.text + "\x00")


NUL_FLOW = b"""
name: nul_flow
input: {text: {type: string}}
start: nul
states:
  nul:
    type: task
    tool: nul
    args: {text: $input.text}
    catch: [{errors: [InvalidToolOutput], next: refused}]
    next: done
  done: {type: succeed, output: {text: $states.nul.text}}
  refused: {type: fail, error: Refused, message: the tool returned unstorable text}
"""


def test_a_tool_output_that_cannot_be_stored_fails_the_step(
    repository: InMemoryTaskRepository,
) -> None:
    checker = FlowChecker(ToolRegistry([*BUILTIN_TOOLS, _nul]))
    flow = check_source(NUL_FLOW, "nul_flow.yaml", checker).flow
    assert flow is not None
    service = TaskService(repository, FlowCatalog.of([flow], checker))
    task = service.run_task("nul_flow", {"text": "fine"}).task
    [step] = task.steps
    assert (step.status, step.output) == ("failed", None)
    assert step.error is not None
    assert step.error.kind == "InvalidToolOutput"
    assert "/text holds text the database cannot store" in step.error.message
    assert (task.status, task.current_state) == ("failed", "refused")


def test_a_worker_runs_queued_tasks_on_the_twin(catalog: FlowCatalog) -> None:
    """The worker goes through the service and the port alone, so it can be driven against
    the twin, and runs each task once."""
    repository = InMemoryTaskRepository()
    service = TaskService(repository, catalog, wait=lambda _event, _seconds: False)
    stop = threading.Event()
    worker = Worker(service, concurrency=2, poll_seconds=0.2)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        started = [
            service.enqueue_task("echo_add", {"text": f"t{n}", "a": n, "b": 1}).task.id
            for n in range(6)
        ]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            tasks = [service.get_task(task_id) for task_id in started]
            if all(task.status == "succeeded" for task in tasks):
                break
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
        service.close()
    assert not thread.is_alive()
    assert [task.output for task in tasks] == [{"text": f"t{n}", "sum": n + 1} for n in range(6)]
    assert all(len(task.steps) == 2 for task in tasks)
    assert {task.steps[0].seq for task in tasks} == {1}


def test_a_drained_worker_hands_its_claimed_tasks_back(catalog: FlowCatalog) -> None:
    repository = InMemoryTaskRepository()
    service = TaskService(repository, catalog, wait=lambda _event, _seconds: False)
    task_id = service.enqueue_task("echo_add", {"text": "x", "a": 1, "b": 1}).task.id
    [claimed] = service.claim(5)
    assert service.get_task(task_id).status == "running"
    service.release(claimed)
    again = service.get_task(task_id)
    assert (again.status, again.steps) == ("pending", [])
    assert [task.id for task in service.claim(5)] == [task_id]
    service.close()
