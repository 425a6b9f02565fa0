"""A test-only fan-out state kind, `spread`, to test the machinery that runs fan-outs as
child tasks (the store, the service, workers) apart from the real `parallel`, `map` and
`flow` kinds: it runs its inline chart once per element of `items`, each child with the
input `{"item": ELEMENT, "index": INDEX}`, and joins them as a map does.

    fan:
      type: spread
      items: $input.numbers
      max_concurrency: 2        # optional
      tolerated_failures: 1     # optional; without it (and the percentage), fail fast
      chart: {start: …, states: {…}}
      next: done

The chart is a flow of its own (named after the flow given in `flow`, default `spread`),
parsed with `LANGUAGE`, so that a chart may spread again. No checks: the tests give
well-formed flows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from taskrunner.engine.diagnostics import Diagnostic
from taskrunner.engine.fanout import MAP_TOOL, Child, Fanout
from taskrunner.engine.flow import Language
from taskrunner.engine.model import StateName
from taskrunner.engine.refs import Expression, parse_value
from taskrunner.engine.states import BUILTIN_KINDS
from taskrunner.engine.states.base import Arrival, Goto, Outcome, Run, Scope, State
from taskrunner.engine.steps import CallTool, Fail, Step, StepError
from taskrunner.engine.types import ValueType
from taskrunner.engine.validate import FlowChecker
from taskrunner.tools import JsonObject, ToolRegistry


class SpreadState(State):
    """Run `chart` once per element of `items`; the output is `{"items": [...]}`."""

    type: Literal["spread"]
    items: JsonValue
    chart: JsonObject
    flow: str = "spread"
    max_concurrency: int | None = None
    tolerated_failures: int | None = None
    validate_input: bool = False
    """Check each child's input against the chart's declared `input`, as a sub-flow's."""
    next: StateName

    TRANSITIONS = ("next",)
    OUTPUT_TRANSITION = "next"
    has_output = True

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        return iter(())

    def output_type(self, scope: Scope) -> ValueType:
        return ValueType(frozenset({"object"}))

    def compile(self, name: str, tools: ToolRegistry) -> SpreadPlan:
        return SpreadPlan(name, self, parse_value(self.items))


@dataclass(frozen=True)
class SpreadPlan:
    name: str
    state: SpreadState
    items: Expression

    def enter(self, run: Run) -> Arrival:
        items = run.resolve(self.items)
        assert isinstance(items, list)
        chart = LANGUAGE.parse({"name": self.state.flow, **self.state.chart})
        definition: JsonObject = json.loads(chart.canonical)
        children = tuple(
            Child(
                f"item:{index}",
                chart.digest,
                definition,
                {"item": item, "index": index},
                self.state.validate_input,
            )
            for index, item in enumerate(items)
        )
        fanout = Fanout(
            children,
            "array",
            max_concurrency=self.state.max_concurrency,
            tolerated_failures=self.state.tolerated_failures,
        )
        return CallTool(
            run.next_seq, self.name, MAP_TOOL, run.attempt, {"count": len(items)}, fanout=fanout
        )

    def on_step(self, run: Run, step: Step) -> Outcome:
        if step.status == "succeeded":
            return Goto(self.state.next)
        return Fail(self.name, step.error or StepError("Unknown", "no error"))


LANGUAGE = Language([*BUILTIN_KINDS, SpreadState])


def spread_checker(registry: ToolRegistry) -> FlowChecker:
    """A checker of flows that may use `spread`."""
    return FlowChecker(registry, LANGUAGE)
