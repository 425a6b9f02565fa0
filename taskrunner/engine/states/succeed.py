"""The `succeed` state: end the task with an output made of literals and references."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.model import FieldName, Value
from taskrunner.engine.refs import Expression, parse_value
from taskrunner.engine.states.base import Arrival, CallsNothing, Run, Scope, State
from taskrunner.engine.steps import Finish
from taskrunner.engine.types import ANY, ValueType
from taskrunner.engine.values import quietly
from taskrunner.tools import ToolRegistry


class SucceedState(State):
    """End the task successfully with an output."""

    type: Literal["succeed"]
    output: dict[FieldName, Value] = Field(
        default_factory=dict, description="The task's output: literals or references."
    )

    terminal = True

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        for field, value in self.output.items():
            _ = yield from scope.value(value, scope.here + pointer("output", field))

    def end_type(self, scope: Scope) -> ValueType | None:
        found = quietly(scope.value(dict(self.output), scope.here + "/output"))
        return found if found is not None else ANY

    def compile(self, name: str, tools: ToolRegistry) -> SucceedPlan:
        fields = tuple((key, parse_value(value)) for key, value in self.output.items())
        return SucceedPlan(name, fields)


@dataclass(frozen=True, slots=True)
class SucceedPlan(CallsNothing):
    name: str
    fields: tuple[tuple[str, Expression], ...]

    def enter(self, run: Run) -> Arrival:
        data, outputs = run.data, run.outputs
        return Finish(self.name, {key: value.resolve(data, outputs) for key, value in self.fields})
