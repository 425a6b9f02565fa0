"""The `fail` state: end the task with an error kind and a message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from taskrunner.engine.model import ErrorCode
from taskrunner.engine.states.base import Arrival, CallsNothing, Run, State
from taskrunner.engine.steps import Fail, StepError
from taskrunner.tools import ToolRegistry


class FailState(State):
    """End the task with an error."""

    type: Literal["fail"]
    error: ErrorCode = Field(description="The error kind the task fails with.")
    message: str = Field(default="", description="A message for people.")

    terminal = True

    def compile(self, name: str, tools: ToolRegistry) -> FailPlan:
        return FailPlan(name, StepError(self.error, self.message))


@dataclass(frozen=True, slots=True)
class FailPlan(CallsNothing):
    name: str
    error: StepError

    def enter(self, run: Run) -> Arrival:
        return Fail(self.name, self.error)
