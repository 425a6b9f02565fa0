"""What happens to tasks, told to whoever watches: the metrics (`metrics.py`) and the log
(`tasklog.py`) are two observers of the same events, reported once, where they happen.

The service reports a task started, claimed (or taken over from a dead worker), handed
back to wait, its lease lost, and a synchronous run begun and ended; the stored run
(`runs.StoredRun`) reports each step recorded, each retry scheduled and the task's end.
Those are the places where the store has just said yes: an event is reported once it is
true in the database, never before.

Reporting is on the hot path (one call per step), so an observer does its own cheap work
in the calling thread and never raises: nothing is queued or copied for it.
"""

from __future__ import annotations

from typing import Protocol

from taskrunner.store.records import StepRecord, TaskRecord


class Observer(Protocol):
    def task_started(self, task: TaskRecord) -> None:
        """A task was stored by a request: running here (`running`) or queued (`pending`)."""

    def task_claimed(self, task: TaskRecord, *, taken_over: bool) -> None:
        """A runner claimed the task; `taken_over`: from a runner whose lease ran out."""

    def step_recorded(self, task: TaskRecord, step: StepRecord) -> None:
        """A step of the task was recorded (`step.finished_at - step.started_at` long)."""

    def retry_scheduled(self, task: TaskRecord, step: StepRecord, delay_seconds: float) -> None:
        """The failed `step` will be tried again, attempt `step.attempt + 1`, after a delay."""

    def task_waiting(self, task: TaskRecord) -> None:
        """The task went back to the queue until `task.run_after` (a retry's delay, a wait
        state, a runner that stopped)."""

    def task_finished(self, task: TaskRecord) -> None:
        """The task ended: succeeded, failed or cancelled (`task.status`)."""

    def lease_lost(self, task: TaskRecord) -> None:
        """This process lost its hold on the task: another runner took it over."""

    def sync_run(self, delta: int) -> None:
        """A synchronous run began (+1) or ended (-1) in this process."""


class Observers:
    """Every observer of a process, told each event in turn (none: nothing is done)."""

    def __init__(self, *observers: Observer) -> None:
        self._observers = observers

    def task_started(self, task: TaskRecord) -> None:
        for observer in self._observers:
            observer.task_started(task)

    def task_claimed(self, task: TaskRecord, *, taken_over: bool) -> None:
        for observer in self._observers:
            observer.task_claimed(task, taken_over=taken_over)

    def step_recorded(self, task: TaskRecord, step: StepRecord) -> None:
        for observer in self._observers:
            observer.step_recorded(task, step)

    def retry_scheduled(self, task: TaskRecord, step: StepRecord, delay_seconds: float) -> None:
        for observer in self._observers:
            observer.retry_scheduled(task, step, delay_seconds)

    def task_waiting(self, task: TaskRecord) -> None:
        for observer in self._observers:
            observer.task_waiting(task)

    def task_finished(self, task: TaskRecord) -> None:
        for observer in self._observers:
            observer.task_finished(task)

    def lease_lost(self, task: TaskRecord) -> None:
        for observer in self._observers:
            observer.lease_lost(task)

    def sync_run(self, delta: int) -> None:
        for observer in self._observers:
            observer.sync_run(delta)
