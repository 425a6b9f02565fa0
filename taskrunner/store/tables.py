"""The tables, as SQLAlchemy 2 typed models. Schema changes go through Alembic only
(`alembic/versions/`); a test runs `alembic check` so the two never drift apart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from taskrunner.store.records import STEP_STATUSES, TASK_STATUSES
from taskrunner.tools import JsonObject

JsonDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""JSONB on PostgreSQL, JSON text elsewhere; Python `None` is SQL NULL."""


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every backend (SQLite keeps no time zone: it stores UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads it from the class
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        JsonObject: JsonDocument,
    }


class FlowVersionRow(Base):
    """One exact version of a flow definition; tasks point at the version they started on."""

    __tablename__ = "flow_versions"

    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    definition: Mapped[JsonObject]
    created_at: Mapped[datetime]


_TOP_LEVEL: dict[str, Any] = {
    "postgresql_where": text("parent_id IS NULL"),
    "sqlite_where": text("parent_id IS NULL"),
}
"""The partial index of the tasks that requests started (no child task)."""


class TaskRow(Base):
    """One run of a flow on one input."""

    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    flow_name: Mapped[str] = mapped_column(String(64))
    flow_digest: Mapped[str] = mapped_column(ForeignKey("flow_versions.digest"))
    status: Mapped[str] = mapped_column(String(16))
    input: Mapped[JsonObject]
    output: Mapped[JsonObject | None]
    error_kind: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    current_state: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Queueing and leases: a pending task may be claimed from `run_after` on; a running one
    # belongs to `lease_owner` until `lease_expires_at`, after which another may take it.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    run_after: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    step_count: Mapped[int] = mapped_column(Integer, default=0)
    # Where the interpreter stood after step `step_count`: a claim resumes from it.
    checkpoint: Mapped[JsonObject | None]
    # A child task (a branch, a map item, a sub-flow run): the task whose fan-out call
    # (`parent_seq`, `parent_attempt`) started it, and its position in that call. It goes
    # when its parent goes; and it has the parent's deadline.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    parent_seq: Mapped[int | None] = mapped_column(Integer)
    parent_attempt: Mapped[int | None] = mapped_column(Integer)
    child_key: Mapped[str | None] = mapped_column(String(80))
    deadline_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{status}'" for status in TASK_STATUSES) + ")",
            name="status",
        ),
        # GET /tasks: newest first, keyset on (created_at, id), optionally filtered; tasks
        # started by requests only, so that a map's thousand children weigh nothing there.
        Index("ix_tasks_created_at_id", "created_at", "id", **_TOP_LEVEL),
        Index("ix_tasks_status_created_at_id", "status", "created_at", "id", **_TOP_LEVEL),
        Index("ix_tasks_flow_name_created_at_id", "flow_name", "created_at", "id", **_TOP_LEVEL),
        # GET /tasks?parent=ID: a task's children, in the same order.
        Index(
            "ix_tasks_parent_id_created_at_id",
            "parent_id",
            "created_at",
            "id",
            postgresql_where=text("parent_id IS NOT NULL"),
            sqlite_where=text("parent_id IS NOT NULL"),
        ),
        # A fan-out call's children, each once: a resumed parent finds them by their key.
        Index(
            "ix_tasks_parent_id_parent_seq_parent_attempt_child_key",
            "parent_id",
            "parent_seq",
            "parent_attempt",
            "child_key",
            unique=True,
        ),
        Index("ix_tasks_idempotency_key", "idempotency_key", unique=True),
        # Claiming: due pending tasks, and running tasks whose lease has run out.
        Index(
            "ix_tasks_pending_run_after",
            "run_after",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_tasks_running_lease_expires_at",
            "lease_expires_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        # Retention: finished tasks, the longest finished first (only they have finished_at).
        Index(
            "ix_tasks_finished_at_id",
            "finished_at",
            "id",
            postgresql_where=text("finished_at IS NOT NULL"),
            sqlite_where=text("finished_at IS NOT NULL"),
        ),
    )


class TaskStepRow(Base):
    """One tool call of a task: appended as it completes, never rewritten."""

    __tablename__ = "task_steps"

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(64))
    tool: Mapped[str] = mapped_column(String(128))
    attempt: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    input: Mapped[JsonObject]
    output: Mapped[JsonObject | None]
    error_kind: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{status}'" for status in STEP_STATUSES) + ")",
            name="status",
        ),
    )
