"""The contract of `TaskRepository.queue_stats`, the read behind the queue gauges of
`/metrics`: on all three adapters alike."""

from __future__ import annotations

from test_task_repository import at, pending_task, running_task, stored, task_record

from taskrunner.store.records import QueueStats
from taskrunner.store.repository import TaskRepository


def test_an_empty_queue_has_nothing_ready_or_waiting(repository: TaskRepository) -> None:
    assert repository.queue_stats(at(0)) == QueueStats(0, 0, None)


def test_due_tasks_are_ready_and_later_ones_are_waiting(repository: TaskRepository) -> None:
    stored(repository, pending_task(run_after=at(-30)))
    stored(repository, pending_task(run_after=at(-5)))
    stored(repository, pending_task(run_after=at(0)))
    stored(repository, pending_task(run_after=at(60)))
    assert repository.queue_stats(at(0)) == QueueStats(3, 1, at(-30))


def test_only_claimable_pending_tasks_count(repository: TaskRepository) -> None:
    stored(repository, running_task())
    stored(repository, task_record("succeeded", finished_at=at(-1)))
    stored(repository, pending_task(run_after=None))  # a child held back by its fan-out
    stored(repository, pending_task(run_after=at(10)))
    assert repository.queue_stats(at(0)) == QueueStats(0, 1, None)


def test_a_claimed_task_leaves_the_queue(repository: TaskRepository) -> None:
    stored(repository, pending_task(run_after=at(-2)))
    stored(repository, pending_task(run_after=at(-1)))
    repository.claim("worker-a", 1, at(0), at(60))
    assert repository.queue_stats(at(0)) == QueueStats(1, 0, at(-1))
