"""The task repository on PostgreSQL and SQLite, with SQLAlchemy Core statements: each
method is one short transaction with the fewest statements that do the job."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from taskrunner.store.database import Database
from taskrunner.store.repository import NewTask, Position, Progress, RecordedStep, TaskFilter
from taskrunner.store.tables import FlowVersionRow, TaskRow, TaskStepRow
from taskrunner.views import ErrorView, StepView, TaskSummary, TaskView

_SUMMARY_COLUMNS = (
    TaskRow.id,
    TaskRow.flow_name,
    TaskRow.flow_digest,
    TaskRow.status,
    TaskRow.current_state,
    TaskRow.error_kind,
    TaskRow.error_message,
    TaskRow.created_at,
    TaskRow.updated_at,
    TaskRow.started_at,
    TaskRow.finished_at,
)


class SqlTaskRepository:
    def __init__(self, database: Database) -> None:
        self._engine = database.engine
        self._dialect = database.dialect
        self._known_versions: set[str] = set()

    def create_task(self, task: NewTask) -> None:
        with self._engine.begin() as connection:
            self._save_flow_version(connection, task)
            connection.execute(
                insert(TaskRow).values(
                    id=task.id,
                    flow_name=task.flow.name,
                    flow_digest=task.flow.digest,
                    status=task.status,
                    input=task.input,
                    current_state=task.current_state,
                    created_at=task.created_at,
                    updated_at=task.created_at,
                    started_at=task.started_at,
                )
            )
        self._known_versions.add(task.flow.digest)

    def record_step(self, task_id: uuid.UUID, step: RecordedStep, progress: Progress) -> None:
        record = step.step
        with self._engine.begin() as connection:
            connection.execute(
                insert(TaskStepRow).values(
                    task_id=task_id,
                    seq=record.seq,
                    state=record.state,
                    tool=record.tool,
                    attempt=record.attempt,
                    status=record.status,
                    input=record.input,
                    output=record.output,
                    error_kind=record.error.kind if record.error else None,
                    error_message=record.error.message if record.error else None,
                    started_at=step.started_at,
                    finished_at=step.finished_at,
                )
            )
            connection.execute(_progress(task_id, progress))

    def update_task(self, task_id: uuid.UUID, progress: Progress) -> None:
        with self._engine.begin() as connection:
            connection.execute(_progress(task_id, progress))

    def get_task(self, task_id: uuid.UUID) -> TaskView | None:
        with self._engine.connect() as connection:
            task = connection.execute(
                select(*_SUMMARY_COLUMNS, TaskRow.input, TaskRow.output).where(
                    TaskRow.id == task_id
                )
            ).one_or_none()
            if task is None:
                return None
            steps = connection.execute(
                select(TaskStepRow).where(TaskStepRow.task_id == task_id).order_by(TaskStepRow.seq)
            ).all()
        return TaskView(
            **_summary_fields(task),
            input=task.input,
            output=task.output,
            steps=[_step_view(row) for row in steps],
        )

    def list_tasks(
        self, where: TaskFilter, limit: int, after: Position | None
    ) -> list[TaskSummary]:
        query = select(*_SUMMARY_COLUMNS)
        if where.status is not None:
            query = query.where(TaskRow.status == where.status)
        if where.flow is not None:
            query = query.where(TaskRow.flow_name == where.flow)
        if after is not None:
            query = query.where(tuple_(TaskRow.created_at, TaskRow.id) < tuple_(*after))
        query = query.order_by(TaskRow.created_at.desc(), TaskRow.id.desc()).limit(limit)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [TaskSummary(**_summary_fields(row)) for row in rows]

    def _save_flow_version(self, connection: Connection, task: NewTask) -> None:
        flow = task.flow
        if flow.digest in self._known_versions:
            return
        dialect_insert: Any = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        connection.execute(
            dialect_insert(FlowVersionRow)
            .values(
                digest=flow.digest,
                name=flow.name,
                definition=flow.model_dump(mode="json", by_alias=True, exclude_unset=True),
                created_at=task.created_at,
            )
            .on_conflict_do_nothing(index_elements=["digest"])
        )


def _progress(task_id: uuid.UUID, progress: Progress) -> Any:
    values: dict[str, Any] = {
        "status": progress.status,
        "current_state": progress.current_state,
        "updated_at": progress.updated_at,
    }
    if progress.output is not None:
        values["output"] = progress.output
    if progress.error is not None:
        values["error_kind"] = progress.error.kind
        values["error_message"] = progress.error.message
    if progress.finished_at is not None:
        values["finished_at"] = progress.finished_at
    return update(TaskRow).where(TaskRow.id == task_id).values(**values)


def _summary_fields(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "flow": row.flow_name,
        "flow_version": row.flow_digest,
        "status": row.status,
        "current_state": row.current_state,
        "error": _error(row.error_kind, row.error_message),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def _error(kind: str | None, message: str | None) -> ErrorView | None:
    return None if kind is None else ErrorView(kind=kind, message=message or "")


def _step_view(step: Row[Any]) -> StepView:
    return StepView(
        seq=step.seq,
        state=step.state,
        tool=step.tool,
        attempt=step.attempt,
        status=step.status,
        input=step.input,
        output=step.output,
        error=_error(step.error_kind, step.error_message),
        started_at=step.started_at,
        finished_at=step.finished_at,
    )
