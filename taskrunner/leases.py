"""Keeping leases alive while tools run.

A runner holds a task by its lease; a tool that runs longer than a lease would let the
lease run out and another worker take the task while this one still works on it. The
keeper renews, every third of a lease, the leases of all the tasks this process holds, so
a lease runs out only when its process has stopped (or cannot reach the database).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from taskrunner.errors import StoreError
from taskrunner.faults import Outage
from taskrunner.store.repository import TaskRepository

log = logging.getLogger("taskrunner.leases")


def process_owner() -> str:
    """A name for this process's leases, unique across machines and restarts."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    def __init__(
        self,
        repository: TaskRepository,
        owner: str,
        lease_seconds: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self._repository = repository
        self._clock = clock
        self._held: set[uuid.UUID] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage = Outage(log, "renewing leases")

    def expiry(self) -> datetime:
        """When a lease taken or renewed now runs out."""
        return self._clock() + self.lease

    @contextmanager
    def holding(self, task_id: uuid.UUID) -> Iterator[None]:
        """Keep renewing the lease on `task_id` while the block runs."""
        self.hold(task_id)
        try:
            yield
        finally:
            self.drop(task_id)

    def hold(self, *task_ids: uuid.UUID) -> None:
        """Keep renewing the leases on these tasks until they are dropped."""
        if not task_ids:
            return
        with self._lock:
            self._held.update(task_ids)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="taskrunner-leases", daemon=True
                )
                self._thread.start()

    def drop(self, task_id: uuid.UUID) -> None:
        with self._lock:
            self._held.discard(task_id)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.lease.total_seconds() / 3):
            with self._lock:
                held = list(self._held)
            if not held:
                continue
            try:
                self._repository.renew(self.owner, held, self.expiry())
            except StoreError as exc:  # the next step's write will find out if it is lost
                self._outage.failed(exc)
                continue
            self._outage.worked()
