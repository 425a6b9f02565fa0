"""Data built inside a flow: deep values, templates, `pass` states, the caught error as
`$error`, `non_retryable` kinds, and `initial` outputs that let a loop carry a counter."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import yaml
from pydantic import Field

from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import Execution, replay
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.refs import (
    Constant,
    Reference,
    Structure,
    Template,
    TemplateSyntaxError,
    UnresolvedReferenceError,
    parse_template,
    parse_value,
)
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.steps import CallTool, Finish, StepError
from taskrunner.engine.validate import FlowChecker
from taskrunner.tools import ToolModel, ToolRegistry, tool


@pytest.fixture
def make_flow(checker: FlowChecker) -> Callable[[str], Flow]:
    def make(text: str) -> Flow:
        result = checker.check(yaml.safe_load(text))
        assert result.flow is not None, [str(item) for item in result.diagnostics]
        return result.flow

    return make


def _codes(checker: FlowChecker, text: str) -> list[str]:
    return [item.code for item in checker.check(yaml.safe_load(text)).diagnostics]


# -- values: deep references and templates -------------------------------------------------


def test_a_reference_nested_in_objects_and_arrays_is_resolved() -> None:
    value = parse_value({"user": {"name": "$input.name"}, "tags": ["x", "$input.tag"], "n": 1})
    assert isinstance(value, Structure)
    resolved = value.resolve({"name": "Ada", "tag": "vip"}, {})
    assert resolved == {"user": {"name": "Ada"}, "tags": ["x", "vip"], "n": 1}


def test_a_structure_of_literals_stays_a_literal() -> None:
    assert parse_value({"a": [1, "b"], "c": "$$5"}) == Constant({"a": [1, "b"], "c": "$$5"})


def test_a_template_shows_scalars_as_json_and_strings_as_they_are() -> None:
    template = parse_value("{$input.s}|{$input.i}|{$input.f}|{$input.b}")
    assert isinstance(template, Template)
    data = {"s": "a b", "i": 3, "f": 2.5, "b": True}
    assert template.resolve(data, {}) == "a b|3|2.5|true"


def test_doubled_braces_and_a_leading_double_dollar_are_literal() -> None:
    template = parse_value("$${{ {$input.n} }}")
    assert isinstance(template, Template)
    assert template.resolve({"n": 7}, {}) == "${ 7 }"
    assert parse_value("{{$input.n}}").resolve({}, {}) == "{$input.n}"  # type: ignore[union-attr]
    assert parse_value("a {b} c") == Constant("a {b} c")


@pytest.mark.parametrize(
    "text", ["{$input.x", "a {} {$input.x}", "{$input.x} }", "{$a{$b}}", "Hi { $input.x }"]
)
def test_a_malformed_template_is_a_syntax_error(text: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        parse_value(text)


@pytest.mark.parametrize("value", [None, {"a": 1}, [1]])
def test_a_template_refuses_to_show_null_objects_and_arrays(value: object) -> None:
    template = parse_template("x={$input.v}")
    with pytest.raises(UnresolvedReferenceError, match="template cannot show"):
        template.resolve({"v": value}, {})  # type: ignore[dict-item]


def test_error_is_a_reference_root() -> None:
    reference = parse_value("$error.kind")
    assert reference == Reference("$error.kind", "error", None, ("kind",))
    with pytest.raises(UnresolvedReferenceError, match="no error has been caught"):
        reference.resolve({}, {})


# -- pass -----------------------------------------------------------------------------------

RESHAPE = """
name: reshape
input:
  name: {type: string}
  n: {type: integer}
start: shape
states:
  shape:
    type: pass
    value:
      who: {name: $input.name, tags: [$input.n, 5]}
      text: "{$input.name} has {$input.n}"
    next: add
  add:
    type: task
    tool: add
    args: {a: $states.shape.who.tags.0, b: 1}
    next: done
  done:
    type: succeed
    output: {shape: $states.shape, sum: $states.add.sum}
"""


def test_a_pass_state_builds_its_output_without_a_step(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    result = InMemoryRunner(registry).run(make_flow(RESHAPE), {"name": "Ada", "n": 2})
    assert result.status == "succeeded"
    assert [step.state for step in result.steps] == ["add"]
    assert result.output == {
        "shape": {"who": {"name": "Ada", "tags": [2, 5]}, "text": "Ada has 2"},
        "sum": 3,
    }


def test_a_pass_output_is_typed_field_by_field(checker: FlowChecker) -> None:
    wrong = RESHAPE.replace("$states.shape.who.tags.0", "$states.shape.who.name")
    assert _codes(checker, wrong) == ["type.mismatch"]
    unknown = RESHAPE.replace("$states.shape.who.tags.0", "$states.shape.who.age")
    assert _codes(checker, unknown) == ["ref.unknown-field"]


def test_a_pass_state_may_produce_null(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    flow = make_flow(
        """
name: nothing
start: empty
states:
  empty: {type: pass, value: null, next: done}
  done: {type: succeed, output: {was: $states.empty}}
"""
    )
    assert InMemoryRunner(registry).run(flow, {}).output == {"was": None}


# -- caught errors ----------------------------------------------------------------------------

CAUGHT = """
name: caught
input:
  d: {type: number}
start: divide
states:
  divide:
    type: task
    tool: divide
    args: {dividend: 1, divisor: $input.d}
    retry: {max_attempts: 3, interval_seconds: 0, errors: ["*"], non_retryable: [DivisionByZero]}
    catch: [{errors: ["*"], next: note}]
    next: done
  note:
    type: pass
    value: {seen: "{$error.kind} in {$error.state}"}
    next: report
  report:
    type: succeed
    output: {note: $states.note.seen, error: $error}
  done:
    type: succeed
"""


def test_a_catch_target_and_the_states_after_it_see_the_error(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    result = InMemoryRunner(registry).run(make_flow(CAUGHT), {"d": 0})
    assert len(result.steps) == 1  # DivisionByZero is not retried despite errors: ["*"]
    assert result.output == {
        "note": "DivisionByZero in divide",
        "error": {"kind": "DivisionByZero", "message": "cannot divide by zero", "state": "divide"},
    }


def test_the_caught_error_survives_a_checkpoint(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    plan = FlowPlan(make_flow(CAUGHT), registry)
    first = Execution(plan, {"d": 0}).decide()
    assert isinstance(first, CallTool)
    done = replay(plan, {"d": 0}, [first.failed("DivisionByZero", "no")])
    stored = json.loads(json.dumps(done.checkpoint()))
    resumed = Execution.resume(plan, {"d": 0}, stored)
    assert resumed is not None
    assert resumed.decide() == Finish(
        "report",
        {
            "note": "DivisionByZero in divide",
            "error": {"kind": "DivisionByZero", "message": "no", "state": "divide"},
        },
    )


def test_error_where_a_path_arrives_without_a_catch_is_refused(checker: FlowChecker) -> None:
    codes = _codes(checker, CAUGHT.replace("next: done", "next: note"))
    assert set(codes) == {"flow.unreachable", "ref.no-error"}  # `done` is left unreachable
    assert codes.count("ref.no-error") == 3


def test_a_fail_state_builds_its_kind_and_message_from_data(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    flow = make_flow(
        """
name: refuse
input:
  code: {type: string}
  why: {type: string}
start: stop
states:
  stop: {type: fail, error: "Refused{$input.code}", message: $input.why}
"""
    )
    result = InMemoryRunner(registry).run(flow, {"code": "42", "why": "no"})
    assert result.error == StepError("Refused42", "no")
    broken = InMemoryRunner(registry).run(flow, {"code": "4 2", "why": "no"})
    assert broken.error is not None
    assert broken.error.kind == "InvalidErrorKind"


# -- initial outputs ----------------------------------------------------------------------------

COUNTER = """
name: counter
input:
  n: {type: integer}
start: count
states:
  count:
    type: task
    tool: add
    args: {a: $states.count.sum, b: 1}
    initial: {sum: 0}
    next: check
  check:
    type: choice
    rules: [{when: {value: $states.count.sum, lt: $input.n}, next: count}]
    default: done
  done:
    type: succeed
    output: {count: $states.count.sum}
"""


def test_a_task_with_an_initial_output_reads_its_previous_output(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    result = InMemoryRunner(registry).run(make_flow(COUNTER), {"n": 4})
    assert result.output == {"count": 4}
    assert [step.tool for step in result.steps] == ["add", "choice"] * 4
    assert [step.input["a"] for step in result.steps if step.tool == "add"] == [0, 1, 2, 3]


def test_without_initial_a_state_still_cannot_read_its_own_output(checker: FlowChecker) -> None:
    assert _codes(checker, COUNTER.replace("initial: {sum: 0}", "")) == ["ref.not-run"]


def test_a_pass_state_may_carry_a_list_through_a_loop(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    flow = make_flow(
        COUNTER.replace(
            "next: check\n  check:",
            "next: trail\n  trail:\n    type: pass\n"
            "    value: {last: $states.count.sum, before: $states.trail}\n"
            "    initial: {last: 0, before: null}\n    next: check\n  check:",
        ).replace("{count: $states.count.sum}", "{trail: $states.trail}")
    )
    result = InMemoryRunner(registry).run(flow, {"n": 2})
    assert result.output == {
        "trail": {"last": 2, "before": {"last": 1, "before": {"last": 0, "before": None}}}
    }


def test_a_template_of_a_value_that_may_be_null_is_refused(checker: FlowChecker) -> None:
    text = """
name: nullish
start: empty
states:
  empty: {type: pass, value: {v: null}, next: done}
  done: {type: succeed, output: {text: "v={$states.empty.v}"}}
"""
    assert _codes(checker, text) == ["template.not-scalar"]


# -- references nested in a tool's arguments ------------------------------------------------


class TotalInput(ToolModel):
    values: list[float]
    weights: dict[str, int] = Field(default_factory=dict)


class TotalOutput(ToolModel):
    total: float


@tool("total")
def _total(args: TotalInput) -> TotalOutput:
    """Add up a list of numbers."""
    return TotalOutput(total=sum(args.values) + sum(args.weights.values()))


TOTAL = """
name: totals
input:
  a: {type: number}
  name: {type: string}
start: total
states:
  total:
    type: task
    tool: total
    args:
      values: [$input.a, 2, 0.5]
      weights: {x: 1}
    next: done
  done:
    type: succeed
    output: {total: $states.total.total}
"""


@pytest.fixture
def with_total(registry: ToolRegistry) -> ToolRegistry:
    return ToolRegistry([*registry, _total])


def test_references_nest_in_a_tools_list_argument(with_total: ToolRegistry) -> None:
    result = FlowChecker(with_total).check(yaml.safe_load(TOTAL))
    assert result.flow is not None, [str(item) for item in result.diagnostics]
    assert InMemoryRunner(with_total).run(result.flow, {"a": 1, "name": "x"}).output == {
        "total": 4.5
    }


@pytest.mark.parametrize(
    ("change", "code", "path"),
    [
        ("[$input.name, 2, 0.5]", "type.mismatch", "/states/total/args/values/0"),
        ("[$input.a, two, 0.5]", "schema.type", "/states/total/args/values/1"),
        ("[$input.b, 2, 0.5]", "ref.unknown-input", "/states/total/args/values/0"),
    ],
)
def test_a_nested_argument_is_checked_where_it_is(
    with_total: ToolRegistry, change: str, code: str, path: str
) -> None:
    text = TOTAL.replace("[$input.a, 2, 0.5]", change)
    found = FlowChecker(with_total).check(yaml.safe_load(text)).diagnostics
    assert [(item.code, item.path) for item in found] == [(code, path)]


def test_a_pass_output_past_the_size_limit_fails_the_task(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    flow = make_flow(
        """
name: big
input:
  text: {type: string}
start: twice
states:
  twice: {type: pass, value: [$input.text, $input.text], next: done}
  done: {type: succeed}
"""
    )
    result = InMemoryRunner(registry).run(flow, {"text": "x" * 200_000})
    assert (result.status, result.state) == ("failed", "twice")
    assert result.error is not None
    assert result.error.kind == "OutputTooLarge"
