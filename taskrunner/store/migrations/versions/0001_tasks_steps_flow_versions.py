"""Tasks, their steps, and the flow versions they are pinned to.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "flow_versions",
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("definition", _json(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_flow_versions"),
    )
    op.create_index("ix_flow_versions_name", "flow_versions", ["name"])

    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("flow_name", sa.String(64), nullable=False),
        sa.Column("flow_digest", sa.String(80), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", _json(), nullable=False),
        sa.Column("output", _json(), nullable=True),
        sa.Column("error_kind", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("current_state", sa.String(64), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.Column("started_at", _time(), nullable=True),
        sa.Column("finished_at", _time(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_tasks_status"),
        ),
        sa.ForeignKeyConstraint(
            ["flow_digest"],
            ["flow_versions.digest"],
            name="fk_tasks_flow_digest_flow_versions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
    )
    op.create_index("ix_tasks_created_at_id", "tasks", ["created_at", "id"])
    op.create_index("ix_tasks_status_created_at_id", "tasks", ["status", "created_at", "id"])
    op.create_index("ix_tasks_flow_name_created_at_id", "tasks", ["flow_name", "created_at", "id"])

    op.create_table(
        "task_steps",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", _json(), nullable=False),
        sa.Column("output", _json(), nullable=True),
        sa.Column("error_kind", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("finished_at", _time(), nullable=False),
        sa.CheckConstraint("status IN ('succeeded', 'failed')", name=op.f("ck_task_steps_status")),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name="fk_task_steps_task_id_tasks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "seq", name="pk_task_steps"),
    )
    # A step is a fact: appended once, never rewritten. The database itself refuses.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION task_steps_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'task_steps rows are appended, never rewritten';
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER task_steps_append_only BEFORE UPDATE ON task_steps "
            "FOR EACH ROW EXECUTE FUNCTION task_steps_refuse_update()"
        )
    else:
        op.execute(
            "CREATE TRIGGER task_steps_append_only BEFORE UPDATE ON task_steps "
            "BEGIN SELECT RAISE(ABORT, 'task_steps rows are appended, never rewritten'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS task_steps_append_only ON task_steps")
        op.execute("DROP FUNCTION IF EXISTS task_steps_refuse_update()")
    else:
        op.execute("DROP TRIGGER IF EXISTS task_steps_append_only")
    op.drop_table("task_steps")
    op.drop_index("ix_tasks_flow_name_created_at_id", table_name="tasks")
    op.drop_index("ix_tasks_status_created_at_id", table_name="tasks")
    op.drop_index("ix_tasks_created_at_id", table_name="tasks")
    op.drop_table("tasks")
    op.drop_index("ix_flow_versions_name", table_name="flow_versions")
    op.drop_table("flow_versions")
