"""The task repository in memory: the twin of the SQL one, for unit tests that drive the
real service and workers without a database. It keeps the same rules, in the same words
(`records.progressed`, `records.cancelled`): leases decide who may write a running task,
and steps are appended once, never rewritten. The contract suite holds it to the SQL
adapters, method by method."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from taskrunner.errors import LeaseLostError, StoreError
from taskrunner.store.records import (
    QUEUE_STATS_LIMIT,
    CancelOutcome,
    FlowVersion,
    Page,
    Position,
    Progress,
    Purged,
    QueueStats,
    StepRecord,
    TaskFilter,
    TaskHead,
    TaskRecord,
    TaskStatus,
    cancelled,
    field_names,
    finished_only,
    progressed,
    released,
)
from taskrunner.tools import JsonObject

_HEAD_FIELDS = field_names(TaskHead)


class InMemoryTaskRepository:
    def __init__(self) -> None:
        self._tasks: dict[uuid.UUID, TaskRecord] = {}
        self._steps: dict[uuid.UUID, list[StepRecord]] = {}
        self._versions: dict[str, FlowVersion] = {}
        self._lock = threading.Lock()
        self._woken = threading.Event()
        self.commits = 0
        """How many writes were committed: what a database would count as transactions."""

    # -- writing ------------------------------------------------------------------------

    def create_task(self, task: TaskRecord, version: FlowVersion) -> TaskRecord | None:
        with self._lock:
            if task.idempotency_key is not None:
                for existing in self._tasks.values():
                    if existing.idempotency_key == task.idempotency_key:
                        return existing
            if task.id in self._tasks:
                raise StoreError(f"a task with id {task.id} exists already")
            self._versions.setdefault(version.digest, version)
            self._tasks[task.id] = task
            self._steps[task.id] = []
            self.commits += 1
        if task.status == "pending":
            self._woken.set()
        return None

    def record_step(self, owner: str, step: StepRecord, progress: Progress) -> TaskStatus:
        with self._lock:
            task = self._held(step.task_id, owner)
            steps = self._steps[step.task_id]
            if any(existing.seq == step.seq for existing in steps):
                raise StoreError(f"step {step.seq} of task {step.task_id} is recorded already")
            steps.append(step)
            return self._move(progressed(task, progress, step.seq))

    def update_task(self, task_id: uuid.UUID, owner: str, progress: Progress) -> TaskStatus:
        with self._lock:
            return self._move(progressed(self._held(task_id, owner), progress, None))

    def claim(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[TaskRecord]:
        with self._lock:
            due = sorted(
                (
                    task
                    for task in self._tasks.values()
                    if task.status == "pending"
                    and task.run_after is not None
                    and task.run_after <= now
                ),
                key=lambda task: task.run_after or now,
            )
            return self._take(due[:limit], owner, now, lease_expires_at)

    def claim_abandoned(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[TaskRecord]:
        with self._lock:
            abandoned = [
                task
                for task in self._tasks.values()
                if task.status == "running"
                and task.lease_expires_at is not None
                and task.lease_expires_at < now
            ]
            return self._take(abandoned[:limit], owner, now, lease_expires_at)

    def renew(self, owner: str, task_ids: list[uuid.UUID], lease_expires_at: datetime) -> None:
        with self._lock:
            for task_id in task_ids:
                task = self._tasks.get(task_id)
                if task is not None and task.lease_owner == owner and task.status == "running":
                    self._tasks[task_id] = replace(task, lease_expires_at=lease_expires_at)

    def release(self, task_id: uuid.UUID, owner: str, now: datetime) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.lease_owner != owner or task.status != "running":
                return
            self._tasks[task_id] = released(task, now)
            self.commits += 1
        self._woken.set()

    def cancel(self, task_id: uuid.UUID, now: datetime) -> CancelOutcome:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return "missing"
            if task.finished:
                return "finished"
            self._cancel([task, *self._descendants([task_id])], now)
            self.commits += 1
            return "cancelled" if task.status == "pending" else "requested"

    # -- child tasks --------------------------------------------------------------------

    def spawn_children(
        self, children: Sequence[TaskRecord], versions: Sequence[FlowVersion]
    ) -> list[TaskRecord]:
        if not children:
            return []
        first = children[0]
        with self._lock:
            for version in versions:
                self._versions.setdefault(version.digest, version)
            taken = {task.child_key for task in self._call(first)}
            for child in children:
                if child.child_key not in taken:
                    self._tasks[child.id] = child
                    self._steps[child.id] = []
            self.commits += 1
            return self._call(first)

    def children_of(self, parent_id: uuid.UUID, seq: int, attempt: int) -> list[TaskRecord]:
        with self._lock:
            return [
                task
                for task in self._tasks.values()
                if (task.parent_id, task.parent_seq, task.parent_attempt)
                == (parent_id, seq, attempt)
            ]

    def make_due(self, task_ids: Sequence[uuid.UUID], now: datetime) -> int:
        made = 0
        with self._lock:
            for task_id in task_ids:
                task = self._tasks.get(task_id)
                if task is not None and task.status == "pending" and task.run_after is None:
                    self._tasks[task_id] = replace(task, run_after=now, updated_at=now)
                    made += 1
            self.commits += 1
        if made:
            self._woken.set()
        return made

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
        if limit < 1:
            return []
        with self._lock:
            due = sorted(
                (
                    task
                    for task in self._tasks.values()
                    if (task.parent_id, task.parent_seq, task.parent_attempt)
                    == (parent_id, seq, attempt)
                    and task.status == "pending"
                    and task.run_after is not None
                    and task.run_after <= now
                ),
                key=lambda task: task.run_after or now,
            )
            return self._take(due[:limit], owner, now, lease_expires_at)

    def cancel_children(self, parent_id: uuid.UUID, seq: int, attempt: int, now: datetime) -> None:
        with self._lock:
            call = [
                task
                for task in self._tasks.values()
                if (task.parent_id, task.parent_seq, task.parent_attempt)
                == (parent_id, seq, attempt)
            ]
            self._cancel([*call, *self._descendants([task.id for task in call])], now)
            self.commits += 1

    def purge(
        self, finished_before: datetime, statuses: Sequence[TaskStatus], limit: int
    ) -> Purged:
        with self._lock:
            chosen = self._purgeable(finished_before, statuses)[: max(limit, 0)]
            doomed = [*chosen, *self._descendants([task.id for task in chosen])]
            steps = sum(len(self._steps.pop(task.id, ())) for task in doomed)
            for task in doomed:
                del self._tasks[task.id]
            if doomed:
                self.commits += 1
        return Purged(len(doomed), steps)

    def count_purgeable(self, finished_before: datetime, statuses: Sequence[TaskStatus]) -> Purged:
        with self._lock:
            chosen = self._purgeable(finished_before, statuses)
            doomed = [*chosen, *self._descendants([task.id for task in chosen])]
            return Purged(len(doomed), sum(len(self._steps[task.id]) for task in doomed))

    def wait_for_work(self, timeout: float) -> bool:
        woken = self._woken.wait(timeout)
        self._woken.clear()
        return woken

    # -- reading ------------------------------------------------------------------------

    def get_task(self, task_id: uuid.UUID) -> TaskRecord | None:
        with self._lock:
            return self._tasks.get(task_id)

    def steps_of(self, task_id: uuid.UUID) -> list[StepRecord]:
        with self._lock:
            return list(self._steps.get(task_id, ()))

    def steps_page(self, task_id: uuid.UUID, after: int, limit: int) -> list[StepRecord]:
        with self._lock:
            # Steps are appended in seq order (the service records them so).
            steps = self._steps.get(task_id, [])
            return [step for step in steps if step.seq > after][:limit]

    def list_tasks(self, where: TaskFilter, limit: int, after: Position | None) -> Page:
        with self._lock:
            found = [
                task
                for task in self._tasks.values()
                if task.parent_id == where.parent
                and (where.status is None or task.status == where.status)
                and (where.flow is None or task.flow_name == where.flow)
                and (after is None or (task.created_at, task.id) < after)
            ]
        found.sort(key=lambda task: (task.created_at, task.id), reverse=True)
        items = tuple(
            TaskHead(**{name: getattr(task, name) for name in _HEAD_FIELDS})
            for task in found[:limit]
        )
        more = len(found) > limit
        return Page(items, (items[-1].created_at, items[-1].id) if more else None)

    def flow_definition(self, digest: str) -> JsonObject | None:
        with self._lock:
            version = self._versions.get(digest)
        return None if version is None else version.definition

    def queue_stats(self, now: datetime) -> QueueStats:
        with self._lock:
            queued = sorted(
                task.run_after
                for task in self._tasks.values()
                if task.status == "pending" and task.run_after is not None
            )[:QUEUE_STATS_LIMIT]
        ready = sum(due <= now for due in queued)
        return QueueStats(ready, len(queued) - ready, queued[0] if ready else None)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass

    # -- helpers ------------------------------------------------------------------------

    def _held(self, task_id: uuid.UUID, owner: str) -> TaskRecord:
        task = self._tasks.get(task_id)
        if task is None or task.lease_owner != owner or task.status != "running":
            raise LeaseLostError
        return task

    def _purgeable(
        self, finished_before: datetime, statuses: Sequence[TaskStatus]
    ) -> list[TaskRecord]:
        """The tasks a purge may delete, the longest finished first (as the SQL orders)."""
        wanted = finished_only(statuses)
        found = [
            task
            for task in self._tasks.values()
            if task.status in wanted
            and task.parent_id is None
            and task.finished_at is not None
            and task.finished_at < finished_before
        ]
        found.sort(key=lambda task: (task.finished_at or finished_before, task.id))
        return found

    def _call(self, child: TaskRecord) -> list[TaskRecord]:
        """The children of `child`'s fan-out call."""
        call = (child.parent_id, child.parent_seq, child.parent_attempt)
        return [
            task
            for task in self._tasks.values()
            if (task.parent_id, task.parent_seq, task.parent_attempt) == call
        ]

    def _descendants(self, roots: list[uuid.UUID]) -> list[TaskRecord]:
        """The children of `roots`, their children…"""
        found: list[TaskRecord] = []
        parents = set(roots)
        while parents:
            layer = [task for task in self._tasks.values() if task.parent_id in parents]
            found += layer
            parents = {task.id for task in layer}
        return found

    def _cancel(self, tasks: list[TaskRecord], now: datetime) -> None:
        """Cancel the pending ones of `tasks` now; ask the running ones to stop."""
        for task in tasks:
            if task.status == "pending":
                self._tasks[task.id] = cancelled(task, now)
            elif task.status == "running":
                self._tasks[task.id] = replace(task, cancel_requested=True, updated_at=now)

    def _move(self, task: TaskRecord) -> TaskStatus:
        self._tasks[task.id] = task
        self.commits += 1
        if task.status == "pending":
            self._woken.set()
        return task.status

    def _take(
        self, tasks: list[TaskRecord], owner: str, now: datetime, lease_expires_at: datetime
    ) -> list[TaskRecord]:
        claimed = [
            replace(
                task,
                status="running",
                lease_owner=owner,
                lease_expires_at=lease_expires_at,
                run_after=None,
                started_at=task.started_at or now,
                updated_at=now,
            )
            for task in tasks
        ]
        for task in claimed:
            self._tasks[task.id] = task
        self.commits += 1
        return claimed
