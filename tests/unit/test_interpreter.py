"""The interpreter: decisions from (flow, input, recorded steps), retries, catches, choices,
replay, and the named error when a recorded step is not the expected one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import MAX_STEPS, Execution, replay
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.states.task import Retry
from taskrunner.engine.steps import CallTool, Fail, Finish, Step, StepError
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import FlowInputError, UnexpectedStepError
from taskrunner.tools import ToolRegistry

HELLO = {"text": "hello", "a": 2, "b": 3}


@pytest.fixture
def make_flow(checker: FlowChecker) -> Callable[[str], Flow]:
    """A flow from YAML text, which must be valid."""

    def make(text: str) -> Flow:
        result = checker.check(yaml.safe_load(text))
        assert result.flow is not None, result.diagnostics
        return result.flow

    return make


def test_echo_add_decides_echo_then_add_then_finishes(
    echo_add: Flow, registry: ToolRegistry
) -> None:
    execution = Execution(FlowPlan(echo_add, registry), HELLO)
    first = execution.decide()
    assert first == CallTool(1, "echo", "echo", 1, {"text": "hello"}, 0.0)
    execution.record(first.succeeded({"text": "hello"}))  # type: ignore[union-attr]
    second = execution.decide()
    assert second == CallTool(2, "add", "add", 1, {"a": 2, "b": 3}, 0.0)
    execution.record(second.succeeded({"sum": 5}))  # type: ignore[union-attr]
    assert execution.decide() == Finish("done", {"text": "hello", "sum": 5})
    assert execution.finished


def test_deciding_twice_without_recording_gives_the_same_answer(
    echo_add: Flow, registry: ToolRegistry
) -> None:
    execution = Execution(FlowPlan(echo_add, registry), HELLO)
    assert execution.decide() is execution.decide()


def test_a_replayed_history_resumes_at_the_next_step(
    echo_add: Flow, registry: ToolRegistry
) -> None:
    recorded = [Step(1, "echo", "echo", 1, {"text": "hello"}, "succeeded", {"text": "hello"})]
    execution = replay(FlowPlan(echo_add, registry), HELLO, recorded)
    assert execution.decide() == CallTool(2, "add", "add", 1, {"a": 2, "b": 3}, 0.0)


@pytest.mark.parametrize(
    "step",
    [
        Step(1, "add", "add", 1, {"a": 2, "b": 3}, "succeeded", {"sum": 5}),
        Step(2, "echo", "echo", 1, {"text": "hello"}, "succeeded", {"text": "hello"}),
        Step(1, "echo", "echo", 2, {"text": "hello"}, "succeeded", {"text": "hello"}),
        Step(1, "echo", "echo", 1, {"text": "bye"}, "succeeded", {"text": "bye"}),
        Step(1, "echo", "add", 1, {"text": "hello"}, "succeeded", {"text": "hello"}),
    ],
    ids=["other-state", "other-seq", "other-attempt", "other-input", "other-tool"],
)
def test_a_recorded_step_that_is_not_the_expected_one_is_a_named_error(
    echo_add: Flow, registry: ToolRegistry, step: Step
) -> None:
    with pytest.raises(UnexpectedStepError, match="where the flow expects step 1 \\(echo/echo"):
        replay(FlowPlan(echo_add, registry), HELLO, [step])


def test_a_step_after_the_end_is_a_named_error(echo_add: Flow, registry: ToolRegistry) -> None:
    steps = [
        Step(1, "echo", "echo", 1, {"text": "hello"}, "succeeded", {"text": "hello"}),
        Step(2, "add", "add", 1, {"a": 2, "b": 3}, "succeeded", {"sum": 5}),
        Step(3, "add", "add", 1, {"a": 2, "b": 3}, "succeeded", {"sum": 5}),
    ]
    with pytest.raises(UnexpectedStepError, match="already ended in state done"):
        replay(FlowPlan(echo_add, registry), HELLO, steps)


def test_input_is_checked_strictly_and_every_problem_is_named(
    echo_add: Flow, registry: ToolRegistry
) -> None:
    plan = FlowPlan(echo_add, registry)
    with pytest.raises(FlowInputError) as caught:
        plan.validate_input({"text": 1, "a": "2", "b": True, "c": 0})
    assert caught.value.problems == [
        "text: Input should be a valid string",
        "a: Input should be a number",
        "b: Input should be a number",
        "c: not an input of this flow",
    ]


def test_missing_input_is_named(echo_add: Flow, registry: ToolRegistry) -> None:
    with pytest.raises(FlowInputError, match="b: Field required"):
        FlowPlan(echo_add, registry).validate_input({"text": "x", "a": 1})


DEFAULTS = """
name: defaults
input:
  tags: {type: array, default: [x]}
start: done
states:
  done: {type: succeed, output: {tags: $input.tags}}
"""


def test_defaults_are_applied_and_never_shared_between_tasks(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    plan = FlowPlan(make_flow(DEFAULTS), registry)
    first = plan.validate_input({})
    assert first == {"tags": ["x"]}
    first["tags"].append("y")  # type: ignore[union-attr]
    assert plan.validate_input({}) == {"tags": ["x"]}


def test_retry_delays_grow_deterministically_and_are_capped() -> None:
    policy = Retry(max_attempts=6, interval_seconds=1.5, backoff_rate=2.0, max_interval_seconds=5.0)
    assert [policy.delay_before(n) for n in range(2, 7)] == [1.5, 3.0, 5.0, 5.0, 5.0]


RETRY = """
name: retrying
input:
  divisor: {type: number}
start: divide
states:
  divide:
    type: task
    tool: divide
    args: {dividend: 1, divisor: $input.divisor}
    retry: {max_attempts: 3, interval_seconds: 2, errors: [%s]}
    catch: [{errors: [%s], next: rescued}]
    next: done
  done: {type: succeed, output: {q: $states.divide.quotient}}
  rescued: {type: succeed, output: {rescued: true}}
"""


@pytest.mark.parametrize(
    ("retried", "caught", "attempts", "status", "output"),
    [
        ("DivisionByZero", "DivisionByZero", 3, "succeeded", {"rescued": True}),
        ("'*'", "'*'", 3, "succeeded", {"rescued": True}),
        ("Other", "DivisionByZero", 1, "succeeded", {"rescued": True}),
        ("DivisionByZero", "Other", 3, "failed", None),
    ],
    ids=["named", "wildcard", "retry-does-not-match", "catch-does-not-match"],
)
def test_retry_then_catch_match_on_the_error_kind(
    make_flow: Callable[[str], Flow],
    registry: ToolRegistry,
    retried: str,
    caught: str,
    attempts: int,
    status: str,
    output: dict[str, Any] | None,
) -> None:
    sleeps: list[float] = []
    flow = make_flow(RETRY % (retried, caught))
    result = InMemoryRunner(registry, sleep=sleeps.append).run(flow, {"divisor": 0})
    assert [step.attempt for step in result.steps] == list(range(1, attempts + 1))
    assert all(
        step.error == StepError("DivisionByZero", "cannot divide by zero") for step in result.steps
    )
    assert sleeps == [2.0, 4.0][: attempts - 1]
    assert (result.status, result.output) == (status, output)
    if status == "failed":
        assert (result.state, result.error) == (
            "divide",
            StepError("DivisionByZero", "cannot divide by zero"),
        )


def test_a_successful_retry_moves_on_with_the_output(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    plan = FlowPlan(make_flow(RETRY % ("'*'", "'*'")), registry)
    execution = Execution(plan, {"divisor": 2})
    call = execution.decide()
    assert isinstance(call, CallTool)
    execution.record(call.failed("Flaky", "try again"))
    again = execution.decide()
    assert again == CallTool(2, "divide", "divide", 2, {"dividend": 1, "divisor": 2}, 2.0)
    execution.record(again.succeeded({"quotient": 0.5}))  # type: ignore[union-attr]
    assert execution.decide() == Finish("done", {"q": 0.5})


CHOICE = """
name: choosing
input:
  x: {type: %s}
  y: {type: %s}
start: pick
states:
  pick:
    type: choice
    rules:
      - when: %s
        next: "yes"
    default: "no"
  "yes": {type: succeed, output: {answer: true}}
  "no": {type: succeed, output: {answer: false}}
"""


@pytest.mark.parametrize(
    ("types", "condition", "x", "y", "holds"),
    [
        (("number", "number"), "{value: $input.x, eq: $input.y}", 1, 1.0, True),
        (("number", "number"), "{value: $input.x, ne: $input.y}", 1, 2, True),
        (("number", "number"), "{value: $input.x, lt: $input.y}", 1, 2, True),
        (("number", "number"), "{value: $input.x, le: $input.y}", 2, 2, True),
        (("number", "number"), "{value: $input.x, gt: $input.y}", 2, 2, False),
        (("number", "number"), "{value: $input.x, ge: $input.y}", 2.5, 2, True),
        (("object", "integer"), "{value: $input.x.k, eq: $input.y}", {"k": True}, 1, False),
        (
            ("array", "array"),
            "{value: $input.x, eq: $input.y}",
            [1, {"a": 2}],
            [1.0, {"a": 2}],
            True,
        ),
        (
            ("object", "object"),
            "{value: $input.x, eq: $input.y}",
            {"a": 1},
            {"a": 1, "b": 2},
            False,
        ),
        (("object", "number"), "{value: $input.x.k, gt: $input.y}", {"k": "a"}, 0, False),
        (
            ("number", "number"),
            "{all: [{value: $input.x, gt: 0}, {value: $input.y, gt: 0}]}",
            1,
            1,
            True,
        ),
        (
            ("number", "number"),
            "{all: [{value: $input.x, gt: 0}, {value: $input.y, gt: 0}]}",
            1,
            -1,
            False,
        ),
        (
            ("number", "number"),
            "{any: [{value: $input.x, gt: 0}, {value: $input.y, gt: 0}]}",
            -1,
            1,
            True,
        ),
        (("number", "number"), "{not: {value: $input.x, eq: $input.y}}", 1, 2, True),
        (("string", "string"), "{value: $input.x, eq: $$x}", "$x", "", True),
    ],
)
def test_choice_rules(
    make_flow: Callable[[str], Flow],
    registry: ToolRegistry,
    types: tuple[str, str],
    condition: str,
    x: object,
    y: object,
    holds: bool,
) -> None:
    flow = make_flow(CHOICE % (*types, condition))
    result = InMemoryRunner(registry).run(flow, {"x": x, "y": y})
    assert result.output == {"answer": holds}
    [decision] = result.steps
    assert (decision.state, decision.tool) == ("pick", "choice")
    assert decision.output == (
        {"rule": 1, "next": "yes"} if holds else {"rule": "default", "next": "no"}
    )


UNRESOLVED = """
name: unresolved
input:
  thing: {type: object}
start: echo
states:
  echo:
    type: task
    tool: echo
    args: {text: $input.thing.name}
    next: done
  done: {type: succeed}
"""


def test_a_reference_without_data_fails_the_task_by_name(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    walks_into_text = UNRESOLVED.replace("$input.thing.name}", "$input.thing.name.first}")
    result = InMemoryRunner(registry).run(make_flow(walks_into_text), {"thing": {"name": "x"}})
    assert result.status == "failed"
    assert result.error == StepError(
        "UnresolvedReference", "$input.thing.name.first: cannot take 'first' of a str"
    )
    assert result.steps == ()


def test_an_absent_field_is_null_and_a_default_replaces_it(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    result = InMemoryRunner(registry).run(make_flow(UNRESOLVED), {"thing": {}})
    assert result.status == "failed"
    assert [step.input for step in result.steps] == [{"text": None}]
    defaulted = UNRESOLVED.replace("$input.thing.name}", "'$input.thing.name ?? \"anon\"'}")
    result = InMemoryRunner(registry).run(make_flow(defaulted), {"thing": {}})
    assert result.status == "succeeded"
    assert [step.output for step in result.steps] == [{"text": "anon"}]


def test_an_argument_of_the_wrong_type_at_run_time_is_a_failed_step(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    result = InMemoryRunner(registry).run(make_flow(UNRESOLVED), {"thing": {"name": 7}})
    [step] = result.steps
    assert (step.status, step.error) == (
        "failed",
        StepError("InvalidToolInput", "text: Input should be a valid string"),
    )
    assert result.status == "failed"


FOREVER = """
name: forever
input:
  n: {type: number}
start: add
states:
  add:
    type: task
    tool: add
    args: {a: $input.n, b: 1}
    next: again
  again:
    type: choice
    rules: [{when: {value: $states.add.sum, gt: 0}, next: add}]
    default: done
  done: {type: succeed}
"""


def test_a_task_that_never_ends_stops_at_the_step_limit(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    result = InMemoryRunner(registry).run(make_flow(FOREVER), {"n": 1})
    assert result.status == "failed"
    assert result.error == StepError("StepLimitExceeded", f"{MAX_STEPS} steps recorded")
    assert len(result.steps) == MAX_STEPS


def test_a_checkpoint_resumes_where_the_execution_stood(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    plan = FlowPlan(make_flow(RETRY % ("'*'", "'*'")), registry)
    execution = Execution(plan, {"divisor": 2})
    call = execution.decide()
    assert isinstance(call, CallTool)
    execution.record(call.failed("Flaky", "try again"))
    checkpoint = execution.checkpoint()
    assert checkpoint["seq"] == 1
    assert (checkpoint["state"], checkpoint["attempt"], checkpoint["delay"]) == ("divide", 2, 2.0)
    resumed = Execution.resume(plan, {"divisor": 2}, checkpoint)
    assert resumed is not None
    assert resumed.steps == []
    assert resumed.decide() == execution.decide()


def test_a_failure_a_step_led_to_is_kept_in_the_checkpoint(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    plan = FlowPlan(make_flow(RETRY % ("DivisionByZero", "Other")), registry)
    execution = Execution(plan, {"divisor": 0})
    while not execution.finished:
        call = execution.decide()
        assert isinstance(call, CallTool)
        execution.record(call.failed("Unknown", "not retried, not caught"))
    resumed = Execution.resume(plan, {"divisor": 0}, execution.checkpoint())
    assert resumed is not None
    assert resumed.decide() == execution.decide()
    assert isinstance(resumed.decide(), Fail)


@pytest.mark.parametrize(
    "change",
    [
        {"version": 99},
        {"state": "nowhere"},
        {"outputs": {"nowhere": 1}},
        {"seq": "1"},
        {"attempt": None},
        {"failed": {"state": "divide"}},
    ],
    ids=["version", "state", "outputs", "seq", "attempt", "failed"],
)
def test_a_checkpoint_that_does_not_fit_the_flow_is_not_resumed(
    make_flow: Callable[[str], Flow], registry: ToolRegistry, change: dict[str, Any]
) -> None:
    plan = FlowPlan(make_flow(RETRY % ("'*'", "'*'")), registry)
    checkpoint = {**Execution(plan, {"divisor": 2}).checkpoint(), **change}
    assert Execution.resume(plan, {"divisor": 2}, checkpoint) is None
