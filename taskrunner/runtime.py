"""Putting a process together: settings → database (migrated) → flows → service.

The CLI and the API both start here, so they run the same service on the same database.
Nothing is created at import time; `open_runtime` does it all, once, when asked.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass

from taskrunner.catalog import FlowCatalog, load_catalog
from taskrunner.errors import NoDatabaseError
from taskrunner.flowwatch import FlowReloader, FlowWatcher, log, report_flow_files
from taskrunner.metrics import Metrics
from taskrunner.observe import Observers
from taskrunner.retention import RetentionKeeper
from taskrunner.service import TaskService, utc_now
from taskrunner.settings import Settings
from taskrunner.store.database import Database, sqlite_path
from taskrunner.store.migrate import migrate, require_current
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tasklog import TaskLog
from taskrunner.worker import Worker


@dataclass
class Runtime:
    settings: Settings
    database: Database
    service: TaskService
    flows: FlowReloader
    metrics: Metrics
    """This process's metrics: `GET /metrics`, or a worker's `--metrics-port`."""

    @property
    def catalog(self) -> FlowCatalog:
        """The flows as they are now. A reload swaps it whole: read it once per request."""
        return self.service.catalog

    def flow_watcher(self) -> FlowWatcher:
        """A thread (not started) that reloads the flows when their directory changes."""
        return FlowWatcher(self.flows, self.settings.flows_reload_seconds)

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
    warn: Callable[[str], None] = log.warning,
    existing: bool = False,
) -> Runtime:
    """Load the flows, connect, migrate (unless switched off), and build the service.

    Each flow file that is skipped (invalid, unreadable, a name taken) is said once to
    `warn`; the others load. A flows directory that does not exist stops it all
    (`FlowCatalogError`). A `catalog` given is used as it is, and reported by the caller.

    `existing`: the database must exist already (commands that only read or change
    tasks): a SQLite path where there is no file is refused rather than made, so that a
    mistyped path is not taken for an empty database.
    """
    if catalog is None:
        catalog = load_catalog(settings.flows_dir)
        report_flow_files(catalog, warn)
    if announce is not None:
        announce(f"taskrunner: using {settings.describe_database()}")
    if existing:
        _require_sqlite_file(settings)
    database = Database(settings.database_url, settings.timeouts)
    metrics = Metrics()
    try:
        if settings.auto_migrate:
            migrate(database)
        else:
            require_current(database)
        service = TaskService(
            SqlTaskRepository(database),
            catalog,
            lease_seconds=settings.lease_seconds,
            sync_wait_seconds=settings.sync_wait_seconds,
            observer=Observers(metrics, TaskLog()),
        )
    except BaseException:
        database.dispose()
        raise
    metrics.watch_queue(service.repository, utc_now)
    reloader = FlowReloader(settings.flows_dir, service, warn=warn)
    return Runtime(settings, database, service, reloader, metrics)


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


def _require_sqlite_file(settings: Settings) -> None:
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        where = " (the embedded default)" if settings.database_is_default else ""
        raise NoDatabaseError(
            f"there is no database at {path}{where}: no task has been started with it "
            "(check DATABASE_URL, and the current directory for a relative path)"
        )
