"""The log of tasks: one structured line per transition of a task and per step, on the
`taskrunner.tasks` logger, as an observer of tasks (`observe.py`).

A line names the task, its flow and state, and what happened (`event`); a step's line has
its tool, seq, attempt, status, duration and error kind. Never a task's input or output,
nor a step's, nor an error's message (which may quote them): at DEBUG, a step's line says
only how large its input and output are. A line not logged costs one level check: the
fields are built only for a line that is written.

Events: `task.created` (started to run at once), `task.queued`, `task.claimed`,
`task.taken_over` (its runner's lease ran out), `task.waiting` (back on the queue until
`run_after`), `task.retry_scheduled`, `task.succeeded`, `task.failed`, `task.cancelled`,
`task.lease_lost` (warning), and `step.succeeded` / `step.failed`.
"""

from __future__ import annotations

import json
import logging
from typing import Final

from taskrunner.store.records import StepRecord, TaskRecord

log: Final = logging.getLogger("taskrunner.tasks")


class TaskLog:
    """Writes the lines of tasks to `taskrunner.tasks`."""

    def task_started(self, task: TaskRecord) -> None:
        self._task(
            logging.INFO, "task.queued" if task.status == "pending" else "task.created", task
        )

    def task_claimed(self, task: TaskRecord, *, taken_over: bool) -> None:
        self._task(logging.INFO, "task.taken_over" if taken_over else "task.claimed", task)

    def step_recorded(self, task: TaskRecord, step: StepRecord) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, object] = {
            "task_id": str(task.id),
            "flow": task.flow_name,
            "state": step.state,
            "tool": step.tool,
            "seq": step.seq,
            "attempt": step.attempt,
            "status": step.status,
            "duration_ms": _milliseconds(step),
            "error_kind": step.error_kind,
        }
        if log.isEnabledFor(logging.DEBUG):
            fields["input_bytes"] = _size(step.input)
            fields["output_bytes"] = _size(step.output)
        log.info("step.%s", step.status, extra={"fields": fields})

    def retry_scheduled(self, task: TaskRecord, step: StepRecord, delay_seconds: float) -> None:
        self._task(
            logging.INFO,
            "task.retry_scheduled",
            task,
            state=step.state,
            attempt=step.attempt + 1,
            error_kind=step.error_kind,
            delay_seconds=delay_seconds,
        )

    def task_waiting(self, task: TaskRecord) -> None:
        run_after = task.run_after.isoformat() if task.run_after else None
        self._task(logging.INFO, "task.waiting", task, run_after=run_after)

    def task_finished(self, task: TaskRecord) -> None:
        lasted = (task.finished_at or task.updated_at) - task.created_at
        self._task(
            logging.INFO,
            f"task.{task.status}",
            task,
            error_kind=task.error_kind,
            steps=task.step_count,
            duration_ms=round(lasted.total_seconds() * 1000, 3),
        )

    def lease_lost(self, task: TaskRecord) -> None:
        self._task(logging.WARNING, "task.lease_lost", task)

    def sync_run(self, delta: int) -> None:
        pass  # the task's own lines say it

    def _task(self, level: int, event: str, task: TaskRecord, **more: object) -> None:
        if not log.isEnabledFor(level):
            return
        fields: dict[str, object] = {
            "task_id": str(task.id),
            "flow": task.flow_name,
            "state": task.current_state,
            "status": task.status,
        }
        if task.parent_id is not None:
            fields["parent_id"] = str(task.parent_id)
        fields.update(more)
        log.log(level, event, extra={"fields": fields})


def _milliseconds(step: StepRecord) -> float:
    return round((step.finished_at - step.started_at).total_seconds() * 1000, 3)


def _size(data: object) -> int:
    return 0 if data is None else len(json.dumps(data, separators=(",", ":")))
