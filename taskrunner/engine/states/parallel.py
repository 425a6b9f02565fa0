"""The `parallel` state: run named branches, each a sub-chart, at once, and join them.

Step Functions' `Parallel`, with branches named rather than numbered. Every branch is a
child run (`fanout.Child`, key `branch:NAME`) of its own chart, with `input` (by default
the task's `$input`) as its `$input`; the state records one step, whose output is an object
keyed by branch name. A failed branch fails the state with the branch's own error kind (the
first failed branch in the order written, not in time), which `retry` and `catch` see as a
task state's; the runner cancels the branches not yet started.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import Field

from taskrunner.engine import types
from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.errorkinds import INVALID_BRANCH_INPUT, RaisableKinds
from taskrunner.engine.fanout import PARALLEL_TOOL, Child, Fanout
from taskrunner.engine.model import FieldName, StateName, Value
from taskrunner.engine.refs import Expression, parse_value
from taskrunner.engine.states.base import Arrival, Goto, Outcome, Run, Scope, State
from taskrunner.engine.states.charts import (
    Chart,
    CompiledChart,
    check_chart,
    compile_chart,
    drained,
    fanout_kinds,
)
from taskrunner.engine.states.recovery import Catch, Retry, after_failure, check_handlers
from taskrunner.engine.steps import CallTool, Fail, Step, StepError
from taskrunner.engine.types import ANY, ValueType
from taskrunner.tools import TIMEOUT, JsonObject, ToolRegistry

OBJECT = types.of_schema({"type": "object"})


class ParallelState(State):
    """Run every branch at once (up to `max_concurrency`), then go to `next` with an
    object of their outputs, keyed by branch name."""

    type: Literal["parallel"]
    branches: dict[FieldName, Chart] = Field(
        min_length=1,
        max_length=100,
        description="The branches, by name: each a sub-chart with its own `start` and `states`.",
    )
    input: Value = Field(
        default="$input",
        description="Each branch's `$input`: an object, literal or with references "
        "(by default the task's whole `$input`).",
    )
    max_concurrency: int | None = Field(
        default=None, ge=1, le=1_000, description="At most this many branches run at once."
    )
    next: StateName = Field(description="The state to go to when every branch succeeded.")
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="An attempt that takes longer fails with the error kind `Timeout`.",
    )
    retry: Retry | None = None
    catch: list[Catch] = Field(
        default_factory=list,
        description="Checked in order. The target state sees the caught error as `$error`.",
    )

    TRANSITIONS = ("next", "catch")
    OUTPUT_TRANSITION = "next"
    has_output = True

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        branch_input = yield from self._input_type(scope)
        for branch, chart in self.branches.items():
            path = scope.here + pointer("branches", branch)
            _ = yield from check_chart(scope, chart, path, branch_input)
        yield from check_handlers(scope.here, self.retry, self.catch, self._raisable(scope))

    def raises(self, scope: Scope) -> frozenset[str] | None:
        raisable = self._raisable(scope)
        return None if raisable is None else frozenset(raisable.names())

    def _raisable(self, scope: Scope) -> RaisableKinds | None:
        own = [TIMEOUT] if self.timeout_seconds is not None else []
        return fanout_kinds(scope, self.branches.values(), own, "this parallel state")

    def output_type(self, scope: Scope) -> ValueType:
        branch_input = drained(self._input_type(scope))
        ends = {
            branch: drained(check_chart(scope, chart, scope.here, branch_input))
            for branch, chart in self.branches.items()
        }
        return types.of_parts(ends, is_array=False)

    def _input_type(self, scope: Scope) -> Generator[Diagnostic, None, ValueType]:
        where = "a branch's `input`"
        found = yield from scope.value(self.input, scope.here + "/input", OBJECT, where)
        return found if found is not None else ANY

    def compile(self, name: str, tools: ToolRegistry) -> ParallelPlan:
        charts = tuple((branch, compile_chart(chart)) for branch, chart in self.branches.items())
        return ParallelPlan(name, self, charts, parse_value(self.input))


@dataclass(frozen=True, slots=True)
class ParallelPlan:
    name: str
    state: ParallelState
    charts: tuple[tuple[str, CompiledChart], ...]
    input: Expression

    def with_pins(self, pins: Mapping[str, str], locked: Mapping[str, JsonObject]) -> ParallelPlan:
        """The plan whose branches run the sub-flow versions that its flow version pins."""
        charts = tuple(
            (branch, compile_chart(chart, pins, locked))
            for branch, chart in self.state.branches.items()
        )
        return replace(self, charts=charts)

    def enter(self, run: Run) -> Arrival:
        given = run.resolve(self.input)
        if not isinstance(given, dict):
            message = f"a branch's input must be an object, not {type(given).__name__}"
            return Fail(self.name, StepError(INVALID_BRANCH_INPUT, message))
        children = tuple(
            Child(f"branch:{branch}", chart.digest, chart.definition, given)
            for branch, chart in self.charts
        )
        fanout = Fanout(children, "object", self.state.max_concurrency)
        arguments: JsonObject = {"branches": [branch for branch, _ in self.charts]}
        return CallTool(
            run.next_seq,
            self.name,
            PARALLEL_TOOL,
            run.attempt,
            arguments,
            run.delay,
            self.state.timeout_seconds,
            fanout=fanout,
        )

    def on_step(self, run: Run, step: Step) -> Outcome:
        if step.status == "succeeded":
            return Goto(self.state.next)
        return after_failure(self.name, step, self.state.retry, self.state.catch)
