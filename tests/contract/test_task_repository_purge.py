"""The store port's purge, on all three adapters: it deletes finished tasks that finished
before a given time, the longest finished first, in batches of at most `limit`, with their
steps; it never deletes a pending or running task, whatever it is asked; and it counts
exactly what it deleted, or would delete (`count_purgeable`)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from test_task_repository import (
    OWNER,
    at,
    digest_of,
    flow_version,
    pending_task,
    running_task,
    step_record,
    still_running,
    stored,
    task_record,
)

from taskrunner.engine.steps import StepError
from taskrunner.retention import purge_finished
from taskrunner.store.records import FINISHED, Progress, Purged, TaskStatus
from taskrunner.store.repository import TaskRepository

EVERYTHING: tuple[TaskStatus, ...] = ("pending", "running", "succeeded", "failed", "cancelled")


def finished_task(
    repository: TaskRepository, status: TaskStatus, finished_at: datetime, steps: int = 2
) -> uuid.UUID:
    """A task run to its end as a runner writes it: `steps` steps, the last one finishing
    it with `status` at `finished_at`."""
    task = stored(repository, running_task())
    for seq in range(1, steps):
        repository.record_step(OWNER, step_record(task.id, seq), still_running(seq))
    error = None if status == "succeeded" else StepError("ToolError", "no")
    end = Progress(status, "done", finished_at, error=error, finished_at=finished_at)
    if steps:
        repository.record_step(OWNER, step_record(task.id, steps), end)
    else:
        repository.update_task(task.id, OWNER, end)
    assert repository.get_task(task.id).status == status  # type: ignore[union-attr]
    return task.id


def gone(repository: TaskRepository, task_id: uuid.UUID) -> bool:
    return repository.get_task(task_id) is None and repository.steps_of(task_id) == []


def test_a_purge_deletes_old_finished_tasks_with_their_steps(repository: TaskRepository) -> None:
    old = [finished_task(repository, status, at(10 + n)) for n, status in enumerate(FINISHED)]
    recent = finished_task(repository, "succeeded", at(100))
    pending = stored(repository, pending_task()).id
    running = stored(repository, running_task()).id

    assert repository.purge(at(50), FINISHED, 1000) == Purged(tasks=3, steps=6)

    assert all(gone(repository, task_id) for task_id in old)
    assert [step.seq for step in repository.steps_of(recent)] == [1, 2]
    assert {repository.get_task(task_id).status for task_id in (recent, pending, running)} == {  # type: ignore[union-attr]
        "succeeded",
        "pending",
        "running",
    }
    # Tasks pin flow versions: the version stays, whatever is purged.
    assert repository.flow_definition(digest_of("echo")) == flow_version().definition
    assert repository.purge(at(50), FINISHED, 1000) == Purged()


def test_a_purge_takes_at_most_limit_tasks_the_longest_finished_first(
    repository: TaskRepository,
) -> None:
    # Stored in an order other than the order they finished in.
    finished = {n: finished_task(repository, "succeeded", at(n), steps=1) for n in (5, 1, 4, 2, 3)}

    assert repository.purge(at(60), FINISHED, 2) == Purged(2, 2)
    assert [n for n, task_id in sorted(finished.items()) if gone(repository, task_id)] == [1, 2]
    assert repository.purge(at(60), FINISHED, 2) == Purged(2, 2)
    assert repository.purge(at(60), FINISHED, 2) == Purged(1, 1)
    assert repository.purge(at(60), FINISHED, 2) == Purged()
    assert all(gone(repository, task_id) for task_id in finished.values())


def test_only_the_statuses_asked_for_are_purged(repository: TaskRepository) -> None:
    by_status = {status: finished_task(repository, status, at(1)) for status in FINISHED}

    assert repository.purge(at(60), ["failed", "cancelled"], 100) == Purged(2, 4)

    assert repository.get_task(by_status["succeeded"]) is not None
    assert gone(repository, by_status["failed"])
    assert gone(repository, by_status["cancelled"])


def test_the_cutoff_is_strict(repository: TaskRepository) -> None:
    at_cutoff = finished_task(repository, "succeeded", at(30))
    before = finished_task(repository, "succeeded", at(29.999999))

    assert repository.purge(at(30), FINISHED, 100) == Purged(1, 2)
    assert gone(repository, before)
    assert repository.get_task(at_cutoff) is not None


def test_active_tasks_are_never_purged_whatever_is_asked(repository: TaskRepository) -> None:
    # taskrunner never gives an active task a finish time; a purge does not trust that.
    pending = stored(repository, pending_task(finished_at=at(1))).id
    running = stored(repository, running_task(finished_at=at(1))).id
    held = stored(repository, running_task(created_at=at(-5))).id
    repository.record_step(OWNER, step_record(held, 1), still_running(2))

    assert repository.purge(at(60), ["pending", "running"], 100) == Purged()
    assert repository.purge(at(60), EVERYTHING, 100) == Purged()
    assert repository.count_purgeable(at(60), EVERYTHING) == Purged()

    for task_id in (pending, running, held):
        assert repository.get_task(task_id) is not None
    assert [step.seq for step in repository.steps_of(held)] == [1]


def test_a_finished_task_without_steps_is_purged(repository: TaskRepository) -> None:
    cancelled = stored(
        repository, task_record("cancelled", finished_at=at(1), error_kind="Cancelled")
    ).id
    assert repository.purge(at(60), ["cancelled"], 100) == Purged(1, 0)
    assert gone(repository, cancelled)


def test_count_purgeable_is_what_a_purge_deletes_and_changes_nothing(
    repository: TaskRepository,
) -> None:
    for n in range(5):
        finished_task(repository, "failed" if n % 2 else "succeeded", at(n), steps=n % 3)
    finished_task(repository, "succeeded", at(100))
    stored(repository, pending_task())

    counted = repository.count_purgeable(at(50), FINISHED)
    assert counted == Purged(tasks=5, steps=0 + 1 + 2 + 0 + 1)
    assert repository.count_purgeable(at(50), FINISHED) == counted  # nothing was deleted
    assert repository.count_purgeable(at(50), ["failed"]) == Purged(2, 1 + 0)
    assert repository.count_purgeable(at(0), FINISHED) == Purged()

    assert repository.purge(at(50), FINISHED, 2) + repository.purge(at(50), FINISHED, 10) == counted
    assert repository.count_purgeable(at(50), FINISHED) == Purged()


def test_concurrent_purges_delete_each_task_once(repository: TaskRepository) -> None:
    tasks = [finished_task(repository, "succeeded", at(n % 40), steps=1) for n in range(60)]
    kept = finished_task(repository, "failed", at(200), steps=1)

    with ThreadPoolExecutor(3) as pool:
        done = list(pool.map(lambda _: purge_finished(repository, at(100), batch_size=7), range(3)))

    assert sum(done, Purged()) == Purged(60, 60)
    assert all(gone(repository, task_id) for task_id in tasks)
    assert [step.seq for step in repository.steps_of(kept)] == [1]
