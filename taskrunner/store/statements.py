"""Every statement of the task repository, each defined once, in SQLAlchemy Core.

The writes of the hot path are compiled, once per database, by `Prepared`: on PostgreSQL
they run as that SQL text, straight on the driver, which skips SQLAlchemy's per-call work
(it costs more than the statement), and each is a single statement in autocommit mode: a
statement is atomic, so one round trip does what BEGIN, UPDATE, INSERT, COMMIT did in
four. A step's write is two of the definitions below made one by data-modifying CTEs: the
task's update (which checks the lease) and the step's insert, which selects no row when
the lease check failed. SQLite has no such CTEs: there the same two run in a transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Final

from sqlalchemy import (
    CTE,
    JSON,
    Boolean,
    ClauseElement,
    Dialect,
    Executable,
    FromClause,
    Insert,
    Integer,
    Select,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    null,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.compiler import SQLCompiler

from taskrunner.store.records import CANCELLED, QUEUE_STATS_LIMIT, StepRecord, TaskHead, field_names
from taskrunner.store.tables import Base

NOTIFY_CHANNEL: Final = "taskrunner_tasks"
TASKS: Final = Base.metadata.tables["tasks"]
STEPS: Final = Base.metadata.tables["task_steps"]
FLOW_VERSIONS: Final = Base.metadata.tables["flow_versions"]

HEAD_COLUMNS: Final = tuple(TASKS.c[name] for name in field_names(TaskHead))
"""The columns of a `TaskHead`; a `TaskRecord` is the whole row."""

# -- creating a task --------------------------------------------------------------------------
# PostgreSQL's INSERT construct, for its ON CONFLICT clause, which SQLite compiles alike.

INSERT_TASK: Final = postgresql.insert(TASKS)
"""A task, every column given by the `TaskRecord`'s fields."""
INSERT_TASK_ONCE: Final = INSERT_TASK.on_conflict_do_nothing(
    index_elements=["idempotency_key"]
).returning(TASKS.c.id)
"""A task with an idempotency key, unless the key is taken (then no row)."""
QUEUE_TASK: Final = select(func.pg_notify(NOTIFY_CHANNEL, "")).select_from(
    INSERT_TASK.returning(TASKS.c.id).cte("created")
)
"""PostgreSQL: a pending task inserted, and the workers woken, in one statement."""
SAVE_FLOW_VERSION: Final = postgresql.insert(FLOW_VERSIONS).on_conflict_do_nothing(
    index_elements=["digest"]
)
"""A flow version, every column given by the `FlowVersion`'s fields, unless it is known."""

# -- a held task moves on -----------------------------------------------------------------

_HELD: Final = and_(
    TASKS.c.id == bindparam("p_id", type_=TASKS.c.id.type),
    TASKS.c.lease_owner == bindparam("p_owner", type_=TASKS.c.lease_owner.type),
    TASKS.c.status == "running",
)
_CANCEL_NOW: Final = and_(TASKS.c.cancel_requested, bindparam("p_active", type_=Boolean))
"""A cancel was asked while the task ran, and it has not finished: it is cancelled now."""
_LET_GO: Final = _CANCEL_NOW | ~bindparam("p_running", type_=Boolean)


def _unless_cancelled(value: ClauseElement, cancelled: object) -> Any:
    return case((_CANCEL_NOW, cancelled), else_=value)


def _param(column: str) -> Any:
    """The new value of a column of `tasks`, bound as `p_COLUMN`, of the column's type."""
    return bindparam(f"p_{column}", type_=TASKS.c[column].type)


PROGRESS: Final = (
    update(TASKS)
    .where(_HELD)
    .values(
        status=_unless_cancelled(_param("status"), "cancelled"),
        current_state=_param("current_state"),
        updated_at=_param("updated_at"),
        output=_param("output"),
        error_kind=_unless_cancelled(_param("error_kind"), CANCELLED.kind),
        error_message=_unless_cancelled(_param("error_message"), CANCELLED.message),
        finished_at=_unless_cancelled(_param("finished_at"), _param("updated_at")),
        # A runner's lease is renewed by its keeper, not by each step: a step that leaves
        # the indexed columns alone lets PostgreSQL update the row in place (HOT).
        lease_owner=case((_LET_GO, null()), else_=TASKS.c.lease_owner),
        lease_expires_at=case((_LET_GO, null()), else_=TASKS.c.lease_expires_at),
        run_after=_unless_cancelled(_param("run_after"), null()),
    )
    .returning(TASKS.c.status)
)
"""A held task's new state (`Progress`); returns the status it now has, or no row when the
runner does not hold it."""
PROGRESS_WITH_STEP: Final = PROGRESS.values(
    step_count=_param("step_count"), checkpoint=_param("checkpoint")
)


def append_step(source: FromClause | None = None) -> Insert:
    """The step of a `StepRecord`, each field bound as `s_NAME`; on PostgreSQL selected
    from `source`, so that no row is inserted when the task's update found none."""
    columns = [STEPS.c[name] for name in field_names(StepRecord)]
    values: Select[Any] = select(
        *(bindparam(f"s_{column.name}", type_=column.type) for column in columns)
    )
    if source is not None:
        values = values.select_from(source)
    return insert(STEPS).from_select(columns, values)


APPEND_STEP: Final = append_step()
_PROGRESSED: Final = PROGRESS_WITH_STEP.cte("progressed")
RECORD_STEP: Final = select(_PROGRESSED.c.status).add_cte(append_step(_PROGRESSED).cte("recorded"))
"""PostgreSQL: the step and its task's new state, in one statement."""

# -- claiming, renewing, releasing, cancelling --------------------------------------------

_NOW: Final = bindparam("now", type_=TASKS.c.updated_at.type)


def _take(candidates: Select[Any]) -> Update:
    """Hold up to `limit` of the candidates, skipping those another claim is taking."""
    chosen = candidates.limit(bindparam("limit")).with_for_update(skip_locked=True)
    return (
        update(TASKS)
        .where(TASKS.c.id.in_(chosen.scalar_subquery()))
        .values(
            status="running",
            lease_owner=bindparam("owner"),
            lease_expires_at=bindparam("expires"),
            run_after=None,
            started_at=func.coalesce(TASKS.c.started_at, _NOW),
            updated_at=_NOW,
        )
        .returning(*TASKS.c)
    )


CLAIM: Final = _take(
    select(TASKS.c.id)
    .where(TASKS.c.status == "pending", TASKS.c.run_after <= _NOW)
    .order_by(TASKS.c.run_after)
)
"""Due pending tasks, the longest due first."""
_QUEUED: Final = (
    select(TASKS.c.run_after)
    .where(TASKS.c.status == "pending", TASKS.c.run_after.is_not(None))
    .order_by(TASKS.c.run_after)
    .limit(QUEUE_STATS_LIMIT)
    .subquery("queued")
)
QUEUE_STATS: Final = select(
    func.count().filter(_QUEUED.c.run_after <= _NOW).label("ready"),
    func.count().filter(_QUEUED.c.run_after > _NOW).label("waiting"),
    func.min(_QUEUED.c.run_after).label("oldest"),
)
"""How the queue stands, read off the index of pending tasks, the longest due first."""
CLAIM_ABANDONED: Final = _take(
    select(TASKS.c.id).where(TASKS.c.status == "running", TASKS.c.lease_expires_at < _NOW)
)
"""Running tasks whose lease ran out: their runner died."""
_OWNED: Final = and_(TASKS.c.lease_owner == bindparam("owner"), TASKS.c.status == "running")
RENEW: Final = (
    update(TASKS)
    .where(TASKS.c.id.in_(bindparam("ids", expanding=True)), _OWNED)
    .values(lease_expires_at=bindparam("expires"))
)
RELEASE: Final = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task_id"), _OWNED)
    .values(
        status="pending", lease_owner=None, lease_expires_at=None, run_after=_NOW, updated_at=_NOW
    )
    .returning(TASKS.c.id)
)
CANCEL_PENDING: Final = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task_id"), TASKS.c.status == "pending")
    .values(
        status="cancelled",
        error_kind=CANCELLED.kind,
        error_message=CANCELLED.message,
        lease_owner=None,
        lease_expires_at=None,
        run_after=None,
        finished_at=_NOW,
        updated_at=_NOW,
    )
    .returning(TASKS.c.id)
)
"""A pending task cancelled now (`records.cancelled`)."""
ASK_TO_CANCEL: Final = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task_id"), TASKS.c.status == "running")
    .values(cancel_requested=True, updated_at=_NOW)
    .returning(TASKS.c.id)
)
"""A running task asked to stop before its next step."""
WAKE_WORKERS: Final = select(func.pg_notify(NOTIFY_CHANNEL, ""))

# -- child tasks --------------------------------------------------------------------------


def family_of(roots: Select[Any], name: str) -> CTE:
    """The ids of `roots` (a select of task ids) and of all their descendants: children,
    their children… (a fan-out in a branch nests)."""
    family = roots.cte(name, recursive=True)
    return family.union_all(select(TASKS.c.id).where(TASKS.c.parent_id == family.c.id))


_CALL: Final = and_(
    TASKS.c.parent_id == bindparam("c_parent", type_=TASKS.c.id.type),
    TASKS.c.parent_seq == bindparam("c_seq", type_=Integer),
    TASKS.c.parent_attempt == bindparam("c_attempt", type_=Integer),
)
"""The children of one fan-out call."""
INSERT_CHILD: Final = INSERT_TASK.on_conflict_do_nothing(
    index_elements=["parent_id", "parent_seq", "parent_attempt", "child_key"]
)
"""A child task, unless its call already has one at its position (a resumed parent)."""
SELECT_CHILDREN: Final = select(TASKS).where(_CALL).order_by(TASKS.c.child_key)
CLAIM_CHILDREN: Final = _take(
    select(TASKS.c.id)
    .where(_CALL, TASKS.c.status == "pending", TASKS.c.run_after <= _NOW)
    .order_by(TASKS.c.run_after)
)
"""Due pending children of one call, for the parent's runner to run beside the workers."""
DUE_CHILDREN: Final = (
    update(TASKS)
    .where(
        TASKS.c.id.in_(bindparam("ids", expanding=True)),
        TASKS.c.status == "pending",
        TASKS.c.run_after.is_(None),
    )
    .values(run_after=_NOW, updated_at=_NOW)
    .returning(TASKS.c.id)
)
"""Held-back children made due: any worker may claim them now."""


def _cancel_family(roots: Select[Any]) -> tuple[Update, Update]:
    """Cancel the pending tasks of `roots`' family now; ask its running ones to stop."""
    family = family_of(roots, "family")
    members = TASKS.c.id.in_(select(family.c.id))
    pending = (
        update(TASKS)
        .where(members, TASKS.c.status == "pending")
        .values(
            status="cancelled",
            error_kind=CANCELLED.kind,
            error_message=CANCELLED.message,
            lease_owner=None,
            lease_expires_at=None,
            run_after=None,
            finished_at=_NOW,
            updated_at=_NOW,
        )
    )
    running = (
        update(TASKS)
        .where(members, TASKS.c.status == "running")
        .values(cancel_requested=True, updated_at=_NOW)
    )
    return pending, running


CANCEL_DESCENDANTS: Final = _cancel_family(
    select(TASKS.c.id).where(TASKS.c.parent_id == bindparam("task_id", type_=TASKS.c.id.type))
)
"""A cancelled task's children, and theirs: cancelling a parent cancels its children."""
CANCEL_CHILDREN: Final = _cancel_family(select(TASKS.c.id).where(_CALL))
"""The children of one fan-out call (and theirs): a failure ended the call."""

# -- retention ----------------------------------------------------------------------------
# Served by the partial index on (finished_at, id) of finished tasks: `finished_at < :before`
# implies the index's `finished_at IS NOT NULL`, so each batch reads the oldest rows in index
# order, and a purge with nothing to delete reads nothing.

_PURGEABLE: Final = and_(
    TASKS.c.finished_at < bindparam("before", type_=TASKS.c.finished_at.type),
    # `status || ''`, not `status`: no index can serve it, so that no planner prefers the
    # (status, created_at, id) index, which would read every purgeable row and sort them
    # for each batch (SQLite does, without statistics), over the one in finished_at order.
    TASKS.c.status.concat(literal_column("''")).in_(bindparam("statuses", expanding=True)),
    # A child goes with its parent, never alone: its parent may still need its output.
    TASKS.c.parent_id.is_(None),
)
"""Tasks started by requests that finished before `before` in one of `statuses` (the
caller passes finished ones only)."""
_OLDEST_PURGEABLE: Final = (
    select(TASKS.c.id)
    .where(_PURGEABLE)
    .order_by(TASKS.c.finished_at, TASKS.c.id)
    .limit(bindparam("limit"))
)
_CHOSEN: Final = _OLDEST_PURGEABLE.with_for_update(skip_locked=True).cte("chosen")
_GONE: Final = (
    delete(TASKS).where(TASKS.c.id.in_(select(_CHOSEN.c.id))).returning(TASKS.c.id).cte("gone")
)
_GONE_WITH: Final = family_of(
    select(TASKS.c.id).where(TASKS.c.parent_id.in_(select(_CHOSEN.c.id))), "descendants"
)
PURGE_BATCH: Final = select(
    (
        select(func.count()).select_from(_GONE).scalar_subquery()
        + select(func.count()).select_from(_GONE_WITH).scalar_subquery()
    ).label("tasks"),
    select(func.count())
    .select_from(STEPS)
    .where(STEPS.c.task_id.in_(select(_GONE.c.id)) | STEPS.c.task_id.in_(select(_GONE_WITH.c.id)))
    .scalar_subquery()
    .label("steps"),
)
"""PostgreSQL: a batch of the oldest purgeable tasks deleted, in one statement; their
children, and the steps of all, go with them (`ON DELETE CASCADE`), and are counted in the
statement's snapshot, which still holds them. Rows another purge has locked are skipped."""
_BATCH_FAMILY: Final = family_of(
    select(TASKS.c.id).where(TASKS.c.id.in_(_OLDEST_PURGEABLE.scalar_subquery())), "batch"
)
PURGE_BATCH_STEPS: Final = (
    delete(STEPS)
    .where(STEPS.c.task_id.in_(select(_BATCH_FAMILY.c.id)))
    .returning(STEPS.c.seq)  # counted so: SQLite gives no row count for a WITH statement
)
COUNT_BATCH_TASKS: Final = select(func.count()).select_from(_BATCH_FAMILY)
PURGE_BATCH_TASKS: Final = delete(TASKS).where(TASKS.c.id.in_(_OLDEST_PURGEABLE.scalar_subquery()))
"""SQLite: a batch's steps (its tasks' and their children's), its tasks counted with
their children, then deleted (the children by `ON DELETE CASCADE`), in one transaction
that starts with its write; all choose the same tasks (the same order, and no other
writer in between)."""
_ALL_FAMILY: Final = family_of(select(TASKS.c.id).where(_PURGEABLE), "purgeable")
COUNT_PURGEABLE: Final = select(
    select(func.count()).select_from(_ALL_FAMILY).scalar_subquery().label("tasks"),
    select(func.count())
    .select_from(STEPS)
    .where(STEPS.c.task_id.in_(select(_ALL_FAMILY.c.id)))
    .scalar_subquery()
    .label("steps"),
)

# -- reading ------------------------------------------------------------------------------

SELECT_TASK: Final = select(TASKS).where(TASKS.c.id == bindparam("task_id"))
SELECT_TASK_BY_KEY: Final = select(TASKS).where(TASKS.c.idempotency_key == bindparam("key"))
SELECT_STEPS: Final = (
    select(STEPS).where(STEPS.c.task_id == bindparam("task_id")).order_by(STEPS.c.seq)
)
SELECT_STEPS_PAGE: Final = (
    select(STEPS)
    .where(STEPS.c.task_id == bindparam("task_id"), STEPS.c.seq > bindparam("after"))
    .order_by(STEPS.c.seq)
    .limit(bindparam("limit"))
)
"""A page of a task's steps, served by the primary key (`task_id`, `seq`)."""
SELECT_FLOW_DEFINITION: Final = select(FLOW_VERSIONS.c.definition).where(
    FLOW_VERSIONS.c.digest == bindparam("digest")
)


@cache
def select_heads(status: bool, flow: bool, after: bool, parent: bool = False) -> Executable:
    """A page of tasks, newest first, filtered on `status` and `flow` if asked, strictly
    after the position (`after_created_at`, `after_id`) if asked: the children of the
    task `parent` if asked, else tasks started by requests (the partial list indexes')."""
    query = select(*HEAD_COLUMNS)
    if parent:
        query = query.where(TASKS.c.parent_id == bindparam("parent", type_=TASKS.c.id.type))
    else:
        query = query.where(TASKS.c.parent_id.is_(None))
    if status:
        query = query.where(TASKS.c.status == bindparam("status"))
    if flow:
        query = query.where(TASKS.c.flow_name == bindparam("flow"))
    if after:
        position = tuple_(
            bindparam("after_created_at", type_=TASKS.c.created_at.type),
            bindparam("after_id", type_=TASKS.c.id.type),
        )
        query = query.where(tuple_(TASKS.c.created_at, TASKS.c.id) < position)
    return query.order_by(TASKS.c.created_at.desc(), TASKS.c.id.desc()).limit(bindparam("limit"))


class Prepared:
    """A statement compiled once for PostgreSQL, run on psycopg directly. psycopg takes
    Python's values as they are (UUIDs, aware datetimes, booleans); JSON is sent as the
    text that `dumps` makes of it, which the statement casts (`::JSONB`)."""

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, dumps: Callable[[Any], str]
    ) -> None:
        compiled = statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"{type(statement).__name__} does not compile to SQL")
        self.sql = compiled.string
        self._constants = {
            name: value
            for name, value in compiled.construct_params(_check=False).items()
            if value is not None
        }
        self._json = tuple(
            name
            for name, bind in compiled.binds.items()
            if isinstance(dialect.type_descriptor(bind.type), JSON)
        )
        self._dumps = dumps

    def parameters(self, given: Mapping[str, object]) -> dict[str, object]:
        converted = dict(self._constants)
        converted.update(given)
        for name in self._json:
            value = converted.get(name)
            if value is not None:
                converted[name] = self._dumps(value)
        return converted
