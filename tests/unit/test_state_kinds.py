"""A state kind lives in one place: this file defines a kind of its own, `assign`, that
taskrunner has never heard of, and it validates, runs and appears in the generated schema
with no change to `taskrunner/`.

`assign` sets named values (literals or references) as its output, then goes to `next`:
it moves on without a step, and `$states.NAME.FIELD` refers to what it set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pytest

from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.flow import Flow, Language
from taskrunner.engine.model import FieldName, StateName, Value
from taskrunner.engine.refs import Expression, parse_value
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.schema import flow_json_schema
from taskrunner.engine.states import BUILTIN_KINDS
from taskrunner.engine.states.base import Arrival, CallsNothing, Goto, Run, Scope, State
from taskrunner.engine.types import ValueType
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import check_source
from taskrunner.tools import ToolRegistry


class AssignState(State):
    """Set named values, then go to `next`."""

    type: Literal["assign"]
    values: dict[FieldName, Value]
    next: StateName

    TRANSITIONS = ("next",)
    OUTPUT_TRANSITION = "next"
    transient = True
    has_output = True

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        for name, value in self.values.items():
            _ = yield from scope.value(value, scope.here + pointer("values", name))

    def output_type(self, scope: Scope) -> ValueType:
        return ValueType(frozenset({"object"}))

    def compile(self, name: str, tools: ToolRegistry) -> AssignPlan:
        return AssignPlan(
            tuple((key, parse_value(value)) for key, value in self.values.items()), self.next
        )


@dataclass(frozen=True)
class AssignPlan(CallsNothing):
    values: tuple[tuple[str, Expression], ...]
    target: str

    def enter(self, run: Run) -> Arrival:
        return Goto(self.target, {key: run.resolve(value) for key, value in self.values})


LANGUAGE = Language([*BUILTIN_KINDS, AssignState])

FLOW = b"""\
name: greet
input:
  name: {type: string}
  a: {type: number}
start: prepare
states:
  prepare:
    type: assign
    values: {greeting: $input.name, left: $input.a, right: 40}
    next: add
  add:
    type: task
    tool: add
    args: {a: $states.prepare.left, b: $states.prepare.right}
    next: done
  done:
    type: succeed
    output: {who: $states.prepare.greeting, sum: $states.add.sum}
"""


@pytest.fixture
def checker(registry: ToolRegistry) -> FlowChecker:
    return FlowChecker(registry, LANGUAGE)


def _flow(checker: FlowChecker, text: bytes) -> Flow:
    report = check_source(text, "greet.yaml", checker)
    assert report.problems == [], [str(problem) for problem in report.problems]
    assert report.flow is not None
    return report.flow


def test_the_new_kind_validates_and_runs(checker: FlowChecker, registry: ToolRegistry) -> None:
    flow = _flow(checker, FLOW)
    assert isinstance(flow.states["prepare"], AssignState)
    result = InMemoryRunner(registry).run(flow, {"name": "Ada", "a": 2})
    assert result.status == "succeeded"
    assert result.output == {"who": "Ada", "sum": 42}
    assert [step.state for step in result.steps] == ["add"]  # assign takes no step


def test_the_new_kind_is_in_the_generated_schema(registry: ToolRegistry) -> None:
    schema = flow_json_schema(registry, LANGUAGE)
    assert "AssignState" in schema["$defs"]
    states = schema["$defs"]["AssignState"]
    assert states["required"] == ["type", "values", "next"]
    # A flow's states and every sub-chart's refer to the one union of kinds.
    assert schema["properties"]["states"]["additionalProperties"] == {"$ref": "#/$defs/State"}
    assert "assign" in str(schema["$defs"]["State"])


def test_the_schema_checks_the_new_kinds_shape(checker: FlowChecker) -> None:
    broken = FLOW.replace(b"    values:", b"    valuez:")
    report = check_source(broken, "greet.yaml", checker)
    assert ("schema.unknown-key", 9) in [(p.code, p.line) for p in report.problems]


def test_its_references_and_transitions_are_checked_by_meaning(checker: FlowChecker) -> None:
    broken = FLOW.replace(b"greeting: $input.name", b"greeting: $input.nme").replace(
        b"    next: add\n  add:", b"    next: ad\n  add:"
    )
    report = check_source(broken, "greet.yaml", checker)
    found = {(p.code, p.line) for p in report.problems}
    assert ("ref.unknown-input", 9) in found
    assert ("flow.unknown-state", 10) in found


def test_a_reference_to_its_output_on_a_path_without_it_is_refused(
    checker: FlowChecker,
) -> None:
    text = FLOW.replace(b"start: prepare", b"start: add")
    report = check_source(text, "greet.yaml", checker)
    codes = {p.code for p in report.problems}
    assert "ref.not-run" in codes
    assert "flow.unreachable" in codes


def test_a_loop_of_the_new_kind_alone_is_refused(checker: FlowChecker) -> None:
    text = FLOW.replace(b"    next: add\n  add:", b"    next: prepare\n  add:")
    report = check_source(text, "greet.yaml", checker)
    assert ("flow.choice-cycle", 7) in {(p.code, p.line) for p in report.problems}


def test_the_builtin_language_does_not_know_it(registry: ToolRegistry) -> None:
    report = check_source(FLOW, "greet.yaml", FlowChecker(registry))
    assert ("schema.enum", 8) in {(p.code, p.line) for p in report.problems}


def test_a_flow_of_the_new_kind_has_a_stable_digest(checker: FlowChecker) -> None:
    first, second = _flow(checker, FLOW), _flow(checker, FLOW)
    assert first.digest == second.digest
    assert LANGUAGE.parse(json.loads(first.canonical)).digest == first.digest
