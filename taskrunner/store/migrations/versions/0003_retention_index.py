"""Retention: an index of finished tasks by when they finished, which purges read in order.

Partial (`finished_at IS NOT NULL`, which holds for finished tasks only): pending and
running tasks are not in it, and a purge's `finished_at < :before` implies its condition
on both PostgreSQL and SQLite. On a large PostgreSQL table, build it beforehand without
blocking writes, under the same name, and this migration keeps it:
`CREATE INDEX CONCURRENTLY ix_tasks_finished_at_id ON tasks (finished_at, id)
WHERE finished_at IS NOT NULL`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_tasks_finished_at_id",
        "tasks",
        ["finished_at", "id"],
        if_not_exists=True,
        postgresql_where=sa.text("finished_at IS NOT NULL"),
        sqlite_where=sa.text("finished_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_finished_at_id", table_name="tasks")
