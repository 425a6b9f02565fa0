"""Workers: processes (or threads of the API's process) that claim queued tasks and run
them, sharing one database.

Each worker claims what it has room for with `SELECT … FOR UPDATE SKIP LOCKED` (so workers
never wait on each other or take the same task), holds a lease on each task it runs (kept
alive by the service's lease keeper), and records each step through the same service as
the API. PostgreSQL `LISTEN`/`NOTIFY` wakes idle workers as soon as a task is queued;
polling every `poll_seconds` is the fallback, and also finds retries whose delay is over
and tasks whose worker died (their lease ran out).

Stopping (SIGTERM, or the API shutting down) drains: no new claims, each task in hand
finishes the step it is running, records it, and goes back to the queue.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final

import psycopg
from sqlalchemy.exc import SQLAlchemyError

from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.repository import ClaimedTask
from taskrunner.store.sql import NOTIFY_CHANNEL

log = logging.getLogger("taskrunner.worker")
DEFAULT_CONCURRENCY: Final = 4


class Worker:
    def __init__(
        self,
        service: TaskService,
        database: Database,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        poll_seconds: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a worker runs at least one task at a time")
        self.service = service
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self._database = database
        self._wake = threading.Event()
        self._in_flight: set[Future[None]] = set()
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        """Claim and run tasks until `stop` is set; then drain and return."""
        listener = None
        if self._database.is_postgres:
            listener = threading.Thread(
                target=self._listen, args=(stop,), name="taskrunner-listen", daemon=True
            )
            listener.start()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="taskrunner-run") as pool:
            while not stop.is_set():
                self._wake.clear()
                free = self.concurrency - self._busy()
                claimed = self._claim(free) if free > 0 else []
                for task in claimed:
                    future = pool.submit(self.service.resume, task, stop)
                    with self._lock:
                        self._in_flight.add(future)
                    future.add_done_callback(self._done)
                if not claimed or len(claimed) == free:
                    # Nothing due, or no room left: wait for a notification, a free
                    # slot, or the next poll.
                    self._wake.wait(self.poll_seconds)
        if listener is not None:
            listener.join(timeout=5)

    def _claim(self, free: int) -> list[ClaimedTask]:
        try:
            return self.service.claim(free)
        except SQLAlchemyError:
            log.warning("could not claim tasks; trying again", exc_info=True)
            return []

    def _busy(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)
        error = future.exception()
        if error is not None:
            log.error("a task run failed", exc_info=error)
        self._wake.set()

    def _listen(self, stop: threading.Event) -> None:
        url = self._database.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not stop.is_set():
                        for _ in connection.notifies(timeout=self.poll_seconds):
                            self._wake.set()
            except psycopg.Error:
                log.warning("LISTEN failed; polling until it works again", exc_info=True)
                stop.wait(self.poll_seconds)


class BackgroundWorker:
    """A worker in a thread of this process (the API's, for `taskrunner serve`)."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=worker.run, args=(self._stop,), name="taskrunner-worker", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        self._thread.join(timeout)
