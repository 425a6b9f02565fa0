"""Property: a flow that the checker accepts never hands a tool an input its model refuses.

Random typed flows are generated: input fields with random constraints (items, properties,
optional, nullable, enums, ranges, patterns), then a chain of task states over tools with
structured models, whose arguments are random literals and references (into the input and
earlier outputs, some with a `??` default). When the checker accepts a flow, it is run on
random inputs that its input model accepts, and no step may fail with `InvalidToolInput`.

The generator is not tuned to the checker: the same flows, checked by a checker that
compares JSON kinds only (as before structural types), do reach a refused tool input, and
the checker does refuse some of them. Both are shown below, so the property can fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, assume, find, given, settings
from hypothesis import strategies as st
from pydantic import Field, JsonValue

from taskrunner.engine import subtypes, types
from taskrunner.engine.flow import Flow
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import FlowInputError
from taskrunner.tools import Number, ToolModel, ToolRegistry, builtin_registry, tool


class Person(ToolModel):
    name: str
    age: Annotated[int, Field(ge=0)] | None = None


class CountInput(ToolModel):
    n: Annotated[int, Field(ge=0, le=10)]


class CountOutput(ToolModel):
    value: int
    half: float


@tool("t.count")
def count(args: CountInput) -> CountOutput:
    """Count to n."""
    return CountOutput(value=args.n, half=args.n / 2)


class TagInput(ToolModel):
    style: Literal["a", "b"]
    xs: list[int]


class TagOutput(ToolModel):
    first: int | None
    tag: Literal["a", "b"]
    tags: list[str]


@tool("t.tag")
def tag(args: TagInput) -> TagOutput:
    """Tag a list."""
    return TagOutput(first=args.xs[0] if args.xs else None, tag=args.style, tags=["x"])


class MeetInput(ToolModel):
    p: Person
    code: Annotated[str, Field(pattern=r"^[a-z]+$")]


class MeetOutput(ToolModel):
    p: Person
    text: str


@tool("t.meet")
def meet(args: MeetInput) -> MeetOutput:
    """Meet a person."""
    return MeetOutput(p=args.p, text=args.code + args.p.name)


class MeanInput(ToolModel):
    xs: list[Number]
    floor: Annotated[int, Field(ge=-5)] | None = None


class MeanOutput(ToolModel):
    mean: Number | None
    count: Annotated[int, Field(ge=0)]


@tool("t.mean")
def mean(args: MeanInput) -> MeanOutput:
    """The mean of numbers, or null for none."""
    average = sum(args.xs) / len(args.xs) if args.xs else None
    return MeanOutput(mean=average, count=len(args.xs))


REGISTRY = ToolRegistry([*builtin_registry(), count, tag, meet, mean])
CHECKER = FlowChecker(REGISTRY)
TOOLS = ["t.count", "t.tag", "t.meet", "t.mean", "add", "sum", "repeat", "greet", "echo"]
OUTPUT_PATHS: dict[str, dict[str, str]] = {
    "t.count": {"value": "integer", "half": "number"},
    "t.tag": {"first": "integer", "tag": "string", "tags": "array"},
    "t.meet": {"p": "object", "p.name": "string", "p.age": "integer", "text": "string"},
    "t.mean": {"mean": "number", "count": "integer"},
    "add": {"sum": "number"},
    "sum": {"sum": "number"},
    "repeat": {"text": "string"},
    "greet": {"text": "string"},
    "echo": {"text": "string"},
}
"""The paths into each tool's output that references take, and their JSON kinds."""
ARGUMENT_KINDS: dict[str, str] = {
    "n": "integer",
    "style": "string",
    "xs": "array",
    "p": "object",
    "code": "string",
    "floor": "integer",
    "a": "number",
    "b": "number",
    "numbers": "array",
    "text": "string",
    "times": "integer",
    "person": "object",
}
"""The JSON kind of each tool argument (by name, the same in every tool that has it): the
generator mostly picks values of the right kind, so that the checker has structure
(items, fields, ranges, enums, null) to judge rather than kinds alone."""
PATTERNS = ["^[a-z]+$", "^[0-9]+$"]
LITERALS: list[JsonValue] = [
    0,
    3,
    -1,
    11,
    2.5,
    "abc",
    "a",
    "ABC",
    True,
    None,
    [1, 2],
    ["x"],
    [],
    {"name": "Ada"},
    {"name": "Ada", "age": -1},
    {"name": "Ada", "x": 1},
]

# -- input specs, and values that fit them ---------------------------------------------------


def _constrained(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """A spec of one kind with one random set of its constraints (an `enum` alone, or
    bounds, or a pattern), maybe nullable: a valid declaration."""
    constraints: list[st.SearchStrategy[dict[str, Any]]] = [st.just({})]
    if kind == "integer":
        bounds = {"minimum": st.integers(-2, 2), "maximum": st.integers(3, 12)}
        constraints += [
            st.fixed_dictionaries({}, optional=bounds),
            st.fixed_dictionaries(
                {"enum": st.lists(st.integers(-2, 12), min_size=1, max_size=3, unique=True)}
            ),
        ]
    elif kind == "number":
        bounds = {"minimum": st.integers(-3, 0), "maximum": st.sampled_from([1.5, 20])}
        constraints.append(st.fixed_dictionaries({}, optional=bounds))
    elif kind == "string":
        words = st.sampled_from(["a", "b", "abc", "ABC", "12"])
        constraints += [
            st.fixed_dictionaries({"pattern": st.sampled_from(PATTERNS)}),
            st.fixed_dictionaries({"enum": st.lists(words, min_size=1, max_size=2, unique=True)}),
        ]
    nullable = st.sampled_from([{}, {}, {"nullable": True}])
    return st.tuples(st.one_of(constraints), nullable).map(
        lambda parts: {"type": kind, **parts[0], **parts[1]}
    )


scalar_specs = st.sampled_from(["integer", "number", "string", "boolean"]).flatmap(_constrained)
array_specs = st.fixed_dictionaries(
    {"type": st.just("array"), "items": scalar_specs}, optional={"nullable": st.just(True)}
)
person_specs = st.fixed_dictionaries(
    {
        "type": st.just("object"),
        "properties": st.fixed_dictionaries(
            {"name": st.sampled_from(["string", "integer"]).flatmap(_constrained)},
            optional={
                "age": _constrained("integer").map(lambda s: {**s, "optional": True}),
                "nick": _constrained("string"),
            },
        ),
    },
    optional={"nullable": st.just(True)},
)
field_specs = st.one_of(scalar_specs, array_specs, person_specs).flatmap(
    lambda spec: st.one_of(st.just(spec), st.just({**spec, "optional": True}))
)
input_specs = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]), field_specs, min_size=1, max_size=4
)


def values_of(spec: dict[str, Any]) -> st.SearchStrategy[JsonValue]:
    kind = spec["type"]
    found: st.SearchStrategy[JsonValue]
    if "enum" in spec:
        found = st.sampled_from(spec["enum"])
    elif kind == "integer":
        found = st.integers(spec.get("minimum", -20), spec.get("maximum", 20))
    elif kind == "number":
        low, high = spec.get("minimum", -20), spec.get("maximum", 20)
        found = st.one_of(st.integers(int(low), int(high)), st.floats(low, high))
    elif kind == "string":
        pattern = spec.get("pattern")
        found = st.from_regex(pattern, fullmatch=True) if pattern else st.text("abAB1", max_size=4)
    elif kind == "boolean":
        found = st.booleans()
    elif kind == "array":
        found = st.lists(values_of(spec["items"]), max_size=3)
    else:
        properties = spec["properties"]
        needed = {n: values_of(s) for n, s in properties.items() if not s.get("optional")}
        maybe = {n: values_of(s) for n, s in properties.items() if s.get("optional")}
        found = st.fixed_dictionaries(needed, optional=maybe)
    return st.one_of(st.none(), found) if spec.get("nullable") else found


def inputs_of(specs: dict[str, Any]) -> st.SearchStrategy[dict[str, JsonValue]]:
    needed = {n: values_of(s) for n, s in specs.items() if not s.get("optional")}
    maybe = {n: values_of(s) for n, s in specs.items() if s.get("optional")}
    return st.fixed_dictionaries(needed, optional=maybe)


# -- flows -------------------------------------------------------------------------------------


def _input_paths(specs: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for name, spec in specs.items():
        yield f"$input.{name}", spec["type"]
        if spec["type"] == "object":
            for prop, sub in spec["properties"].items():
                yield f"$input.{name}.{prop}", sub["type"]
        if spec["type"] == "array":
            yield f"$input.{name}.0", spec["items"]["type"]


def _fits(target: str, kind: str) -> bool:
    return kind == target or (target == "number" and kind == "integer")


def _candidates(argument: str, sources: list[tuple[str, str]]) -> st.SearchStrategy[JsonValue]:
    """Values for one argument: mostly references and literals of its JSON kind (some with
    a `??` default), sometimes anything at all."""
    kind = ARGUMENT_KINDS[argument]
    every = [ref for ref, _ in sources]
    fitting = [ref for ref, found in sources if _fits(kind, found)] or every
    literals = [value for value in LITERALS if _fits(kind, _kind(value))] or LITERALS
    reference = st.sampled_from(fitting).flatmap(
        lambda ref: st.one_of(
            st.just(ref),
            st.sampled_from(literals).map(lambda d, r=ref: f"{r} ?? {json.dumps(d)}"),
        )
    )
    anything = st.sampled_from(every + LITERALS)
    return st.one_of(reference, reference, reference, st.sampled_from(literals), anything)


REPAIRS = 10
"""How many times an argument that the checker refuses is drawn again: random arguments
rarely all fit, and a flow with one misfit is refused whole, which would leave few
accepted flows to run. What the checker still refuses after that stays refused."""


@st.composite
def flows(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    specs = draw(input_specs)
    sources = list(_input_paths(specs))
    chain = draw(st.lists(st.sampled_from(TOOLS), min_size=1, max_size=3))
    states: dict[str, Any] = {}
    pools: dict[tuple[str, str], st.SearchStrategy[JsonValue]] = {}
    for position, name in enumerate(chain):
        state = f"s{position}"
        args: dict[str, JsonValue] = {}
        for argument, info in REGISTRY.get(name).input_model.model_fields.items():
            if not info.is_required() and draw(st.booleans()):
                continue
            pools[state, argument] = _candidates(argument, sources)
            args[argument] = draw(pools[state, argument])
        following = f"s{position + 1}" if position + 1 < len(chain) else "done"
        states[state] = {"type": "task", "tool": name, "args": args, "next": following}
        sources += [(f"$states.{state}.{path}", k) for path, k in OUTPUT_PATHS[name].items()]
    states["done"] = {"type": "succeed"}
    document = {"name": "generated", "input": specs, "start": "s0", "states": states}
    for _ in range(REPAIRS):
        refused = {
            (parts[2], parts[4])
            for item in CHECKER.check(document).diagnostics
            if len(parts := item.path.split("/")) > 4 and parts[3] == "args"
        }
        if not refused:
            break
        for state, argument in sorted(refused):
            states[state]["args"][argument] = draw(pools[state, argument])
    return document, specs


def _kind(value: JsonValue) -> str:
    return types.of_value(value).describe()


def refused_inputs(flow: Flow, data: dict[str, JsonValue]) -> list[str]:
    """The steps of a run whose tool refused its input."""
    result = InMemoryRunner(REGISTRY).run(flow, data)
    return [
        f"{step.state}: {step.error.message}"
        for step in result.steps
        if step.error is not None and step.error.kind == "InvalidToolInput"
    ]


def _accepted(document: dict[str, Any]) -> Flow | None:
    return CHECKER.check(document).flow


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@SETTINGS
@given(st.data())
def test_an_accepted_flow_never_hands_a_tool_an_input_it_refuses(data: st.DataObject) -> None:
    document, specs = data.draw(flows())
    flow = _accepted(document)
    assume(flow is not None)
    assert flow is not None
    plan = FlowPlan(flow, REGISTRY)
    for _ in range(3):
        given_input = data.draw(inputs_of(specs))
        try:
            plan.validate_input(given_input)
        except FlowInputError:
            continue  # not an input of this flow: refused before anything runs
        assert refused_inputs(flow, given_input) == [], (document, given_input)


def test_the_generator_makes_flows_that_the_checker_refuses() -> None:
    find(flows(), lambda made: _accepted(made[0]) is None, settings=settings(database=None))


def _kinds_only(target: types.ValueType, source: types.ValueType) -> subtypes.Mismatch | None:
    if types.accepts_kinds(target, source):
        return None
    return subtypes.Mismatch((), target.describe(), f"is {source.describe()}")


def test_with_kinds_only_some_accepted_flow_would_refuse_an_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The property is not vacuous: compared by JSON kinds alone, as before, the checker
    accepts generated flows that then hand a tool an input it refuses."""
    monkeypatch.setattr(types, "why_not", _kinds_only)

    @st.composite
    def runs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, JsonValue]]:
        document, specs = draw(flows())
        return document, draw(inputs_of(specs))

    def refuses(made: tuple[dict[str, Any], dict[str, JsonValue]]) -> bool:
        document, given_input = made
        flow = _accepted(document)
        if flow is None:
            return False
        try:
            FlowPlan(flow, REGISTRY).validate_input(given_input)
        except FlowInputError:
            return False
        return bool(refused_inputs(flow, given_input))

    find(runs(), refuses, settings=settings(database=None, max_examples=500))
