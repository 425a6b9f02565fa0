"""A choice state's decision is a step of its own: what it read, the rule that held (or the
default) and where it led. The driver records it without calling a tool, every chart
records it (a task's, a branch's, a map item's), and a replay checks it like any step."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
import yaml

from taskrunner.engine.driver import take_step
from taskrunner.engine.fanout import ChildResult, Fanout
from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import Execution, replay
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.steps import CallTool, Decision, Finish, Step
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import ToolRegistryError, UnexpectedStepError
from taskrunner.tools import JsonObject, ToolModel, ToolRegistry, tool


@pytest.fixture
def make_flow(checker: FlowChecker) -> Callable[[str], Flow]:
    """A flow from YAML text, which must be valid."""

    def make(text: str) -> Flow:
        result = checker.check(yaml.safe_load(text))
        assert result.flow is not None, result.diagnostics
        return result.flow

    return make


@pytest.fixture
def classify_sum(load_flow: Callable[[str], Flow]) -> Flow:
    return load_flow("classify_sum")


def _decision(rule: int | str, target: str) -> dict[str, int | str]:
    return {"rule": rule, "next": target}


def test_a_choice_asks_for_a_decided_step_and_moves_on_once_it_is_recorded(
    classify_sum: Flow, registry: ToolRegistry
) -> None:
    execution = Execution(FlowPlan(classify_sum, registry), {"a": 60, "b": 40, "label": "sum"})
    add = execution.decide()
    assert isinstance(add, CallTool)
    execution.record(add.succeeded({"sum": 100}))
    choice = execution.decide()
    assert choice == CallTool(
        2,
        "size",
        "choice",
        1,
        {"$states.add.sum": 100, "$input.label": "sum"},
        decided=_decision(2, "big"),
    )
    assert execution.state == "size"
    execution.record(choice.succeeded(_decision(2, "big")))  # type: ignore[union-attr]
    assert execution.state == "big"
    big = execution.decide()
    assert isinstance(big, CallTool)
    assert (big.seq, big.state, big.tool) == (3, "big", "echo")


class _NoJournal:
    """A journal that a decided step must not need: every use of it fails the test."""

    def before_call(self, call: CallTool) -> bool:
        raise AssertionError("not asked")

    def now(self) -> datetime:
        raise AssertionError("a decided step reads no clock")

    def time_left(self) -> float | None:
        raise AssertionError("a decided step has no deadline to keep")

    def run_children(self, call: CallTool, fanout: Fanout) -> list[ChildResult] | None:
        raise AssertionError("a decided step runs no children")

    def record(self, step: Step, decision: Decision, checkpoint: JsonObject) -> bool:
        raise AssertionError("not asked")

    def settle(self, decision: object) -> None:
        raise AssertionError("not asked")


def test_the_driver_records_a_decided_step_without_calling_anything() -> None:
    call = CallTool(4, "size", "choice", 1, {"$input.n": 3}, decided=_decision("default", "x"))
    step = take_step(ToolRegistry([]), call, _NoJournal())
    assert step == Step(
        4, "size", "choice", 1, {"$input.n": 3}, "succeeded", _decision("default", "x")
    )


@pytest.mark.parametrize(
    ("data", "read", "decision", "ended"),
    [
        ({"a": 2, "b": 3}, {"$states.add.sum": 5}, _decision("default", "small"), "report"),
        ({"a": -5, "b": 2}, {"$states.add.sum": -3}, _decision(1, "negative"), "negative"),
        (
            {"a": 99, "b": 1, "label": "small"},
            {"$states.add.sum": 100, "$input.label": "small"},
            _decision("default", "small"),
            "report",
        ),
    ],
    ids=["default", "first-rule", "all-fails-on-its-second-term"],
)
def test_the_step_reads_only_the_conditions_tried_and_no_constants(
    classify_sum: Flow,
    registry: ToolRegistry,
    data: dict[str, object],
    read: dict[str, object],
    decision: dict[str, object],
    ended: str,
) -> None:
    result = InMemoryRunner(registry).run(classify_sum, data)
    choices = [step for step in result.steps if step.tool == "choice"]
    assert [(step.seq, step.state) for step in choices] == [(2, "size")]
    assert choices[0].input == read
    assert list(choices[0].input) == list(read)  # in the order first read
    assert choices[0].output == decision
    assert result.state == ended


TEMPLATED = """
name: templated
input:
  first: {type: string}
  last: {type: string, default: "?"}
  missing: {type: string, optional: true}
start: pick
states:
  pick:
    type: choice
    rules:
      - when: {value: "{$input.first} {$input.last}", eq: "ann lee"}
        next: known
      - when: {value: '$input.missing ?? "none"', eq: "none"}
        next: other
    default: other
  known: {type: succeed}
  other: {type: succeed}
"""


def test_references_inside_a_template_and_with_a_default_are_read_by_their_text(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    flow = make_flow(TEMPLATED)
    [step] = InMemoryRunner(registry).run(flow, {"first": "bo"}).steps
    assert step.input == {
        "$input.first": "bo",
        "$input.last": "?",
        '$input.missing ?? "none"': "none",
    }
    assert step.output == _decision(2, "other")


def test_a_loop_records_a_decision_on_every_pass(
    load_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    result = InMemoryRunner(registry).run(load_flow("count_to"), {"n": 2})
    assert [(step.seq, step.state, step.tool) for step in result.steps] == [
        (1, "check", "choice"),
        (2, "count", "add"),
        (3, "check", "choice"),
        (4, "count", "add"),
        (5, "check", "choice"),
    ]
    assert [step.output for step in result.steps if step.tool == "choice"] == [
        _decision(1, "count"),
        _decision(1, "count"),
        _decision("default", "done"),
    ]
    assert result.output == {"count": 2}


CHILDREN = """
name: signs
input:
  numbers: {type: array, items: {type: number}}
start: both
states:
  both:
    type: parallel
    branches:
      first:
        start: sign
        states:
          sign:
            type: choice
            rules: [{when: {value: $input.numbers.0, lt: 0}, next: minus}]
            default: plus
          minus: {type: succeed, output: {sign: minus}}
          plus: {type: succeed, output: {sign: plus}}
    next: each
  each:
    type: map
    items: $input.numbers
    each:
      start: sign
      states:
        sign:
          type: choice
          rules: [{when: {value: $input.item, lt: 0}, next: minus}]
          default: plus
        minus: {type: succeed, output: {sign: minus}}
        plus: {type: succeed, output: {sign: plus}}
    next: done
  done: {type: succeed, output: {signs: $states.each}}
"""


def test_branches_and_map_items_record_their_own_decisions(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    result = InMemoryRunner(registry).run(make_flow(CHILDREN), {"numbers": [-1, 2]})
    assert result.output == {"signs": [{"sign": "minus"}, {"sign": "plus"}]}
    decisions = {
        key: [(step.tool, step.input, step.output) for step in child.steps]
        for key, child in result.children.items()
    }
    assert decisions == {
        "1/branch:first": [("choice", {"$input.numbers.0": -1}, _decision(1, "minus"))],
        "2/item:0": [("choice", {"$input.item": -1}, _decision(1, "minus"))],
        "2/item:1": [("choice", {"$input.item": 2}, _decision("default", "plus"))],
    }
    assert [step.tool for step in result.steps] == ["parallel", "map"]


# -- replay -------------------------------------------------------------------------------


def _history(classify_sum: Flow, registry: ToolRegistry, data: dict[str, object]) -> list[Step]:
    return list(InMemoryRunner(registry).run(classify_sum, data).steps)


def test_a_replayed_decision_that_the_flow_no_longer_makes_is_a_named_error(
    classify_sum: Flow, registry: ToolRegistry
) -> None:
    recorded = _history(classify_sum, registry, {"a": 60, "b": 40})
    # The same history, but the recorded decision went another way.
    other = Step(2, "size", "choice", 1, recorded[1].input, "succeeded", _decision(1, "negative"))
    plan = FlowPlan(classify_sum, registry)
    data = plan.validate_input({"a": 60, "b": 40})
    with pytest.raises(UnexpectedStepError) as raised:
        replay(plan, data, [recorded[0], other])
    assert raised.value.message == (
        "recorded step 2 (size/choice) chose rule 1 -> negative "
        "where the flow chooses rule 2 -> big"
    )
    defaulted = Step(
        2, "size", "choice", 1, recorded[1].input, "succeeded", _decision("default", "small")
    )
    with pytest.raises(UnexpectedStepError, match="chose the default -> small where the flow"):
        replay(plan, data, [recorded[0], defaulted])


def test_a_replayed_decision_that_read_other_values_is_a_named_error(
    classify_sum: Flow, registry: ToolRegistry
) -> None:
    recorded = _history(classify_sum, registry, {"a": 60, "b": 40})
    read_other = Step(
        2,
        "size",
        "choice",
        1,
        {"$states.add.sum": 101, "$input.label": "sum"},
        "succeeded",
        _decision(2, "big"),
    )
    plan = FlowPlan(classify_sum, registry)
    with pytest.raises(UnexpectedStepError) as raised:
        replay(plan, plan.validate_input({"a": 60, "b": 40}), [recorded[0], read_other])
    assert raised.value.message == (
        'recorded step 2 (size/choice) read {"$states.add.sum": 101, "$input.label": "sum"} '
        'where the flow reads {"$states.add.sum": 100, "$input.label": "sum"}'
    )


def test_a_history_without_the_decision_is_not_replayed_past_it(
    classify_sum: Flow, registry: ToolRegistry
) -> None:
    """A history recorded before choices were steps has none where the flow now wants one."""
    add = Step(1, "add", "add", 1, {"a": 2, "b": 3}, "succeeded", {"sum": 5})
    small = Step(2, "small", "echo", 1, {"text": "small"}, "succeeded", {"text": "small"})
    plan = FlowPlan(classify_sum, registry)
    with pytest.raises(UnexpectedStepError, match=r"where the flow expects step 2 \(size/choice"):
        replay(plan, plan.validate_input({"a": 2, "b": 3}), [add, small])


def test_a_replayed_history_with_its_decisions_reaches_the_same_end(
    classify_sum: Flow, registry: ToolRegistry
) -> None:
    recorded = _history(classify_sum, registry, {"a": 60, "b": 40})
    plan = FlowPlan(classify_sum, registry)
    execution = replay(plan, plan.validate_input({"a": 60, "b": 40}), recorded)
    assert execution.decide() == Finish("report", {"label": "sum", "sum": 100})


def test_a_checkpoint_right_after_a_decision_resumes_in_the_state_it_chose(
    classify_sum: Flow, registry: ToolRegistry
) -> None:
    recorded = _history(classify_sum, registry, {"a": 60, "b": 40})
    plan = FlowPlan(classify_sum, registry)
    data = plan.validate_input({"a": 60, "b": 40})
    checkpoint = replay(plan, data, recorded[:2]).checkpoint()
    assert (checkpoint["seq"], checkpoint["state"]) == (2, "big")
    resumed = Execution.resume(plan, data, checkpoint)
    assert resumed is not None
    assert resumed.decide() == CallTool(3, "big", "echo", 1, {"text": "$ big"})


class _Anything(ToolModel):
    text: str


def test_no_tool_may_take_the_name_of_choice_steps() -> None:
    @tool("choice")
    def choice(args: _Anything) -> _Anything:
        """A tool that would be mistaken for a choice's decision."""
        return args

    with pytest.raises(ToolRegistryError, match="reserved"):
        ToolRegistry([choice])
