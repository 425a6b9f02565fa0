"""The one place where the engine meets the store.

A task runs in one of two ways, through the engine's one driver (`engine.driver.drive`,
with a `runs.StoredRun` as its journal):

- **in the caller** (`run_task`): the process that created the task holds it (a lease)
  and runs it to its end, waiting out retry delays itself;
- **queued** (`enqueue_task`): the task waits, pending, until a worker claims it
  (`claim`) and runs it (`resume`) from its last recorded step; a retry's delay or a
  wait state hands the task back to the queue, claimable when it is over, instead of
  holding a worker.

Either way, a flow's `timeout_seconds` ends a task that has not finished that long after
its creation with `TaskTimeout` (`runs.StoredRun` reads the clock for it).

Each step is committed as it completes, with the task's new state in the same write, so
a crash loses at most the step in progress, and the task's finish is folded into its last
step's write: `echo_add` run in the caller costs three commits.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import ValidationError

from taskrunner.admission import admit, new_task
from taskrunner.backlog import Backlog
from taskrunner.catalog import FlowCatalog
from taskrunner.children import ChildRunner
from taskrunner.cursors import decode_cursor, encode_cursor
from taskrunner.engine.driver import drive
from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import Execution, replay
from taskrunner.engine.model import FLOW_NAME_PATTERN
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.steps import StepError
from taskrunner.errors import (
    IdempotencyConflictError,
    InvalidRequestError,
    LeaseLostError,
    StoreError,
    StoreUnavailableError,
    TaskFinishedError,
    TaskNotFoundError,
    TaskrunnerError,
    UnexpectedStepError,
)
from taskrunner.leases import LeaseKeeper, process_owner
from taskrunner.observe import Observer, Observers
from taskrunner.runs import StoredRun, ended
from taskrunner.store.records import (
    ACTIVE,
    CANCELLED,
    CancelOutcome,
    TaskFilter,
    TaskRecord,
    TaskStatus,
)
from taskrunner.store.repository import TaskRepository
from taskrunner.tools import JsonObject
from taskrunner.versions import FlowVersions
from taskrunner.views import (
    STEPS_IN_TASK,
    StepPage,
    TaskPage,
    TaskView,
    page_view,
    step_page_view,
    task_view,
)
from taskrunner.waits import CancellableWaits

MAX_PAGE: Final = 500
DEFAULT_PAGE: Final = 50
MAX_STEP_PAGE: Final = 1_000
DEFAULT_STEP_PAGE: Final = 100
DEFAULT_LEASE_SECONDS: Final = 30.0
DEFAULT_SYNC_WAIT_SECONDS: Final = 30.0
UNEXPECTED_STEP: Final = "UnexpectedStep"
FLOW_UNAVAILABLE: Final = "FlowUnavailable"

log = logging.getLogger("taskrunner.service")


def utc_now() -> datetime:
    return datetime.now(UTC)


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
        wait: Callable[[threading.Event, float], bool] = threading.Event.wait,
        owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        sync_wait_seconds: float = DEFAULT_SYNC_WAIT_SECONDS,
        observer: Observer | None = None,
    ) -> None:
        self.repository = repository
        self.observer = observer or Observers()
        """Told what happens to tasks here (the metrics and the log)."""
        self.catalog = catalog
        self.owner = owner or process_owner()
        self.leases = LeaseKeeper(repository, self.owner, lease_seconds, clock)
        self.sync_wait_seconds = sync_wait_seconds
        self._clock = clock
        self._new_id = new_id
        self._waits = CancellableWaits(repository, clock=clock, wait=wait)
        self._versions = FlowVersions(repository, catalog)
        self.backlog = Backlog()
        """The tasks claimed here and not started yet (a `Worker` fills it)."""
        self._children = ChildRunner(
            repository,
            self.leases,
            self.backlog,
            clock=clock,
            new_id=new_id,
            checker=lambda: self.catalog.checker,
            resume=self.resume,
        )

    def use_catalog(self, catalog: FlowCatalog) -> None:
        """Start new tasks from `catalog` from now on (a reload of the flows).

        Tasks already started keep the version they pinned: the plans of every version
        this service has known stay in hand, and any other is read back from the store by
        its digest, so a flow changed or removed in the new catalog still runs for them.
        The swap is one assignment: a request sees the old catalog or the new, whole.
        """
        self._versions.know(catalog)
        self.catalog = catalog

    def close(self) -> None:
        self.leases.close()
        self.repository.close()

    def ready(self) -> bool:
        """Whether the store can be reached."""
        return self.repository.ping()

    # -- starting -----------------------------------------------------------------------

    def new_task_id(self) -> uuid.UUID:
        """An id for a task about to be started (`task_id=`), so that the caller can say
        where it is even if the start is cut short."""
        return self._new_id()

    def run_task(
        self,
        flow_name: str,
        data: Mapping[str, object],
        *,
        idempotency_key: str | None = None,
        task_id: uuid.UUID | None = None,
        bounded: bool = True,
    ) -> Started:
        """Start a task of `flow_name` on `data` and run it here, until it ends or, when
        `bounded`, for at most `sync_wait_seconds`: past that, or when a retry's delay or a
        wait state would take it past that, the task goes on on the queue (it is answered
        pending). A delay or a wait waited out here ends at once if the task is cancelled.

        Raises `UnknownFlowError`, `FlowInputError`, `UnstorableDataError` or
        `InvalidRequestError` before anything is stored when the request cannot become a
        task, and `IdempotencyConflictError` when its key started a different one (a task
        that key started is waited for as a new one would be, and answered as it is then).
        A database that fails once the task may be stored raises `StoreUnavailableError`
        naming the task. If this process loses the task on the way (its lease ran out and
        a worker took it over), the task is answered as the store has it.
        """
        flow, plan, clean = admit(self.catalog, flow_name, data, idempotency_key)
        task = self._new_task(flow, clean, "running", idempotency_key, task_id)
        deadline = self._deadline() if bounded else None
        with self._stored(task.id):
            existing = self.repository.create_task(
                task, self._versions.version(flow, task.created_at)
            )
        if existing is not None:
            with self._stored(existing.id):
                return self._found(existing, flow_name, clean, deadline or self._deadline())
        self.observer.task_started(task)
        self.observer.sync_run(1)
        try:
            return self._run_here(task, flow, plan, clean, deadline)
        finally:
            self.observer.sync_run(-1)

    def _run_here(
        self,
        task: TaskRecord,
        flow: Flow,
        plan: FlowPlan,
        clean: JsonObject,
        deadline: datetime | None,
    ) -> Started:
        with (
            self._stored(task.id),
            self.leases.holding(task.id),
            self._waits.cancellable(task.id) as cancelled,
        ):
            run = self._run(task, here=True, deadline=deadline, cancelled=cancelled)
            run.timeout_seconds = flow.timeout_seconds
            try:
                drive(Execution(plan, clean), run)
            except LeaseLostError:
                log.warning("lost the lease on task %s; answering it as it stands", task.id)
                self.observer.lease_lost(run.task)
                return Started(self.get_task(task.id), created=True)
            except KeyboardInterrupt:
                self._let_go(run)
                raise
        return Started(task_view(run.task, run.steps), created=True)

    def enqueue_task(
        self,
        flow_name: str,
        data: Mapping[str, object],
        *,
        idempotency_key: str | None = None,
        task_id: uuid.UUID | None = None,
    ) -> Started:
        """Start a task and leave it, pending, for a worker to run."""
        flow, _, clean = admit(self.catalog, flow_name, data, idempotency_key)
        task = self._new_task(flow, clean, "pending", idempotency_key, task_id)
        with self._stored(task.id):
            existing = self.repository.create_task(
                task, self._versions.version(flow, task.created_at)
            )
        if existing is not None:
            return self._found(existing, flow_name, clean, None)
        self.observer.task_started(task)
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
        for task in claimed:
            self.observer.task_claimed(task, taken_over=False)
        return claimed

    def claim_abandoned(self, limit: int) -> list[TaskRecord]:
        """Take up to `limit` tasks whose runner died (their lease ran out)."""
        claimed = self.repository.claim_abandoned(
            self.owner, limit, self._clock(), self.leases.expiry()
        )
        self.leases.hold(*(task.id for task in claimed))
        for task in claimed:
            self.observer.task_claimed(task, taken_over=True)
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
                self.observer.lease_lost(claimed)

    def _resume(self, claimed: TaskRecord, stop: threading.Event | None) -> None:
        run = self._run(claimed, here=False, stop=stop)
        state = claimed.current_state or ""
        if claimed.cancel_requested:
            run.end(ended("cancelled", state, self._clock(), CANCELLED))
            return
        try:
            plan = self._versions.plan(claimed.flow_digest, self.catalog.checker)
        except (TaskrunnerError, ValidationError) as exc:
            error = StepError(FLOW_UNAVAILABLE, f"the flow version cannot be run here: {exc}")
            run.end(ended("failed", state, self._clock(), error))
            return
        run.timeout_seconds = plan.flow.timeout_seconds
        try:
            execution = self._position(plan, claimed)
        except UnexpectedStepError as exc:
            error = StepError(UNEXPECTED_STEP, exc.message)
            run.end(ended("failed", plan.flow.start, self._clock(), error))
            return
        drive(execution, run)

    def _position(self, plan: FlowPlan, claimed: TaskRecord) -> Execution:
        """Where a claimed task stands: from its checkpoint when that follows the task's
        last recorded step, in O(1); else (a row older than checkpoints, a checkpoint of
        another shape) by replaying its history, which raises `UnexpectedStepError` when
        a recorded step is not what the flow expects."""
        checkpoint = claimed.checkpoint
        if checkpoint is not None and checkpoint.get("seq") == claimed.step_count:
            resumed = Execution.resume(plan, claimed.input, checkpoint)
            if resumed is not None:
                return resumed
        recorded = self.repository.steps_of(claimed.id) if claimed.step_count else []
        return replay(plan, claimed.input, [step.step() for step in recorded])

    # -- cancelling ---------------------------------------------------------------------

    def cancel_task(self, task_id: uuid.UUID) -> tuple[CancelOutcome, TaskView]:
        """Cancel a pending task at once, or ask a running one to stop before its next
        step. Raises `TaskNotFoundError`, or `TaskFinishedError` for a finished task."""
        outcome = self.repository.cancel(task_id, self._clock())
        if outcome == "requested":
            self._waits.cancelled_here(task_id)
        if outcome == "missing":
            raise TaskNotFoundError(task_id)
        found = self.repository.get_task(task_id)
        if found is None:
            raise TaskNotFoundError(task_id)
        if outcome == "cancelled":
            self.observer.task_finished(found)
        task = self._view(found)
        if outcome == "finished":
            raise TaskFinishedError(f"the task has already finished: it is {task.status}")
        return outcome, task

    # -- reading ------------------------------------------------------------------------

    def get_task(self, task_id: uuid.UUID, *, all_steps: bool = False) -> TaskView:
        """The task with its first `STEPS_IN_TASK` steps, or all of them."""
        found = self.repository.get_task(task_id)
        if found is None:
            raise TaskNotFoundError(task_id)
        return self._view(found, all_steps=all_steps)

    def _view(self, found: TaskRecord, *, all_steps: bool = False) -> TaskView:
        if not found.step_count:
            return task_view(found, [])
        if all_steps:
            return task_view(found, self.repository.steps_of(found.id), None)
        return task_view(found, self.repository.steps_page(found.id, 0, STEPS_IN_TASK))

    def task_steps(
        self, task_id: uuid.UUID, *, after: int = 0, limit: int = DEFAULT_STEP_PAGE
    ) -> StepPage:
        """A page of a task's steps, those after step `after`, in order."""
        if not 1 <= limit <= MAX_STEP_PAGE:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_STEP_PAGE}, not {limit}")
        if after < 0:
            raise InvalidRequestError(f"after must be 0 or more, not {after}")
        found = self.repository.steps_page(task_id, after, limit + 1)
        if not found and self.repository.get_task(task_id) is None:
            raise TaskNotFoundError(task_id)
        return step_page_view(found, limit)

    def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        flow: str | None = None,
        parent: uuid.UUID | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> TaskPage:
        """A page of tasks, newest first; `next_cursor` continues after its last task:
        the tasks started by requests, or the children of the task `parent` (a fan-out's
        branches, items and sub-flow runs; `TaskNotFoundError` if there is no such task)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
        if flow is not None and not re.fullmatch(FLOW_NAME_PATTERN, flow):
            raise InvalidRequestError(f"{flow!r} is not a flow name")
        after = decode_cursor(cursor) if cursor else None
        if parent is not None and self.repository.get_task(parent) is None:
            raise TaskNotFoundError(parent)
        page = self.repository.list_tasks(TaskFilter(status, flow, parent), limit, after)
        return page_view(page, encode_cursor(page.after) if page.after else None)

    # -- helpers ------------------------------------------------------------------------

    def _run(
        self,
        task: TaskRecord,
        *,
        here: bool,
        stop: threading.Event | None = None,
        deadline: datetime | None = None,
        cancelled: threading.Event | None = None,
    ) -> StoredRun:
        def wait(seconds: float) -> bool:
            return cancelled is not None and self._waits.wait(task.id, cancelled, seconds)

        return StoredRun(
            self.repository,
            task,
            self.owner,
            clock=self._clock,
            here=here,
            wait=wait,
            deadline=deadline,
            stop=stop,
            children=self._children.run,
            observer=self.observer,
        )

    def _deadline(self) -> datetime:
        return self._clock() + timedelta(seconds=self.sync_wait_seconds)

    def _let_go(self, run: StoredRun) -> None:
        """Hand a task interrupted here back to the queue, if the store can be reached."""
        try:
            run.hand_back()
        except StoreError:
            log.warning("could not hand task %s back to the queue", run.task.id)

    @contextmanager
    def _stored(self, task_id: uuid.UUID) -> Iterator[None]:
        """A database that fails from here on may have stored the task: say which."""
        try:
            yield
        except StoreUnavailableError as exc:
            exc.task_id = task_id
            raise

    def _new_task(
        self,
        flow: Flow,
        data: JsonObject,
        status: TaskStatus,
        idempotency_key: str | None,
        task_id: uuid.UUID | None,
    ) -> TaskRecord:
        now = self._clock()
        return new_task(
            flow,
            data,
            status,
            task_id=task_id or self._new_id(),
            idempotency_key=idempotency_key,
            now=now,
            leases=self.leases,
        )

    def _found(
        self, existing: TaskRecord, flow_name: str, data: JsonObject, until: datetime | None
    ) -> Started:
        """The task an idempotency key already started, as it is now; if it has not
        finished, it is waited for `until` then, if given."""
        if existing.flow_name != flow_name or _canonical(existing.input) != _canonical(data):
            raise IdempotencyConflictError(
                f"this idempotency key already started task {existing.id} "
                "with a different flow or input"
            )
        if until is not None and existing.status in ACTIVE:
            return Started(
                self._waits.until_finished(existing.id, until, self.get_task), created=False
            )
        steps = (
            self.repository.steps_page(existing.id, 0, STEPS_IN_TASK) if existing.step_count else []
        )
        return Started(task_view(existing, steps), created=False)


def _canonical(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
