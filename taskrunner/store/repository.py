"""The port between the service and the database: what the service asks of a store.

`SqlTaskRepository` implements it on PostgreSQL and SQLite; `InMemoryTaskRepository` is
its twin for unit tests that drive the real service without a database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from taskrunner.engine.interpreter import Step, StepError
from taskrunner.engine.model import Flow
from taskrunner.tools import JsonObject
from taskrunner.views import TaskStatus, TaskSummary, TaskView

Position = tuple[datetime, uuid.UUID]
"""Where a page of tasks ends: the (created_at, id) of its last task."""


@dataclass(frozen=True, slots=True)
class NewTask:
    id: uuid.UUID
    flow: Flow
    input: JsonObject
    status: TaskStatus
    current_state: str
    created_at: datetime
    started_at: datetime | None


@dataclass(frozen=True, slots=True)
class RecordedStep:
    step: Step
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class Progress:
    """How a task stands after a step: written in the same transaction as the step."""

    status: TaskStatus
    current_state: str
    updated_at: datetime
    output: JsonObject | None = None
    error: StepError | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskFilter:
    status: TaskStatus | None = None
    flow: str | None = None


def unstorable_text(value: object, path: str = "") -> str | None:
    """The JSON pointer of the first string (or key) that a database cannot store, if any:
    PostgreSQL refuses the NUL character in text and JSONB, and no database stores lone
    UTF-16 surrogates (which JSON's `\\ud800` escapes can produce)."""
    if isinstance(value, str):
        return None if _storable(value) else path or "/"
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}/{key}"
            if not _storable(key):
                return where
            found = unstorable_text(item, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable_text(item, f"{path}/{index}")
            if found is not None:
                return found
    return None


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class TaskRepository(Protocol):
    def create_task(self, task: NewTask) -> None:
        """Store the task (and its flow version, if new), committed."""

    def record_step(self, task_id: uuid.UUID, step: RecordedStep, progress: Progress) -> None:
        """Append the step and update the task, in one commit."""

    def update_task(self, task_id: uuid.UUID, progress: Progress) -> None:
        """Update the task without a step (a flow that ends before any tool runs)."""

    def get_task(self, task_id: uuid.UUID) -> TaskView | None: ...

    def list_tasks(
        self, where: TaskFilter, limit: int, after: Position | None
    ) -> list[TaskSummary]:
        """At most `limit` tasks, newest first, strictly after `after`."""
