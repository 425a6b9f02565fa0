"""The port between the service and a store: what the service (and its workers) ask of
one, in the store's own records (`records.py`).

Three adapters implement it: `SqlTaskRepository` on PostgreSQL and on SQLite, and
`InMemoryTaskRepository`, the twin for unit tests that drive the real service without a
database. One contract suite (`tests/contract/`) runs every method on all three.

Who may write a running task is decided by its lease: every write made on behalf of a
runner names the lease owner and succeeds only while that owner holds the task, else it
raises `LeaseLostError` and changes nothing. A step is recorded once: (task, seq) is a key.
An adapter raises `StoreUnavailableError` when its database cannot be reached, and
`StoreError` for any other failure of it: nothing of its driver's errors goes past it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from taskrunner.store.records import (
    CancelOutcome,
    FlowVersion,
    Page,
    Position,
    Progress,
    Purged,
    QueueStats,
    StepRecord,
    TaskFilter,
    TaskRecord,
    TaskStatus,
)
from taskrunner.tools import JsonObject


class TaskRepository(Protocol):
    def create_task(self, task: TaskRecord, version: FlowVersion) -> TaskRecord | None:
        """Store the task (and its flow version, if new), committed; wake idle workers if
        it is pending. If its idempotency key is taken, store nothing and return the task
        that has it."""

    def record_step(self, owner: str, step: StepRecord, progress: Progress) -> TaskStatus:
        """Append the step and update its task, at once, if `owner` holds the task.
        Returns the status the task now has (`cancelled` if that was asked meanwhile)."""

    def update_task(self, task_id: uuid.UUID, owner: str, progress: Progress) -> TaskStatus:
        """Update the task without a step, if `owner` holds it."""

    def claim(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[TaskRecord]:
        """Take up to `limit` due pending tasks, the longest due first."""

    def claim_abandoned(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[TaskRecord]:
        """Take up to `limit` running tasks whose lease ran out (their runner died)."""

    def renew(self, owner: str, task_ids: list[uuid.UUID], lease_expires_at: datetime) -> None:
        """Extend the leases `owner` holds on these tasks."""

    def release(self, task_id: uuid.UUID, owner: str, now: datetime) -> None:
        """Give a held task back to the queue, claimable at once (nothing if not held)."""

    def cancel(self, task_id: uuid.UUID, now: datetime) -> CancelOutcome:
        """Cancel a pending task now; ask a running one to stop before its next step.
        Either way its children (and theirs) are cancelled alike, at once."""

    # -- child tasks: a fan-out call's branches, map items or sub-flow run ------------------

    def spawn_children(
        self, children: Sequence[TaskRecord], versions: Sequence[FlowVersion]
    ) -> list[TaskRecord]:
        """Store the children of one fan-out call (they share `parent_id`, `parent_seq`,
        `parent_attempt`) and the flow versions they run, those not stored yet, in one
        transaction; return every child the call has, new or found. A child already
        stored at a position (`child_key`) is kept as it is: a resumed parent finds the
        children it started. Children are stored as they are given: pending with no
        `run_after` is held back, claimable by no one until `make_due`."""

    def children_of(self, parent_id: uuid.UUID, seq: int, attempt: int) -> list[TaskRecord]:
        """The children of the parent's fan-out call (`seq`, `attempt`), in any order."""

    def make_due(self, task_ids: Sequence[uuid.UUID], now: datetime) -> int:
        """Let any worker claim these held-back tasks from now on (wake idle workers);
        how many were held back."""

    def claim_children(
        self,
        owner: str,
        parent_id: uuid.UUID,
        seq: int,
        attempt: int,
        limit: int,
        now: datetime,
        lease_expires_at: datetime,
    ) -> list[TaskRecord]:
        """Take up to `limit` due pending children of the call, as `claim` takes tasks."""

    def cancel_children(self, parent_id: uuid.UUID, seq: int, attempt: int, now: datetime) -> None:
        """Cancel the call's pending children (and theirs) now; ask the running to stop."""

    def purge(
        self, finished_before: datetime, statuses: Sequence[TaskStatus], limit: int
    ) -> Purged:
        """Delete up to `limit` tasks that finished before `finished_before` in one of
        `statuses`, the longest finished first, with their steps and their children (and
        theirs, with their steps), in one short transaction (so that no lock is held for
        long); returns how many tasks and steps went, children counted. A child is never
        chosen on its own: it goes with its parent.

        Only finished statuses count: a pending or running task is never deleted, whatever
        `statuses` says. Flow versions stay: tasks pin them, and they are few. Concurrent
        purges take disjoint tasks (on PostgreSQL they skip each other's locked rows)."""

    def count_purgeable(self, finished_before: datetime, statuses: Sequence[TaskStatus]) -> Purged:
        """How many tasks (and steps of theirs) `purge` would delete, in all its batches."""

    def queue_stats(self, now: datetime) -> QueueStats:
        """How many claimable tasks are due at `now` and later, and the longest-due one's
        due time, in one bounded read (`QUEUE_STATS_LIMIT`), for metrics scraped often."""

    def wait_for_work(self, timeout: float) -> bool:
        """Wait until a task may have become due (one was queued or handed back), or
        `timeout` seconds pass; True when woken. A wake-up may be spurious: claim and see."""

    def get_task(self, task_id: uuid.UUID) -> TaskRecord | None: ...

    def steps_of(self, task_id: uuid.UUID) -> list[StepRecord]:
        """The recorded steps of a task, in order."""

    def steps_page(self, task_id: uuid.UUID, after: int, limit: int) -> list[StepRecord]:
        """At most `limit` recorded steps of a task, in order, those whose `seq` is
        greater than `after` (no row for an unknown task)."""

    def list_tasks(self, where: TaskFilter, limit: int, after: Position | None) -> Page:
        """At most `limit` tasks, newest first, strictly after `after`: those started by
        requests, or the children of `where.parent`."""

    def flow_definition(self, digest: str) -> JsonObject | None:
        """The stored definition of a flow version."""

    def ping(self) -> bool:
        """Whether the store can be reached now."""

    def close(self) -> None:
        """Let go of connections (the store itself stays)."""
