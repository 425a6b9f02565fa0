"""Queued tasks: when they may run, who holds them (a lease), idempotency keys, cancels.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("run_after", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(128), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("step_count", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE tasks SET step_count = "
        "(SELECT count(*) FROM task_steps WHERE task_steps.task_id = tasks.id)"
    )
    op.create_index("ix_tasks_idempotency_key", "tasks", ["idempotency_key"], unique=True)
    op.create_index(
        "ix_tasks_pending_run_after",
        "tasks",
        ["run_after"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_tasks_running_lease_expires_at",
        "tasks",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_running_lease_expires_at", table_name="tasks")
    op.drop_index("ix_tasks_pending_run_after", table_name="tasks")
    op.drop_index("ix_tasks_idempotency_key", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("step_count")
        batch.drop_column("cancel_requested")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
        batch.drop_column("run_after")
        batch.drop_column("idempotency_key")
