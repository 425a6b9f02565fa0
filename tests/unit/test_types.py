"""Structural types: what the checker accepts and refuses, what its messages say, the
typed signature of `add`, null guards and `??` defaults, and the input model's constraints."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import JsonValue

from taskrunner.engine import types
from taskrunner.engine.graph import Edge, Graph
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import FlowInputError
from taskrunner.tools import ToolRegistry


def problems(checker: FlowChecker, text: str) -> list[tuple[str, str, str | None]]:
    result = checker.check(yaml.safe_load(text))
    return [(item.code, item.message, item.hint) for item in result.diagnostics]


def one_task(inputs: str, tool: str, args: str) -> str:
    return f"""
name: typed
input:
{inputs}
start: call
states:
  call:
    type: task
    tool: {tool}
    args: {args}
    next: done
  done: {{type: succeed}}
"""


def schema(value: dict[str, Any]) -> types.ValueType:
    return types.of_schema(value)


NUMBERS = schema({"type": "array", "items": {"type": "number"}})


def test_array_items_are_compared() -> None:
    assert types.accepts(NUMBERS, schema({"type": "array", "items": {"type": "integer"}}))
    problem = types.why_not(NUMBERS, schema({"type": "array", "items": {"type": "string"}}))
    assert problem is not None
    assert problem.subject("`$x`") == "item of `$x`"
    assert problem.problem == "is string"


def test_ranges_must_be_within_the_targets() -> None:
    target = schema({"type": "integer", "minimum": 0, "maximum": 100})
    assert types.accepts(target, schema({"type": "integer", "minimum": 1, "maximum": 10}))
    assert types.accepts(target, schema({"type": "integer", "exclusiveMinimum": -1, "maximum": 9}))
    assert types.accepts(target, types.of_value(5))
    assert not types.accepts(target, types.of_value(101))
    unbounded = types.why_not(target, schema({"type": "integer", "maximum": 5}))
    assert unbounded is not None
    assert unbounded.needs == "minimum: 0"
    assert not types.accepts(target, schema({"type": "number", "minimum": 0, "maximum": 1}))


def test_enums_patterns_and_null() -> None:
    style = schema({"enum": ["formal", "casual"]})
    assert types.accepts(style, types.of_value("formal"))
    assert not types.accepts(style, types.of_value("loud"))
    assert types.accepts(style, schema({"type": "string", "enum": ["casual"]}))
    assert not types.accepts(style, schema({"type": "string"}))
    code = schema({"type": "string", "pattern": "^[0-9]+$"})
    assert types.accepts(code, schema({"type": "string", "pattern": "^[0-9]+$"}))
    assert not types.accepts(code, schema({"type": "string", "pattern": "^[0-9]"}))
    assert types.accepts(code, types.of_value("42"))
    maybe = schema({"anyOf": [{"type": "string"}, {"type": "null"}]})
    assert not types.accepts(schema({"type": "string"}), maybe)
    assert types.accepts(schema({"type": "string"}), types.non_null(maybe))
    assert types.accepts(maybe, types.of_value(None))


def test_object_shapes() -> None:
    person = schema(
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name"],
            "additionalProperties": False,
        }
    )
    exact = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    assert types.accepts(person, schema(exact))
    lacking = types.why_not(person, schema({**exact, "required": []}))
    assert lacking is not None
    assert lacking.problem == "may lack the field `name`"
    extra = {**exact, "properties": {"name": {"type": "string"}, "nick": {"type": "string"}}}
    assert types.why_not(person, schema(extra)) is not None
    wrong = {**exact, "properties": {"name": {"type": "string"}, "age": {"type": "string"}}}
    problem = types.why_not(person, schema(wrong))
    assert problem is not None
    assert problem.inside == ("field `age`",)
    open_map = schema({"type": "object", "additionalProperties": {"type": "integer"}})
    assert not types.accepts(person, open_map)


def test_a_list_of_strings_into_a_list_of_numbers_says_where(checker: FlowChecker) -> None:
    text = one_task(
        "  words: {type: array, items: {type: string}}", "sum", "{numbers: $input.words}"
    )
    [(code, message, _)] = problems(checker, text)
    assert code == "type.mismatch"
    assert message == "item of `$input.words` is string, but `sum.numbers` takes array of number"


def test_an_unbounded_integer_into_a_range_gets_a_hint(checker: FlowChecker) -> None:
    text = one_task("  n: {type: integer}", "repeat", "{text: a, times: $input.n}")
    [(code, message, hint)] = problems(checker, text)
    assert code == "type.mismatch"
    assert "`repeat.times` takes integer ≥ 0 and ≤ 100" in message
    assert hint == "declare `minimum: 0` on `$input.n`"
    bounded = "  n: {type: integer, minimum: 0, maximum: 3}"
    assert problems(checker, one_task(bounded, "repeat", "{text: a, times: $input.n}")) == []


def test_the_sum_of_two_integers_is_an_integer(checker: FlowChecker) -> None:
    flow = """
name: sums
input:
  a: {type: integer}
  b: {type: %s}
start: add
states:
  add: {type: task, tool: add, args: {a: $input.a, b: $input.b}, next: ok}
  ok:
    type: choice
    rules:
      - when: {value: $states.add.sum, ge: 0}
        next: times
    default: done
  times: {type: task, tool: repeat, args: {text: a, times: '$states.add.sum'}, next: done}
  done: {type: succeed}
"""
    # A sum of integers is an integer, so only its range is missing; of a number, its kind.
    [(_, integral, _)] = problems(checker, flow % "integer")
    assert integral.endswith("but `$states.add.sum` is integer")
    [(_, fractional, _)] = problems(checker, flow % "number")
    assert fractional.endswith("but `$states.add.sum` is number")


def test_walking_through_null_needs_a_guard_or_a_default(checker: FlowChecker) -> None:
    inputs = "  p: {type: object, nullable: true, properties: {name: {type: string}}}"
    [(code, message, hint)] = problems(checker, one_task(inputs, "echo", "{text: $input.p.name}"))
    assert code == "ref.nullable"
    assert "`$input.p`" in message
    assert hint is not None
    assert "ne: null" in hint
    assert "??" in hint
    defaulted = one_task(inputs, "echo", """{text: '$input.p.name ?? "x"'}""")
    assert problems(checker, defaulted) == []


GUARDED = """
name: guarded
input:
  p: {type: object, optional: true, properties: {name: {type: string}}}
start: check
states:
  check:
    type: choice
    rules:
      - when: {%s}
        next: first
    default: second
  first: {type: task, tool: echo, args: {text: $input.p.name}, next: done}
  second: {type: task, tool: echo, args: {text: $input.p.name}, next: done}
  done: {type: succeed}
"""


@pytest.mark.parametrize(
    ("condition", "refused"),
    [
        ("value: $input.p, ne: null", ["second"]),
        ("value: $input.p, eq: null", ["first"]),
        ("not: {value: $input.p, eq: null}", ["second"]),
        ("all: [{value: $input.p, ne: null}, {value: 1, eq: 1}]", ["second"]),
        ("value: 1, eq: 1", ["first", "second"]),
    ],
)
def test_a_choice_on_null_guards_the_paths_it_proves(
    checker: FlowChecker, condition: str, refused: list[str]
) -> None:
    result = checker.check(yaml.safe_load(GUARDED % condition))
    found = sorted(item.path.split("/")[2] for item in result.diagnostics)
    assert [item.code for item in result.diagnostics] == ["ref.nullable"] * len(refused)
    assert found == refused


def test_a_default_is_used_when_a_walked_value_is_null_or_absent(
    checker: FlowChecker, registry: ToolRegistry
) -> None:
    text = one_task(
        "  p: {type: object, optional: true, properties: {name: {type: string}}}",
        "echo",
        """{text: '$input.p.name ?? "nobody"'}""",
    )
    flow = checker.check(yaml.safe_load(text)).flow
    assert flow is not None
    runner = InMemoryRunner(registry)
    assert runner.run(flow, {}).steps[0].input == {"text": "nobody"}
    assert runner.run(flow, {"p": {"name": "Ada"}}).steps[0].input == {"text": "Ada"}


def test_a_default_stands_for_an_index_past_the_end(
    checker: FlowChecker, registry: ToolRegistry
) -> None:
    text = one_task(
        "  xs: {type: array, items: {type: integer, minimum: 0, maximum: 9}}",
        "repeat",
        "{text: a, times: '$input.xs.0 ?? 2'}",
    )
    flow = checker.check(yaml.safe_load(text)).flow
    assert flow is not None
    runner = InMemoryRunner(registry)
    assert runner.run(flow, {"xs": []}).output is not None
    assert runner.run(flow, {"xs": []}).steps[0].input == {"text": "a", "times": 2}
    assert runner.run(flow, {"xs": [5]}).steps[0].input == {"text": "a", "times": 5}


INPUTS = """
name: inputs
input:
  n: {type: integer, minimum: 1, maximum: 5}
  tags: {type: array, items: {type: string, pattern: "^[a-z]+$"}}
  mode: {type: string, enum: [fast, slow], default: fast}
  note: {type: string, optional: true}
  who: {type: object, properties: {name: {type: string}, age: {type: integer, optional: true}}}
start: done
states:
  done: {type: succeed}
"""


@pytest.mark.parametrize(
    ("given", "accepted"),
    [
        ({"n": 1, "tags": ["a"], "who": {"name": "x"}}, True),
        ({"n": 5, "tags": [], "who": {"name": "x", "age": 3}, "note": "hi"}, True),
        ({"n": 0, "tags": [], "who": {"name": "x"}}, False),
        ({"n": 2.0, "tags": [], "who": {"name": "x"}}, False),
        ({"n": 1, "tags": ["A"], "who": {"name": "x"}}, False),
        ({"n": 1, "tags": [], "who": {"name": "x"}, "mode": "slower"}, False),
        ({"n": 1, "tags": [], "who": {}}, False),
        ({"n": 1, "tags": [], "who": {"name": "x", "extra": 1}}, False),
        ({"n": 1, "tags": [], "who": {"name": "x"}, "note": None}, False),
    ],
)
def test_the_input_model_enforces_the_declared_constraints(
    checker: FlowChecker, registry: ToolRegistry, given: dict[str, JsonValue], accepted: bool
) -> None:
    flow = checker.check(yaml.safe_load(INPUTS)).flow
    assert flow is not None
    plan = FlowPlan(flow, registry)
    if not accepted:
        with pytest.raises(FlowInputError):
            plan.validate_input(given)
        return
    clean = plan.validate_input(given)
    assert clean["mode"] == "fast"
    assert ("note" in clean) == ("note" in given)  # optional without default: left absent


WITHIN = """
name: within
input:
  p: {type: object, optional: true, properties: {name: {type: string}}}
start: check
states:
  check:
    type: choice
    rules:
%s
    default: done
  done: {type: succeed}
"""


@pytest.mark.parametrize(
    ("rules", "refused"),
    [
        (
            "      - {when: {value: $input.p, eq: null}, next: done}\n"
            "      - {when: {value: $input.p.name, eq: x}, next: done}",
            0,
        ),
        (
            "      - when: {all: [{value: $input.p, ne: null}, {value: $input.p.name, eq: x}]}\n"
            "        next: done",
            0,
        ),
        (
            "      - when: {any: [{value: $input.p, eq: null}, {value: $input.p.name, eq: x}]}\n"
            "        next: done",
            0,
        ),
        (
            "      - when: {all: [{value: $input.p.name, eq: x}, {value: $input.p, ne: null}]}\n"
            "        next: done",
            1,
        ),
        ("      - {when: {value: $input.p.name, eq: x}, next: done}", 1),
    ],
)
def test_a_choice_guards_its_later_rules_and_terms(
    checker: FlowChecker, rules: str, refused: int
) -> None:
    found = [code for code, _, _ in problems(checker, WITHIN % rules)]
    assert found == ["ref.nullable"] * refused


def test_a_guard_on_a_state_output_ends_when_the_state_runs_again() -> None:
    names = ["check", "use", "x", "after", "done"]
    graph = Graph(dict.fromkeys(names, "task"))
    for source, target, path in [
        ("check", "use", "/check/rules/0/next"),
        ("check", "done", "/check/default"),
        ("use", "x", "/use/next"),
        ("x", "after", "/x/next"),
        ("after", "done", "/after/next"),
    ]:
        graph.add(Edge(source, target, path, with_output=True))
    made = {"/check/rules/0/next": frozenset({"$states.x.match", "$input.p"})}

    def replaced(state: str, fact: str) -> bool:
        return fact.startswith(f"$states.{state}.")

    facts = graph.guaranteed_facts("check", set(names), made, replaced)
    assert facts["use"] == {"$states.x.match", "$input.p"}
    assert facts["x"] == {"$states.x.match", "$input.p"}
    assert facts["after"] == {"$input.p"}  # `x` ran again: its old output is gone
    assert facts["done"] == frozenset()  # the default path does not pass the guard
