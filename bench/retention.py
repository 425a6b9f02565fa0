"""Retention at scale: `rows` finished tasks (`scenarios.bulk_task_row`), two steps each,
written in bulk (COPY on PostgreSQL, executemany on SQLite); then the purge of the oldest
tenth in batches of 1,000 (tasks/s, and each batch's latency), its dry-run count, and a
purge with nothing to delete among them all, which the partial index on finished_at
answers without reading the table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import datetime

import psycopg

from bench.harness import Result, fresh_database, fresh_sqlite, latencies, libpq
from bench.scenarios import (
    BULK_COLUMNS,
    BULK_START,
    BULK_VERSIONS,
    bulk_finished_at,
    bulk_load,
    bulk_task_row,
)

BATCH = 1000
STEP_COLUMNS = "task_id, seq, state, tool, attempt, status, input, output, started_at, finished_at"
SQLITE_CHUNK = 50_000
"""Tasks per executemany on SQLite, so that the rows in hand stay few."""


def retention(rows: int) -> list[Result]:
    """The measurements on PostgreSQL, then on SQLite."""
    results = []
    with fresh_database("retention") as url:
        bulk_load(url, rows)
        with psycopg.connect(libpq(url), autocommit=True) as db:
            db.execute(
                f"INSERT INTO task_steps ({STEP_COLUMNS})"
                " SELECT id, seq, 'echo', 'echo', 1, 'succeeded', '{}', '{}', finished_at,"
                " finished_at FROM tasks, generate_series(1, 2) AS seq"
            )
            db.execute("VACUUM ANALYZE task_steps")
        results += _measure(url, "PostgreSQL", rows)
    with fresh_sqlite("retention") as url:
        _load_sqlite(url, rows)
        results += _measure(url, "SQLite", rows)
    return results


def _sqlite_time(at: datetime) -> str:
    """A timestamp as taskrunner stores it on SQLite: UTC, without a zone."""
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


def _load_sqlite(url: str, rows: int) -> None:
    import sqlite3

    from sqlalchemy.engine import make_url

    with sqlite3.connect(str(make_url(url).database)) as db:
        db.executemany(
            "INSERT INTO flow_versions (digest, name, definition, created_at)"
            " VALUES (?, ?, '{}', ?)",
            [(digest, name, _sqlite_time(BULK_START)) for digest, name in BULK_VERSIONS],
        )
        task_sql = f"INSERT INTO tasks ({BULK_COLUMNS}) VALUES ({', '.join('?' * 13)})"
        step_sql = (
            f"INSERT INTO task_steps ({STEP_COLUMNS})"
            " VALUES (?, ?, 'echo', 'echo', 1, 'succeeded', '{}', '{}', ?, ?)"
        )
        for first in range(0, rows, SQLITE_CHUNK):
            tasks = []
            steps = []
            for index in range(first, min(rows, first + SQLITE_CHUNK)):
                row = list(bulk_task_row(index))
                row[0] = row[0].hex
                row[7:11] = [_sqlite_time(at) for at in row[7:11]]
                tasks.append(row)
                steps += [(row[0], seq, row[10], row[10]) for seq in (1, 2)]
            db.executemany(task_sql, tasks)
            db.executemany(step_sql, steps)
        db.execute("ANALYZE")


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
    cutoff = bulk_finished_at(eligible)
    database = Database(url)
    try:
        repository = TimedRepository(database)
        started = time.perf_counter()
        counted = repository.count_purgeable(cutoff, FINISHED)
        count_seconds = time.perf_counter() - started
        started = time.perf_counter()
        purged = purge_finished(repository, cutoff, batch_size=BATCH)
        seconds = time.perf_counter() - started
        if purged != counted or purged != Purged(eligible, 2 * eligible):
            raise RuntimeError(f"{backend}: purged {purged}, counted {counted}")
        p50, p99 = latencies(batches)
        # Nothing finished before the first task: each purge reads one index entry.
        batches.clear()
        for _ in range(25):
            if purge_finished(repository, BULK_START, batch_size=BATCH) != Purged():
                raise RuntimeError(f"{backend}: a purge of nothing deleted something")
        empty_p50, empty_p99 = latencies(batches)
        empty_rate = 1 / statistics.median(batches)
    finally:
        database.dispose()
    scenario = f"purge at {rows:,} finished tasks"
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
                "rows_per_second": round((purged.tasks + purged.steps) / seconds),
                "dry_run_count_seconds": round(count_seconds, 3),
            },
        ),
        Result(
            scenario,
            f"{backend}, nothing to purge",
            empty_rate,
            "purges/s",
            empty_p50,
            empty_p99,
            target="p99 <= 20 ms",
            met=empty_p99 <= 20,
        ),
    ]
