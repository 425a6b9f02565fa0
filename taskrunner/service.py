"""The one place where the engine meets the database.

A task runs in one of two ways, through the same loop (`_drive`):

- **in the caller** (`run_task`): the process that created the task holds it (a lease)
  and runs it to its end, waiting out retry delays itself;
- **queued** (`enqueue_task`): the task waits, pending, until a worker claims it
  (`claim`) and runs it (`resume`) from its last recorded step; a retry's delay hands the
  task back to the queue, claimable when the delay is over, instead of holding a worker.

Each step is committed as it completes, with the task's new state in the same
transaction, so a crash loses at most the step in progress, and the task's finish is
folded into its last step's commit: `echo_add` run in the caller costs three commits.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import ValidationError

from taskrunner.catalog import FlowCatalog
from taskrunner.cursors import decode_cursor, encode_cursor
from taskrunner.engine.driver import drive
from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import replay
from taskrunner.engine.model import FLOW_NAME_PATTERN
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.steps import CallTool, Decision, Fail, Finish, Step, StepError
from taskrunner.engine.storable import unstorable_text
from taskrunner.errors import (
    InvalidRequestError,
    TaskNotFoundError,
    TaskrunnerError,
    UnexpectedStepError,
    UnstorableDataError,
)
from taskrunner.leases import LeaseKeeper
from taskrunner.store.repository import (
    CANCELLED,
    CancelOutcome,
    ClaimedTask,
    LeaseLostError,
    NewTask,
    Progress,
    RecordedStep,
    TaskFilter,
    TaskRepository,
)
from taskrunner.tools import JsonObject
from taskrunner.views import StepView, TaskPage, TaskStatus, TaskView, error_view, step_view

MAX_PAGE: Final = 500
DEFAULT_PAGE: Final = 50
DEFAULT_LEASE_SECONDS: Final = 30.0
UNEXPECTED_STEP: Final = "UnexpectedStep"
FLOW_UNAVAILABLE: Final = "FlowUnavailable"
IDEMPOTENCY_KEY_PATTERN: Final = re.compile(r"^[\x21-\x7e]{1,255}$")

log = logging.getLogger("taskrunner.service")


def utc_now() -> datetime:
    return datetime.now(UTC)


def process_owner() -> str:
    """A name for this process's leases, unique across machines and restarts."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class IdempotencyConflictError(TaskrunnerError):
    """This idempotency key already started a task with a different flow or input."""


class TaskFinishedError(TaskrunnerError):
    """The task has already finished."""


@dataclass(frozen=True)
class Started:
    """A task that a request started, or found: `created` is False when an earlier request
    with the same idempotency key had already started it."""

    task: TaskView
    created: bool


class TaskService:
    """Starts, runs, cancels and reads tasks; used alike by the HTTP API, the CLI and the
    workers."""

    def __init__(
        self,
        repository: TaskRepository,
        catalog: FlowCatalog,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        sleep: Callable[[float], None] = time.sleep,
        owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.repository = repository
        self.catalog = catalog
        self.owner = owner or process_owner()
        self.leases = LeaseKeeper(repository, self.owner, lease_seconds, clock)
        self._clock = clock
        self._new_id = new_id
        self._sleep = sleep
        self._plans = {entry.flow.digest: entry.plan for entry in catalog}

    def close(self) -> None:
        self.leases.close()

    # -- starting -----------------------------------------------------------------------

    def run_task(
        self, flow_name: str, data: Mapping[str, object], *, idempotency_key: str | None = None
    ) -> Started:
        """Start a task of `flow_name` on `data` and run it here to its end.

        Raises `UnknownFlowError`, `FlowInputError`, `UnstorableDataError` or
        `InvalidRequestError` before anything is stored when the request cannot become a
        task, and `IdempotencyConflictError` when its key started a different one.
        """
        flow, plan, clean = self._admit(flow_name, data, idempotency_key)
        now = self._clock()
        task = NewTask(
            id=self._new_id(),
            flow=flow,
            input=clean,
            status="running",
            current_state=flow.start,
            created_at=now,
            started_at=now,
            idempotency_key=idempotency_key,
            lease_owner=self.owner,
            lease_expires_at=self.leases.expiry(),
        )
        existing = self.repository.create_task(task)
        if existing is not None:
            return self._found(existing, flow_name, clean)
        with self.leases.holding(task.id):
            status, progress, steps = self._drive(task.id, plan, clean, [], here=True)
        return Started(_task_view(task, status, progress, steps), created=True)

    def enqueue_task(
        self, flow_name: str, data: Mapping[str, object], *, idempotency_key: str | None = None
    ) -> Started:
        """Start a task and leave it, pending, for a worker to run."""
        flow, _, clean = self._admit(flow_name, data, idempotency_key)
        now = self._clock()
        task = NewTask(
            id=self._new_id(),
            flow=flow,
            input=clean,
            status="pending",
            current_state=flow.start,
            created_at=now,
            idempotency_key=idempotency_key,
            run_after=now,
        )
        existing = self.repository.create_task(task)
        if existing is not None:
            return self._found(existing, flow_name, clean)
        pending = Progress("pending", flow.start, now)
        return Started(_task_view(task, "pending", pending, []), created=True)

    # -- running queued tasks -----------------------------------------------------------

    def claim(self, limit: int) -> list[ClaimedTask]:
        """Take up to `limit` due queued tasks; their leases are kept alive until they are
        resumed or released."""
        claimed = self.repository.claim(self.owner, limit, self._clock(), self.leases.expiry())
        self.leases.hold(*(task.id for task in claimed))
        return claimed

    def claim_abandoned(self, limit: int) -> list[ClaimedTask]:
        """Take up to `limit` tasks whose runner died (their lease ran out)."""
        claimed = self.repository.claim_abandoned(
            self.owner, limit, self._clock(), self.leases.expiry()
        )
        self.leases.hold(*(task.id for task in claimed))
        return claimed

    def release(self, claimed: ClaimedTask) -> None:
        """Give a claimed task that was not run back to the queue."""
        try:
            self.repository.release(claimed.id, self.owner, self._clock())
        finally:
            self.leases.drop(claimed.id)

    def resume(self, claimed: ClaimedTask, stop: threading.Event | None = None) -> None:
        """Run a claimed task from its last recorded step as far as it goes here: to its
        end, to a retry's delay, to a cancel, or, when `stop` is set, to the end of the
        step in hand (then the task goes back to the queue)."""
        with self.leases.holding(claimed.id):
            try:
                self._resume(claimed, stop)
            except LeaseLostError:
                log.warning("lost the lease on task %s; another worker has it", claimed.id)

    def _resume(self, claimed: ClaimedTask, stop: threading.Event | None) -> None:
        now = self._clock()
        if claimed.cancel_requested:
            self.repository.update_task(
                claimed.id, self.owner, _ended("cancelled", claimed.current_state, now, CANCELLED)
            )
            return
        try:
            plan = self._plan(claimed.flow_digest)
        except (TaskrunnerError, ValidationError) as exc:
            error = StepError(FLOW_UNAVAILABLE, f"the flow version cannot be run here: {exc}")
            ended = _ended("failed", claimed.current_state, now, error)
            self.repository.update_task(claimed.id, self.owner, ended)
            return
        recorded = self.repository.steps_of(claimed.id) if claimed.step_count else []
        self._drive(claimed.id, plan, claimed.input, recorded, here=False, stop=stop)

    # -- cancelling ---------------------------------------------------------------------

    def cancel_task(self, task_id: uuid.UUID) -> tuple[CancelOutcome, TaskView]:
        """Cancel a pending task at once, or ask a running one to stop before its next
        step. Raises `TaskNotFoundError`, or `TaskFinishedError` for a finished task."""
        outcome = self.repository.cancel(task_id, self._clock())
        if outcome == "missing":
            raise TaskNotFoundError(task_id)
        task = self.get_task(task_id)
        if outcome == "finished":
            raise TaskFinishedError(f"the task has already finished: it is {task.status}")
        return outcome, task

    # -- reading ------------------------------------------------------------------------

    def get_task(self, task_id: uuid.UUID) -> TaskView:
        found = self.repository.get_task(task_id)
        if found is None:
            raise TaskNotFoundError(task_id)
        return found

    def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        flow: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> TaskPage:
        """A page of tasks, newest first; `next_cursor` continues after its last task."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
        if flow is not None and not re.fullmatch(FLOW_NAME_PATTERN, flow):
            raise InvalidRequestError(f"{flow!r} is not a flow name")
        after = decode_cursor(cursor) if cursor else None
        found = self.repository.list_tasks(TaskFilter(status, flow), limit + 1, after)
        items = found[:limit]
        more = len(found) > limit
        next_cursor = encode_cursor((items[-1].created_at, items[-1].id)) if more else None
        return TaskPage(items=items, next_cursor=next_cursor)

    # -- the loop -----------------------------------------------------------------------

    def _drive(
        self,
        task_id: uuid.UUID,
        plan: FlowPlan,
        data: JsonObject,
        recorded: list[Step],
        *,
        here: bool,
        stop: threading.Event | None = None,
    ) -> tuple[TaskStatus, Progress, list[StepView]]:
        """Advance the task through the engine's driver, committing each step, until it
        ends or leaves this runner.

        `here`: the caller waits for the result, so a retry's delay is slept through; a
        worker instead hands the task back to the queue until the delay is over.
        """
        now = self._clock()
        try:
            execution = replay(plan, data, recorded)
        except UnexpectedStepError as exc:
            ended = _ended("failed", plan.flow.start, now, StepError(UNEXPECTED_STEP, exc.message))
            return self.repository.update_task(task_id, self.owner, ended), ended, []
        journal = _StoreJournal(self, task_id, here=here, stop=stop)
        drive(execution, journal)
        return journal.status, journal.progress, journal.steps

    def _admit(
        self, flow_name: str, data: Mapping[str, object], idempotency_key: str | None
    ) -> tuple[Flow, FlowPlan, JsonObject]:
        entry = self.catalog.get(flow_name)
        if idempotency_key is not None and not IDEMPOTENCY_KEY_PATTERN.match(idempotency_key):
            raise InvalidRequestError(
                "an idempotency key is 1 to 255 visible ASCII characters, without spaces"
            )
        # Unstorable text is named as such before validation can misreport it; defaults
        # come from the flow, and are checked once applied.
        _refuse_unstorable(data)
        clean = entry.plan.validate_input(data)
        _refuse_unstorable(clean)
        return entry.flow, entry.plan, clean

    def _found(self, existing: TaskView, flow_name: str, data: JsonObject) -> Started:
        if existing.flow != flow_name or _canonical(existing.input) != _canonical(data):
            raise IdempotencyConflictError(
                f"this idempotency key already started task {existing.id} "
                "with a different flow or input"
            )
        return Started(existing, created=False)

    def _plan(self, digest: str) -> FlowPlan:
        plan = self._plans.get(digest)
        if plan is None:
            definition = self.repository.flow_definition(digest)
            if definition is None:
                raise TaskrunnerError(f"the flow version {digest} is not stored")
            flow = self.catalog.checker.language.parse(definition)
            if flow.digest != digest:
                raise TaskrunnerError(f"the stored flow version {digest} does not match it")
            plan = self._plans[digest] = FlowPlan(flow, self.catalog.checker.registry)
        return plan


def _refuse_unstorable(data: object) -> None:
    where = unstorable_text(data)
    if where is not None:
        raise UnstorableDataError(where)


class _StoreJournal:
    """A task's journal in the store: each step committed with the task's new state."""

    def __init__(
        self,
        service: TaskService,
        task_id: uuid.UUID,
        *,
        here: bool,
        stop: threading.Event | None,
    ) -> None:
        self._service = service
        self._task_id = task_id
        self._here = here
        self._stop = stop
        self._started = service._clock()
        self.status: TaskStatus = "running"
        self.progress = Progress("running", "", self._started)
        self.steps: list[StepView] = []
        """The steps recorded here, for a caller who waits for the task."""

    def before_call(self, call: CallTool) -> bool:
        service = self._service
        if self._stop is not None and self._stop.is_set():
            service.repository.release(self._task_id, service.owner, service._clock())
            self.status = "pending"
            return False
        if self._here and call.delay_seconds:
            service._sleep(call.delay_seconds)
        self._started = service._clock()
        return True

    def record(self, step: Step, decision: Decision) -> bool:
        service = self._service
        finished = service._clock()
        progress = _progress(decision, finished, service.leases.expiry())
        if isinstance(decision, CallTool) and decision.delay_seconds and not self._here:
            run_after = finished + timedelta(seconds=decision.delay_seconds)
            progress = replace(progress, status="pending", run_after=run_after)
        self.progress = progress
        self.status = service.repository.record_step(
            self._task_id, service.owner, RecordedStep(step, self._started, finished), progress
        )
        if self._here:  # the caller gets the task back, steps included
            self.steps.append(step_view(step, self._started, finished))
        return self.status == "running"

    def settle(self, decision: Finish | Fail) -> None:
        service = self._service
        self.progress = _progress(decision, service._clock(), service.leases.expiry())
        self.status = service.repository.update_task(self._task_id, service.owner, self.progress)


def _progress(decision: Decision, now: datetime, lease_expires_at: datetime) -> Progress:
    if isinstance(decision, Finish):
        return Progress("succeeded", decision.state, now, output=decision.output, finished_at=now)
    if isinstance(decision, Fail):
        return _ended("failed", decision.state, now, decision.error)
    return Progress("running", decision.state, now, lease_expires_at=lease_expires_at)


def _ended(status: TaskStatus, state: str, now: datetime, error: StepError) -> Progress:
    return Progress(status, state, now, error=error, finished_at=now)


def _canonical(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


# The task view is built from data already validated (the input, the tools' checked
# outputs): without validating it a second time.


def _task_view(
    task: NewTask, status: TaskStatus, progress: Progress, steps: list[StepView]
) -> TaskView:
    cancelled = status == "cancelled"
    return TaskView.model_construct(
        id=task.id,
        flow=task.flow.name,
        flow_version=task.flow.digest,
        status=status,
        current_state=progress.current_state,
        error=error_view(CANCELLED if cancelled else progress.error),
        cancel_requested=cancelled,
        created_at=task.created_at,
        updated_at=progress.updated_at,
        started_at=task.started_at,
        finished_at=progress.finished_at or (progress.updated_at if cancelled else None),
        input=task.input,
        output=None if cancelled else progress.output,
        steps=steps,
    )
