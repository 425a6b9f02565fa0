"""The port between the service and the database: what the service asks of a store.

`SqlTaskRepository` implements it on PostgreSQL and SQLite; `InMemoryTaskRepository` is
its twin for unit tests that drive the real service without a database.

Who may write a running task is decided by its lease: every write made on behalf of a
runner names the lease owner and succeeds only while that owner holds the task, else it
raises `LeaseLostError` and changes nothing. A step is recorded once: (task, seq) is a key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from pydantic import JsonValue

from taskrunner.engine.flow import Flow
from taskrunner.engine.steps import Step, StepError
from taskrunner.errors import TaskrunnerError
from taskrunner.tools import JsonObject
from taskrunner.views import TaskStatus, TaskSummary, TaskView

Position = tuple[datetime, uuid.UUID]
"""Where a page of tasks ends: the (created_at, id) of its last task."""

CancelOutcome = Literal["cancelled", "requested", "finished", "missing"]
CANCELLED = StepError("Cancelled", "the task was cancelled")


class LeaseLostError(TaskrunnerError):
    """This runner no longer holds the task: its lease ran out and another took it, or it
    was cancelled. Nothing was written."""


@dataclass(frozen=True, slots=True)
class NewTask:
    id: uuid.UUID
    flow: Flow
    input: JsonObject
    status: Literal["pending", "running"]
    current_state: str
    created_at: datetime
    started_at: datetime | None = None
    idempotency_key: str | None = None
    run_after: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RecordedStep:
    step: Step
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class Progress:
    """How a task stands after a step: written in the same transaction as the step.

    `running` renews the lease until `lease_expires_at`; `pending` hands the task back to
    the queue, to be claimed from `run_after` on (a retry's backoff); a finished status
    clears the lease.
    """

    status: TaskStatus
    current_state: str
    updated_at: datetime
    output: JsonObject | None = None
    error: StepError | None = None
    finished_at: datetime | None = None
    lease_expires_at: datetime | None = None
    run_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """A task this runner now holds, with what it needs to resume it."""

    id: uuid.UUID
    flow_digest: str
    input: JsonObject
    current_state: str
    step_count: int
    cancel_requested: bool


@dataclass(frozen=True, slots=True)
class TaskFilter:
    status: TaskStatus | None = None
    flow: str | None = None


class TaskRepository(Protocol):
    def create_task(self, task: NewTask) -> TaskView | None:
        """Store the task (and its flow version, if new), committed; wake idle workers if
        it is pending. If its idempotency key is taken, store nothing and return the task
        that has it."""

    def record_step(
        self, task_id: uuid.UUID, owner: str, step: RecordedStep, progress: Progress
    ) -> TaskStatus:
        """Append the step and update the task, in one commit, if `owner` holds it.
        Returns the status the task now has (`cancelled` if that was asked meanwhile)."""

    def update_task(self, task_id: uuid.UUID, owner: str, progress: Progress) -> TaskStatus:
        """Update the task without a step, if `owner` holds it."""

    def claim(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[ClaimedTask]:
        """Take up to `limit` due pending tasks, the longest due first."""

    def claim_abandoned(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[ClaimedTask]:
        """Take up to `limit` running tasks whose lease ran out (their runner died)."""

    def renew(self, owner: str, task_ids: list[uuid.UUID], lease_expires_at: datetime) -> None:
        """Extend the leases `owner` holds on these tasks."""

    def release(self, task_id: uuid.UUID, owner: str, now: datetime) -> None:
        """Give a held task back to the queue, claimable at once."""

    def cancel(self, task_id: uuid.UUID, now: datetime) -> CancelOutcome:
        """Cancel a pending task now; ask a running one to stop before its next step."""

    def steps_of(self, task_id: uuid.UUID) -> list[Step]:
        """The recorded steps of a task, in order, to resume it."""

    def flow_definition(self, digest: str) -> dict[str, JsonValue] | None:
        """The stored definition of a flow version."""

    def get_task(self, task_id: uuid.UUID) -> TaskView | None: ...

    def list_tasks(
        self, where: TaskFilter, limit: int, after: Position | None
    ) -> list[TaskSummary]:
        """At most `limit` tasks, newest first, strictly after `after`."""
