"""Retention at scale, on both backends: 150,000 finished tasks with 300,000 steps, written
in bulk by the database itself, and queued and running tasks beside them; a purge of the
100,000 oldest goes in batches of at most 1,000 tasks, deletes exactly those and their
steps, and leaves every other task and step as it was."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from taskrunner.catalog import FlowCatalog
from taskrunner.retention import purge_finished
from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.records import FINISHED, Purged, TaskStatus
from taskrunner.store.sql import SqlTaskRepository

pytestmark = pytest.mark.slow

FINISHED_TASKS = 150_000
ELIGIBLE = 100_000
BATCH = 1_000
START = datetime(2026, 1, 1, tzinfo=UTC)
"""The first bulk task finished then, and one more every second after it."""
DIGEST = "sha256:bulk"

BULK = {
    "postgresql": [
        "INSERT INTO tasks (id, flow_name, flow_digest, status, input, current_state, created_at,"
        " updated_at, started_at, finished_at, cancel_requested, step_count)"
        " SELECT gen_random_uuid(), 'bulk', :digest,"
        " (ARRAY['succeeded', 'failed', 'cancelled'])[1 + i % 3], '{}', 'done', t, t, t, t,"
        " false, 2"
        " FROM generate_series(0, :count - 1) AS i,"
        " LATERAL (SELECT CAST(:start AS timestamptz) + i * interval '1 second' AS t) AS at",
        "INSERT INTO task_steps (task_id, seq, state, tool, attempt, status, input, output,"
        " started_at, finished_at)"
        " SELECT id, seq, 'echo', 'echo', 1, 'succeeded', '{}', '{}', finished_at, finished_at"
        " FROM tasks, generate_series(1, 2) AS seq WHERE flow_name = 'bulk'",
    ],
    "sqlite": [
        # Timestamps as SQLAlchemy stores them on SQLite: UTC, six decimals.
        "INSERT INTO tasks (id, flow_name, flow_digest, status, input, current_state, created_at,"
        " updated_at, started_at, finished_at, cancel_requested, step_count)"
        " WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)"
        " SELECT lower(hex(randomblob(16))), 'bulk', :digest,"
        " CASE i % 3 WHEN 0 THEN 'succeeded' WHEN 1 THEN 'failed' ELSE 'cancelled' END,"
        " '{}', 'done', t, t, t, t, 0, 2"
        " FROM (SELECT i, strftime('%Y-%m-%d %H:%M:%S', :start, '+' || i || ' seconds')"
        " || '.000000' AS t FROM n)",
        "INSERT INTO task_steps (task_id, seq, state, tool, attempt, status, input, output,"
        " started_at, finished_at)"
        " SELECT id, seq, 'echo', 'echo', 1, 'succeeded', '{}', '{}', finished_at, finished_at"
        " FROM tasks, (SELECT 1 AS seq UNION ALL SELECT 2) WHERE flow_name = 'bulk'",
    ],
}


def bulk_load(database: Database) -> None:
    given = {
        "count": FINISHED_TASKS,
        "digest": DIGEST,
        "start": START.isoformat() if database.is_postgres else "2026-01-01 00:00:00",
    }
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO flow_versions (digest, name, definition, created_at)"
                " VALUES (:digest, 'bulk', '{}', :start)"
            ),
            given,
        )
        for statement in BULK[database.dialect]:
            connection.execute(text(statement), given)
        if database.is_postgres:
            connection.execute(text("ANALYZE tasks"))
            connection.execute(text("ANALYZE task_steps"))


def counts(database: Database) -> dict[str, int]:
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT status, count(*) FROM tasks GROUP BY status UNION ALL"
                " SELECT 'steps', count(*) FROM task_steps"
            )
        ).all()
    return {str(row[0]): int(row[1]) for row in rows}


class CountingRepository(SqlTaskRepository):
    """The SQL adapter, keeping what each batch deleted."""

    batches: list[Purged]

    def purge(
        self, finished_before: datetime, statuses: Sequence[TaskStatus], limit: int
    ) -> Purged:
        purged = super().purge(finished_before, statuses, limit)
        self.batches.append(purged)
        return purged


def test_a_purge_at_scale_goes_in_bounded_batches_and_deletes_exactly_the_old(
    database: Database, catalog: FlowCatalog
) -> None:
    bulk_load(database)
    # Queued and running tasks older than everything else: they must all survive.
    old = TaskService(SqlTaskRepository(database), catalog, clock=lambda: START - timedelta(days=9))
    active = [
        old.enqueue_task("echo_add", {"text": "x", "a": 1, "b": 2}).task.id for _ in range(60)
    ]
    claimed = old.claim(20)
    for task in claimed:
        old.leases.drop(task.id)
    loaded = counts(database)
    assert loaded == {
        "succeeded": FINISHED_TASKS // 3,
        "failed": FINISHED_TASKS // 3,
        "cancelled": FINISHED_TASKS // 3,
        "pending": 40,
        "running": 20,
        "steps": 2 * FINISHED_TASKS,
    }

    repository = CountingRepository(database)
    repository.batches = []
    cutoff = START + timedelta(seconds=ELIGIBLE)  # strictly before: tasks 0 … 99,999
    assert repository.count_purgeable(cutoff, FINISHED) == Purged(ELIGIBLE, 2 * ELIGIBLE)

    purged = purge_finished(repository, cutoff, batch_size=BATCH)

    assert purged == Purged(ELIGIBLE, 2 * ELIGIBLE)
    assert len(repository.batches) == ELIGIBLE // BATCH + 1  # the last one comes back empty
    assert all(batch == Purged(BATCH, 2 * BATCH) for batch in repository.batches[:-1])
    assert repository.batches[-1] == Purged()
    left = FINISHED_TASKS - ELIGIBLE
    kept = Counter(FINISHED[i % 3] for i in range(ELIGIBLE, FINISHED_TASKS))
    assert counts(database) == {
        **kept,
        "pending": 40,
        "running": 20,
        "steps": 2 * left,
    }
    for task_id in active:
        assert old.get_task(task_id).status in ("pending", "running")
    assert repository.count_purgeable(cutoff, FINISHED) == Purged()
    with database.engine.connect() as connection:
        oldest = connection.execute(text("SELECT min(finished_at) FROM tasks")).scalar_one()
    assert str(oldest).startswith("2026-01-02 03:46:40")  # START + 100,000 s: the first kept
