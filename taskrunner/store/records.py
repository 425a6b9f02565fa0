"""What crosses the store's port: plain, frozen records of tasks, their steps and the flow
versions they run, and the writes that change a task as it runs.

A record's fields are its table's columns, by name, so that a row becomes a record (and a
record a row) without a list of columns anywhere else: adding a column means adding it to
the table, the migration, the record, and to the one statement that writes it, if any.

`progressed` says, in Python, what a `Progress` write does to a task; the SQL adapter does
the same in one statement, and the contract tests hold the two to each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Final, Literal, get_args

from taskrunner import statuses
from taskrunner.engine.steps import Step, StepError, StepStatus
from taskrunner.tools import JsonObject

# The task statuses live in a module that imports nothing, for the command line's help;
# the store's port names them as its own.
TaskStatus = statuses.TaskStatus
TASK_STATUSES: Final = statuses.TASK_STATUSES
STEP_STATUSES: Final = get_args(StepStatus)
ACTIVE: Final = statuses.ACTIVE
"""The statuses of a task that has not finished."""
FINISHED: Final = statuses.FINISHED
"""The statuses of a task that has finished: the only ones retention ever deletes."""

CancelOutcome = Literal["cancelled", "requested", "finished", "missing"]
CANCELLED: Final = StepError("Cancelled", "the task was cancelled")

Position = tuple[datetime, uuid.UUID]
"""Where a page of tasks ends: the (created_at, id) of its last task."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskHead:
    """A task without its data: what a list of tasks shows."""

    id: uuid.UUID
    flow_name: str
    flow_digest: str
    status: TaskStatus
    current_state: str | None
    error_kind: str | None
    error_message: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    parent_id: uuid.UUID | None = None
    """A child task (a branch, a map item, a sub-flow run) names the task that started it;
    None for a task started by a request."""
    child_key: str | None = None
    """A child's position in its parent's fan-out call: `branch:NAME`, `item:INDEX` or
    `flow`."""

    @property
    def error(self) -> StepError | None:
        if self.error_kind is None:
            return None
        return StepError(self.error_kind, self.error_message or "")

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRecord(TaskHead):
    """A task, whole: its data, and where it stands in the queue."""

    input: JsonObject
    output: JsonObject | None
    idempotency_key: str | None
    run_after: datetime | None
    """A pending task may be claimed from then on."""
    lease_owner: str | None
    """The runner that holds a running task…"""
    lease_expires_at: datetime | None
    """…until then, unless it renews its lease; after that, another may take it over."""
    step_count: int
    checkpoint: JsonObject | None
    """Where the execution stood after the last step (`Execution.checkpoint()`), written
    with it; None before the first step, and in rows older than the column."""
    parent_seq: int | None = None
    """The seq of the parent's fan-out call that started the child…"""
    parent_attempt: int | None = None
    """…and its attempt (a retried fan-out starts new children)."""
    deadline_at: datetime | None = None
    """A child ends with `TaskTimeout` then at the latest: its parent's deadline."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One recorded step of a task: appended once, never rewritten."""

    task_id: uuid.UUID
    seq: int
    state: str
    tool: str
    attempt: int
    status: StepStatus
    input: JsonObject
    output: JsonObject | None
    error_kind: str | None
    error_message: str | None
    started_at: datetime
    finished_at: datetime

    @classmethod
    def of(
        cls, task_id: uuid.UUID, step: Step, started_at: datetime, finished_at: datetime
    ) -> StepRecord:
        error = step.error
        return cls(
            task_id,
            step.seq,
            step.state,
            step.tool,
            step.attempt,
            step.status,
            step.input,
            step.output,
            error.kind if error else None,
            error.message if error else None,
            started_at,
            finished_at,
        )

    @property
    def error(self) -> StepError | None:
        if self.error_kind is None:
            return None
        return StepError(self.error_kind, self.error_message or "")

    def step(self) -> Step:
        """The step as the interpreter saw it."""
        return Step(
            self.seq,
            self.state,
            self.tool,
            self.attempt,
            self.input,
            self.status,
            self.output,
            self.error,
        )


@dataclass(frozen=True, slots=True)
class FlowVersion:
    """One exact version of a flow definition, named by the digest of its canonical form."""

    digest: str
    name: str
    definition: JsonObject
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Progress:
    """How a held task stands after a step (written with it) or without one.

    `running` keeps the lease (the keeper renews it); `pending` hands the task back to the
    queue, claimable from `run_after` on (a retry's backoff); a finished status lets go.
    If a cancel was asked meanwhile, an active task is cancelled instead.
    """

    status: TaskStatus
    current_state: str
    updated_at: datetime
    output: JsonObject | None = None
    error: StepError | None = None
    finished_at: datetime | None = None
    run_after: datetime | None = None
    checkpoint: JsonObject | None = None
    """Written with a step only; a write without one leaves the task's checkpoint be."""


@dataclass(frozen=True, slots=True)
class TaskFilter:
    status: TaskStatus | None = None
    flow: str | None = None
    parent: uuid.UUID | None = None
    """The children of this task; None: tasks started by requests (no child ever)."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    """How the queue stands: the pending tasks due now (`ready`), those due later
    (`waiting`: a retry's delay, a wait state), and since when the longest-due ready task
    has been claimable (None when none is). Children held back by their fan-out's
    `max_concurrency` are in neither: no worker may claim them yet.

    Counted over at most `QUEUE_STATS_LIMIT` pending tasks, the longest due first, so
    that reading it stays cheap on any queue: beyond that, the counts are a floor."""

    ready: int
    waiting: int
    oldest_ready_since: datetime | None


QUEUE_STATS_LIMIT: Final = 100_000


@dataclass(frozen=True, slots=True)
class Purged:
    """How many tasks, and steps of theirs, a purge deleted (or would delete)."""

    tasks: int = 0
    steps: int = 0

    def __add__(self, other: Purged) -> Purged:
        return Purged(self.tasks + other.tasks, self.steps + other.steps)


@dataclass(frozen=True, slots=True)
class Page:
    """A page of tasks, newest first, and where the next one starts (None: no more)."""

    items: tuple[TaskHead, ...]
    after: Position | None


def field_names(record: type[TaskHead] | type[StepRecord] | type[FlowVersion]) -> tuple[str, ...]:
    """The columns a record holds."""
    return tuple(item.name for item in fields(record))


def progressed(task: TaskRecord, progress: Progress, step_count: int | None) -> TaskRecord:
    """The task after `progress`, written by the runner that holds it."""
    now = progress.updated_at
    error = CANCELLED if task.cancel_requested and progress.status in ACTIVE else None
    status: TaskStatus = "cancelled" if error else progress.status
    error = error or progress.error
    held = status == "running"
    return replace(
        task,
        status=status,
        current_state=progress.current_state,
        updated_at=now,
        output=progress.output,
        error_kind=error.kind if error else None,
        error_message=error.message if error else None,
        finished_at=now if status == "cancelled" else progress.finished_at,
        lease_owner=task.lease_owner if held else None,
        lease_expires_at=task.lease_expires_at if held else None,
        run_after=progress.run_after if status == "pending" else None,
        step_count=task.step_count if step_count is None else step_count,
        checkpoint=task.checkpoint if step_count is None else progress.checkpoint,
    )


def finished_only(statuses: Iterable[TaskStatus]) -> tuple[TaskStatus, ...]:
    """Of `statuses`, those of finished tasks, each once: what a purge may delete."""
    wanted = set(statuses)
    return tuple(status for status in FINISHED if status in wanted)


def released(task: TaskRecord, now: datetime) -> TaskRecord:
    """The task handed back to the queue by its runner, claimable at once."""
    return replace(
        task,
        status="pending",
        lease_owner=None,
        lease_expires_at=None,
        run_after=now,
        updated_at=now,
    )


def cancelled(task: TaskRecord, now: datetime) -> TaskRecord:
    """The task cancelled now: finished, with the error `Cancelled`, and nobody's."""
    return replace(
        task,
        status="cancelled",
        updated_at=now,
        error_kind=CANCELLED.kind,
        error_message=CANCELLED.message,
        lease_owner=None,
        lease_expires_at=None,
        run_after=None,
        finished_at=now,
    )
