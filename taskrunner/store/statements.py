"""The statements of the task repository's hot path, built once.

Building a SQLAlchemy statement (and its cache key) on each call costs more than running
it, so these are built at import with bind parameters. On PostgreSQL, the writes are
single statements run in autocommit mode: a statement is atomic, so one round trip does
what BEGIN, UPDATE, INSERT, COMMIT did in four. A step's data-modifying CTEs update the
task (checking the lease) and append the step together; when the lease check fails, the
step's INSERT selects no row.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import bindparam, case, insert, select, update

from taskrunner.store.tables import Base, TaskRow, TaskStepRow

NOTIFY_CHANNEL: Final = "taskrunner_tasks"

SUMMARY_COLUMNS = (
    TaskRow.id,
    TaskRow.flow_name,
    TaskRow.flow_digest,
    TaskRow.status,
    TaskRow.current_state,
    TaskRow.error_kind,
    TaskRow.error_message,
    TaskRow.cancel_requested,
    TaskRow.created_at,
    TaskRow.updated_at,
    TaskRow.started_at,
    TaskRow.finished_at,
)
TASKS = Base.metadata.tables["tasks"]
STEPS = Base.metadata.tables["task_steps"]
INSERT_TASK = insert(TASKS)
INSERT_STEP = insert(STEPS)
PROGRESS = (
    update(TASKS)
    .where(
        TASKS.c.id == bindparam("p_id"),
        TASKS.c.lease_owner == bindparam("p_owner"),
        TASKS.c.status == "running",
    )
    .values(
        status=bindparam("p_status"),
        current_state=bindparam("p_state"),
        updated_at=bindparam("p_updated_at"),
        output=bindparam("p_output"),
        error_kind=bindparam("p_error_kind"),
        error_message=bindparam("p_error_message"),
        finished_at=bindparam("p_finished_at"),
        lease_owner=bindparam("p_lease_owner"),
        # A runner's lease is renewed by its keeper, not by each step: a step that leaves
        # the indexed columns alone lets PostgreSQL update the row in place (HOT).
        lease_expires_at=case(
            (bindparam("p_status") == "running", TASKS.c.lease_expires_at), else_=None
        ),
        run_after=bindparam("p_run_after"),
    )
    .returning(TASKS.c.cancel_requested)
)
PROGRESS_WITH_STEP = PROGRESS.values(step_count=bindparam("p_step_count"))
CLAIMED_COLUMNS = (
    TaskRow.id,
    TaskRow.flow_digest,
    TaskRow.input,
    TaskRow.current_state,
    TaskRow.step_count,
    TaskRow.cancel_requested,
)


SELECT_TASK = select(*SUMMARY_COLUMNS, TaskRow.input, TaskRow.output).where(
    TaskRow.id == bindparam("p_id")
)
SELECT_STEPS = (
    select(TaskStepRow).where(TaskStepRow.task_id == bindparam("p_id")).order_by(TaskStepRow.seq)
)


PG_PROGRESS_SET = """
        status = %(status)s::varchar, current_state = %(state)s, updated_at = %(updated_at)s,
        output = %(output)s::jsonb, error_kind = %(error_kind)s,
        error_message = %(error_message)s, finished_at = %(finished_at)s,
        lease_owner = CASE WHEN %(status)s::varchar = 'running' THEN lease_owner END,
        lease_expires_at = CASE WHEN %(status)s::varchar = 'running' THEN lease_expires_at END,
        run_after = %(run_after)s"""
PG_PROGRESS_WHERE = "WHERE id = %(id)s AND lease_owner = %(owner)s AND status = 'running'"
PG_RECORD_STEP = f"""
WITH progressed AS (
    UPDATE tasks SET {PG_PROGRESS_SET}, step_count = %(seq)s
    {PG_PROGRESS_WHERE}
    RETURNING cancel_requested
), recorded AS (
    INSERT INTO task_steps (task_id, seq, state, tool, attempt, status, input, output,
                            error_kind, error_message, started_at, finished_at)
    SELECT %(id)s, %(seq)s, %(step_state)s, %(tool)s, %(attempt)s, %(step_status)s,
           %(step_input)s::jsonb, %(step_output)s::jsonb, %(step_error_kind)s,
           %(step_error_message)s, %(started_at)s, %(step_finished_at)s
    FROM progressed
)
SELECT cancel_requested FROM progressed"""  # noqa: S608 - made of the constants above
PG_PROGRESS = f"""
UPDATE tasks SET {PG_PROGRESS_SET}
{PG_PROGRESS_WHERE}
RETURNING cancel_requested"""  # noqa: S608 - made of the constants above
PG_CREATE_TASK = """
INSERT INTO tasks (id, flow_name, flow_digest, status, input, current_state, created_at,
                   updated_at, started_at, idempotency_key, run_after, lease_owner,
                   lease_expires_at, cancel_requested, step_count)
VALUES (%(id)s, %(flow_name)s, %(flow_digest)s, %(status)s, %(input)s::jsonb,
        %(current_state)s, %(created_at)s, %(created_at)s, %(started_at)s, NULL,
        %(run_after)s, %(lease_owner)s, %(lease_expires_at)s, false, 0)"""
PG_QUEUE_TASK = f"""
WITH created AS ({PG_CREATE_TASK} RETURNING id)
SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM created"""  # noqa: S608 - constants
