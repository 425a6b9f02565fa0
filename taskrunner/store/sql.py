"""The task repository on PostgreSQL and SQLite, with SQLAlchemy Core statements: each
method is one short transaction with the fewest statements that do the job.

Claiming uses `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of workers
take disjoint tasks without waiting on each other. SQLite has one writer at a time and
no such clause; there, only the workers of one process claim.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import JsonValue
from sqlalchemy import Select, func, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from taskrunner.engine.steps import Step, StepError
from taskrunner.store import rows
from taskrunner.store import statements as stmt
from taskrunner.store.database import Database
from taskrunner.store.jsoncodec import dumps
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
from taskrunner.store.statements import NOTIFY_CHANNEL
from taskrunner.store.tables import FlowVersionRow, TaskRow
from taskrunner.views import TaskStatus, TaskSummary, TaskView


class SqlTaskRepository:
    def __init__(self, database: Database) -> None:
        self._engine = database.engine
        self._single = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self._postgres = database.is_postgres
        self._insert: Any = postgresql.insert if self._postgres else sqlite.insert
        self._known_versions: set[str] = set()

    # -- writing ------------------------------------------------------------------------

    def create_task(self, task: NewTask) -> TaskView | None:
        if self._postgres and task.idempotency_key is None:
            self._pg_create_task(task)
            return None
        row = {
            "id": task.id,
            "flow_name": task.flow.name,
            "flow_digest": task.flow.digest,
            "status": task.status,
            "input": task.input,
            "current_state": task.current_state,
            "created_at": task.created_at,
            "updated_at": task.created_at,
            "started_at": task.started_at,
            "idempotency_key": task.idempotency_key,
            "run_after": task.run_after,
            "lease_owner": task.lease_owner,
            "lease_expires_at": task.lease_expires_at,
            "cancel_requested": False,
            "step_count": 0,
        }
        with self._engine.begin() as connection:
            self._save_flow_version(connection, task)
            if task.idempotency_key is not None:
                statement = (
                    self._insert(TaskRow)
                    .values(row)
                    .on_conflict_do_nothing(index_elements=["idempotency_key"])
                    .returning(TaskRow.id)
                )
                if connection.execute(statement).first() is None:
                    existing = connection.execute(
                        select(TaskRow.id).where(TaskRow.idempotency_key == task.idempotency_key)
                    ).scalar_one()
                    return self._task(connection, existing)
            else:
                connection.execute(stmt.INSERT_TASK, row)
            if task.status == "pending" and self._postgres:
                connection.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        self._known_versions.add(task.flow.digest)
        return None

    def record_step(
        self, task_id: uuid.UUID, owner: str, step: RecordedStep, progress: Progress
    ) -> TaskStatus:
        record = step.step
        if self._postgres:
            parameters = _pg_progress(task_id, owner, progress)
            parameters.update(
                seq=record.seq,
                step_state=record.state,
                tool=record.tool,
                attempt=record.attempt,
                step_status=record.status,
                step_input=dumps(record.input),
                step_output=None if record.output is None else dumps(record.output),
                step_error_kind=record.error.kind if record.error else None,
                step_error_message=record.error.message if record.error else None,
                started_at=step.started_at,
                step_finished_at=step.finished_at,
            )
            return self._pg_progress(stmt.PG_RECORD_STEP, parameters, task_id, progress)
        with self._engine.begin() as connection:
            # The update comes first: it checks the lease and locks the row, so that a
            # runner that lost its task writes nothing at all.
            status = self._progress(connection, task_id, owner, progress, record.seq)
            connection.execute(
                stmt.INSERT_STEP,
                {
                    "task_id": task_id,
                    "seq": record.seq,
                    "state": record.state,
                    "tool": record.tool,
                    "attempt": record.attempt,
                    "status": record.status,
                    "input": record.input,
                    "output": record.output,
                    "error_kind": record.error.kind if record.error else None,
                    "error_message": record.error.message if record.error else None,
                    "started_at": step.started_at,
                    "finished_at": step.finished_at,
                },
            )
        return status

    def update_task(self, task_id: uuid.UUID, owner: str, progress: Progress) -> TaskStatus:
        if self._postgres:
            parameters = _pg_progress(task_id, owner, progress)
            return self._pg_progress(stmt.PG_PROGRESS, parameters, task_id, progress)
        with self._engine.begin() as connection:
            return self._progress(connection, task_id, owner, progress, None)

    def claim(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[ClaimedTask]:
        due = (
            select(TaskRow.id)
            .where(TaskRow.status == "pending", TaskRow.run_after <= now)
            .order_by(TaskRow.run_after)
        )
        return self._take(due, limit, owner, now, lease_expires_at)

    def claim_abandoned(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[ClaimedTask]:
        abandoned = select(TaskRow.id).where(
            TaskRow.status == "running", TaskRow.lease_expires_at < now
        )
        return self._take(abandoned, limit, owner, now, lease_expires_at)

    def renew(self, owner: str, task_ids: list[uuid.UUID], lease_expires_at: datetime) -> None:
        if not task_ids:
            return
        with self._engine.begin() as connection:
            connection.execute(
                update(TaskRow)
                .where(
                    TaskRow.id.in_(task_ids),
                    TaskRow.lease_owner == owner,
                    TaskRow.status == "running",
                )
                .values(lease_expires_at=lease_expires_at)
            )

    def release(self, task_id: uuid.UUID, owner: str, now: datetime) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(TaskRow)
                .where(
                    TaskRow.id == task_id,
                    TaskRow.lease_owner == owner,
                    TaskRow.status == "running",
                )
                .values(
                    status="pending",
                    lease_owner=None,
                    lease_expires_at=None,
                    run_after=now,
                    updated_at=now,
                )
            )
            if self._postgres:
                connection.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))

    def cancel(self, task_id: uuid.UUID, now: datetime) -> CancelOutcome:
        with self._engine.begin() as connection:
            cancelled = connection.execute(
                update(TaskRow)
                .where(TaskRow.id == task_id, TaskRow.status == "pending")
                .values(updated_at=now, **_cancelled(now))
                .returning(TaskRow.id)
            ).first()
            if cancelled is not None:
                return "cancelled"
            asked = connection.execute(
                update(TaskRow)
                .where(TaskRow.id == task_id, TaskRow.status == "running")
                .values(cancel_requested=True, updated_at=now)
                .returning(TaskRow.id)
            ).first()
            if asked is not None:
                return "requested"
            found = connection.execute(select(TaskRow.id).where(TaskRow.id == task_id)).first()
        return "missing" if found is None else "finished"

    def _pg_create_task(self, task: NewTask) -> None:
        with self._single.connect() as connection:
            if task.flow.digest not in self._known_versions:
                self._save_flow_version(connection, task)
            connection.exec_driver_sql(
                stmt.PG_QUEUE_TASK if task.status == "pending" else stmt.PG_CREATE_TASK,
                {
                    "id": task.id,
                    "flow_name": task.flow.name,
                    "flow_digest": task.flow.digest,
                    "status": task.status,
                    "input": dumps(task.input),
                    "current_state": task.current_state,
                    "created_at": task.created_at,
                    "started_at": task.started_at,
                    "run_after": task.run_after,
                    "lease_owner": task.lease_owner,
                    "lease_expires_at": task.lease_expires_at,
                },
            )
        self._known_versions.add(task.flow.digest)

    def _pg_progress(
        self,
        statement: str,
        parameters: dict[str, Any],
        task_id: uuid.UUID,
        progress: Progress,
    ) -> TaskStatus:
        with self._single.connect() as connection:
            row = connection.exec_driver_sql(statement, parameters).first()
            if row is None:
                raise LeaseLostError
            if row.cancel_requested and progress.status in ("running", "pending"):
                self._cancel_now(connection, task_id, progress.updated_at)
                return "cancelled"
        return progress.status

    def _cancel_now(self, connection: Connection, task_id: uuid.UUID, now: datetime) -> None:
        connection.execute(update(TaskRow).where(TaskRow.id == task_id).values(**_cancelled(now)))

    # -- reading ------------------------------------------------------------------------

    def steps_of(self, task_id: uuid.UUID) -> list[Step]:
        with self._engine.connect() as connection:
            found = connection.execute(stmt.SELECT_STEPS, {"p_id": task_id}).all()
        return [
            Step(
                row.seq,
                row.state,
                row.tool,
                row.attempt,
                row.input,
                row.status,
                row.output,
                None if row.error_kind is None else StepError(row.error_kind, row.error_message),
            )
            for row in found
        ]

    def flow_definition(self, digest: str) -> dict[str, JsonValue] | None:
        with self._engine.connect() as connection:
            found: dict[str, JsonValue] | None = connection.execute(
                select(FlowVersionRow.definition).where(FlowVersionRow.digest == digest)
            ).scalar_one_or_none()
        return found

    def get_task(self, task_id: uuid.UUID) -> TaskView | None:
        with self._engine.connect() as connection:
            return self._task(connection, task_id)

    def list_tasks(
        self, where: TaskFilter, limit: int, after: Position | None
    ) -> list[TaskSummary]:
        query = select(*stmt.SUMMARY_COLUMNS)
        if where.status is not None:
            query = query.where(TaskRow.status == where.status)
        if where.flow is not None:
            query = query.where(TaskRow.flow_name == where.flow)
        if after is not None:
            query = query.where(tuple_(TaskRow.created_at, TaskRow.id) < tuple_(*after))
        query = query.order_by(TaskRow.created_at.desc(), TaskRow.id.desc()).limit(limit)
        with self._engine.connect() as connection:
            found = connection.execute(query).all()
        return [TaskSummary(**rows.summary_fields(row)) for row in found]

    # -- helpers ------------------------------------------------------------------------

    def _take(
        self,
        candidates: Select[Any],
        limit: int,
        owner: str,
        now: datetime,
        lease_expires_at: datetime,
    ) -> list[ClaimedTask]:
        chosen = candidates.limit(limit).with_for_update(skip_locked=True)
        statement = (
            update(TaskRow)
            .where(TaskRow.id.in_(chosen.scalar_subquery()))
            .values(
                status="running",
                lease_owner=owner,
                lease_expires_at=lease_expires_at,
                run_after=None,
                started_at=func.coalesce(TaskRow.started_at, now),
                updated_at=now,
            )
            .returning(*stmt.CLAIMED_COLUMNS)
        )
        # One statement: on PostgreSQL, it runs in autocommit mode, in one round trip.
        with (self._single if self._postgres else self._engine).begin() as connection:
            found = connection.execute(statement).all()
        return [
            ClaimedTask(
                row.id,
                row.flow_digest,
                row.input,
                row.current_state or "",
                row.step_count,
                row.cancel_requested,
            )
            for row in found
        ]

    def _progress(
        self,
        connection: Connection,
        task_id: uuid.UUID,
        owner: str,
        progress: Progress,
        seq: int | None,
    ) -> TaskStatus:
        running = progress.status == "running"
        error = progress.error
        parameters: dict[str, Any] = {
            "p_id": task_id,
            "p_owner": owner,
            "p_status": progress.status,
            "p_state": progress.current_state,
            "p_updated_at": progress.updated_at,
            "p_output": progress.output,
            "p_error_kind": error.kind if error else None,
            "p_error_message": error.message if error else None,
            "p_finished_at": progress.finished_at,
            "p_lease_owner": owner if running else None,
            "p_run_after": None if running else progress.run_after,
        }
        if seq is not None:
            parameters["p_step_count"] = seq
        statement = stmt.PROGRESS if seq is None else stmt.PROGRESS_WITH_STEP
        row = connection.execute(statement, parameters).first()
        if row is None:
            raise LeaseLostError
        if row.cancel_requested and progress.status in ("running", "pending"):
            self._cancel_now(connection, task_id, progress.updated_at)
            return "cancelled"
        return progress.status

    def _task(self, connection: Connection, task_id: uuid.UUID) -> TaskView | None:
        task = connection.execute(stmt.SELECT_TASK, {"p_id": task_id}).one_or_none()
        if task is None:
            return None
        steps = connection.execute(stmt.SELECT_STEPS, {"p_id": task_id}).all()
        return TaskView(
            **rows.summary_fields(task),
            input=task.input,
            output=task.output,
            steps=[rows.step_view(row) for row in steps],
        )

    def _save_flow_version(self, connection: Connection, task: NewTask) -> None:
        flow = task.flow
        if flow.digest in self._known_versions:
            return
        connection.execute(
            self._insert(FlowVersionRow)
            .values(
                digest=flow.digest,
                name=flow.name,
                definition=flow.model_dump(mode="json", by_alias=True, exclude_unset=True),
                created_at=task.created_at,
            )
            .on_conflict_do_nothing(index_elements=["digest"])
        )


def _pg_progress(task_id: uuid.UUID, owner: str, progress: Progress) -> dict[str, Any]:
    error = progress.error
    return {
        "id": task_id,
        "owner": owner,
        "status": progress.status,
        "state": progress.current_state,
        "updated_at": progress.updated_at,
        "output": None if progress.output is None else dumps(progress.output),
        "error_kind": error.kind if error else None,
        "error_message": error.message if error else None,
        "finished_at": progress.finished_at,
        "run_after": None if progress.status == "running" else progress.run_after,
    }


def _cancelled(now: datetime) -> dict[str, Any]:
    """The columns of a task that is cancelled now: finished, and nobody's."""
    return {
        "status": "cancelled",
        "error_kind": CANCELLED.kind,
        "error_message": CANCELLED.message,
        "lease_owner": None,
        "lease_expires_at": None,
        "run_after": None,
        "finished_at": now,
    }
