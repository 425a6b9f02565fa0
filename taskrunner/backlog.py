"""The tasks this process has claimed and not started yet, shared by whoever may run them:
the worker's runner threads, and any parent waiting for its children here.

A parent that waits for children in a runner thread takes from the backlog too
(`children.ChildRunner`): otherwise tasks claimed here, its own children among them,
could wait behind runner threads that all wait for them, and a worker whose every thread
holds a parent would hold their children forever.
"""

from __future__ import annotations

import threading
from collections import deque

from taskrunner.store.records import TaskRecord


class Backlog:
    def __init__(self) -> None:
        self._tasks: deque[TaskRecord] = deque()
        self._ready = threading.Condition()

    def put(self, task: TaskRecord) -> None:
        with self._ready:
            self._tasks.append(task)
            self._ready.notify()

    def get(self, timeout: float) -> TaskRecord | None:
        """The oldest claimed task, waiting up to `timeout` seconds for one."""
        with self._ready:
            if not self._tasks:
                self._ready.wait(timeout)
            return self._tasks.popleft() if self._tasks else None

    def take(self) -> TaskRecord | None:
        """The oldest claimed task, if there is one now."""
        with self._ready:
            return self._tasks.popleft() if self._tasks else None

    def __len__(self) -> int:
        with self._ready:
            return len(self._tasks)
