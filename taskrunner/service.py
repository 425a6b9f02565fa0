"""The one place where the engine meets the store.

A task runs in one of two ways, through the engine's one driver (`engine.driver.drive`,
with a `runs.StoredRun` as its journal):

- **in the caller** (`run_task`): the process that created the task holds it (a lease)
  and runs it to its end, waiting out retry delays itself;
- **queued** (`enqueue_task`): the task waits, pending, until a worker claims it
  (`claim`) and runs it (`resume`) from its last recorded step; a retry's delay hands the
  task back to the queue, claimable when the delay is over, instead of holding a worker.

Each step is committed as it completes, with the task's new state in the same write, so
a crash loses at most the step in progress, and the task's finish is folded into its last
step's write: `echo_add` run in the caller costs three commits.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from pydantic import ValidationError

from taskrunner.catalog import FlowCatalog
from taskrunner.cursors import decode_cursor, encode_cursor
from taskrunner.engine.driver import drive
from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import Execution, replay
from taskrunner.engine.model import FLOW_NAME_PATTERN
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.steps import StepError
from taskrunner.engine.storable import fault_message, unstorable
from taskrunner.errors import (
    FlowInputError,
    IdempotencyConflictError,
    InvalidRequestError,
    LeaseLostError,
    TaskFinishedError,
    TaskNotFoundError,
    TaskrunnerError,
    UnexpectedStepError,
    UnstorableDataError,
)
from taskrunner.jsontext import shown_pointer
from taskrunner.leases import LeaseKeeper
from taskrunner.runs import StoredRun, ended
from taskrunner.store.records import (
    CANCELLED,
    CancelOutcome,
    FlowVersion,
    TaskFilter,
    TaskRecord,
    TaskStatus,
)
from taskrunner.store.repository import TaskRepository
from taskrunner.tools import JsonObject
from taskrunner.views import TaskPage, TaskView, page_view, task_view

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
        self._versions: dict[str, FlowVersion] = {}

    def close(self) -> None:
        self.leases.close()
        self.repository.close()

    def ready(self) -> bool:
        """Whether the store can be reached."""
        return self.repository.ping()

    # -- starting -----------------------------------------------------------------------

    def run_task(
        self, flow_name: str, data: Mapping[str, object], *, idempotency_key: str | None = None
    ) -> Started:
        """Start a task of `flow_name` on `data` and run it here to its end.

        Raises `UnknownFlowError`, `FlowInputError`, `UnstorableDataError` or
        `InvalidRequestError` before anything is stored when the request cannot become a
        task, and `IdempotencyConflictError` when its key started a different one. If this
        process loses the task on the way (its lease ran out and a worker took it over),
        the task is answered as the store has it.
        """
        flow, plan, clean = self._admit(flow_name, data, idempotency_key)
        task = self._new_task(flow, clean, "running", idempotency_key)
        existing = self.repository.create_task(task, self._version(flow, task.created_at))
        if existing is not None:
            return self._found(existing, flow_name, clean)
        run = self._run(task, here=True)
        with self.leases.holding(task.id):
            try:
                drive(Execution(plan, clean), run)
            except LeaseLostError:
                log.warning("lost the lease on task %s; answering it as it stands", task.id)
                return Started(self.get_task(task.id), created=True)
        return Started(task_view(run.task, run.steps), created=True)

    def enqueue_task(
        self, flow_name: str, data: Mapping[str, object], *, idempotency_key: str | None = None
    ) -> Started:
        """Start a task and leave it, pending, for a worker to run."""
        flow, _, clean = self._admit(flow_name, data, idempotency_key)
        task = self._new_task(flow, clean, "pending", idempotency_key)
        existing = self.repository.create_task(task, self._version(flow, task.created_at))
        if existing is not None:
            return self._found(existing, flow_name, clean)
        return Started(task_view(task, []), created=True)

    # -- running queued tasks -----------------------------------------------------------

    def wait_for_work(self, timeout: float) -> bool:
        """Wait until a queued task may be due, or `timeout` seconds pass."""
        return self.repository.wait_for_work(timeout)

    def claim(self, limit: int) -> list[TaskRecord]:
        """Take up to `limit` due queued tasks; their leases are kept alive until they are
        resumed or released."""
        claimed = self.repository.claim(self.owner, limit, self._clock(), self.leases.expiry())
        self.leases.hold(*(task.id for task in claimed))
        return claimed

    def claim_abandoned(self, limit: int) -> list[TaskRecord]:
        """Take up to `limit` tasks whose runner died (their lease ran out)."""
        claimed = self.repository.claim_abandoned(
            self.owner, limit, self._clock(), self.leases.expiry()
        )
        self.leases.hold(*(task.id for task in claimed))
        return claimed

    def release(self, claimed: TaskRecord) -> None:
        """Give a claimed task that was not run back to the queue."""
        try:
            self.repository.release(claimed.id, self.owner, self._clock())
        finally:
            self.leases.drop(claimed.id)

    def resume(self, claimed: TaskRecord, stop: threading.Event | None = None) -> None:
        """Run a claimed task from its last recorded step as far as it goes here: to its
        end, to a retry's delay, to a cancel, or, when `stop` is set, to the end of the
        step in hand (then the task goes back to the queue)."""
        with self.leases.holding(claimed.id):
            try:
                self._resume(claimed, stop)
            except LeaseLostError:
                log.warning("lost the lease on task %s; another worker has it", claimed.id)

    def _resume(self, claimed: TaskRecord, stop: threading.Event | None) -> None:
        run = self._run(claimed, here=False, stop=stop)
        state = claimed.current_state or ""
        if claimed.cancel_requested:
            run.end(ended("cancelled", state, self._clock(), CANCELLED))
            return
        try:
            plan = self._plan(claimed.flow_digest)
        except (TaskrunnerError, ValidationError) as exc:
            error = StepError(FLOW_UNAVAILABLE, f"the flow version cannot be run here: {exc}")
            run.end(ended("failed", state, self._clock(), error))
            return
        recorded = self.repository.steps_of(claimed.id) if claimed.step_count else []
        try:
            execution = replay(plan, claimed.input, [step.step() for step in recorded])
        except UnexpectedStepError as exc:
            error = StepError(UNEXPECTED_STEP, exc.message)
            run.end(ended("failed", plan.flow.start, self._clock(), error))
            return
        drive(execution, run)

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
        return task_view(found, self.repository.steps_of(task_id) if found.step_count else [])

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
        page = self.repository.list_tasks(TaskFilter(status, flow), limit, after)
        return page_view(page, encode_cursor(page.after) if page.after else None)

    # -- helpers ------------------------------------------------------------------------

    def _run(
        self, task: TaskRecord, *, here: bool, stop: threading.Event | None = None
    ) -> StoredRun:
        return StoredRun(
            self.repository,
            task,
            self.owner,
            clock=self._clock,
            sleep=self._sleep,
            here=here,
            stop=stop,
        )

    def _new_task(
        self, flow: Flow, data: JsonObject, status: TaskStatus, idempotency_key: str | None
    ) -> TaskRecord:
        now = self._clock()
        held = status == "running"
        return TaskRecord(
            id=self._new_id(),
            flow_name=flow.name,
            flow_digest=flow.digest,
            status=status,
            current_state=flow.start,
            error_kind=None,
            error_message=None,
            cancel_requested=False,
            created_at=now,
            updated_at=now,
            started_at=now if held else None,
            finished_at=None,
            input=data,
            output=None,
            idempotency_key=idempotency_key,
            run_after=None if held else now,
            lease_owner=self.owner if held else None,
            lease_expires_at=self.leases.expiry() if held else None,
            step_count=0,
        )

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

    def _found(self, existing: TaskRecord, flow_name: str, data: JsonObject) -> Started:
        if existing.flow_name != flow_name or _canonical(existing.input) != _canonical(data):
            raise IdempotencyConflictError(
                f"this idempotency key already started task {existing.id} "
                "with a different flow or input"
            )
        steps = self.repository.steps_of(existing.id) if existing.step_count else []
        return Started(task_view(existing, steps), created=False)

    def _version(self, flow: Flow, now: datetime) -> FlowVersion:
        """The flow version a new task runs, made once per version."""
        version = self._versions.get(flow.digest)
        if version is None:
            definition: JsonObject = json.loads(flow.canonical)
            version = self._versions[flow.digest] = FlowVersion(
                flow.digest, flow.name, definition, now
            )
        return version

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
    fault = unstorable(data)
    if fault is None:
        return
    if fault.too_deep:
        # The API and the CLI refuse such JSON as they read it; a library caller may not.
        raise FlowInputError([fault_message(fault, "the input")])
    raise UnstorableDataError(shown_pointer(fault.pointer))


def _canonical(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
