"""The input model of a flow and its published JSON Schema accept the same task inputs,
for every kind of input constraint: random field specs (items, properties, optional,
nullable, enum, minimum/maximum, pattern), random values near and far from them."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.shape import make_validator
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import FlowInputError
from taskrunner.tools import builtin_registry
from tests.unit.test_typed_flows_property import input_specs, inputs_of

CHECKER = FlowChecker(builtin_registry())
anything: st.SearchStrategy[JsonValue] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-20, 20),
        st.floats(-20, 20),
        st.sampled_from([2.0, "abc", "ABC", "12", "abc\n", "a", ""]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["name", "age", "nick", "x"]), inner, max_size=3),
    ),
    max_leaves=6,
)


@st.composite
def near_misses(draw: st.DrawFn, specs: dict[str, Any]) -> dict[str, JsonValue]:
    """An input that fits `specs`, or one with a field replaced, removed or added."""
    data = dict(draw(inputs_of(specs)))
    change = draw(st.sampled_from(["none", "replace", "remove", "add"]))
    names = sorted(specs)
    if change == "replace":
        data[draw(st.sampled_from(names))] = draw(anything)
    elif change == "remove" and data:
        del data[draw(st.sampled_from(sorted(data)))]
    elif change == "add":
        data["extra"] = draw(anything)
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_input_model_and_its_published_schema_agree(data: st.DataObject) -> None:
    specs = data.draw(input_specs)
    document = {
        "name": "inputs",
        "input": specs,
        "start": "done",
        "states": {"done": {"type": "succeed"}},
    }
    flow = CHECKER.check(yaml.safe_load(yaml.safe_dump(document))).flow
    if flow is None:
        return  # a declaration the checker refuses has no input model
    plan = FlowPlan(flow, builtin_registry())
    published = make_validator(plan.input_model.model_json_schema())
    given_input = data.draw(near_misses(specs))
    try:
        plan.validate_input(given_input)
        accepted = True
    except FlowInputError:
        accepted = False
    assert accepted == published.is_valid(given_input), given_input
