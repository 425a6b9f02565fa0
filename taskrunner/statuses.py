"""The statuses a task goes through, in a module of their own that imports nothing: the
store keeps them in its records, and the command line lists them in its help without
loading the store to do so."""

from __future__ import annotations

from typing import Final, Literal, get_args

TaskStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
TASK_STATUSES: Final = get_args(TaskStatus)
ACTIVE: Final = ("pending", "running")
"""The statuses of a task that has not finished."""
FINISHED: Final[tuple[TaskStatus, ...]] = ("succeeded", "failed", "cancelled")
"""The statuses of a task that has finished: the only ones retention ever deletes."""
