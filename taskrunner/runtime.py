"""Putting a process together: settings → database (migrated) → flows → service.

The CLI and the API both start here, so they run the same service on the same database.
Nothing is created at import time; `open_runtime` does it all, once, when asked.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass

from taskrunner.catalog import FlowCatalog, load_catalog
from taskrunner.retention import RetentionKeeper
from taskrunner.service import TaskService
from taskrunner.settings import Settings
from taskrunner.store.database import Database
from taskrunner.store.migrate import migrate, require_current
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.worker import Worker


@dataclass
class Runtime:
    settings: Settings
    database: Database
    catalog: FlowCatalog
    service: TaskService

    def worker(self, concurrency: int) -> Worker:
        """A worker on this runtime's service; it applies the retention setting, if any."""
        return Worker(
            self.service,
            concurrency=concurrency,
            poll_seconds=self.settings.poll_seconds,
            retention=self.retention_keeper(),
        )

    def retention_keeper(self) -> RetentionKeeper | None:
        if self.settings.retention is None:
            return None
        return RetentionKeeper(
            self.service.repository,
            self.settings.retention,
            interval=self.settings.retention_interval,
        )

    def close(self) -> None:
        self.service.close()
        self.database.dispose()


def open_runtime(
    settings: Settings,
    *,
    catalog: FlowCatalog | None = None,
    announce: Callable[[str], None] | None = None,
) -> Runtime:
    """Load the flows, connect, migrate (unless switched off), and build the service."""
    catalog = catalog or load_catalog(settings.flows_dir)
    if announce is not None:
        announce(f"taskrunner: using {settings.describe_database()}")
    database = Database(settings.database_url)
    try:
        if settings.auto_migrate:
            migrate(database)
        else:
            require_current(database)
        service = TaskService(
            SqlTaskRepository(database), catalog, lease_seconds=settings.lease_seconds
        )
    except BaseException:
        database.dispose()
        raise
    return Runtime(settings, database, catalog, service)


def settle_memory() -> None:
    """Tune the garbage collector for a long-running server or worker, once it has started.

    What start-up allocated (modules, models, schemas) lives as long as the process:
    `gc.freeze()` keeps the collector from scanning it again and again. And a serving
    process allocates many short-lived objects per request; collecting the youngest
    generation every 700 allocations, Python's default, makes for frequent pauses that
    show up as tail latency (p99 halves on the HTTP benchmark with this).
    """
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)
