"""A task run through the engine's driver, with its progress committed to the store.

`StoredRun` is the service's `Journal`: each step is committed together with the task's
new state (`Progress`) and the execution's checkpoint, so a crash loses at most the step
in progress, the next claim resumes without reading the history, and the task's end is
folded into its last step's commit. It keeps the task's record in hand, moved on as
the store moves it (`records.progressed`), so that a caller who waits for the task gets it
back without reading it again.

Time is read here, not in the engine: when a wait begins (its wake time is recorded by
the wait's first step), whether a call's `not_before` has come, and whether the task is
past its deadline (`timeout_seconds` after it was created). A task past it fails with
`TaskTimeout` before its next step, or as soon as a step ends past it; a task handed back
to the queue is due no later than its deadline, so that it is woken then to fail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from taskrunner.engine.fanout import ChildResult, Fanout
from taskrunner.engine.steps import (
    TASK_TIMEOUT,
    CallTool,
    Decision,
    Fail,
    Finish,
    Step,
    StepError,
    task_timed_out,
)
from taskrunner.observe import Observer, Observers
from taskrunner.store.records import (
    CANCELLED,
    FINISHED,
    Progress,
    StepRecord,
    TaskRecord,
    TaskStatus,
    progressed,
    released,
)
from taskrunner.store.repository import TaskRepository
from taskrunner.tools import JsonObject

RunChildren = Callable[["StoredRun", CallTool, Fanout], Sequence[ChildResult] | None]
"""Runs the children of a fan-out call for a run (`children.ChildRunner.run`)."""


class StoredRun:
    """The journal of one task, run by the holder of its lease.

    `here`: the caller waits for the result, so a retry's delay is waited out here, with
    `wait` (which answers True when the task was cancelled meanwhile: it then ends at once,
    without another call); a worker instead hands the task back to the queue until the
    delay is over. A caller that waits only until `deadline` hands the task back to the
    queue once it is past, or when a delay would take it past. `stop`, once set, hands the
    task back to the queue before its next step. Delays and waits that end past the
    task's deadline (`timeout_seconds` after its creation) end at it instead.
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
        timeout_seconds: float | None = None,
        children: RunChildren | None = None,
        observer: Observer | None = None,
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
        self._children = children
        self._observer = observer or Observers()
        self.timeout_seconds = timeout_seconds
        """The flow's whole-task limit, once known (the task's flow version says it)."""

    def now(self) -> datetime:
        return self._clock()

    def time_left(self) -> float | None:
        expires = self.expires()
        return None if expires is None else (expires - self._clock()).total_seconds()

    def before_call(self, call: CallTool) -> bool:
        now = self._clock()
        if self._timed_out(call.state, now):
            return False
        if self.must_leave():
            self.hand_back()
            return False
        # A worker resumes a retry only once the queue has waited its delay out.
        wake = _wake_time(call, now) if self._here else call.not_before
        if wake is not None and wake > now:
            wake = self._capped(wake)
            if not self._here:
                # Claimed before its wake time (its last runner died mid-wait): back to
                # the queue until then, not a wait from zero.
                self.end(_waiting(call.state, now, wake))
                return False
            if self._wait((wake - now).total_seconds()):
                self.end(ended("cancelled", call.state, self._clock(), CANCELLED))
                return False
            if self._timed_out(call.state, self._clock()):
                return False
        self._started = self._clock()
        return True

    def hand_back(self) -> None:
        """Give the task back to the queue, due now, for a worker to go on with."""
        now = self._clock()
        self._repository.release(self.task.id, self._owner, now)
        self.task = released(self.task, now)
        self._observer.task_waiting(self.task)

    def run_children(self, call: CallTool, fanout: Fanout) -> Sequence[ChildResult] | None:
        if self._children is None:
            raise NotImplementedError("this run has no runner of child tasks")
        return self._children(self, call, fanout)

    def must_leave(self) -> bool:
        """Whether the run must hand its task back now: its worker is stopping, or the
        caller's time is up."""
        stopping = self._stop is not None and self._stop.is_set()
        return stopping or (self._deadline is not None and self._clock() >= self._deadline)

    def cancelled(self, error: StepError) -> None:
        """End the task cancelled now, where it stands (a cancel came while it waited)."""
        self.end(ended("cancelled", self.task.current_state or "", self._clock(), error))

    def record(self, step: Step, decision: Decision, checkpoint: JsonObject) -> bool:
        finished = self._clock()
        if self._past_deadline(finished) or (step.error and step.error.kind == TASK_TIMEOUT):
            decision = Fail(step.state, task_timed_out(self._limit_seconds()))
        progress = replace(_progress(decision, finished), checkpoint=checkpoint)
        wake = _wake_time(decision, finished) if isinstance(decision, CallTool) else None
        if wake is not None and wake > finished:
            run_after = self._capped(wake)
            if not self._here or (self._deadline is not None and run_after > self._deadline):
                progress = replace(progress, status="pending", run_after=run_after)
        record = StepRecord.of(self.task.id, step, self._started, finished)
        status = self._repository.record_step(self._owner, record, progress)
        self.steps.append(record)
        before = self.task.status
        self._moved(progress, step.seq, status)
        self._observer.step_recorded(self.task, record)
        delay = _retry_delay(step, decision)
        if delay is not None:
            self._observer.retry_scheduled(self.task, record, delay)
        self._report(before)
        return status == "running"

    def settle(self, decision: Finish | Fail) -> None:
        now = self._clock()
        if not self._timed_out(decision.state, now):
            self.end(_progress(decision, now))

    def end(self, progress: Progress) -> None:
        """Write how the task stands now, without a step."""
        status = self._repository.update_task(self.task.id, self._owner, progress)
        before = self.task.status
        self._moved(progress, None, status)
        self._report(before)

    def expires(self) -> datetime | None:
        """The task's deadline, if it has one: its flow's `timeout_seconds` after it was
        created, or, for a child task, its parent's deadline, whichever comes first."""
        inherited = self.task.deadline_at
        if self.timeout_seconds is None:
            return inherited
        own = self.task.created_at + timedelta(seconds=self.timeout_seconds)
        return own if inherited is None else min(own, inherited)

    def _limit_seconds(self) -> float:
        """The time the task had, for the error that says it is up."""
        inherited = self.task.deadline_at
        own = self.timeout_seconds
        if inherited is None or (own is not None and own <= self._seconds_to(inherited)):
            return own or 0.0
        return self._seconds_to(inherited)

    def _seconds_to(self, moment: datetime) -> float:
        return (moment - self.task.created_at).total_seconds()

    def _capped(self, moment: datetime) -> datetime:
        """`moment`, or the task's deadline if that comes first: a task woken then fails."""
        expires = self.expires()
        return moment if expires is None else min(moment, expires)

    def _past_deadline(self, now: datetime) -> bool:
        expires = self.expires()
        return expires is not None and now >= expires

    def _timed_out(self, state: str, now: datetime) -> bool:
        """End the task with `TaskTimeout` if it is past its deadline; whether it was."""
        if not self._past_deadline(now):
            return False
        self.end(ended("failed", state, now, task_timed_out(self._limit_seconds())))
        return True

    def _moved(self, progress: Progress, step_count: int | None, status: TaskStatus) -> None:
        task = self.task
        if status == "cancelled" and not task.cancel_requested:
            task = replace(task, cancel_requested=True)  # asked meanwhile; the store applied it
        self.task = progressed(task, progress, step_count)

    def _report(self, before: TaskStatus) -> None:
        """Tell the observer how the task moved, if it left `before`."""
        status = self.task.status
        if status == before:
            return
        if status in FINISHED:
            self._observer.task_finished(self.task)
        elif status == "pending":
            self._observer.task_waiting(self.task)


def ended(status: TaskStatus, state: str, now: datetime, error: StepError) -> Progress:
    """The task ends now, in `state`, with `error`: failed, or cancelled."""
    return Progress(status, state, now, error=error, finished_at=now)


def _retry_delay(step: Step, decision: Decision) -> float | None:
    """The delay before `decision` tries the failed `step` again; None if it does not."""
    if (
        step.status == "failed"
        and isinstance(decision, CallTool)
        and decision.state == step.state
        and decision.attempt > step.attempt
    ):
        return decision.delay_seconds
    return None


def _wake_time(call: CallTool, now: datetime) -> datetime | None:
    """When `call` may be made: a wait's `not_before`, or a retry's delay from now."""
    if call.not_before is not None:
        return call.not_before
    if call.delay_seconds:
        return now + timedelta(seconds=call.delay_seconds)
    return None


def _waiting(state: str, now: datetime, run_after: datetime) -> Progress:
    """Back to the queue, due at `run_after`."""
    return Progress("pending", state, now, run_after=run_after)


def _progress(decision: Decision, now: datetime) -> Progress:
    if isinstance(decision, Finish):
        return Progress("succeeded", decision.state, now, output=decision.output, finished_at=now)
    if isinstance(decision, Fail):
        return ended("failed", decision.state, now, decision.error)
    return Progress("running", decision.state, now)
