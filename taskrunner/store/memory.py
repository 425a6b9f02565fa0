"""The task repository in memory: the twin of the SQL one, for unit tests of the service.
It keeps the same rules: steps are appended once, never rewritten."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from taskrunner.store.repository import NewTask, Position, Progress, RecordedStep, TaskFilter
from taskrunner.views import ErrorView, StepView, TaskSummary, TaskView


@dataclass
class _Task:
    view: TaskView
    steps: list[StepView] = field(default_factory=list)


class InMemoryTaskRepository:
    def __init__(self) -> None:
        self._tasks: dict[uuid.UUID, _Task] = {}
        self.flow_versions: dict[str, str] = {}
        self.commits = 0

    def create_task(self, task: NewTask) -> None:
        if task.id in self._tasks:
            raise KeyError(f"task {task.id} exists")
        self.flow_versions.setdefault(task.flow.digest, task.flow.canonical)
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
        self._tasks[task.id] = _Task(view)
        self.commits += 1

    def record_step(self, task_id: uuid.UUID, step: RecordedStep, progress: Progress) -> None:
        task = self._tasks[task_id]
        record = step.step
        if any(existing.seq == record.seq for existing in task.steps):
            raise KeyError(f"step {record.seq} of task {task_id} is already recorded")
        task.steps.append(
            StepView(
                seq=record.seq,
                state=record.state,
                tool=record.tool,
                attempt=record.attempt,
                status=record.status,
                input=record.input,
                output=record.output,
                error=ErrorView(kind=record.error.kind, message=record.error.message)
                if record.error
                else None,
                started_at=step.started_at,
                finished_at=step.finished_at,
            )
        )
        self._apply(task, progress)

    def update_task(self, task_id: uuid.UUID, progress: Progress) -> None:
        self._apply(self._tasks[task_id], progress)

    def get_task(self, task_id: uuid.UUID) -> TaskView | None:
        task = self._tasks.get(task_id)
        return None if task is None else task.view.model_copy(update={"steps": list(task.steps)})

    def list_tasks(
        self, where: TaskFilter, limit: int, after: Position | None
    ) -> list[TaskSummary]:
        found = [
            task.view
            for task in self._tasks.values()
            if (where.status is None or task.view.status == where.status)
            and (where.flow is None or task.view.flow == where.flow)
            and (after is None or (task.view.created_at, task.view.id) < after)
        ]
        found.sort(key=lambda view: (view.created_at, view.id), reverse=True)
        return [
            TaskSummary(**view.model_dump(include=set(TaskSummary.model_fields)))
            for view in found[:limit]
        ]

    def _apply(self, task: _Task, progress: Progress) -> None:
        update: dict[str, object] = {
            "status": progress.status,
            "current_state": progress.current_state,
            "updated_at": progress.updated_at,
        }
        if progress.output is not None:
            update["output"] = progress.output
        if progress.error is not None:
            update["error"] = ErrorView(kind=progress.error.kind, message=progress.error.message)
        if progress.finished_at is not None:
            update["finished_at"] = progress.finished_at
        task.view = task.view.model_copy(update=update)
        self.commits += 1
