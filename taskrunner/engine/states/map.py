"""The `map` state: run a sub-chart for each item of an array, and join their outputs.

Step Functions' `Map` (inline), with `ItemSelector` as `input`. Item number `index` is a
child run (`fanout.Child`, key `item:INDEX`) of the `each` chart, whose `$input` is
`{"item": ..., "index": ...}` plus the fields of `input`. The state records one step
(`{"items": [...]}`, in input order whatever order the items ended in), and its output,
`$states.NAME`, is that array. By default the first failed item (by index, not in time)
fails the state with its own error kind; with `tolerated_failures` or
`tolerated_percentage`, failed items are null and only more failures than allowed fail it,
with `ToleratedFailuresExceeded`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal

from pydantic import Field, JsonValue

from taskrunner.engine import types
from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.errorkinds import INVALID_ITEMS, TOO_MANY_ITEMS, RaisableKinds
from taskrunner.engine.fanout import MAP_TOOL, TOLERATED_FAILURES_EXCEEDED, Child, Fanout
from taskrunner.engine.model import FieldName, StateName, Value
from taskrunner.engine.refs import Expression, parse_value
from taskrunner.engine.states.base import Arrival, Goto, Outcome, Run, Scope, State
from taskrunner.engine.states.charts import (
    INDEX_TYPE,
    Chart,
    CompiledChart,
    array_of,
    check_chart,
    compile_chart,
    drained,
    element_of,
    fanout_kinds,
)
from taskrunner.engine.states.recovery import Catch, Retry, after_failure, check_handlers
from taskrunner.engine.steps import CallTool, Fail, Step, StepError
from taskrunner.engine.types import ANY, ValueType
from taskrunner.tools import TIMEOUT, JsonObject, ToolRegistry

MAX_ITEMS: Final = 10_000
"""The most items one map state runs; more fail the task with `TooManyItems`."""
ITEM_FIELDS: Final = ("item", "index")
"""The fields of an item's `$input` that the map sets; `input` may not set them."""
ARRAY = types.of_schema({"type": "array"})


class MapState(State):
    """Run `each` for every item of `items` (up to `max_concurrency` at once), then go to
    `next` with the array of their outputs, in the order of `items`."""

    type: Literal["map"]
    items: Value = Field(
        description="The array to run over: a reference such as `$input.orders`, or a "
        "literal array."
    )
    each: Chart = Field(
        description="The sub-chart each item runs; its `$input` is `{item, index}` plus "
        "the fields of `input`."
    )
    input: dict[FieldName, Value] = Field(
        default_factory=dict,
        description="More fields of each item's `$input` (beside `item` and `index`): "
        "literals or references, the same for every item.",
    )
    max_concurrency: int | None = Field(
        default=None, ge=1, le=1_000, description="At most this many items run at once."
    )
    tolerated_failures: int | None = Field(
        default=None,
        ge=0,
        description="Up to this many failed items still let the state succeed (as nulls).",
    )
    tolerated_percentage: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Up to this percentage of failed items still let the state succeed.",
    )
    next: StateName = Field(description="The state to go to when the items are done.")
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

    @property
    def tolerant(self) -> bool:
        return self.tolerated_failures is not None or self.tolerated_percentage is not None

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        for field in ITEM_FIELDS:
            if field in self.input:
                yield Diagnostic(
                    "map.reserved-input",
                    f"`input.{field}` is set by the map state for each item",
                    scope.here + pointer("input", field),
                    "rename the field: every item's `$input` already has `item` and `index`",
                )
        item_input = yield from self._item_input(scope)
        _ = yield from check_chart(scope, self.each, scope.here + "/each", item_input)
        yield from check_handlers(scope.here, self.retry, self.catch, self._raisable(scope))

    def raises(self, scope: Scope) -> frozenset[str] | None:
        raisable = self._raisable(scope)
        return None if raisable is None else frozenset(raisable.names())

    def _raisable(self, scope: Scope) -> RaisableKinds | None:
        own = [TIMEOUT] if self.timeout_seconds is not None else []
        if self.tolerant:
            own.append(TOLERATED_FAILURES_EXCEEDED)
        return fanout_kinds(scope, [self.each], own, "this map state")

    def output_type(self, scope: Scope) -> ValueType:
        end = drained(check_chart(scope, self.each, scope.here, drained(self._item_input(scope))))
        return array_of(end, nullable=self.tolerant)

    def _item_input(self, scope: Scope) -> Generator[Diagnostic, None, ValueType]:
        path = scope.here + "/items"
        found = yield from scope.value(self.items, path, ARRAY, "`items`")
        element = element_of(found) if found is not None else ANY
        parts: dict[str, ValueType] = {"item": element or ANY, "index": INDEX_TYPE}
        for field, value in self.input.items():
            if field in ITEM_FIELDS:
                continue
            typed = yield from scope.value(value, scope.here + pointer("input", field))
            parts[field] = typed if typed is not None else ANY
        return types.of_parts(parts, is_array=False)

    def compile(self, name: str, tools: ToolRegistry) -> MapPlan:
        extra = tuple((field, parse_value(value)) for field, value in self.input.items())
        return MapPlan(name, self, compile_chart(self.each), parse_value(self.items), extra)


@dataclass(frozen=True, slots=True)
class MapPlan:
    name: str
    state: MapState
    chart: CompiledChart
    items: Expression
    extra: tuple[tuple[str, Expression], ...]

    def with_pins(self, pins: Mapping[str, str], locked: Mapping[str, JsonObject]) -> MapPlan:
        """The plan whose items run the sub-flow versions that its flow version pins."""
        return replace(self, chart=compile_chart(self.state.each, pins, locked))

    def enter(self, run: Run) -> Arrival:
        items = run.resolve(self.items)
        if not isinstance(items, list):
            message = f"`items` is {type(items).__name__}, not an array"
            return Fail(self.name, StepError(INVALID_ITEMS, message))
        if len(items) > MAX_ITEMS:
            message = f"at most {MAX_ITEMS:,} items; `items` has {len(items):,}"
            return Fail(self.name, StepError(TOO_MANY_ITEMS, message))
        shared: JsonObject = {field: run.resolve(value) for field, value in self.extra}
        chart = self.chart
        children = tuple(
            Child(f"item:{index}", chart.digest, chart.definition, _item_input(item, index, shared))
            for index, item in enumerate(items)
        )
        state = self.state
        fanout = Fanout(
            children,
            "array",
            state.max_concurrency,
            state.tolerated_failures,
            state.tolerated_percentage,
        )
        return CallTool(
            run.next_seq,
            self.name,
            MAP_TOOL,
            run.attempt,
            {"items": len(items)},
            run.delay,
            state.timeout_seconds,
            fanout=fanout,
        )

    def on_step(self, run: Run, step: Step) -> Outcome:
        if step.status == "succeeded":
            # The step keeps `{"items": [...]}` (a step's output is an object); the state's
            # output, `$states.NAME`, is the array itself.
            output = step.output or {}
            items: JsonValue = output.get("items", [])
            return Goto(self.state.next, items, null_output=items is None)
        return after_failure(self.name, step, self.state.retry, self.state.catch)


def _item_input(item: JsonValue, index: int, shared: JsonObject) -> JsonObject:
    return {**shared, "item": item, "index": index}
