"""The store port's contract suite: `repository` is each adapter in turn, on a store of its
own, so that every test of `TaskRepository` holds all three to the same promises.

- `memory`: the in-memory twin, `InMemoryTaskRepository`.
- `sqlite`: `SqlTaskRepository` on a copy of the migrated SQLite template file.
- `postgresql`: `SqlTaskRepository` on a database cloned from the migrated template
  database.

The SQL stores come from `clean_database` of `tests/conftest.py`, as `database_url`'s do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from taskrunner.store.database import Database
from taskrunner.store.memory import InMemoryTaskRepository
from taskrunner.store.repository import TaskRepository
from taskrunner.store.sql import SqlTaskRepository


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def repository(
    request: pytest.FixtureRequest,
    clean_database: Callable[[str], AbstractContextManager[str]],
) -> Iterator[TaskRepository]:
    """Each adapter of the port, on an empty migrated store of its own."""
    if request.param == "memory":
        twin = InMemoryTaskRepository()
        yield twin
        twin.close()
        return
    with clean_database(request.param) as url:
        database = Database(url)
        sql = SqlTaskRepository(database)
        try:
            yield sql
        finally:
            sql.close()
            database.dispose()
