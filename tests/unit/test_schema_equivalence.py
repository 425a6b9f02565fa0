"""The published schema accepts exactly what the tools accept at run time.

For every built-in tool, the strict reading of its input model's JSON Schema
(`make_validator`) and the model itself (`model_validate(..., strict=True)`) agree on
arbitrary JSON values and on near-miss argument objects; and the flow document's schema
agrees with the model on literal arguments written in a task state.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from jsonschema.protocols import Validator
from pydantic import JsonValue, ValidationError

from taskrunner.engine.schema import flow_json_schema
from taskrunner.engine.shape import make_validator
from taskrunner.tools import Tool, ToolRegistry, builtin_registry

PLUGIN_MODULE = Path(__file__).resolve().parents[1] / "plugins" / "taskrunner_testtools"

BIG_INTEGERS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**100, -(10**300)]
SPECIAL_FLOATS = [2.0, -0.0, 0.0, 1.0, -1.0, 0.5, 1e308, -1e308, 5e-324, 2.0**53, 1e16]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**256), max_value=2**256),
    st.sampled_from(BIG_INTEGERS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(SPECIAL_FLOATS),
    st.text(),
    st.sampled_from(["", "1", "2.0", "true", "null", "x", "$$5", "$input.a"]),
)

json_values: st.SearchStrategy[JsonValue] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
    ),
    max_leaves=12,
)

# Mostly scalars, which is where a tool's fields are right or nearly right.
field_values: st.SearchStrategy[JsonValue] = st.one_of(scalars, json_values)

BUILTIN = builtin_registry()
BUILTIN_TOOLS = list(BUILTIN)
TOOL_IDS = [item.name for item in BUILTIN_TOOLS]

# A valid value for each field, to build an argument object around one value under test.
FILLER: dict[str, dict[str, JsonValue]] = {
    "echo": {"text": "x"},
    "add": {"a": 1, "b": 1},
    "divide": {"dividend": 1, "divisor": 1},
    "sum": {"numbers": [1, 2.5]},
    "join": {"parts": ["a", "b"], "separator": ", "},
    "repeat": {"text": "x", "times": 3},
    "greet": {"person": {"name": "Ada", "title": "Dr"}, "style": "formal"},
    "test.shout": {"text": "x", "times": 1},
}


def model_accepts(item: Tool, value: object) -> bool:
    try:
        item.input_model.model_validate(value, strict=True)
    except ValidationError:
        return False
    return True


def assert_agree(model_ok: bool, schema_ok: bool, value: object) -> None:
    event("accepted" if model_ok else "refused", payload="by the model")
    assert model_ok == schema_ok, (
        f"the model {'accepts' if model_ok else 'refuses'} {value!r}, "
        f"the schema {'accepts' if schema_ok else 'refuses'} it"
    )


@cache
def input_validator(item: Tool) -> Validator:
    return make_validator(item.input_model.model_json_schema())


@cache
def flow_validator(registry_key: str) -> Validator:
    return make_validator(flow_json_schema(REGISTRIES[registry_key]))


def load_shout() -> Tool:
    """The test plugin's tool, loaded from its file without putting it on `sys.path`, so
    that entry points seen by other tests stay as they are. Its `times: int = 1` field
    exercises the strict reading of `integer` and an optional argument."""
    spec = importlib.util.spec_from_file_location(
        "_equivalence_testtools", PLUGIN_MODULE / "__init__.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shout = module.shout
    assert isinstance(shout, Tool)
    return shout


SHOUT = load_shout()
REGISTRIES: dict[str, ToolRegistry] = {
    "builtin": BUILTIN,
    "with-shout": ToolRegistry([*BUILTIN, SHOUT]),
}
ALL_TOOLS = [*BUILTIN_TOOLS, SHOUT]
ALL_IDS = [item.name for item in ALL_TOOLS]


def near_miss_arguments(item: Tool) -> st.SearchStrategy[dict[str, JsonValue]]:
    """Objects over the tool's field names (some missing), sometimes with an extra key,
    with values that are often right and often nearly right."""
    fields = list(item.input_model.model_fields)
    names = st.one_of(
        st.sampled_from(fields),
        st.sampled_from([f.upper() for f in fields] + ["extra", "", "$input", "a b"]),
        st.text(max_size=4),
    )
    values = st.one_of(
        st.sampled_from([FILLER[item.name][name] for name in fields]),
        scalars,
        json_values,
    )
    exact = st.fixed_dictionaries({}, optional=dict.fromkeys(fields, values))
    extended = st.builds(
        lambda base, more: {**more, **base},
        exact,
        st.dictionaries(names, values, max_size=3),
    )
    return st.one_of(exact, extended)


def flow_document(item: Tool, arguments: dict[str, JsonValue]) -> dict[str, Any]:
    return {
        "name": "equivalence",
        "start": "s",
        "states": {
            "s": {"type": "task", "tool": item.name, "args": arguments, "next": "done"},
            "done": {"type": "succeed"},
        },
    }


def is_reference(value: object) -> bool:
    """A `$`-string, at any depth: references nest in list and mapping arguments, where
    the flow schema takes them and the tool's model, which sees resolved values, does not."""
    if isinstance(value, list):
        return any(is_reference(item) for item in value)
    if isinstance(value, dict):
        return any(is_reference(item) for item in value.values())
    return isinstance(value, str) and value.startswith("$")


# --- sanity: the fixtures of the properties are what they claim ----------------------------


@pytest.mark.parametrize("item", ALL_TOOLS, ids=ALL_IDS)
def test_the_filler_arguments_are_valid_everywhere(item: Tool) -> None:
    arguments = FILLER[item.name]
    assert set(arguments) == set(item.input_model.model_fields)
    assert model_accepts(item, arguments)
    assert input_validator(item).is_valid(arguments)
    for key, registry in REGISTRIES.items():
        if item.name in registry:
            assert flow_validator(key).is_valid(flow_document(item, arguments))


def test_the_builtin_registry_is_plugin_free() -> None:
    assert BUILTIN.names() == ["add", "divide", "echo", "greet", "join", "repeat", "sum"]


@pytest.mark.parametrize(
    ("tool_name", "arguments", "accepted"),
    [
        ("add", {"a": 2.0, "b": -0.0}, True),
        ("add", {"a": 2**64, "b": 1}, True),
        ("add", {"a": True, "b": 1}, False),
        ("add", {"a": "1", "b": 1}, False),
        ("add", {"a": 1}, False),
        ("add", {"a": 1, "b": 1, "c": 1}, False),
        ("echo", {"text": ""}, True),
        ("echo", {"text": 1}, False),
        ("test.shout", {"text": "x"}, True),
        ("test.shout", {"text": "x", "times": 2.0}, False),
        ("test.shout", {"text": "x", "times": False}, False),
        ("test.shout", {"text": "x", "times": 10**40}, True),
    ],
)
def test_known_cases_agree(tool_name: str, arguments: JsonValue, accepted: bool) -> None:
    item = next(candidate for candidate in ALL_TOOLS if candidate.name == tool_name)
    assert model_accepts(item, arguments) is accepted
    assert input_validator(item).is_valid(arguments) is accepted


# --- the tool's own schema ------------------------------------------------------------------


@pytest.mark.parametrize("item", ALL_TOOLS, ids=ALL_IDS)
@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_input_schema_agrees_with_the_model_on_any_json_value(item: Tool, value: JsonValue) -> None:
    assert_agree(model_accepts(item, value), input_validator(item).is_valid(value), value)


@pytest.mark.parametrize("item", ALL_TOOLS, ids=ALL_IDS)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_input_schema_agrees_with_the_model_on_near_miss_arguments(
    item: Tool, data: st.DataObject
) -> None:
    arguments = data.draw(near_miss_arguments(item), label="arguments")
    model_ok = model_accepts(item, arguments)
    assert_agree(model_ok, input_validator(item).is_valid(arguments), arguments)


@pytest.mark.parametrize("item", ALL_TOOLS, ids=ALL_IDS)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_input_schema_agrees_with_the_model_on_one_field(item: Tool, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(list(item.input_model.model_fields)), label="field")
    value = data.draw(field_values, label="value")
    arguments = {**FILLER[item.name], name: value}
    model_ok = model_accepts(item, arguments)
    assert_agree(model_ok, input_validator(item).is_valid(arguments), arguments)


# --- the flow document's schema -------------------------------------------------------------


def flow_cases() -> list[tuple[str, Tool]]:
    return [(key, item) for key, registry in REGISTRIES.items() for item in registry]


FLOW_CASES = flow_cases()
FLOW_IDS = [f"{key}-{item.name}" for key, item in FLOW_CASES]


@pytest.mark.parametrize(("registry_key", "item"), FLOW_CASES, ids=FLOW_IDS)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_flow_schema_agrees_with_the_model_on_a_literal_argument(
    registry_key: str, item: Tool, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(list(item.input_model.model_fields)), label="field")
    value = data.draw(field_values.filter(lambda v: not is_reference(v)), label="value")
    arguments = {**FILLER[item.name], name: value}
    document = flow_document(item, arguments)
    model_ok = model_accepts(item, arguments)
    assert_agree(model_ok, flow_validator(registry_key).is_valid(document), arguments)


@pytest.mark.parametrize(("registry_key", "item"), FLOW_CASES, ids=FLOW_IDS)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_flow_schema_agrees_with_the_model_on_near_miss_literal_arguments(
    registry_key: str, item: Tool, data: st.DataObject
) -> None:
    arguments = data.draw(
        near_miss_arguments(item).filter(
            lambda found: not any(is_reference(value) for value in found.values())
        ),
        label="arguments",
    )
    document = flow_document(item, arguments)
    model_ok = model_accepts(item, arguments)
    assert_agree(model_ok, flow_validator(registry_key).is_valid(document), arguments)
