"""What a task looks like from outside: the JSON documents that the API returns and that
the CLI prints with `--json`. One set of models serves both, so they cannot differ."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from taskrunner.engine.steps import Step, StepError

TaskStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
StepStatus = Literal["succeeded", "failed"]

_EXAMPLE_TIME = "2026-01-02T03:04:05.678901Z"


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorView(View):
    """Why a step or a task failed."""

    kind: str = Field(examples=["DivisionByZero"])
    message: str = Field(examples=["cannot divide by zero"])


class StepView(View):
    """One tool call of a task, as recorded."""

    seq: int = Field(description="1, 2, 3… in the order the steps ran.", examples=[1])
    state: str = Field(examples=["echo"])
    tool: str = Field(examples=["echo"])
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


class TaskView(TaskSummary):
    """A task with its input, output and every step it took."""

    input: dict[str, JsonValue] = Field(examples=[{"text": "hello", "a": 2, "b": 3}])
    output: dict[str, JsonValue] | None = Field(examples=[{"text": "hello", "sum": 5}])
    steps: list[StepView]


class TaskPage(View):
    """One page of tasks, newest first."""

    items: list[TaskSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=["MjAyNi0xMS0yNlQwMTo0MjozMy40NDI2MzYrMDA6MDB8ZmM5MzdmODItZmY2MS00ZjNm"],
    )


# Views of steps in hand: their data is already validated (the task's input, the tools'
# checked outputs), so they are constructed without validating it a second time.


def step_view(step: Step, started: datetime, finished: datetime) -> StepView:
    return StepView.model_construct(
        seq=step.seq,
        state=step.state,
        tool=step.tool,
        attempt=step.attempt,
        status=step.status,
        input=step.input,
        output=step.output,
        error=error_view(step.error),
        started_at=started,
        finished_at=finished,
    )


def error_view(error: StepError | None) -> ErrorView | None:
    if error is None:
        return None
    return ErrorView.model_construct(kind=error.kind, message=error.message)
