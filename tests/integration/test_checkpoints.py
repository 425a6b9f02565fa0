"""A claimed task resumes from the checkpoint stored with its last step, on both backends:
the claim reads no history, and a checkpoint that does not follow the last recorded step
(a row from before checkpoints, a stale one) falls back to replaying the history, which
still fails the task when a recorded step is not what the flow expects."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

import pytest
from sqlalchemy import insert, select, update

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import check_source
from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.records import StepRecord
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.store.tables import TaskRow, TaskStepRow
from taskrunner.tools import builtin_registry
from taskrunner.views import TaskView

RETRIED: Final = b"""
name: retried
input:
  divisor: {type: number}
start: divide
states:
  divide:
    type: task
    tool: divide
    args: {dividend: 1, divisor: $input.divisor}
    retry: {max_attempts: 4, interval_seconds: 0.001, backoff_rate: 1, errors: [DivisionByZero]}
    catch: [{errors: [DivisionByZero], next: again}]
    next: divided
  divided:
    type: succeed
    output: {quotient: $states.divide.quotient}
  again:
    type: task
    tool: echo
    args: {text: caught}
    next: done
  done:
    type: succeed
    output: {text: $states.again.text}
"""

CHOSEN: Final = b"""
name: chosen
input:
  n: {type: number}
start: add
states:
  add:
    type: task
    tool: add
    args: {a: $input.n, b: 1}
    next: sign
  sign:
    type: choice
    rules: [{when: {value: $states.add.sum, lt: $input.n}, next: below}]
    default: above
  below: {type: fail, error: Below, message: the sum is below n}
  above:
    type: succeed
    output: {sum: $states.add.sum}
"""

SOURCES: Final = {"retried": RETRIED, "chosen": CHOSEN}


class CountingRepository(SqlTaskRepository):
    """The SQL adapter, counting the reads of a task's whole history."""

    history_reads = 0

    def steps_of(self, task_id: uuid.UUID) -> list[StepRecord]:
        self.history_reads += 1
        return super().steps_of(task_id)


@pytest.fixture
def repository(database: Database) -> CountingRepository:
    return CountingRepository(database)


@pytest.fixture
def service(repository: CountingRepository) -> Iterator[TaskService]:
    checker = FlowChecker(builtin_registry())
    flows = [check_source(text, f"{name}.yaml", checker).flow for name, text in SOURCES.items()]
    assert None not in flows
    found = TaskService(repository, FlowCatalog.of([f for f in flows if f is not None], checker))
    yield found
    found.close()


def run_queued(service: TaskService, task_id: uuid.UUID) -> int:
    """Claim and resume the task until it ends; how many claims it took."""
    claims = 0
    deadline = time.monotonic() + 20
    while service.repository.get_task(task_id).status != "succeeded":  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the task did not end"
        for claimed in service.claim(1):
            claims += 1
            service.resume(claimed)
    return claims


def row_of(database: Database, task_id: uuid.UUID) -> Any:
    with database.engine.connect() as connection:
        return connection.execute(select(TaskRow).where(TaskRow.id == task_id)).one()


def test_each_claim_resumes_from_the_checkpoint_without_reading_the_history(
    service: TaskService, repository: CountingRepository, database: Database
) -> None:
    task = service.enqueue_task("retried", {"divisor": 0}).task
    assert row_of(database, task.id).checkpoint is None
    claims = run_queued(service, task.id)
    assert claims == 4  # the first, then one after each retry's delay
    assert repository.history_reads == 0
    row = row_of(database, task.id)
    assert row.step_count == 5
    assert row.checkpoint["seq"] == 5
    assert row.checkpoint["outputs"] == {
        "again": {"text": "caught"},
        # the caught error, what `$error` is, travels with the outputs
        "$error": {"kind": "DivisionByZero", "message": "cannot divide by zero", "state": "divide"},
    }
    done: TaskView = service.get_task(task.id)
    assert done.output == {"text": "caught"}
    assert [(step.state, step.attempt) for step in done.steps] == [
        ("divide", 1),
        ("divide", 2),
        ("divide", 3),
        ("divide", 4),
        ("again", 1),
    ]


@pytest.mark.parametrize("checkpoint", [None, {"seq": 1}, "stale"], ids=["none", "shape", "stale"])
def test_a_checkpoint_that_does_not_follow_the_last_step_falls_back_to_the_replay(
    service: TaskService,
    repository: CountingRepository,
    database: Database,
    checkpoint: dict[str, Any] | str | None,
) -> None:
    task = service.enqueue_task("retried", {"divisor": 0}).task
    (claimed,) = service.claim(1)
    service.resume(claimed)  # one failed attempt, then back to the queue for the retry
    row = row_of(database, task.id)
    assert (row.status, row.step_count) == ("pending", 1)
    if checkpoint == "stale":
        checkpoint = {**row.checkpoint, "seq": 0}  # a position before the last step
    with database.engine.begin() as connection:
        connection.execute(
            update(TaskRow)
            .where(TaskRow.id == task.id)
            .values(checkpoint=checkpoint, run_after=datetime.now(UTC))
        )
    run_queued(service, task.id)
    assert repository.history_reads == 1  # the first resume after the change
    assert [step.attempt for step in service.get_task(task.id).steps] == [1, 2, 3, 4, 1]


def test_a_stale_checkpoint_does_not_hide_a_history_the_flow_does_not_expect(
    service: TaskService, database: Database
) -> None:
    task = service.enqueue_task("retried", {"divisor": 0}).task
    (claimed,) = service.claim(1)
    service.resume(claimed)
    with database.engine.begin() as connection:
        # A second step the flow does not expect there (attempt 2 of `divide` is), which
        # the checkpoint, written with the first, does not follow.
        now = datetime.now(UTC)
        connection.execute(
            insert(TaskStepRow).values(
                task_id=task.id,
                seq=2,
                state="again",
                tool="echo",
                attempt=1,
                status="succeeded",
                input={"text": "caught"},
                output={"text": "caught"},
                started_at=now,
                finished_at=now,
            )
        )
        connection.execute(update(TaskRow).where(TaskRow.id == task.id).values(step_count=2))
    (claimed,) = wait_for_claim(service)
    service.resume(claimed)
    done = service.get_task(task.id)
    assert done.status == "failed"
    assert done.error is not None
    assert done.error.kind == "UnexpectedStep"
    assert "recorded step 2 (again/echo attempt 1)" in done.error.message


def wait_for_claim(service: TaskService) -> list[Any]:
    deadline = time.monotonic() + 20
    while not (claimed := service.claim(1)):
        assert time.monotonic() < deadline, "nothing to claim"
        time.sleep(0.01)
    return claimed


def _record_history(database: Database, task_id: uuid.UUID, decision: dict[str, Any]) -> None:
    """Steps 1 and 2 of `chosen` on n=1, as if recorded before the checkpoint was kept:
    the sum, then the decision given."""
    now = datetime.now(UTC)
    steps = [
        ("add", "add", {"a": 1, "b": 1}, {"sum": 2}),
        ("sign", "choice", {"$states.add.sum": 2, "$input.n": 1}, decision),
    ]
    with database.engine.begin() as connection:
        for seq, (state, tool, given, output) in enumerate(steps, start=1):
            connection.execute(
                insert(TaskStepRow).values(
                    task_id=task_id,
                    seq=seq,
                    state=state,
                    tool=tool,
                    attempt=1,
                    status="succeeded",
                    input=given,
                    output=output,
                    started_at=now,
                    finished_at=now,
                )
            )
        connection.execute(
            update(TaskRow).where(TaskRow.id == task_id).values(step_count=2, current_state="sign")
        )


def test_a_replayed_history_goes_on_past_the_decision_it_recorded(
    service: TaskService, repository: CountingRepository, database: Database
) -> None:
    task = service.enqueue_task("chosen", {"n": 1}).task
    _record_history(database, task.id, {"rule": "default", "next": "above"})
    run_queued(service, task.id)
    assert repository.history_reads == 1
    done = service.get_task(task.id)
    assert (done.status, done.output, done.steps_total) == ("succeeded", {"sum": 2}, 2)


def test_a_replayed_decision_the_flow_no_longer_makes_fails_the_task_by_name(
    service: TaskService, database: Database
) -> None:
    task = service.enqueue_task("chosen", {"n": 1}).task
    _record_history(database, task.id, {"rule": 1, "next": "below"})
    (claimed,) = wait_for_claim(service)
    service.resume(claimed)
    done = service.get_task(task.id)
    assert done.status == "failed"
    assert done.error is not None
    assert (done.error.kind, done.error.message) == (
        "UnexpectedStep",
        "recorded step 2 (sign/choice) chose rule 1 -> below "
        "where the flow chooses the default -> above",
    )
