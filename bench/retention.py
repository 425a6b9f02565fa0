"""Retention at scale: `rows` finished tasks, two steps each, written in bulk (COPY on
PostgreSQL, executemany on SQLite); then the purge of the oldest tenth in batches of 1,000
(tasks/s, and each batch's latency), its dry-run count, and a purge with nothing to delete
among them all, which the partial index on finished_at answers without reading the table."""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.harness import Result, fresh_database, latencies, libpq

START = datetime(2026, 1, 1, tzinfo=UTC)
"""The first task finished then, and one more every millisecond after it."""
DIGEST = "sha256:retention"
STATUSES = ("succeeded", "failed", "cancelled")
BATCH = 1000
TASK_COLUMNS = (
    "id, flow_name, flow_digest, status, input, output, current_state, created_at,"
    " updated_at, started_at, finished_at, cancel_requested, step_count"
)
STEP_COLUMNS = "task_id, seq, state, tool, attempt, status, input, output, started_at, finished_at"


def retention(rows: int) -> list[Result]:
    """The measurements on PostgreSQL, then on SQLite."""
    results = []
    with fresh_database("retention") as url:
        _load_postgres(url, rows)
        results += _measure(url, "PostgreSQL", rows)
    with _fresh_sqlite() as url:
        _load_sqlite(url, rows)
        results += _measure(url, "SQLite", rows)
    return results


def _finished_at(index: int) -> datetime:
    return START + timedelta(milliseconds=index)


def _task_row(index: int) -> tuple[object, ...]:
    at = _finished_at(index)
    return (
        uuid.uuid4(),
        "retention",
        DIGEST,
        STATUSES[index % 3],
        '{"text": "hello", "a": 2, "b": 3}',
        '{"text": "hello", "sum": 5}',
        "done",
        at,
        at,
        at,
        at,
        False,
        2,
    )


def _load_postgres(url: str, rows: int) -> None:
    with psycopg.connect(libpq(url), autocommit=True) as db:
        db.execute(
            "INSERT INTO flow_versions (digest, name, definition, created_at)"
            " VALUES (%s, 'retention', '{}', now())",
            (DIGEST,),
        )
        with db.cursor().copy(f"COPY tasks ({TASK_COLUMNS}) FROM STDIN") as copy:
            for index in range(rows):
                copy.write_row(_task_row(index))
        db.execute(
            f"INSERT INTO task_steps ({STEP_COLUMNS})"
            " SELECT id, seq, 'echo', 'echo', 1, 'succeeded', '{}', '{}', finished_at,"
            " finished_at FROM tasks, generate_series(1, 2) AS seq"
        )
        db.execute("VACUUM ANALYZE tasks")
        db.execute("VACUUM ANALYZE task_steps")


@contextmanager
def _fresh_sqlite() -> Iterator[str]:
    from taskrunner.store.database import Database
    from taskrunner.store.migrate import migrate

    with tempfile.TemporaryDirectory(prefix="taskrunner-bench-") as directory:
        url = f"sqlite:///{Path(directory) / 'retention.sqlite3'}"
        database = Database(url)
        try:
            migrate(database)
        finally:
            database.dispose()
        yield url


def _load_sqlite(url: str, rows: int) -> None:
    from sqlalchemy import insert

    from taskrunner.store.database import Database
    from taskrunner.store.statements import FLOW_VERSIONS, STEPS, TASKS

    names = [name.strip() for name in TASK_COLUMNS.split(",")]
    step_names = [name.strip() for name in STEP_COLUMNS.split(",")]
    database = Database(url)
    try:
        with database.engine.begin() as connection:
            connection.execute(
                insert(FLOW_VERSIONS),
                {"digest": DIGEST, "name": "retention", "definition": {}, "created_at": START},
            )
            for first in range(0, rows, 50_000):
                tasks = [_task_row(index) for index in range(first, min(rows, first + 50_000))]
                connection.execute(
                    insert(TASKS),
                    [
                        {**dict(zip(names, row, strict=True)), "input": {}, "output": {}}
                        for row in tasks
                    ],
                )
                steps = [
                    (row[0], seq, "echo", "echo", 1, "succeeded", {}, {}, row[10], row[10])
                    for row in tasks
                    for seq in (1, 2)
                ]
                connection.execute(
                    insert(STEPS), [dict(zip(step_names, step, strict=True)) for step in steps]
                )
        with database.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    finally:
        database.dispose()


def _measure(url: str, backend: str, rows: int) -> list[Result]:
    from taskrunner.retention import purge_finished
    from taskrunner.store.database import Database
    from taskrunner.store.records import FINISHED, Purged, TaskStatus
    from taskrunner.store.sql import SqlTaskRepository

    batches: list[float] = []

    class TimedRepository(SqlTaskRepository):
        def purge(
            self, finished_before: datetime, statuses: Sequence[TaskStatus], limit: int
        ) -> Purged:
            started = time.perf_counter()
            purged = super().purge(finished_before, statuses, limit)
            batches.append(time.perf_counter() - started)
            return purged

    eligible = rows // 10
    cutoff = _finished_at(eligible)
    scenario = f"purge at {rows:,} finished tasks"
    database = Database(url)
    try:
        repository = TimedRepository(database)
        started = time.perf_counter()
        counted = repository.count_purgeable(cutoff, FINISHED)
        count_seconds = time.perf_counter() - started
        started = time.perf_counter()
        purged = purge_finished(repository, cutoff, batch_size=BATCH)
        seconds = time.perf_counter() - started
        if purged != counted or purged.tasks != eligible:
            raise RuntimeError(f"{backend}: purged {purged}, counted {counted}")
        p50, p99 = latencies(batches)
        # Nothing finished before START: each call reads the index's first entry, no more.
        batches.clear()
        for _ in range(25):
            if purge_finished(repository, START, batch_size=BATCH) != Purged():
                raise RuntimeError(f"{backend}: a purge of nothing deleted something")
        empty_p50, empty_p99 = latencies(batches)
    finally:
        database.dispose()
    rows_per_second = (purged.tasks + purged.steps) / seconds
    return [
        Result(
            scenario,
            f"{backend}, oldest 10% in batches of {BATCH:,}",
            purged.tasks / seconds,
            "tasks/s",
            p50,
            p99,
            target="batch p99 <= 1 s",
            met=p99 <= 1000,
            extra={
                "tasks": purged.tasks,
                "steps": purged.steps,
                "seconds": round(seconds, 3),
                "rows_per_second": round(rows_per_second),
                "dry_run_count_seconds": round(count_seconds, 3),
            },
        ),
        Result(
            scenario,
            f"{backend}, nothing to purge",
            1 / statistics.median(batches),
            "purges/s",
            empty_p50,
            empty_p99,
            target="p99 <= 20 ms",
            met=empty_p99 <= 20,
        ),
    ]
