"""What an execution decides and what it is told back: calls, their recorded results as
steps, and the two ways a task ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal

from taskrunner.tools import JsonObject

if TYPE_CHECKING:
    from taskrunner.engine.fanout import Fanout

StepStatus = Literal["succeeded", "failed"]

TASK_TIMEOUT: Final = "TaskTimeout"
"""The error kind of a task that has not ended within its flow's `timeout_seconds`. It is
not a step's error but the task's: no `retry` or `catch` sees it."""


@dataclass(frozen=True, slots=True)
class StepError:
    """Why a step or a task failed: a kind that `catch` and `retry` match, and a message."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Step:
    """One tool call and its result, as recorded in a task's history; or one of the
    engine's own steps, under a tool name no tool may take: a wait's, a fan-out's join, a
    choice's decision."""

    seq: int
    state: str
    tool: str
    attempt: int
    input: JsonObject
    status: StepStatus
    output: JsonObject | None = None
    error: StepError | None = None


@dataclass(frozen=True, slots=True)
class CallTool:
    """Call `tool` with `arguments` as step `seq`, after waiting `delay_seconds`, and not
    before `not_before` (a wait state's wake time, fixed by an earlier step). With a
    `fanout`, the call runs children instead of a tool, and joins their results. With
    `decided`, nothing is called: the engine has already decided the step's output (a
    choice state's decision), and the step records it as it is, so that the decision is
    part of the history and a replay can check it like any other step."""

    seq: int
    state: str
    tool: str
    attempt: int
    arguments: JsonObject
    delay_seconds: float = 0.0
    timeout_seconds: float | None = None
    not_before: datetime | None = None
    fanout: Fanout | None = None
    decided: JsonObject | None = None

    def succeeded(self, output: JsonObject) -> Step:
        return Step(
            self.seq, self.state, self.tool, self.attempt, self.arguments, "succeeded", output
        )

    def failed(self, kind: str, message: str) -> Step:
        error = StepError(kind, message)
        return Step(
            self.seq, self.state, self.tool, self.attempt, self.arguments, "failed", None, error
        )


@dataclass(frozen=True, slots=True)
class Finish:
    """The task succeeded in `state` with `output`."""

    state: str
    output: JsonObject


@dataclass(frozen=True, slots=True)
class Fail:
    """The task failed in `state` with `error`."""

    state: str
    error: StepError


Decision = CallTool | Finish | Fail


def task_timed_out(limit_seconds: float) -> StepError:
    """The error of a task that has not ended within its flow's `timeout_seconds`."""
    return StepError(
        TASK_TIMEOUT, f"the task did not end within its timeout_seconds ({limit_seconds:g} s)"
    )
