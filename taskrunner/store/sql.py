"""The task repository on PostgreSQL and SQLite, with the statements of `statements.py`:
each method is one short transaction with the fewest statements that do the job.

Claiming uses `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of workers
take disjoint tasks without waiting on each other; idle workers wait on `LISTEN`. SQLite
has one writer at a time and no such clause: there, only the workers of one process claim,
and they are woken within the process.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from operator import attrgetter
from typing import Any, Final

import psycopg
from sqlalchemy import Connection, Executable, Row

from taskrunner.errors import LeaseLostError
from taskrunner.store import statements as stmt
from taskrunner.store.database import Database, translated
from taskrunner.store.jsoncodec import dumps
from taskrunner.store.records import (
    ACTIVE,
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
    field_names,
    finished_only,
)
from taskrunner.tools import JsonObject

_TASK_FIELDS: Final = field_names(TaskRecord)
_STEP_FIELDS: Final = field_names(StepRecord)
_VERSION_FIELDS: Final = field_names(FlowVersion)
_STEP_PARAMETERS: Final = tuple(f"s_{name}" for name in _STEP_FIELDS)


class SqlTaskRepository:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._engine = database.engine
        self._single = database.autocommit
        """Single statements: on PostgreSQL, each its own transaction."""
        self._postgres = database.is_postgres
        self._known_versions: set[str] = set()
        dialect = self._engine.dialect
        self._queue_task = stmt.Prepared(stmt.QUEUE_TASK, dialect, dumps)
        self._insert_task = stmt.Prepared(stmt.INSERT_TASK, dialect, dumps)
        self._record_step = stmt.Prepared(stmt.RECORD_STEP, dialect, dumps)
        self._progress = stmt.Prepared(stmt.PROGRESS, dialect, dumps)
        self._woken = threading.Event()
        """SQLite: set when this process queues a task or hands one back."""
        self._listener: psycopg.Connection[Any] | None = None
        self._listening = threading.Lock()

    # -- writing ------------------------------------------------------------------------

    @translated
    def create_task(self, task: TaskRecord, version: FlowVersion) -> TaskRecord | None:
        row = _row(task, _TASK_FIELDS)
        pending = task.status == "pending"
        if self._postgres and task.idempotency_key is None:
            prepared = self._queue_task if pending else self._insert_task
            with self._single.connect() as connection:
                self._save_version(connection, version)
                connection.exec_driver_sql(prepared.sql, prepared.parameters(row))
            self._known_versions.add(version.digest)
            return None
        with self._engine.connect() as connection, connection.begin() as transaction:
            self._save_version(connection, version)
            if task.idempotency_key is None:
                connection.execute(stmt.INSERT_TASK, row)
            elif connection.execute(stmt.INSERT_TASK_ONCE, row).first() is None:
                found = connection.execute(
                    stmt.SELECT_TASK_BY_KEY, {"key": task.idempotency_key}
                ).one()
                transaction.rollback()  # the key is taken: nothing of this is stored
                return _task(found)
            if pending and self._postgres:
                connection.execute(stmt.WAKE_WORKERS)
        self._known_versions.add(version.digest)
        if pending:
            self._woken.set()
        return None

    @translated
    def record_step(self, owner: str, step: StepRecord, progress: Progress) -> TaskStatus:
        parameters = _progress(step.task_id, owner, progress, step.seq)
        parameters.update(zip(_STEP_PARAMETERS, _values_of(_STEP_FIELDS)(step), strict=True))
        if self._postgres:
            return self._held(self._record_step, parameters)
        with self._engine.begin() as connection:
            # The task's update comes first: it checks the lease and locks the row, so
            # that a runner that lost its task writes nothing at all.
            found = connection.execute(stmt.PROGRESS_WITH_STEP, parameters).first()
            if found is None:
                raise LeaseLostError
            connection.execute(stmt.APPEND_STEP, parameters)
        return self._settled(found.status)

    @translated
    def update_task(self, task_id: uuid.UUID, owner: str, progress: Progress) -> TaskStatus:
        parameters = _progress(task_id, owner, progress, None)
        if self._postgres:
            return self._held(self._progress, parameters)
        with self._engine.begin() as connection:
            found = connection.execute(stmt.PROGRESS, parameters).first()
        if found is None:
            raise LeaseLostError
        return self._settled(found.status)

    @translated
    def claim(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[TaskRecord]:
        return self._take(stmt.CLAIM, owner, limit, now, lease_expires_at)

    @translated
    def claim_abandoned(
        self, owner: str, limit: int, now: datetime, lease_expires_at: datetime
    ) -> list[TaskRecord]:
        return self._take(stmt.CLAIM_ABANDONED, owner, limit, now, lease_expires_at)

    @translated
    def renew(self, owner: str, task_ids: list[uuid.UUID], lease_expires_at: datetime) -> None:
        if not task_ids:
            return
        with self._engine.begin() as connection:
            connection.execute(
                stmt.RENEW,
                {"ids": task_ids, "owner": owner, "expires": lease_expires_at},
            )

    @translated
    def release(self, task_id: uuid.UUID, owner: str, now: datetime) -> None:
        with self._engine.begin() as connection:
            released = connection.execute(
                stmt.RELEASE, {"task_id": task_id, "owner": owner, "now": now}
            ).first()
            if released is not None and self._postgres:
                connection.execute(stmt.WAKE_WORKERS)
        if released is not None:
            self._woken.set()

    @translated
    def cancel(self, task_id: uuid.UUID, now: datetime) -> CancelOutcome:
        given = {"task_id": task_id, "now": now}
        outcome: CancelOutcome | None = None
        with self._engine.begin() as connection:
            if connection.execute(stmt.CANCEL_PENDING, given).first() is not None:
                outcome = "cancelled"
            elif connection.execute(stmt.ASK_TO_CANCEL, given).first() is not None:
                outcome = "requested"
            else:
                found = connection.execute(stmt.SELECT_TASK, given).first()
                return "missing" if found is None else "finished"
            for statement in stmt.CANCEL_DESCENDANTS:
                connection.execute(statement, given)
        return outcome

    # -- child tasks --------------------------------------------------------------------

    @translated
    def spawn_children(
        self, children: Sequence[TaskRecord], versions: Sequence[FlowVersion]
    ) -> list[TaskRecord]:
        if not children:
            return []
        call = _call_of(children[0])
        with self._engine.begin() as connection:
            for version in versions:
                self._save_version(connection, version)
            connection.execute(stmt.INSERT_CHILD, [_row(child, _TASK_FIELDS) for child in children])
            found = connection.execute(stmt.SELECT_CHILDREN, call).all()
        self._known_versions.update(version.digest for version in versions)
        return [_task(row) for row in found]

    @translated
    def children_of(self, parent_id: uuid.UUID, seq: int, attempt: int) -> list[TaskRecord]:
        call = {"c_parent": parent_id, "c_seq": seq, "c_attempt": attempt}
        with self._single.connect() as connection:
            found = connection.execute(stmt.SELECT_CHILDREN, call).all()
        return [_task(row) for row in found]

    @translated
    def make_due(self, task_ids: Sequence[uuid.UUID], now: datetime) -> int:
        if not task_ids:
            return 0
        with self._engine.begin() as connection:
            made = len(
                connection.execute(stmt.DUE_CHILDREN, {"ids": list(task_ids), "now": now}).all()
            )
            if made and self._postgres:
                connection.execute(stmt.WAKE_WORKERS)
        if made:
            self._woken.set()
        return made

    @translated
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
        given = {
            "owner": owner,
            "limit": limit,
            "now": now,
            "expires": lease_expires_at,
            "c_parent": parent_id,
            "c_seq": seq,
            "c_attempt": attempt,
        }
        with self._single.begin() as connection:
            found = connection.execute(stmt.CLAIM_CHILDREN, given).all()
        return [_task(row) for row in found]

    @translated
    def cancel_children(self, parent_id: uuid.UUID, seq: int, attempt: int, now: datetime) -> None:
        given = {"c_parent": parent_id, "c_seq": seq, "c_attempt": attempt, "now": now}
        with self._engine.begin() as connection:
            for statement in stmt.CANCEL_CHILDREN:
                connection.execute(statement, given)

    @translated
    def purge(
        self, finished_before: datetime, statuses: Sequence[TaskStatus], limit: int
    ) -> Purged:
        given = _purgeable(finished_before, statuses)
        if given is None or limit < 1:
            return Purged()
        given["limit"] = limit
        if self._postgres:
            with self._single.connect() as connection:
                found = connection.execute(stmt.PURGE_BATCH, given).one()
            return Purged(found.tasks, found.steps)
        # The steps' delete comes first: the transaction starts with a write, so it waits
        # for SQLite's one writer rather than failing if another wrote meanwhile.
        with self._engine.begin() as connection:
            steps = len(connection.execute(stmt.PURGE_BATCH_STEPS, given).all())
            tasks = connection.execute(stmt.COUNT_BATCH_TASKS, given).scalar_one()
            connection.execute(stmt.PURGE_BATCH_TASKS, given)
        return Purged(tasks, steps)

    @translated
    def count_purgeable(self, finished_before: datetime, statuses: Sequence[TaskStatus]) -> Purged:
        given = _purgeable(finished_before, statuses)
        if given is None:
            return Purged()
        with self._single.connect() as connection:
            found = connection.execute(stmt.COUNT_PURGEABLE, given).one()
        return Purged(found.tasks, found.steps)

    @translated
    def wait_for_work(self, timeout: float) -> bool:
        if not self._postgres:
            woken = self._woken.wait(timeout)
            self._woken.clear()
            return woken
        with self._listening:
            try:
                listener = self._listener or self._listen()
                return any(True for _ in listener.notifies(timeout=timeout, stop_after=1))
            except psycopg.Error:
                self._close_listener()
                raise

    # -- reading ------------------------------------------------------------------------

    @translated
    def get_task(self, task_id: uuid.UUID) -> TaskRecord | None:
        with self._single.connect() as connection:
            found = connection.execute(stmt.SELECT_TASK, {"task_id": task_id}).first()
        return None if found is None else _task(found)

    @translated
    def steps_of(self, task_id: uuid.UUID) -> list[StepRecord]:
        with self._single.connect() as connection:
            found = connection.execute(stmt.SELECT_STEPS, {"task_id": task_id}).all()
        return [StepRecord(**row._mapping) for row in found]

    @translated
    def steps_page(self, task_id: uuid.UUID, after: int, limit: int) -> list[StepRecord]:
        given = {"task_id": task_id, "after": after, "limit": limit}
        with self._single.connect() as connection:
            found = connection.execute(stmt.SELECT_STEPS_PAGE, given).all()
        return [StepRecord(**row._mapping) for row in found]

    @translated
    def list_tasks(self, where: TaskFilter, limit: int, after: Position | None) -> Page:
        query = stmt.select_heads(
            where.status is not None, where.flow is not None, bool(after), where.parent is not None
        )
        given: dict[str, object] = {
            "limit": limit + 1,
            "status": where.status,
            "flow": where.flow,
            "parent": where.parent,
        }
        if after is not None:
            given["after_created_at"], given["after_id"] = after
        with self._single.connect() as connection:
            found = connection.execute(query, given).all()
        items = tuple(TaskHead(**row._mapping) for row in found[:limit])
        more = len(found) > limit
        return Page(items, (items[-1].created_at, items[-1].id) if more else None)

    @translated
    def flow_definition(self, digest: str) -> JsonObject | None:
        with self._single.connect() as connection:
            found: JsonObject | None = connection.execute(
                stmt.SELECT_FLOW_DEFINITION, {"digest": digest}
            ).scalar_one_or_none()
        return found

    @translated
    def queue_stats(self, now: datetime) -> QueueStats:
        with self._single.connect() as connection:
            found = connection.execute(stmt.QUEUE_STATS, {"now": now}).one()
        ready, waiting, oldest = found.ready, found.waiting, found.oldest
        return QueueStats(ready, waiting, oldest if ready else None)

    def ping(self) -> bool:
        return self._database.ping()

    def close(self) -> None:
        with self._listening:
            self._close_listener()

    # -- helpers ------------------------------------------------------------------------

    def _held(self, prepared: stmt.Prepared, parameters: Mapping[str, object]) -> TaskStatus:
        """Run a held task's write on PostgreSQL, in one statement in autocommit mode."""
        with self._single.connect() as connection:
            found = connection.exec_driver_sql(
                prepared.sql, prepared.parameters(parameters)
            ).first()
        if found is None:
            raise LeaseLostError
        status: TaskStatus = found.status
        return status

    def _settled(self, status: TaskStatus) -> TaskStatus:
        if status == "pending":
            self._woken.set()
        return status

    def _take(
        self,
        statement: Executable,
        owner: str,
        limit: int,
        now: datetime,
        lease_expires_at: datetime,
    ) -> list[TaskRecord]:
        given = {"owner": owner, "limit": limit, "now": now, "expires": lease_expires_at}
        # One statement: on PostgreSQL, it runs in autocommit mode, in one round trip.
        with self._single.begin() as connection:
            found = connection.execute(statement, given).all()
        return [_task(row) for row in found]

    def _save_version(self, connection: Connection, version: FlowVersion) -> None:
        if version.digest not in self._known_versions:
            connection.execute(stmt.SAVE_FLOW_VERSION, _row(version, _VERSION_FIELDS))

    def _listen(self) -> psycopg.Connection[Any]:
        url = self._engine.url.set(drivername="postgresql")
        listener = psycopg.connect(
            url.render_as_string(hide_password=False),
            autocommit=True,
            **self._database.connect_args,
        )
        listener.execute(f"LISTEN {stmt.NOTIFY_CHANNEL}")
        self._listener = listener
        return listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None


def _row(record: object, names: tuple[str, ...]) -> dict[str, object]:
    return dict(zip(names, _values_of(names)(record), strict=True))


@cache
def _values_of(names: tuple[str, ...]) -> attrgetter[tuple[object, ...]]:
    return attrgetter(*names)


def _task(row: Row[Any]) -> TaskRecord:
    return TaskRecord(**row._mapping)


def _call_of(child: TaskRecord) -> dict[str, object]:
    """The parameters that name the fan-out call of `child`."""
    return {
        "c_parent": child.parent_id,
        "c_seq": child.parent_seq,
        "c_attempt": child.parent_attempt,
    }


def _purgeable(
    finished_before: datetime, statuses: Sequence[TaskStatus]
) -> dict[str, object] | None:
    """The parameters of the purge statements, or None when no finished status is asked."""
    finished = finished_only(statuses)
    if not finished:
        return None
    return {"before": finished_before, "statuses": list(finished)}


def _progress(
    task_id: uuid.UUID, owner: str, progress: Progress, step_count: int | None
) -> dict[str, object]:
    """The parameters of `statements.PROGRESS` (`records.progressed` says what it does)."""
    error = progress.error
    running = progress.status == "running"
    parameters: dict[str, object] = {
        "p_id": task_id,
        "p_owner": owner,
        "p_status": progress.status,
        "p_current_state": progress.current_state,
        "p_updated_at": progress.updated_at,
        "p_output": progress.output,
        "p_error_kind": error.kind if error else None,
        "p_error_message": error.message if error else None,
        "p_finished_at": progress.finished_at,
        "p_run_after": None if running else progress.run_after,
        "p_active": progress.status in ACTIVE,
        "p_running": running,
    }
    if step_count is not None:
        parameters["p_step_count"] = step_count
        parameters["p_checkpoint"] = progress.checkpoint
    return parameters
