"""Synchronous runs are bounded: a run in the caller waits out a retry's delay only within
`sync_wait_seconds`, else the task goes on on the queue; a cancel ends a waiting task at
once; a repeated idempotency key is answered with its task as it is, waited for within
the same bound, never as if it had finished. On the in-memory twin, with real waits."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import StoreUnavailableError
from taskrunner.flowfile import check_file
from taskrunner.service import Started, TaskService
from taskrunner.store.memory import InMemoryTaskRepository

SLOW_RETRY = Path(__file__).resolve().parents[1] / "flows" / "slow" / "slow_retry.yaml"


@pytest.fixture
def catalog(checker: FlowChecker, catalog: FlowCatalog) -> FlowCatalog:
    flow = check_file(SLOW_RETRY, checker).flow
    assert flow is not None
    return FlowCatalog.of([flow, *(entry.flow for entry in catalog)], checker)


@pytest.fixture
def repository() -> InMemoryTaskRepository:
    return InMemoryTaskRepository()


def service_of(
    repository: InMemoryTaskRepository, catalog: FlowCatalog, sync_wait: float
) -> TaskService:
    return TaskService(repository, catalog, sync_wait_seconds=sync_wait)


def test_a_delay_past_the_bound_leaves_the_task_on_the_queue(
    repository: InMemoryTaskRepository, catalog: FlowCatalog
) -> None:
    service = service_of(repository, catalog, sync_wait=5)
    before = datetime.now(UTC)
    started = time.monotonic()
    task = service.run_task("slow_retry", {"divisor": 0}).task
    assert time.monotonic() - started < 2, "the run waited for a delay past its bound"
    assert task.status == "pending"
    assert [(step.attempt, step.status) for step in task.steps] == [(1, "failed")]
    stored = repository.get_task(task.id)
    assert stored is not None
    assert (stored.status, stored.lease_owner) == ("pending", None)
    assert stored.run_after is not None
    assert stored.run_after - before >= timedelta(seconds=59)


def test_a_delay_within_the_bound_is_waited_out(
    repository: InMemoryTaskRepository, catalog: FlowCatalog
) -> None:
    service = service_of(repository, catalog, sync_wait=10)
    started = time.monotonic()
    task = service.run_task("safe_divide", {"dividend": 1, "divisor": 0}).task
    assert 1.4 < time.monotonic() - started < 5  # 0.5 s, then 1 s
    assert (task.status, len(task.steps)) == ("failed", 3)


def test_an_unbounded_run_waits_out_every_delay(
    repository: InMemoryTaskRepository, catalog: FlowCatalog
) -> None:
    waited: list[float] = []

    def wait(_cancelled: threading.Event, seconds: float) -> bool:
        waited.append(seconds)
        return False

    service = TaskService(repository, catalog, wait=wait, sync_wait_seconds=1)
    task = service.run_task("slow_retry", {"divisor": 0}, bounded=False).task
    assert task.status == "failed"
    assert len(task.steps) == 3
    # Waited in slices, to see a cancel from elsewhere: 60 s twice.
    assert sum(waited) == 120


def _wait_for(condition: object, timeout: float = 5) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if callable(condition) and condition():
            return
        time.sleep(0.01)
    raise AssertionError("the condition was not met in time")


def _waiting_after_one_step(
    service: TaskService, repository: InMemoryTaskRepository
) -> tuple[uuid.UUID, threading.Thread, list[Started]]:
    """A `slow_retry` task run by `service` in a thread, once it waits out its first delay."""
    task_id = service.new_task_id()
    answers: list[Started] = []
    thread = threading.Thread(
        target=lambda: answers.append(
            service.run_task("slow_retry", {"divisor": 0}, task_id=task_id)
        )
    )
    thread.start()
    _wait_for(lambda: len(repository.steps_of(task_id)) == 1)
    return task_id, thread, answers


def test_a_cancel_here_ends_a_waiting_task_at_once(
    repository: InMemoryTaskRepository, catalog: FlowCatalog
) -> None:
    service = service_of(repository, catalog, sync_wait=600)
    task_id, thread, answers = _waiting_after_one_step(service, repository)
    cancelled_at = time.monotonic()
    outcome, _ = service.cancel_task(task_id)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - cancelled_at < 1
    assert outcome == "requested"
    task = answers[0].task
    assert task.status == "cancelled"
    assert task.error is not None
    assert task.error.kind == "Cancelled"
    assert len(task.steps) == 1, "a cancelled task called its tool again"


def test_a_cancel_from_another_process_ends_a_waiting_task_within_a_second(
    repository: InMemoryTaskRepository, catalog: FlowCatalog
) -> None:
    runner = service_of(repository, catalog, sync_wait=600)
    elsewhere = service_of(repository, catalog, sync_wait=600)  # another owner
    task_id, thread, answers = _waiting_after_one_step(runner, repository)
    cancelled_at = time.monotonic()
    elsewhere.cancel_task(task_id)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - cancelled_at < 2.5
    assert answers[0].task.status == "cancelled"
    assert len(answers[0].task.steps) == 1


def test_a_key_of_a_queued_task_is_answered_pending_after_the_bound(
    repository: InMemoryTaskRepository, catalog: FlowCatalog
) -> None:
    service = service_of(repository, catalog, sync_wait=0.3)
    data = {"text": "hi", "a": 1, "b": 2}
    queued = service.enqueue_task("echo_add", data, idempotency_key="k-1").task
    started = time.monotonic()
    again = service.run_task("echo_add", data, idempotency_key="k-1")
    assert 0.25 < time.monotonic() - started < 3
    assert not again.created
    assert (again.task.id, again.task.status) == (queued.id, "pending")


def test_a_key_of_a_running_task_waits_for_its_end(
    repository: InMemoryTaskRepository, catalog: FlowCatalog
) -> None:
    service = service_of(repository, catalog, sync_wait=10)
    data = {"text": "hi", "a": 1, "b": 2}
    queued = service.enqueue_task("echo_add", data, idempotency_key="k-2").task
    answers: list[Started] = []
    thread = threading.Thread(
        target=lambda: answers.append(service.run_task("echo_add", data, idempotency_key="k-2"))
    )
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive(), "the repeated key did not wait for its task"
    (claimed,) = service.claim(1)
    service.resume(claimed)
    thread.join(timeout=5)
    assert not answers[0].created
    assert (answers[0].task.id, answers[0].task.status) == (queued.id, "succeeded")
    assert len(answers[0].task.steps) == 2


class _FailsAfterCreate(InMemoryTaskRepository):
    def record_step(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        raise StoreUnavailableError


def test_a_fault_after_the_task_is_stored_names_the_task(catalog: FlowCatalog) -> None:
    service = service_of(_FailsAfterCreate(), catalog, sync_wait=10)
    task_id = service.new_task_id()
    with pytest.raises(StoreUnavailableError) as raised:
        service.run_task("echo_add", {"text": "hi", "a": 1, "b": 2}, task_id=task_id)
    assert raised.value.task_id == task_id
