"""Waits on a task that a cancel ends at once: a retry's delay waited out in the caller,
or a task that runs elsewhere (a worker, another request) waited for until it finishes.

A cancel made in this process sets the waiting task's event; one made by another process
is read from the store every `CANCEL_POLL_SECONDS`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Final

from taskrunner.errors import StoreError
from taskrunner.store.records import ACTIVE
from taskrunner.store.repository import TaskRepository
from taskrunner.views import TaskView

CANCEL_POLL_SECONDS: Final = 1.0
"""How often a task waited on here is read again, to see a cancel made elsewhere."""


class CancellableWaits:
    """The waits of one service on its tasks; `wait` is how it sleeps (a test's may not)."""

    def __init__(
        self,
        repository: TaskRepository,
        *,
        clock: Callable[[], datetime],
        wait: Callable[[threading.Event, float], bool],
    ) -> None:
        self.repository = repository
        self._clock = clock
        self._wait = wait
        self._cancels: dict[uuid.UUID, threading.Event] = {}
        """The tasks this process waits on (a delay, or another runner), by id: set when
        one is cancelled here, so that the wait ends at once."""
        self._cancels_lock = threading.Lock()

    def cancelled_here(self, task_id: uuid.UUID) -> None:
        """A cancel made in this process: a wait on `task_id` here ends at once."""
        with self._cancels_lock:
            waiting = self._cancels.get(task_id)
        if waiting is not None:
            waiting.set()

    @contextmanager
    def cancellable(self, task_id: uuid.UUID) -> Iterator[threading.Event]:
        """While the block runs, a cancel of `task_id` in this process sets the event."""
        event = threading.Event()
        with self._cancels_lock:
            self._cancels[task_id] = event
        try:
            yield event
        finally:
            with self._cancels_lock:
                self._cancels.pop(task_id, None)

    def wait(self, task_id: uuid.UUID, cancelled: threading.Event, seconds: float) -> bool:
        """Wait `seconds`, or less if the task is cancelled meanwhile: True if it was.
        A cancel made here sets `cancelled`; one made by another process is read from the
        store every `CANCEL_POLL_SECONDS`. A store that cannot be read meanwhile does not
        end the wait: the next step's write finds out whether the task is still held."""
        left = seconds
        while left > 0:
            if self._wait(cancelled, min(left, CANCEL_POLL_SECONDS)):
                return True
            left -= CANCEL_POLL_SECONDS
            if left > 0:
                try:
                    found = self.repository.get_task(task_id)
                except StoreError:
                    continue
                if found is None or found.cancel_requested or found.status not in ACTIVE:
                    return True
        return cancelled.is_set()

    def until_finished(
        self, task_id: uuid.UUID, until: datetime, read: Callable[[uuid.UUID], TaskView]
    ) -> TaskView:
        """The task once it has finished, or as it is at `until`: it runs elsewhere (a
        worker, or another request), so it is read again (`read`) at growing intervals."""
        interval = 0.05
        with self.cancellable(task_id) as cancelled:
            while True:
                task = read(task_id)
                left = (until - self._clock()).total_seconds()
                if task.status not in ACTIVE or left <= 0:
                    return task
                self._wait(cancelled, min(interval, left))
                interval = min(2 * interval, CANCEL_POLL_SECONDS)
