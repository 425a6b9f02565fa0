"""The task repository in memory: the twin of the SQL one, for unit tests of the service.
It keeps the same rules: leases decide who may write a running task, and steps are
appended once, never rewritten."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import JsonValue

from taskrunner.engine.steps import Step
from taskrunner.store.repository import (
    CANCELLED,
    CancelOutcome,
    ClaimedTask,
    LeaseLostError,
    NewTask,
    Position,
    Progress,
    RecordedStep,
    TaskFilter,
)
from taskrunner.views import (
    ErrorView,
    StepView,
    TaskStatus,
    TaskSummary,
    TaskView,
    error_view,
    step_view,
)


@dataclass
class _Task:
    view: TaskView
    key: str | None
    run_after: datetime | None
    owner: str | None
    lease_expires_at: datetime | None
    digest: str
    steps: list[Step] = field(default_factory=list)
    step_views: list[StepView] = field(default_factory=list)


class InMemoryTaskRepository:
    def __init__(self) -> None:
        self._tasks: dict[uuid.UUID, _Task] = {}
        self._lock = threading.Lock()
        self.flow_versions: dict[str, dict[str, JsonValue]] = {}
        self.commits = 0

    def create_task(self, task: NewTask) -> TaskView | None:
        with self._lock:
            if task.idempotency_key is not None:
                for existing in self._tasks.values():
                    if existing.key == task.idempotency_key:
                        return self._view(existing)
            self.flow_versions.setdefault(
                task.flow.digest, task.flow.model_dump(mode="json", exclude_unset=True)
            )
            view = TaskView(
                id=task.id,
                flow=task.flow.name,
                flow_version=task.flow.digest,
                status=task.status,
                current_state=task.current_state,
                created_at=task.created_at,
                updated_at=task.created_at,
                started_at=task.started_at,
                finished_at=None,
                input=task.input,
                output=None,
                steps=[],
            )
            self._tasks[task.id] = _Task(
                view,
                task.idempotency_key,
                task.run_after,
                task.lease_owner,
                task.lease_expires_at,
                task.flow.digest,
            )
            self.commits += 1
            return None

    def record_step(
        self, task_id: uuid.UUID, owner: str, step: RecordedStep, progress: Progress
    ) -> TaskStatus:
        with self._lock:
            task = self._held(task_id, owner)
            record = step.step
            if any(existing.seq == record.seq for existing in task.steps):
                raise KeyError(f"step {record.seq} of task {task_id} is already recorded")
            task.steps.append(record)
            task.step_views.append(step_view(record, step.started_at, step.finished_at))
            return self._apply(task, progress)

    def update_task(self, task_id: uuid.UUID, owner: str, progress: Progress) -> TaskStatus:
        with self._lock:
            return self._apply(self._held(task_id, owner), progress)

    def claim(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[ClaimedTask]:
        with self._lock:
            due = sorted(
                (
                    task
                    for task in self._tasks.values()
                    if task.view.status == "pending"
                    and task.run_after is not None
                    and task.run_after <= now
                ),
                key=lambda task: task.run_after or now,
            )
            return self._take(due[:limit], owner, now, lease_expires_at)

    def claim_abandoned(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[ClaimedTask]:
        with self._lock:
            abandoned = [
                task
                for task in self._tasks.values()
                if task.view.status == "running"
                and task.lease_expires_at is not None
                and task.lease_expires_at < now
            ]
            return self._take(abandoned[:limit], owner, now, lease_expires_at)

    def _take(
        self, tasks: list[_Task], owner: str, now: datetime, lease_expires_at: datetime
    ) -> list[ClaimedTask]:
        claimed = []
        for task in tasks:
            task.owner, task.lease_expires_at, task.run_after = owner, lease_expires_at, None
            task.view = task.view.model_copy(
                update={
                    "status": "running",
                    "started_at": task.view.started_at or now,
                    "updated_at": now,
                }
            )
            claimed.append(
                ClaimedTask(
                    task.view.id,
                    task.digest,
                    task.view.input,
                    task.view.current_state or "",
                    len(task.steps),
                    task.view.cancel_requested,
                )
            )
        self.commits += 1
        return claimed

    def renew(self, owner: str, task_ids: list[uuid.UUID], lease_expires_at: datetime) -> None:
        with self._lock:
            for task_id in task_ids:
                task = self._tasks.get(task_id)
                if task is not None and task.owner == owner and task.view.status == "running":
                    task.lease_expires_at = lease_expires_at

    def release(self, task_id: uuid.UUID, owner: str, now: datetime) -> None:
        with self._lock:
            task = self._tasks[task_id]
            if task.owner == owner and task.view.status == "running":
                task.owner, task.lease_expires_at, task.run_after = None, None, now
                task.view = task.view.model_copy(update={"status": "pending", "updated_at": now})

    def cancel(self, task_id: uuid.UUID, now: datetime) -> CancelOutcome:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return "missing"
            if task.view.status == "pending":
                task.run_after = None
                task.view = task.view.model_copy(update=self._cancelled(now))
                return "cancelled"
            if task.view.status == "running":
                task.view = task.view.model_copy(
                    update={"cancel_requested": True, "updated_at": now}
                )
                return "requested"
            return "finished"

    def steps_of(self, task_id: uuid.UUID) -> list[Step]:
        with self._lock:
            return list(self._tasks[task_id].steps)

    def flow_definition(self, digest: str) -> dict[str, JsonValue] | None:
        return self.flow_versions.get(digest)

    def get_task(self, task_id: uuid.UUID) -> TaskView | None:
        with self._lock:
            task = self._tasks.get(task_id)
            return None if task is None else self._view(task)

    def list_tasks(
        self, where: TaskFilter, limit: int, after: Position | None
    ) -> list[TaskSummary]:
        with self._lock:
            found = [
                task.view
                for task in self._tasks.values()
                if (where.status is None or task.view.status == where.status)
                and (where.flow is None or task.view.flow == where.flow)
                and (after is None or (task.view.created_at, task.view.id) < after)
            ]
        found.sort(key=lambda view: (view.created_at, view.id), reverse=True)
        fields = set(TaskSummary.model_fields)
        return [TaskSummary(**view.model_dump(include=fields)) for view in found[:limit]]

    def _held(self, task_id: uuid.UUID, owner: str) -> _Task:
        task = self._tasks[task_id]
        if task.owner != owner or task.view.status != "running":
            raise LeaseLostError
        return task

    def _view(self, task: _Task) -> TaskView:
        return task.view.model_copy(update={"steps": list(task.step_views)})

    @staticmethod
    def _cancelled(now: datetime) -> dict[str, object]:
        return {
            "status": "cancelled",
            "error": ErrorView(kind=CANCELLED.kind, message=CANCELLED.message),
            "updated_at": now,
            "finished_at": now,
        }

    def _apply(self, task: _Task, progress: Progress) -> TaskStatus:
        update: dict[str, object] = {
            "status": progress.status,
            "current_state": progress.current_state,
            "updated_at": progress.updated_at,
        }
        if progress.output is not None:
            update["output"] = progress.output
        if progress.error is not None:
            update["error"] = error_view(progress.error)
        if progress.finished_at is not None:
            update["finished_at"] = progress.finished_at
        if progress.status == "running":
            task.lease_expires_at = progress.lease_expires_at
        else:
            task.owner, task.lease_expires_at = None, None
            task.run_after = progress.run_after
        self.commits += 1
        if task.view.cancel_requested and progress.status in ("running", "pending"):
            update.update(self._cancelled(progress.updated_at))
            task.owner, task.lease_expires_at, task.run_after = None, None, None
            task.view = task.view.model_copy(update=update)
            return "cancelled"
        task.view = task.view.model_copy(update=update)
        return progress.status
