"""Retention: finished tasks deleted once they are old enough, in small batches.

`purge_finished` is the one loop, used by `taskrunner purge` and by `RetentionKeeper`:
batch after batch, each its own short transaction (`TaskRepository.purge`), so that no
lock is held for long and the workers' writes go on between batches. A task's steps go
with it. Pending and running tasks are never deleted, and flow versions are kept: tasks
pin them, and they are few.

`RetentionKeeper` applies the `TASKRUNNER_RETENTION` setting in the background, in a
thread of its own beside a worker's (the API's in-process worker, or `taskrunner
worker`): a round every `interval` seconds, with a pause between batches. A store that
fails is logged once, and tried again at the next round; the keeper never stops the
worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Final

from taskrunner.durations import format_duration
from taskrunner.errors import StoreError
from taskrunner.faults import Outage
from taskrunner.service import utc_now
from taskrunner.store.records import FINISHED, Purged, TaskStatus
from taskrunner.store.repository import TaskRepository

log = logging.getLogger("taskrunner.retention")

DEFAULT_BATCH: Final = 1000
"""Tasks per batch: a transaction of a few milliseconds to a few tens of them."""
DEFAULT_INTERVAL: Final = 60.0
"""Seconds between two rounds of the background retention."""
PAUSE_BETWEEN_BATCHES: Final = 0.05
"""Seconds the background retention waits between batches, so that on SQLite, whose one
writer a batch holds, the runners' writes never queue behind a long series of batches."""


def purge_finished(
    repository: TaskRepository,
    finished_before: datetime,
    statuses: Sequence[TaskStatus] = FINISHED,
    *,
    batch_size: int = DEFAULT_BATCH,
    between: Callable[[], bool] | None = None,
) -> Purged:
    """Delete the tasks of `statuses` (finished ones only) that finished before
    `finished_before`, batch by batch, until a batch comes back short; `between` is called
    between two batches and stops the purge by returning False."""
    if batch_size < 1:
        raise ValueError("a batch holds at least one task")
    total = Purged()
    while True:
        batch = repository.purge(finished_before, statuses, batch_size)
        total += batch
        if batch.tasks < batch_size or (between is not None and not between()):
            return total


class RetentionKeeper:
    """Deletes the finished tasks older than `retention`, every `interval` seconds."""

    def __init__(
        self,
        repository: TaskRepository,
        retention: timedelta,
        *,
        interval: float = DEFAULT_INTERVAL,
        batch_size: int = DEFAULT_BATCH,
        pause: float = PAUSE_BETWEEN_BATCHES,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.repository = repository
        self.retention = retention
        self.interval = interval
        self.batch_size = batch_size
        self.pause = pause
        self._clock = clock
        self._outage = Outage(log, "retention: deleting old tasks")

    def run(self, stop: threading.Event) -> None:
        """A round now, then one every `interval` seconds, until `stop` is set."""
        while not stop.is_set():
            self.apply(stop)
            stop.wait(self.interval)

    def apply(self, stop: threading.Event) -> Purged:
        """One round: purge what is older than the retention, until done or stopped."""
        before = self._clock() - self.retention
        try:
            purged = purge_finished(
                self.repository,
                before,
                batch_size=self.batch_size,
                between=lambda: not stop.wait(self.pause),
            )
        except StoreError as exc:
            self._outage.failed(exc)
            return Purged()
        except Exception:  # a bug here must not take the worker down with it
            log.exception("retention: deleting old tasks failed")
            return Purged()
        self._outage.worked()
        if purged.tasks:
            log.info(
                "retention: deleted %d task(s) and %d step(s) finished more than %s ago",
                purged.tasks,
                purged.steps,
                format_duration(self.retention),
            )
        return purged
