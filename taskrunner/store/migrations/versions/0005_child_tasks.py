"""Child tasks: a parallel branch, a map item or a sub-flow run is a task of its own, with
a parent.

A child names its parent task, the parent's fan-out call (`parent_seq`,
`parent_attempt`) and its position in it (`child_key`), unique together, so that a
resumed parent finds the children it started instead of starting them again. It goes
with its parent (`ON DELETE CASCADE`) and carries the parent's deadline (`deadline_at`).
The indexes that serve `GET /tasks` become partial (`parent_id IS NULL`): the list shows
tasks started by requests, and children never weigh on it; a parent's children have an
index of their own.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LISTS = {
    "ix_tasks_created_at_id": ["created_at", "id"],
    "ix_tasks_status_created_at_id": ["status", "created_at", "id"],
    "ix_tasks_flow_name_created_at_id": ["flow_name", "created_at", "id"],
}
_TOP_LEVEL = sa.text("parent_id IS NULL")
_CHILD = sa.text("parent_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("parent_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("parent_seq", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("parent_attempt", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("child_key", sa.String(80), nullable=True))
        batch.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            "fk_tasks_parent_id_tasks", "tasks", ["parent_id"], ["id"], ondelete="CASCADE"
        )
    for name, columns in _LISTS.items():
        op.drop_index(name, table_name="tasks")
        op.create_index(
            name, "tasks", columns, postgresql_where=_TOP_LEVEL, sqlite_where=_TOP_LEVEL
        )
    op.create_index(
        "ix_tasks_parent_id_created_at_id",
        "tasks",
        ["parent_id", "created_at", "id"],
        postgresql_where=_CHILD,
        sqlite_where=_CHILD,
    )
    op.create_index(
        "ix_tasks_parent_id_parent_seq_parent_attempt_child_key",
        "tasks",
        ["parent_id", "parent_seq", "parent_attempt", "child_key"],
        unique=True,
    )


def downgrade() -> None:
    op.execute("DELETE FROM tasks WHERE parent_id IS NOT NULL")
    op.drop_index("ix_tasks_parent_id_parent_seq_parent_attempt_child_key", table_name="tasks")
    op.drop_index("ix_tasks_parent_id_created_at_id", table_name="tasks")
    for name, columns in _LISTS.items():
        op.drop_index(name, table_name="tasks")
        op.create_index(name, "tasks", columns)
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint("fk_tasks_parent_id_tasks", type_="foreignkey")
        batch.drop_column("deadline_at")
        batch.drop_column("child_key")
        batch.drop_column("parent_attempt")
        batch.drop_column("parent_seq")
        batch.drop_column("parent_id")
