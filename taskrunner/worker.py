"""Workers: processes (or threads of the API's process) that claim queued tasks and run
them, sharing one database.

A worker claims tasks in batches with `SELECT … FOR UPDATE SKIP LOCKED` (so workers never
wait on each other or take the same task) into a small backlog of its own, which its
`concurrency` runner threads work through; it claims again when the backlog runs low, so
a claim costs one transaction per batch rather than per task. It holds a lease on every
task it has claimed (kept alive by the service's lease keeper), and records each step
through the same service as the API. The store wakes idle workers as soon as a task is
queued (PostgreSQL `LISTEN`/`NOTIFY`; within the process on SQLite); polling every
`poll_seconds` is the fallback, finds retries whose delay is over, and takes over the
tasks of workers that died (their lease ran out).

With a `RetentionKeeper`, a thread of its own deletes old finished tasks in small batches
beside the runners (`retention.py`), so every process that runs tasks applies the
retention setting; its failures are its own, logged, and never stop the worker.

Stopping (SIGTERM, or the API shutting down) drains: no new claims, each task in hand
finishes the step it is running, records it, and goes back to the queue, and so do the
claimed tasks not yet started.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from taskrunner.errors import StoreError
from taskrunner.faults import Outage
from taskrunner.service import TaskService
from taskrunner.store.records import TaskRecord

if TYPE_CHECKING:
    from taskrunner.retention import RetentionKeeper

log = logging.getLogger("taskrunner.worker")
DEFAULT_CONCURRENCY: Final = 4
BATCH_WINDOW: Final = 0.005
"""After a wake-up, wait this long (seconds) before claiming, so that under load one claim
takes the tasks of many notifications instead of one each."""


class Worker:
    def __init__(
        self,
        service: TaskService,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        poll_seconds: float = 1.0,
        retention: RetentionKeeper | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a worker runs at least one task at a time")
        self.service = service
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.retention = retention
        """Deletes old finished tasks in a thread of its own, beside the runners."""
        self._wake = threading.Event()
        self._backlog = service.backlog
        self._running = 0
        self._lock = threading.Lock()
        self._claims = Outage(log, "claiming tasks")
        self._releases = Outage(log, "handing tasks back")
        self._wakes = Outage(log, "waiting for work")

    def run(self, stop: threading.Event) -> None:
        """Claim and run tasks until `stop` is set; then drain and return."""
        threads = [
            threading.Thread(target=self._run_tasks, args=(stop,), name=f"taskrunner-run-{n}")
            for n in range(self.concurrency)
        ]
        threads.append(
            threading.Thread(target=self._listen, args=(stop,), name="taskrunner-listen")
        )
        if self.retention is not None:
            threads.append(
                threading.Thread(
                    target=self.retention.run, args=(stop,), name="taskrunner-retention"
                )
            )
        for thread in threads:
            thread.start()
        recovered_at = 0.0
        while not stop.is_set():
            self._wake.clear()
            if len(self._backlog) < self.concurrency:
                stop.wait(BATCH_WINDOW)
                wanted = 2 * self.concurrency - len(self._backlog) - self._busy()
                claimed = self._claim(self.service.claim, wanted)
                if time.monotonic() - recovered_at >= self.poll_seconds:
                    recovered_at = time.monotonic()
                    claimed += self._claim(self.service.claim_abandoned, wanted - len(claimed))
                for task in claimed:
                    self._backlog.put(task)
                if len(claimed) == wanted:
                    continue  # there may be more: claim again once the backlog runs low
            self._wake.wait(self.poll_seconds)
        for thread in threads:
            thread.join()
        while (left := self._backlog.take()) is not None:
            self._release(left)

    def _run_tasks(self, stop: threading.Event) -> None:
        while not stop.is_set():
            task = self._backlog.get(self.poll_seconds)
            if task is None:
                continue
            with self._lock:
                self._running += 1
            try:
                self.service.resume(task, stop)
            except StoreError as exc:  # the lease runs out, and the task is taken over
                log.warning("task %s stopped: %s", task.id, exc)
            except Exception:  # one task's failure must not stop the worker
                log.exception("running task %s failed", task.id)
            finally:
                with self._lock:
                    self._running -= 1
                if len(self._backlog) < self.concurrency:
                    self._wake.set()

    def _claim(self, claim: Callable[[int], list[TaskRecord]], wanted: int) -> list[TaskRecord]:
        if wanted <= 0:
            return []
        try:
            claimed = claim(wanted)
        except StoreError as exc:
            self._claims.failed(exc)
            return []
        self._claims.worked()
        return claimed

    def _release(self, task: TaskRecord) -> None:
        try:
            self.service.release(task)
        except StoreError as exc:  # its lease runs out, and another worker takes it
            self._releases.failed(exc)

    def _busy(self) -> int:
        with self._lock:
            return self._running

    def _listen(self, stop: threading.Event) -> None:
        """Wake the claiming loop as soon as the store says a task may be due."""
        while not stop.is_set():
            try:
                woken = self.service.wait_for_work(self.poll_seconds)
            except StoreError as exc:
                self._wakes.failed(exc)
                stop.wait(self.poll_seconds)
                continue
            self._wakes.worked()
            if woken:
                self._wake.set()


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
