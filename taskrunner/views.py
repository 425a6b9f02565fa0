"""What a task looks like from outside: the JSON documents that the API returns and that
the CLI prints with `--json`. One set of models serves both, so they cannot differ."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from itertools import islice
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from taskrunner.engine.steps import StepError, StepStatus
from taskrunner.store.records import Page, StepRecord, TaskHead, TaskRecord, TaskStatus

_EXAMPLE_TIME = "2026-01-02T03:04:05.678901Z"

STEPS_IN_TASK: Final = 100
"""A task's document holds its first steps, this many at most; `GET /tasks/{id}/steps`
pages through the rest, so that a long history is never one huge document."""


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorView(View):
    """Why a step or a task failed."""

    kind: str = Field(examples=["DivisionByZero"])
    message: str = Field(examples=["cannot divide by zero"])


class StepView(View):
    """One step of a task, as recorded: a tool call, or one of the engine's own steps."""

    seq: int = Field(description="1, 2, 3… in the order the steps ran.", examples=[1])
    state: str = Field(examples=["echo"])
    tool: str = Field(
        description=(
            "The tool called, or a name no tool may take, for the engine's own steps: "
            "`choice`, a choice state's decision (input: each value its conditions read, by "
            "its reference; output: the rule that held, from 1, or `default`, and the state "
            "it leads to, as `rule` and `next`); `wait`, a wait state's two steps (output: "
            "the wake time); `parallel`, `map` and `flow`, the step that joins a fan-out's "
            "children."
        ),
        examples=["echo"],
    )
    attempt: int = Field(description="1 for the first try, 2 for the first retry…", examples=[1])
    status: StepStatus
    input: dict[str, JsonValue] = Field(examples=[{"text": "hello"}])
    output: dict[str, JsonValue] | None = Field(examples=[{"text": "hello"}])
    error: ErrorView | None = None
    started_at: datetime = Field(examples=[_EXAMPLE_TIME])
    finished_at: datetime = Field(examples=[_EXAMPLE_TIME])


class TaskSummary(View):
    """A task without its input, output and history: what `GET /tasks` lists."""

    id: uuid.UUID
    flow: str = Field(examples=["echo_add"])
    flow_version: str = Field(
        description="The content digest of the exact flow definition the task runs.",
        examples=["sha256:d8d92349077fdf3096bb0e85c3657e7b7f9c3f1e61300530ce706548d019f0b3"],
    )
    status: TaskStatus
    current_state: str | None = Field(
        description="The state the task is in, or ended in.", examples=["done"]
    )
    error: ErrorView | None = None
    cancel_requested: bool = Field(
        default=False, description="Cancelling was asked while the task ran."
    )
    created_at: datetime = Field(examples=[_EXAMPLE_TIME])
    updated_at: datetime = Field(examples=[_EXAMPLE_TIME])
    started_at: datetime | None = Field(examples=[_EXAMPLE_TIME])
    finished_at: datetime | None = Field(examples=[_EXAMPLE_TIME])
    parent_id: uuid.UUID | None = Field(
        default=None,
        description="For a child task (a parallel branch, a map item, a sub-flow run): "
        "the task whose state started it; null for a task started by a request.",
        examples=[None],
    )
    child_key: str | None = Field(
        default=None,
        description="A child task's position in its parent's state: `branch:NAME`, "
        "`item:INDEX` (from 0) or `flow`.",
        examples=[None],
    )


class TaskView(TaskSummary):
    """A task with its input, output and its first steps (100 at most)."""

    input: dict[str, JsonValue] = Field(examples=[{"text": "hello", "a": 2, "b": 3}])
    output: dict[str, JsonValue] | None = Field(examples=[{"text": "hello", "sum": 5}])
    steps: list[StepView] = Field(
        description=f"The first steps, in order: all of them, or the first {STEPS_IN_TASK}."
    )
    steps_total: int = Field(description="How many steps the task has recorded.", examples=[2])
    steps_next_after: int | None = Field(
        description="When `steps` is not the whole history: pass as `after` to "
        "`GET /tasks/{id}/steps` for the rest; null when every step is here.",
        examples=[None],
    )


class StepPage(View):
    """A page of a task's steps, in order."""

    items: list[StepView]
    next_after: int | None = Field(
        description="Pass as `after` to get the next page; null on the last page.",
        examples=[100],
    )


class TaskPage(View):
    """One page of tasks, newest first."""

    items: list[TaskSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=["MjAyNi0xMS0yNlQwMTo0MjozMy40NDI2MzYrMDA6MDB8ZmM5MzdmODItZmY2MS00ZjNm"],
    )


# The one place where views are built: from the store's records, whose data is already
# validated (the task's input, the tools' checked outputs), so without validating it again.


def task_view(
    task: TaskRecord, steps: Iterable[StepRecord], shown: int | None = STEPS_IN_TASK
) -> TaskView:
    """The task with the first `shown` of `steps` (all of them for None)."""
    views = [step_view(step) for step in islice(steps, shown)]
    total = max(task.step_count, views[-1].seq if views else 0)
    return TaskView.model_construct(
        **_head_fields(task),
        input=task.input,
        output=task.output,
        steps=views,
        steps_total=total,
        steps_next_after=views[-1].seq if views and views[-1].seq < total else None,
    )


def step_page_view(steps: list[StepRecord], limit: int) -> StepPage:
    """A page of at most `limit` of `steps`, which holds one more step when there are."""
    items = [step_view(step) for step in steps[:limit]]
    more = len(steps) > limit
    return StepPage.model_construct(items=items, next_after=items[-1].seq if more else None)


def summary_view(task: TaskHead) -> TaskSummary:
    return TaskSummary.model_construct(**_head_fields(task))


def page_view(page: Page, next_cursor: str | None) -> TaskPage:
    return TaskPage.model_construct(
        items=[summary_view(item) for item in page.items], next_cursor=next_cursor
    )


def step_view(step: StepRecord) -> StepView:
    return StepView.model_construct(
        seq=step.seq,
        state=step.state,
        tool=step.tool,
        attempt=step.attempt,
        status=step.status,
        input=step.input,
        output=step.output,
        error=_error_view(step.error),
        started_at=step.started_at,
        finished_at=step.finished_at,
    )


def _head_fields(task: TaskHead) -> dict[str, Any]:
    return {
        "id": task.id,
        "flow": task.flow_name,
        "flow_version": task.flow_digest,
        "status": task.status,
        "current_state": task.current_state,
        "error": _error_view(task.error),
        "cancel_requested": task.cancel_requested,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "parent_id": task.parent_id,
        "child_key": task.child_key,
    }


def _error_view(error: StepError | None) -> ErrorView | None:
    if error is None:
        return None
    return ErrorView.model_construct(kind=error.kind, message=error.message)
