"""The contract of the store port, `TaskRepository`: every method, on all three adapters
alike (the `repository` fixture is the in-memory twin, then SQL on SQLite, then SQL on
PostgreSQL). What a write does to a held task is what `records.progressed` says.

Times are fixed, aware UTC instants with microseconds, so that every comparison of a record
read back with the one written also checks that timestamps round-trip exactly.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest

from taskrunner.engine.steps import StepError
from taskrunner.errors import LeaseLostError, StoreError, StoreUnavailableError
from taskrunner.store.database import Database
from taskrunner.store.records import (
    FlowVersion,
    Progress,
    StepRecord,
    TaskFilter,
    TaskHead,
    TaskRecord,
    TaskStatus,
    cancelled,
    field_names,
    progressed,
)
from taskrunner.store.repository import TaskRepository
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tools import JsonObject

T0: Final = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
OWNER: Final = "worker-a"
OTHER: Final = "worker-b"
LEASE_ENDS: Final = datetime(2026, 1, 1, 12, 1, 0, 123456, tzinfo=UTC)
"""Where a running task's lease ends unless a test says otherwise: a minute after T0."""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- records ------------------------------------------------------------------------------


def digest_of(flow: str) -> str:
    return "sha256:" + flow.encode().hex().ljust(64, "0")


def flow_version(flow: str = "echo", definition: JsonObject | None = None) -> FlowVersion:
    return FlowVersion(
        digest=digest_of(flow),
        name=flow,
        definition=definition or {"name": flow, "start": "first", "states": {"first": {}}},
        created_at=T0,
    )


def task_record(status: TaskStatus, flow: str = "echo", **changes: Any) -> TaskRecord:
    created_at = changes.pop("created_at", T0)
    record = TaskRecord(
        id=uuid.uuid4(),
        flow_name=flow,
        flow_digest=digest_of(flow),
        status=status,
        current_state="first",
        error_kind=None,
        error_message=None,
        cancel_requested=False,
        created_at=created_at,
        updated_at=created_at,
        started_at=None,
        finished_at=None,
        input={"text": "héllo", "n": 1, "ratio": 0.5, "items": [1, None, True]},
        output=None,
        idempotency_key=None,
        run_after=None,
        lease_owner=None,
        lease_expires_at=None,
        step_count=0,
        checkpoint=None,
    )
    return replace(record, **changes)


def pending_task(run_after: datetime = T0, **changes: Any) -> TaskRecord:
    return task_record("pending", run_after=run_after, **changes)


def running_task(owner: str = OWNER, expires: datetime = LEASE_ENDS, **changes: Any) -> TaskRecord:
    return task_record(
        "running",
        started_at=changes.pop("started_at", T0),
        lease_owner=owner,
        lease_expires_at=expires,
        **changes,
    )


def step_record(task_id: uuid.UUID, seq: int, **changes: Any) -> StepRecord:
    record = StepRecord(
        task_id=task_id,
        seq=seq,
        state="first",
        tool="echo",
        attempt=1,
        status="succeeded",
        input={"n": seq},
        output={"n": seq},
        error_kind=None,
        error_message=None,
        started_at=at(seq),
        finished_at=at(seq) + timedelta(microseconds=250),
    )
    return replace(record, **changes)


def still_running(seconds: float) -> Progress:
    return Progress("running", "second", at(seconds))


def stored(repository: TaskRepository, task: TaskRecord) -> TaskRecord:
    assert repository.create_task(task, flow_version(task.flow_name)) is None
    return task


def columns(record: TaskRecord | None) -> dict[str, object]:
    """A task's fields by name, so that a mismatch shows which fields differ."""
    assert record is not None
    return {name: getattr(record, name) for name in field_names(TaskRecord)}


def head_of(task: TaskRecord) -> TaskHead:
    return TaskHead(**{name: getattr(task, name) for name in field_names(TaskHead)})


def assert_stored(repository: TaskRepository, expected: TaskRecord) -> None:
    assert columns(repository.get_task(expected.id)) == columns(expected)


# -- creating and reading tasks -----------------------------------------------------------


def test_a_created_task_reads_back_equal(repository: TaskRepository) -> None:
    task = stored(repository, pending_task())
    assert columns(repository.get_task(task.id)) == columns(task)


def test_every_field_of_a_task_round_trips_exactly(repository: TaskRepository) -> None:
    task = stored(
        repository,
        task_record(
            "failed",
            created_at=at(-10),
            updated_at=at(0.000001),
            started_at=at(-9.5),
            finished_at=at(0.999999),
            current_state="last",
            error_kind="ToolError",
            error_message="it broke: ✗",
            cancel_requested=True,
            input={"big": 10**15, "float": 1e20, "tiny": 1e-7, "nested": {"a": [{"b": None}]}},
            output={"partial": "ünïcode", "empty": {}},
            idempotency_key="key-all-fields",
            run_after=at(-10),
            lease_owner="worker-z",
            lease_expires_at=at(59.5),
            step_count=7,
        ),
    )
    assert columns(repository.get_task(task.id)) == columns(task)


def test_the_flow_version_is_stored_with_its_first_task(repository: TaskRepository) -> None:
    version = flow_version("echo", {"name": "echo", "start": "a", "states": {"a": {"n": 1.5}}})
    assert repository.create_task(pending_task(), version) is None
    assert repository.flow_definition(version.digest) == version.definition


def test_a_second_task_on_the_same_version_is_stored(repository: TaskRepository) -> None:
    first = stored(repository, pending_task())
    second = stored(repository, pending_task(created_at=at(1)))
    assert columns(repository.get_task(first.id)) == columns(first)
    assert columns(repository.get_task(second.id)) == columns(second)
    assert repository.flow_definition(digest_of("echo")) == flow_version().definition


def test_a_flow_version_already_stored_keeps_its_first_definition(
    repository: TaskRepository,
) -> None:
    stored(repository, pending_task())
    changed = replace(flow_version(), definition={"name": "echo", "changed": True})
    assert repository.create_task(pending_task(created_at=at(1)), changed) is None
    assert repository.flow_definition(changed.digest) == flow_version().definition


def test_a_taken_idempotency_key_returns_the_existing_task_and_stores_nothing(
    repository: TaskRepository,
) -> None:
    first = stored(repository, pending_task(idempotency_key="key-1"))
    again = pending_task(idempotency_key="key-1", input={"other": True}, created_at=at(5))
    found = repository.create_task(again, flow_version())
    assert found is not None
    assert found.id == first.id
    assert columns(found) == columns(first)
    assert repository.get_task(again.id) is None
    assert repository.list_tasks(TaskFilter(), 10, None).items == (head_of(first),)


def test_a_taken_idempotency_key_stores_no_new_flow_version(repository: TaskRepository) -> None:
    stored(repository, pending_task(idempotency_key="key-1"))
    newer = flow_version("sum")
    found = repository.create_task(pending_task(flow="sum", idempotency_key="key-1"), newer)
    assert found is not None
    assert repository.flow_definition(newer.digest) is None


def test_a_taken_idempotency_key_returns_the_task_as_it_stands_now(
    repository: TaskRepository,
) -> None:
    first = stored(repository, pending_task(idempotency_key="key-1"))
    [claimed] = repository.claim(OWNER, 1, at(1), at(61))
    found = repository.create_task(pending_task(idempotency_key="key-1"), flow_version())
    assert found is not None
    assert (found.id, found.status) == (first.id, "running")
    assert columns(found) == columns(claimed)


def test_a_task_whose_id_is_taken_is_refused(repository: TaskRepository) -> None:
    task = stored(repository, pending_task())
    with pytest.raises(StoreError) as refused:
        repository.create_task(replace(task, input={"other": True}), flow_version())
    assert type(refused.value) is StoreError
    assert_stored(repository, task)


def test_a_new_task_has_no_steps(repository: TaskRepository) -> None:
    task = stored(repository, pending_task())
    assert repository.steps_of(task.id) == []


def test_an_unknown_task_is_none(repository: TaskRepository) -> None:
    stored(repository, pending_task())
    assert repository.get_task(uuid.uuid4()) is None


def test_an_unknown_digest_has_no_definition(repository: TaskRepository) -> None:
    stored(repository, pending_task())
    assert repository.flow_definition(digest_of("unknown")) is None


def test_ping_is_true(repository: TaskRepository) -> None:
    assert repository.ping() is True


# -- recording steps and progress ---------------------------------------------------------


def recorded(
    repository: TaskRepository, task: TaskRecord, step: StepRecord, progress: Progress
) -> TaskRecord:
    """Record the step, check it against `progressed`, and give back the expected task."""
    before = repository.get_task(task.id)
    assert before is not None
    expected = progressed(before, progress, step.seq)
    assert repository.record_step(OWNER, step, progress) == expected.status
    assert columns(repository.get_task(task.id)) == columns(expected)
    return expected


def test_the_owners_steps_are_appended_in_seq_order(repository: TaskRepository) -> None:
    task = stored(repository, running_task())
    steps = [step_record(task.id, seq) for seq in (1, 2, 3)]
    for seq, step in enumerate(steps, start=1):
        assert repository.record_step(OWNER, step, still_running(seq)) == "running"
    assert repository.steps_of(task.id) == steps
    assert repository.steps_of(uuid.uuid4()) == []


def test_steps_are_read_a_page_at_a_time_after_a_seq(repository: TaskRepository) -> None:
    task = stored(repository, running_task())
    other = stored(repository, running_task())
    steps = [step_record(task.id, seq) for seq in range(1, 6)]
    for seq, step in enumerate(steps, start=1):
        repository.record_step(OWNER, step, still_running(seq))
    repository.record_step(OWNER, step_record(other.id, 1), still_running(1))
    assert repository.steps_page(task.id, 0, 2) == steps[:2]
    assert repository.steps_page(task.id, 2, 2) == steps[2:4]
    assert repository.steps_page(task.id, 4, 2) == steps[4:]
    assert repository.steps_page(task.id, 5, 2) == []
    assert repository.steps_page(task.id, 0, 100) == steps
    assert repository.steps_page(uuid.uuid4(), 0, 100) == []


def test_a_failed_step_reads_back_with_its_error(repository: TaskRepository) -> None:
    task = stored(repository, running_task())
    step = step_record(
        task.id, 1, status="failed", output=None, error_kind="Boom", error_message="no ✓"
    )
    repository.record_step(OWNER, step, still_running(1))
    assert repository.steps_of(task.id) == [step]


def test_a_running_progress_moves_the_task_on_and_keeps_its_lease(
    repository: TaskRepository,
) -> None:
    task = stored(repository, running_task())
    after = recorded(repository, task, step_record(task.id, 1), still_running(2))
    assert (after.status, after.current_state, after.step_count) == ("running", "second", 1)
    assert (after.lease_owner, after.lease_expires_at) == (OWNER, task.lease_expires_at)


def test_a_pending_progress_hands_the_task_back_until_its_backoff_ends(
    repository: TaskRepository,
) -> None:
    task = stored(repository, running_task())
    failed = step_record(task.id, 1, status="failed", output=None, error_kind="Flaky")
    backoff = Progress("pending", "first", at(2), run_after=at(30))
    after = recorded(repository, task, failed, backoff)
    assert (after.status, after.run_after) == ("pending", at(30))
    assert (after.lease_owner, after.lease_expires_at) == (None, None)
    assert repository.claim(OTHER, 5, at(29), at(89)) == []
    assert [found.id for found in repository.claim(OTHER, 5, at(30), at(90))] == [task.id]


CHECKPOINT = {"seq": 1, "state": "second", "outputs": {"first": {"n": 1.0, "s": "é"}}}


def test_a_step_stores_its_checkpoint_and_a_claim_returns_it(
    repository: TaskRepository,
) -> None:
    task = stored(repository, running_task())
    backoff = Progress("pending", "second", at(2), run_after=at(3), checkpoint=CHECKPOINT)
    after = recorded(repository, task, step_record(task.id, 1), backoff)
    assert (after.checkpoint, after.step_count) == (CHECKPOINT, 1)
    [claimed] = repository.claim(OTHER, 5, at(3), at(63))
    assert (claimed.checkpoint, claimed.step_count) == (CHECKPOINT, 1)
    assert claimed.checkpoint is not None
    assert type(claimed.checkpoint["outputs"]["first"]["n"]) is float  # type: ignore[index,call-overload]


def test_a_write_without_a_step_keeps_the_checkpoint(repository: TaskRepository) -> None:
    task = stored(repository, running_task())
    recorded(
        repository, task, step_record(task.id, 1), replace(still_running(2), checkpoint=CHECKPOINT)
    )
    done = Progress("succeeded", "done", at(3), output={}, finished_at=at(3), checkpoint={"seq": 9})
    repository.update_task(task.id, OWNER, done)
    after = repository.get_task(task.id)
    assert after is not None
    assert (after.status, after.checkpoint, after.step_count) == ("succeeded", CHECKPOINT, 1)


def test_a_succeeded_progress_finishes_the_task_with_its_output(
    repository: TaskRepository,
) -> None:
    task = stored(repository, running_task())
    done = Progress("succeeded", "done", at(3), output={"sum": 3}, finished_at=at(3))
    after = recorded(repository, task, step_record(task.id, 1), done)
    assert (after.status, after.output, after.finished_at) == ("succeeded", {"sum": 3}, at(3))
    assert (after.lease_owner, after.lease_expires_at, after.run_after) == (None, None, None)


def test_a_failed_progress_finishes_the_task_with_its_error(repository: TaskRepository) -> None:
    task = stored(repository, running_task())
    error = StepError("ToolError", "the tool failed")
    failed = Progress("failed", "first", at(4), error=error, finished_at=at(4))
    step = step_record(task.id, 1, status="failed", output=None, error_kind=error.kind)
    after = recorded(repository, task, step, failed)
    assert (after.status, after.error, after.finished_at) == ("failed", error, at(4))
    assert (after.lease_owner, after.lease_expires_at) == (None, None)


def test_an_update_without_a_step_keeps_the_step_count(repository: TaskRepository) -> None:
    task = stored(repository, running_task())
    repository.record_step(OWNER, step_record(task.id, 1), still_running(1))
    before = repository.get_task(task.id)
    assert before is not None
    error = StepError("Timeout", "too slow")
    failed = Progress("failed", "second", at(5), error=error, finished_at=at(5))
    expected = progressed(before, failed, None)
    assert repository.update_task(task.id, OWNER, failed) == "failed"
    assert columns(repository.get_task(task.id)) == columns(expected)
    assert expected.step_count == 1
    assert repository.steps_of(task.id) == [step_record(task.id, 1)]


def test_a_step_whose_seq_is_recorded_already_is_refused(repository: TaskRepository) -> None:
    task = stored(repository, running_task())
    first = step_record(task.id, 1)
    repository.record_step(OWNER, first, still_running(1))
    before = repository.get_task(task.id)
    assert before is not None
    done = Progress("succeeded", "done", at(9), output={"n": 2}, finished_at=at(9))
    with pytest.raises(StoreError) as refused:
        repository.record_step(OWNER, replace(first, state="other", attempt=2), done)
    assert type(refused.value) is StoreError
    assert repository.steps_of(task.id) == [first]
    assert_stored(repository, before)


# -- lease fencing ------------------------------------------------------------------------

Write = Callable[[TaskRepository, uuid.UUID, str], TaskStatus]


def write_a_step(repository: TaskRepository, task_id: uuid.UUID, owner: str) -> TaskStatus:
    return repository.record_step(owner, step_record(task_id, 1), still_running(50))


def write_an_update(repository: TaskRepository, task_id: uuid.UUID, owner: str) -> TaskStatus:
    return repository.update_task(task_id, owner, still_running(50))


WRITES: Final = [
    pytest.param(write_a_step, id="record_step"),
    pytest.param(write_an_update, id="update_task"),
]


def assert_refused(repository: TaskRepository, write: Write, task_id: uuid.UUID) -> None:
    before = repository.get_task(task_id)
    steps = repository.steps_of(task_id)
    with pytest.raises(LeaseLostError):
        write(repository, task_id, OWNER)
    assert repository.steps_of(task_id) == steps
    assert columns(repository.get_task(task_id)) == columns(before)


@pytest.mark.parametrize("write", WRITES)
def test_a_write_by_another_owner_is_refused(repository: TaskRepository, write: Write) -> None:
    task = stored(repository, running_task(owner=OTHER))
    assert_refused(repository, write, task.id)


@pytest.mark.parametrize("write", WRITES)
def test_a_write_on_a_pending_task_is_refused(repository: TaskRepository, write: Write) -> None:
    task = stored(repository, pending_task())
    assert_refused(repository, write, task.id)


@pytest.mark.parametrize("write", WRITES)
def test_a_write_on_a_finished_task_is_refused(repository: TaskRepository, write: Write) -> None:
    task = stored(repository, running_task())
    done = Progress("succeeded", "done", at(3), output={}, finished_at=at(3))
    assert repository.update_task(task.id, OWNER, done) == "succeeded"
    assert_refused(repository, write, task.id)


@pytest.mark.parametrize("write", WRITES)
def test_a_write_after_another_runner_took_over_the_expired_lease_is_refused(
    repository: TaskRepository, write: Write
) -> None:
    task = stored(repository, running_task(expires=at(10)))
    [taken] = repository.claim_abandoned(OTHER, 5, at(11), at(71))
    assert (taken.id, taken.lease_owner) == (task.id, OTHER)
    assert_refused(repository, write, task.id)


@pytest.mark.parametrize("write", WRITES)
def test_a_write_on_an_unknown_task_is_refused(repository: TaskRepository, write: Write) -> None:
    with pytest.raises(LeaseLostError):
        write(repository, uuid.uuid4(), OWNER)


# -- cancelling ---------------------------------------------------------------------------


def test_cancelling_a_pending_task_cancels_it_now(repository: TaskRepository) -> None:
    task = stored(repository, pending_task(run_after=at(1)))
    assert repository.cancel(task.id, at(2)) == "cancelled"
    after = repository.get_task(task.id)
    assert columns(after) == columns(cancelled(task, at(2)))
    assert after is not None
    assert (after.status, after.error_kind, after.finished_at) == ("cancelled", "Cancelled", at(2))
    assert (after.lease_owner, after.lease_expires_at, after.run_after) == (None, None, None)


def test_a_cancelled_task_can_no_longer_be_claimed(repository: TaskRepository) -> None:
    task = stored(repository, pending_task())
    repository.cancel(task.id, at(2))
    assert repository.claim(OWNER, 5, at(100), at(160)) == []
    assert repository.claim_abandoned(OWNER, 5, at(100), at(160)) == []


def test_cancelling_a_running_task_asks_it_to_stop(repository: TaskRepository) -> None:
    task = stored(repository, running_task())
    assert repository.cancel(task.id, at(5)) == "requested"
    assert_stored(repository, replace(task, cancel_requested=True, updated_at=at(5)))


def asked_to_cancel(repository: TaskRepository) -> TaskRecord:
    task = stored(repository, running_task())
    assert repository.cancel(task.id, at(5)) == "requested"
    asked = repository.get_task(task.id)
    assert asked is not None
    assert asked.cancel_requested
    return asked


def test_the_owners_next_step_after_a_cancel_request_cancels_the_task(
    repository: TaskRepository,
) -> None:
    task = asked_to_cancel(repository)
    step = step_record(task.id, 1)
    after = recorded(repository, task, step, still_running(6))
    assert (after.status, after.error_kind, after.finished_at) == ("cancelled", "Cancelled", at(6))
    assert (after.lease_owner, after.lease_expires_at, after.run_after) == (None, None, None)
    assert repository.steps_of(task.id) == [step]


def test_the_owners_next_update_after_a_cancel_request_cancels_the_task(
    repository: TaskRepository,
) -> None:
    task = asked_to_cancel(repository)
    backoff = Progress("pending", "first", at(6), run_after=at(30))
    expected = progressed(task, backoff, None)
    assert expected.status == "cancelled"
    assert repository.update_task(task.id, OWNER, backoff) == "cancelled"
    assert_stored(repository, expected)
    assert repository.claim(OTHER, 5, at(100), at(160)) == []


def test_a_finishing_step_after_a_cancel_request_keeps_its_status(
    repository: TaskRepository,
) -> None:
    task = asked_to_cancel(repository)
    done = Progress("succeeded", "done", at(6), output={"sum": 3}, finished_at=at(6))
    after = recorded(repository, task, step_record(task.id, 1), done)
    assert (after.status, after.output, after.error) == ("succeeded", {"sum": 3}, None)


def test_cancelling_a_finished_task_says_finished(repository: TaskRepository) -> None:
    task = stored(repository, running_task())
    done = Progress("succeeded", "done", at(3), output={}, finished_at=at(3))
    repository.update_task(task.id, OWNER, done)
    before = repository.get_task(task.id)
    assert repository.cancel(task.id, at(4)) == "finished"
    assert columns(repository.get_task(task.id)) == columns(before)


def test_cancelling_a_cancelled_task_says_finished(repository: TaskRepository) -> None:
    task = stored(repository, pending_task())
    repository.cancel(task.id, at(2))
    assert repository.cancel(task.id, at(3)) == "finished"
    assert_stored(repository, cancelled(task, at(2)))


def test_cancelling_an_unknown_task_says_missing(repository: TaskRepository) -> None:
    assert repository.cancel(uuid.uuid4(), at(1)) == "missing"


# -- claiming, renewing, releasing --------------------------------------------------------


def ids(tasks: list[TaskRecord]) -> set[uuid.UUID]:
    return {task.id for task in tasks}


def test_claim_takes_only_due_pending_tasks(repository: TaskRepository) -> None:
    due = stored(repository, pending_task(run_after=at(1)))
    due_now = stored(repository, pending_task(run_after=at(10)))
    stored(repository, pending_task(run_after=at(10.000001)))
    stored(repository, running_task(expires=at(5)))
    stored(repository, task_record("succeeded", output={}, finished_at=at(2)))
    stored(repository, task_record("failed", error_kind="Boom", finished_at=at(2)))
    cancelled_task = stored(repository, pending_task(run_after=at(1)))
    repository.cancel(cancelled_task.id, at(2))
    assert ids(repository.claim(OTHER, 10, at(10), at(70))) == {due.id, due_now.id}


def test_claim_takes_at_most_limit_tasks_the_longest_due_first(
    repository: TaskRepository,
) -> None:
    third = stored(repository, pending_task(run_after=at(3), created_at=at(-3)))
    first = stored(repository, pending_task(run_after=at(1), created_at=at(-1)))
    second = stored(repository, pending_task(run_after=at(2), created_at=at(-2)))
    assert ids(repository.claim(OTHER, 2, at(10), at(70))) == {first.id, second.id}
    assert ids(repository.claim(OTHER, 2, at(10), at(70))) == {third.id}


def test_claims_of_one_come_in_order_of_due_time(repository: TaskRepository) -> None:
    tasks = [
        stored(repository, pending_task(run_after=at(due), created_at=at(-due)))
        for due in (3, 1, 4, 2)
    ]
    taken = [repository.claim(OTHER, 1, at(10), at(70)) for _ in tasks]
    order = [task.id for task in sorted(tasks, key=lambda task: task.run_after or T0)]
    assert [[task.id for task in claim] for claim in taken] == [[task_id] for task_id in order]


def test_a_claimed_task_is_running_and_held_by_its_claimer(repository: TaskRepository) -> None:
    task = stored(repository, pending_task(run_after=at(1)))
    [claimed] = repository.claim(OTHER, 5, at(10), at(70))
    expected = replace(
        task,
        status="running",
        lease_owner=OTHER,
        lease_expires_at=at(70),
        run_after=None,
        started_at=at(10),
        updated_at=at(10),
    )
    assert columns(claimed) == columns(expected)
    assert_stored(repository, expected)


def test_a_claim_keeps_the_start_of_a_task_that_ran_before(repository: TaskRepository) -> None:
    task = stored(repository, pending_task(run_after=at(5), started_at=at(2), step_count=2))
    [claimed] = repository.claim(OTHER, 5, at(10), at(70))
    assert (claimed.started_at, claimed.step_count) == (at(2), 2)
    assert_stored(repository, claimed)
    assert claimed.id == task.id


def test_a_claimed_task_is_not_claimed_again(repository: TaskRepository) -> None:
    task = stored(repository, pending_task())
    [claimed] = repository.claim(OWNER, 5, at(10), at(70))
    assert repository.claim(OTHER, 5, at(20), at(80)) == []
    assert repository.claim(OWNER, 5, at(20), at(80)) == []
    assert_stored(repository, claimed)
    assert claimed.id == task.id


def test_claim_abandoned_takes_only_running_tasks_whose_lease_ran_out(
    repository: TaskRepository,
) -> None:
    expired = stored(repository, running_task(expires=at(5), current_state="second"))
    stored(repository, running_task(expires=at(10)))
    stored(repository, running_task(owner=OTHER, expires=at(20)))
    stored(repository, pending_task(run_after=at(0)))
    taken = repository.claim_abandoned(OTHER, 10, at(10), at(70))
    expected = replace(expired, lease_owner=OTHER, lease_expires_at=at(70), updated_at=at(10))
    assert [columns(task) for task in taken] == [columns(expected)]
    assert_stored(repository, expected)


def test_claim_abandoned_takes_at_most_limit_tasks(repository: TaskRepository) -> None:
    tasks = [stored(repository, running_task(expires=at(seconds))) for seconds in (1, 2, 3)]
    first = repository.claim_abandoned(OTHER, 2, at(10), at(70))
    second = repository.claim_abandoned(OTHER, 2, at(10), at(70))
    assert (len(first), len(second)) == (2, 1)
    assert ids(first) | ids(second) == ids(tasks)
    assert repository.claim_abandoned(OTHER, 2, at(10), at(70)) == []


def test_renew_extends_only_the_owners_running_leases(repository: TaskRepository) -> None:
    mine = stored(repository, running_task(expires=at(10)))
    theirs = stored(repository, running_task(owner=OTHER, expires=at(10)))
    pending = stored(repository, pending_task())
    repository.renew(OWNER, [mine.id, theirs.id, pending.id, uuid.uuid4()], at(100))
    assert_stored(repository, replace(mine, lease_expires_at=at(100)))
    assert_stored(repository, theirs)
    assert_stored(repository, pending)


def test_renew_leaves_a_finished_task_alone(repository: TaskRepository) -> None:
    task = stored(repository, running_task(expires=at(10)))
    done = Progress("succeeded", "done", at(3), output={}, finished_at=at(3))
    repository.update_task(task.id, OWNER, done)
    before = repository.get_task(task.id)
    repository.renew(OWNER, [task.id], at(100))
    repository.renew(OWNER, [], at(100))
    assert columns(repository.get_task(task.id)) == columns(before)


def test_release_hands_the_task_back_claimable_at_once(repository: TaskRepository) -> None:
    task = stored(repository, running_task(step_count=2, current_state="second"))
    repository.release(task.id, OWNER, at(10))
    released = replace(
        task,
        status="pending",
        lease_owner=None,
        lease_expires_at=None,
        run_after=at(10),
        updated_at=at(10),
    )
    assert_stored(repository, released)
    [claimed] = repository.claim(OTHER, 5, at(10), at(70))
    assert (claimed.id, claimed.started_at, claimed.step_count) == (task.id, T0, 2)


def test_release_by_another_owner_changes_nothing(repository: TaskRepository) -> None:
    task = stored(repository, running_task(owner=OTHER))
    pending = stored(repository, pending_task())
    repository.release(task.id, OWNER, at(10))
    repository.release(pending.id, OWNER, at(10))
    repository.release(uuid.uuid4(), OWNER, at(10))
    assert_stored(repository, task)
    assert_stored(repository, pending)


# -- listing ------------------------------------------------------------------------------

TIED_HIGH: Final = uuid.UUID("f0000000-0000-4000-8000-000000000001")
TIED_LOW: Final = uuid.UUID("0f000000-0000-4000-8000-0000000000ff")


def five_tasks(repository: TaskRepository) -> list[TaskRecord]:
    """Five tasks, newest first; the second and third were created at the same instant."""
    tasks = [
        stored(repository, pending_task(flow="echo", created_at=at(1))),
        stored(repository, running_task(flow="sum", created_at=at(2))),
        stored(repository, pending_task(flow="sum", created_at=at(3), id=TIED_LOW)),
        stored(repository, pending_task(flow="echo", created_at=at(3), id=TIED_HIGH)),
        stored(repository, task_record("succeeded", flow="echo", created_at=at(4), output={})),
    ]
    return sorted(tasks, key=lambda task: (task.created_at, task.id), reverse=True)


def test_list_tasks_is_newest_first_as_heads(repository: TaskRepository) -> None:
    newest_first = five_tasks(repository)
    assert [task.id for task in newest_first[1:3]] == [TIED_HIGH, TIED_LOW]
    page = repository.list_tasks(TaskFilter(), 10, None)
    assert page.items == tuple(head_of(task) for task in newest_first)
    assert all(type(item) is TaskHead for item in page.items)
    assert page.after is None


def test_list_tasks_pages_continue_exactly_after_the_last_item(
    repository: TaskRepository,
) -> None:
    newest_first = five_tasks(repository)
    pages = [repository.list_tasks(TaskFilter(), 2, None)]
    while (after := pages[-1].after) is not None:
        assert after == (pages[-1].items[-1].created_at, pages[-1].items[-1].id)
        pages.append(repository.list_tasks(TaskFilter(), 2, after))
    assert [len(page.items) for page in pages] == [2, 2, 1]
    assert [item for page in pages for item in page.items] == [
        head_of(task) for task in newest_first
    ]


def test_a_full_last_page_has_no_after(repository: TaskRepository) -> None:
    newest_first = five_tasks(repository)
    position = (newest_first[0].created_at, newest_first[0].id)
    page = repository.list_tasks(TaskFilter(), 4, position)
    assert page.items == tuple(head_of(task) for task in newest_first[1:])
    assert page.after is None


def test_list_tasks_filters_on_status(repository: TaskRepository) -> None:
    newest_first = five_tasks(repository)
    page = repository.list_tasks(TaskFilter(status="pending"), 10, None)
    expected = [head_of(task) for task in newest_first if task.status == "pending"]
    assert list(page.items) == expected
    assert len(expected) == 3


def test_list_tasks_filters_on_flow(repository: TaskRepository) -> None:
    newest_first = five_tasks(repository)
    first = repository.list_tasks(TaskFilter(flow="echo"), 2, None)
    assert first.after is not None
    rest = repository.list_tasks(TaskFilter(flow="echo"), 2, first.after)
    expected = [head_of(task) for task in newest_first if task.flow_name == "echo"]
    assert [*first.items, *rest.items] == expected
    assert (len(expected), rest.after) == (3, None)


def test_list_tasks_filters_on_status_and_flow(repository: TaskRepository) -> None:
    newest_first = five_tasks(repository)
    page = repository.list_tasks(TaskFilter(status="pending", flow="sum"), 10, None)
    assert page.items == (head_of(newest_first[2]),)
    assert repository.list_tasks(TaskFilter(status="failed"), 10, None).items == ()


# -- waiting for work ---------------------------------------------------------------------


def wait_in_background(
    pool: ThreadPoolExecutor, repository: TaskRepository
) -> Future[tuple[bool, float]]:
    """Wait for work (up to 5 s) in another thread; its answer, and when it came."""
    # PostgreSQL listens from the first wait on: listen before anything may notify.
    repository.wait_for_work(0.01)

    def wait() -> tuple[bool, float]:
        woken = repository.wait_for_work(5.0)
        return woken, time.monotonic()

    waiting = pool.submit(wait)
    time.sleep(0.2)
    assert not waiting.done()
    return waiting


def test_wait_for_work_times_out_when_nothing_happens(repository: TaskRepository) -> None:
    started = time.monotonic()
    assert repository.wait_for_work(0.2) is False
    assert 0.19 <= time.monotonic() - started < 3


def test_wait_for_work_wakes_when_a_pending_task_is_created(repository: TaskRepository) -> None:
    with ThreadPoolExecutor(1) as pool:
        waiting = wait_in_background(pool, repository)
        created = time.monotonic()
        stored(repository, pending_task())
        woken, answered = waiting.result(timeout=10)
    assert woken is True
    assert created <= answered < created + 2


def test_wait_for_work_wakes_when_a_task_is_released(repository: TaskRepository) -> None:
    task = stored(repository, running_task())
    with ThreadPoolExecutor(1) as pool:
        waiting = wait_in_background(pool, repository)
        released = time.monotonic()
        repository.release(task.id, OWNER, at(10))
        woken, answered = waiting.result(timeout=10)
    assert woken is True
    assert released <= answered < released + 2


# -- an unreachable database (the SQL adapters) -------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def unreachable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlTaskRepository]:
    """A repository whose database cannot be reached: for SQLite, a file that cannot be
    opened (a directory stands where it should be); for PostgreSQL, no server at the port."""
    if request.param == "sqlite":
        (tmp_path / "not-a-file").mkdir()
        url = f"sqlite:///{tmp_path / 'not-a-file'}"
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/nope"
    database = Database(url)
    repository = SqlTaskRepository(database)
    yield repository
    repository.close()
    database.dispose()


Call = Callable[[TaskRepository], object]
CALLS: Final = [
    pytest.param(lambda r: r.create_task(pending_task(), flow_version()), id="create_task"),
    pytest.param(
        lambda r: r.create_task(pending_task(idempotency_key="k"), flow_version()),
        id="create_task-with-key",
    ),
    pytest.param(
        lambda r: r.record_step(OWNER, step_record(uuid.uuid4(), 1), still_running(1)),
        id="record_step",
    ),
    pytest.param(lambda r: r.update_task(uuid.uuid4(), OWNER, still_running(1)), id="update_task"),
    pytest.param(lambda r: r.claim(OWNER, 1, at(1), at(61)), id="claim"),
    pytest.param(lambda r: r.claim_abandoned(OWNER, 1, at(1), at(61)), id="claim_abandoned"),
    pytest.param(lambda r: r.renew(OWNER, [uuid.uuid4()], at(61)), id="renew"),
    pytest.param(lambda r: r.release(uuid.uuid4(), OWNER, at(1)), id="release"),
    pytest.param(lambda r: r.cancel(uuid.uuid4(), at(1)), id="cancel"),
    pytest.param(lambda r: r.get_task(uuid.uuid4()), id="get_task"),
    pytest.param(lambda r: r.steps_of(uuid.uuid4()), id="steps_of"),
    pytest.param(lambda r: r.steps_page(uuid.uuid4(), 0, 10), id="steps_page"),
    pytest.param(lambda r: r.list_tasks(TaskFilter(), 10, None), id="list_tasks"),
    pytest.param(lambda r: r.flow_definition(digest_of("echo")), id="flow_definition"),
]


def test_an_unreachable_database_does_not_answer_ping(unreachable: SqlTaskRepository) -> None:
    assert unreachable.ping() is False


@pytest.mark.parametrize("call", CALLS)
def test_every_method_on_an_unreachable_database_raises_store_unavailable(
    unreachable: SqlTaskRepository, call: Call
) -> None:
    with pytest.raises(StoreUnavailableError):
        call(unreachable)


def test_waiting_on_an_unreachable_postgresql_raises_store_unavailable() -> None:
    database = Database("postgresql+psycopg://postgres@127.0.0.1:1/nope")
    repository = SqlTaskRepository(database)
    try:
        with pytest.raises(StoreUnavailableError):
            repository.wait_for_work(0.2)
    finally:
        repository.close()
        database.dispose()
