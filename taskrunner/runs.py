"""A task run through the engine's driver, with its progress committed to the store.

`StoredRun` is the service's `Journal`: each step is committed together with the task's
new state (`Progress`) and the execution's checkpoint, so a crash loses at most the step
in progress, the next claim resumes without reading the history, and the task's end is
folded into its last step's commit. It keeps the task's record in hand, moved on as
the store moves it (`records.progressed`), so that a caller who waits for the task gets it
back without reading it again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from taskrunner.engine.steps import CallTool, Decision, Fail, Finish, Step, StepError
from taskrunner.store.records import (
    CANCELLED,
    Progress,
    StepRecord,
    TaskRecord,
    TaskStatus,
    progressed,
    released,
)
from taskrunner.store.repository import TaskRepository
from taskrunner.tools import JsonObject


class StoredRun:
    """The journal of one task, run by the holder of its lease.

    `here`: the caller waits for the result, so a retry's delay is waited out here, with
    `wait` (which answers True when the task was cancelled meanwhile: it then ends at once,
    without another call); a worker instead hands the task back to the queue until the
    delay is over. A caller that waits only until `deadline` hands the task back to the
    queue once it is past, or when a delay would take it past. `stop`, once set, hands the
    task back to the queue before its next step.
    """

    def __init__(
        self,
        repository: TaskRepository,
        task: TaskRecord,
        owner: str,
        *,
        clock: Callable[[], datetime],
        here: bool,
        wait: Callable[[float], bool] = lambda _seconds: False,
        deadline: datetime | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.task = task
        """The task as the store now has it."""
        self.steps: list[StepRecord] = []
        """The steps recorded in this run."""
        self._repository = repository
        self._owner = owner
        self._clock = clock
        self._wait = wait
        self._here = here
        self._deadline = deadline
        self._stop = stop
        self._started = clock()

    def before_call(self, call: CallTool) -> bool:
        stopping = self._stop is not None and self._stop.is_set()
        if stopping or (self._deadline is not None and self._clock() >= self._deadline):
            self.hand_back()
            return False
        if self._here and call.delay_seconds and self._wait(call.delay_seconds):
            self.end(ended("cancelled", call.state, self._clock(), CANCELLED))
            return False
        self._started = self._clock()
        return True

    def hand_back(self) -> None:
        """Give the task back to the queue, due now, for a worker to go on with."""
        now = self._clock()
        self._repository.release(self.task.id, self._owner, now)
        self.task = released(self.task, now)

    def record(self, step: Step, decision: Decision, checkpoint: JsonObject) -> bool:
        finished = self._clock()
        progress = replace(_progress(decision, finished), checkpoint=checkpoint)
        if isinstance(decision, CallTool) and decision.delay_seconds:
            run_after = finished + timedelta(seconds=decision.delay_seconds)
            if not self._here or (self._deadline is not None and run_after > self._deadline):
                progress = replace(progress, status="pending", run_after=run_after)
        record = StepRecord.of(self.task.id, step, self._started, finished)
        status = self._repository.record_step(self._owner, record, progress)
        self.steps.append(record)
        self._moved(progress, step.seq, status)
        return status == "running"

    def settle(self, decision: Finish | Fail) -> None:
        self.end(_progress(decision, self._clock()))

    def end(self, progress: Progress) -> None:
        """Write how the task stands now, without a step."""
        status = self._repository.update_task(self.task.id, self._owner, progress)
        self._moved(progress, None, status)

    def _moved(self, progress: Progress, step_count: int | None, status: TaskStatus) -> None:
        task = self.task
        if status == "cancelled" and not task.cancel_requested:
            task = replace(task, cancel_requested=True)  # asked meanwhile; the store applied it
        self.task = progressed(task, progress, step_count)


def ended(status: TaskStatus, state: str, now: datetime, error: StepError) -> Progress:
    """The task ends now, in `state`, with `error`: failed, or cancelled."""
    return Progress(status, state, now, error=error, finished_at=now)


def _progress(decision: Decision, now: datetime) -> Progress:
    if isinstance(decision, Finish):
        return Progress("succeeded", decision.state, now, output=decision.output, finished_at=now)
    if isinstance(decision, Fail):
        return ended("failed", decision.state, now, decision.error)
    return Progress("running", decision.state, now)
