"""The `pass` state: build a value from literals and references, with no tool, and go on.

It is Step Functions' `Pass` with `Parameters`: its `value` is any JSON structure in which
references and templates may be nested anywhere, and what it builds is its output,
`$states.NAME`. It records no step; like a choice, it calls no tool, so a loop of pass
and choice states never changes anything that could end it (`flow.choice-cycle`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, JsonValue

from taskrunner.engine.diagnostics import Diagnostic
from taskrunner.engine.model import StateName, Value
from taskrunner.engine.refs import Expression, parse_value
from taskrunner.engine.states.base import (
    Arrival,
    CallsNothing,
    Goto,
    Run,
    Scope,
    State,
    check_initial,
)
from taskrunner.engine.types import ANY, ValueType
from taskrunner.engine.values import quietly
from taskrunner.tools import ToolRegistry


class PassState(State):
    """Build `value` from literals and references, then go to `next`."""

    type: Literal["pass"]
    value: Value = Field(
        description="What the state produces: any JSON value, with references and "
        "templates nested anywhere in it."
    )
    next: StateName = Field(description="The state to go to.")
    initial: JsonValue = Field(
        default=None,
        description="What `$states.NAME` is before the state first runs, so that it can "
        "build on its own previous output: a literal of the same type as `value`.",
    )

    TRANSITIONS = ("next",)
    OUTPUT_TRANSITION = "next"
    transient = True
    has_output = True

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        _ = yield from scope.value(self.value, scope.here + "/value")
        yield from check_initial(self, scope)

    def output_type(self, scope: Scope) -> ValueType:
        found = quietly(scope.value(self.value, scope.here + "/value"))
        return found if found is not None else ANY

    def initial_output(self) -> tuple[JsonValue] | None:
        return (self.initial,) if "initial" in self.model_fields_set else None

    def compile(self, name: str, tools: ToolRegistry) -> PassPlan:
        return PassPlan(parse_value(self.value), self.next)


@dataclass(frozen=True, slots=True)
class PassPlan(CallsNothing):
    value: Expression
    next: str

    def enter(self, run: Run) -> Arrival:
        output = run.resolve(self.value)
        return Goto(self.next, output, null_output=output is None)
