"""The one place where the engine meets the database.

`TaskService.run_task` creates a task, drives the interpreter, calls the tools and commits
each step as it completes: a crash loses at most the step in progress. The finish of a
task is folded into the commit of its last step, so `echo_add` costs three commits: the
task, `echo`, and `add` with the result.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.interpreter import CallTool, Decision, Execution, Fail, Finish, Step
from taskrunner.engine.model import FLOW_NAME_PATTERN
from taskrunner.engine.runner import call
from taskrunner.errors import (
    InvalidRequestError,
    TaskNotFoundError,
    UnstorableDataError,
)
from taskrunner.store.repository import (
    NewTask,
    Position,
    Progress,
    RecordedStep,
    TaskFilter,
    TaskRepository,
    unstorable_text,
)
from taskrunner.tools import INVALID_OUTPUT
from taskrunner.views import ErrorView, StepView, TaskPage, TaskStatus, TaskView

MAX_PAGE: Final = 500
DEFAULT_PAGE: Final = 50


def utc_now() -> datetime:
    return datetime.now(UTC)


class TaskService:
    """Starts, runs and reads tasks; used alike by the HTTP API and the CLI."""

    def __init__(
        self,
        repository: TaskRepository,
        catalog: FlowCatalog,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.repository = repository
        self.catalog = catalog
        self._clock = clock
        self._new_id = new_id
        self._sleep = sleep

    def run_task(self, flow_name: str, data: Mapping[str, object]) -> TaskView:
        """Start a task of `flow_name` on `data` and run it to its end.

        Raises `UnknownFlowError`, `FlowInputError` or `UnstorableDataError` before
        anything is stored when the request cannot become a task.
        """
        entry = self.catalog.get(flow_name)
        # Unstorable text is named as such before validation can misreport it; defaults
        # come from the flow, and are checked once applied.
        _refuse_unstorable(data)
        clean = entry.plan.validate_input(data)
        _refuse_unstorable(clean)
        now = self._clock()
        task = NewTask(
            id=self._new_id(),
            flow=entry.flow,
            input=clean,
            status="running",
            current_state=entry.flow.start,
            created_at=now,
            started_at=now,
        )
        self.repository.create_task(task)
        execution = Execution(entry.plan, clean)
        steps: list[StepView] = []
        decision = execution.decide()
        progress = _progress(decision, now)
        while isinstance(decision, CallTool):
            if decision.delay_seconds:
                self._sleep(decision.delay_seconds)
            started = self._clock()
            step = _storable(call(entry.plan, decision))
            finished = self._clock()
            execution.record(step)
            decision = execution.decide()
            progress = _progress(decision, finished)
            self.repository.record_step(task.id, RecordedStep(step, started, finished), progress)
            steps.append(_step_view(step, started, finished))
        if not steps:
            self.repository.update_task(task.id, progress)
        return _task_view(task, progress, steps)

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


def encode_cursor(position: Position) -> str:
    created_at, task_id = position
    raw = f"{created_at.isoformat()}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, task_id = raw.split("|")
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive time")
        return created_at, uuid.UUID(task_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequestError(
            "the cursor is not one that this API returned; start again without it"
        ) from None


def _refuse_unstorable(data: object) -> None:
    where = unstorable_text(data)
    if where is not None:
        raise UnstorableDataError(where)


def _storable(step: Step) -> Step:
    """A step whose output the database cannot store fails instead, as an invalid output."""
    where = unstorable_text(step.output) if step.output is not None else None
    if where is None:
        return step
    message = f"the output at {where} holds text the database cannot store"
    return CallTool(step.seq, step.state, step.tool, step.attempt, step.input).failed(
        INVALID_OUTPUT, message
    )


def _progress(decision: Decision, now: datetime) -> Progress:
    if isinstance(decision, Finish):
        return Progress("succeeded", decision.state, now, output=decision.output, finished_at=now)
    if isinstance(decision, Fail):
        return Progress("failed", decision.state, now, error=decision.error, finished_at=now)
    return Progress("running", decision.state, now)


def _step_view(step: Step, started: datetime, finished: datetime) -> StepView:
    return StepView(
        seq=step.seq,
        state=step.state,
        tool=step.tool,
        attempt=step.attempt,
        status=step.status,
        input=step.input,
        output=step.output,
        error=_error_view(step),
        started_at=started,
        finished_at=finished,
    )


def _error_view(step: Step) -> ErrorView | None:
    error = step.error
    return None if error is None else ErrorView(kind=error.kind, message=error.message)


def _task_view(task: NewTask, progress: Progress, steps: list[StepView]) -> TaskView:
    error = progress.error
    return TaskView(
        id=task.id,
        flow=task.flow.name,
        flow_version=task.flow.digest,
        status=progress.status,
        current_state=progress.current_state,
        error=None if error is None else ErrorView(kind=error.kind, message=error.message),
        created_at=task.created_at,
        updated_at=progress.updated_at,
        started_at=task.started_at,
        finished_at=progress.finished_at,
        input=task.input,
        output=progress.output,
        steps=steps,
    )
