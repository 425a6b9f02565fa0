"""A worker process for the tests that run fan-outs on real, separate worker processes (and
kill them): `taskrunner worker`, with a lease short enough for a test to wait out.

    python tests/worker_process.py DATABASE_URL FLOWS_DIR CONCURRENCY LEASE_SECONDS

It prints `worker running` once it claims, and drains on SIGTERM as `taskrunner worker`
does. The test tools of `tests/plugins` must be on PYTHONPATH.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tools import load_registry
from taskrunner.worker import Worker


def main() -> None:
    url, flows, concurrency, lease_seconds = sys.argv[1:]
    logging.basicConfig(level=logging.WARNING)
    catalog = FlowCatalog.load(Path(flows), FlowChecker(load_registry()))
    database = Database(url)
    service = TaskService(SqlTaskRepository(database), catalog, lease_seconds=float(lease_seconds))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signal, _frame: stop.set())
    sys.stdout.write("worker running\n")
    sys.stdout.flush()
    try:
        Worker(service, concurrency=int(concurrency), poll_seconds=0.2).run(stop)
    finally:
        service.close()
        database.dispose()


if __name__ == "__main__":
    main()
